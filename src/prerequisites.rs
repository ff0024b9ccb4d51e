//! Before a role starts: are PostgreSQL and RabbitMQ there? If not, say how to get them.

use std::time::Duration;

use namaskah_core::{Config, queue, store};

/// A service a role needs is not reachable.
#[derive(Debug, thiserror::Error)]
pub enum Missing {
    #[error(
        "PostgreSQL is not reachable through DATABASE_URL ({error}).\n  \
         Start it: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
         (Debian), `brew services start postgresql` (macOS) or `docker compose up -d postgres`,\n  \
         or point DATABASE_URL at a running server."
    )]
    Postgres { error: String },
    #[error(
        "RabbitMQ is not reachable through AMQP_URL ({error}).\n  \
         Start it: `rabbitmq-server -detached` (Debian), `brew services start rabbitmq` (macOS) \
         or `docker compose up -d rabbitmq`,\n  or point AMQP_URL at a running broker."
    )]
    RabbitMq { error: String },
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn check_postgres(config: &Config) -> Result<(), Missing> {
    let probe = async {
        // The maintenance database always exists; ours may not yet (it is created at start).
        store::ensure_database_exists(&config.database_url).await
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Missing::Postgres {
            error: error.to_string(),
        }),
        Err(_) => Err(Missing::Postgres {
            error: "no answer within 5 s".to_owned(),
        }),
    }
}

pub async fn check_rabbitmq(config: &Config) -> Result<(), Missing> {
    match queue::connect(&config.amqp_url, "prerequisite-check").await {
        Ok(connection) => {
            let _ = connection.close(200, "checked".into()).await;
            Ok(())
        }
        Err(error) => Err(Missing::RabbitMq {
            error: error.to_string(),
        }),
    }
}

/// Both checks, reporting everything that is missing at once.
pub async fn check_all(config: &Config) -> Result<(), Vec<Missing>> {
    let (postgres, rabbitmq) = tokio::join!(check_postgres(config), check_rabbitmq(config));
    let missing: Vec<Missing> = [postgres.err(), rabbitmq.err()]
        .into_iter()
        .flatten()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}
