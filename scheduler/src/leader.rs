//! Leadership through a PostgreSQL advisory lock held on a dedicated connection.

use sqlx::{Connection, PgConnection};
use std::time::Duration;

use namaskah_core::{Shutdown, store};

use namaskah_core::store::scheduler_runs::LEADER_LOCK_KEY as LOCK_KEY;

/// A held leadership. Dropping it closes the connection, which releases the lock.
pub struct Leadership {
    connection: PgConnection,
}

impl Leadership {
    /// Waits until this instance leads, or shutdown.
    pub async fn acquire(
        database_url: &str,
        poll: Duration,
        shutdown: &Shutdown,
    ) -> Option<Leadership> {
        let mut reported = false;
        loop {
            match try_acquire(database_url).await {
                Ok(Some(leadership)) => return Some(leadership),
                Ok(None) => {
                    if !reported {
                        tracing::info!("another scheduler leads; standing by");
                        reported = true;
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot reach PostgreSQL to take the lead"),
            }
            tokio::select! {
                _ = shutdown.wait() => return None,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Whether the lock is still ours: the connection must still answer.
    pub async fn still_held(&mut self) -> bool {
        let check = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                            WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                              AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(LOCK_KEY)
        .fetch_one(&mut self.connection);
        matches!(
            tokio::time::timeout(Duration::from_secs(5), check).await,
            Ok(Ok(true))
        )
    }

    pub async fn release(self) {
        let _ = self.connection.close().await;
    }
}

async fn try_acquire(database_url: &str) -> Result<Option<Leadership>, store::StoreError> {
    let mut connection = store::connect_one(database_url).await?;
    let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut connection)
        .await?;
    if acquired {
        Ok(Some(Leadership { connection }))
    } else {
        let _ = connection.close().await;
        Ok(None)
    }
}
