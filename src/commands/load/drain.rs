//! After the submissions: waiting until the pipeline has finished its work.

use anyhow::Result;
use indicatif::ProgressBar;
use std::time::{Duration, Instant};

use namaskah_load_tests::webhook_sink::WebhookSink;

/// Waits until every verification is final and every webhook due has arrived, or `limit`.
/// A database that does not answer (a chaos run's restart) is waited for too.
///
/// The drain runs inside the measured window, so its polls cost as little as they can: the
/// open verifications are read from the accounts' open counters (a few rows, kept by the
/// pipeline; `namaskah check` holds them to the verifications, `open_count_matches`), and
/// the deliveries are counted only once none is open. Counting both tables in full every
/// 250 ms was 2–3 % of PostgreSQL's time in a load of 15,000, and counting through the
/// partial index on `open_since` no less (docs/benchmarks.md).
pub(super) async fn drain(pool: &sqlx::PgPool, sink: &WebhookSink, limit: Duration) {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let arrived = sink.with_tally(|t| t.first_seen.len()).unwrap_or(0);
        match remaining_work(pool).await {
            Ok(Remaining::Open(open)) => spinner.set_message(format!(
                "draining: {open} verifications open, {arrived} webhooks arrived"
            )),
            Ok(Remaining::Webhooks { due }) if arrived as i64 >= due => break,
            Ok(Remaining::Webhooks { due }) => spinner.set_message(format!(
                "draining: no verification open, {arrived}/{due} webhooks arrived"
            )),
            Err(error) => spinner.set_message(format!("draining: the database: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    spinner.finish_and_clear();
}

/// What the pipeline still has to do.
enum Remaining {
    /// Verifications not yet completed or refunded.
    Open(i64),
    /// None open; this many webhook deliveries are due in all.
    Webhooks { due: i64 },
}

async fn remaining_work(pool: &sqlx::PgPool) -> Result<Remaining, sqlx::Error> {
    let open: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(open_verifications), 0)::bigint FROM accounts")
            .fetch_one(pool)
            .await?;
    if open > 0 {
        return Ok(Remaining::Open(open));
    }
    let due = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(pool)
        .await?;
    Ok(Remaining::Webhooks { due })
}

/// What PostgreSQL has counted so far in the run's database.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DatabaseCounters {
    /// Transactions committed.
    pub commits: i64,
    /// Transactions aborted to break a deadlock.
    pub deadlocks: i64,
}

impl DatabaseCounters {
    pub(super) async fn read(pool: &sqlx::PgPool) -> Result<Self> {
        // Statistics reach the view when a backend reports them; ask for this one's now.
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(pool)
            .await?;
        let (commits, deadlocks) = sqlx::query_as(
            "SELECT xact_commit, deadlocks FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self { commits, deadlocks })
    }
}
