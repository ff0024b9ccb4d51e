//! After the submissions: waiting until the pipeline has finished its work.

use anyhow::Result;
use indicatif::ProgressBar;
use std::time::{Duration, Instant};

use namaskah_load_tests::webhook_sink::WebhookSink;

/// Waits until every verification is final and every webhook due has arrived, or `limit`.
/// A database that does not answer (a chaos run's restart) is waited for too.
pub(super) async fn drain(pool: &sqlx::PgPool, sink: &WebhookSink, limit: Duration) {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let counts: Result<(i64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT (SELECT count(*) FROM verifications
                     WHERE status NOT IN ('completed', 'refunded')),
                    (SELECT count(*) FROM webhook_deliveries)",
        )
        .fetch_one(pool)
        .await;
        let arrived = sink.with_tally(|t| t.first_seen.len()).unwrap_or(0);
        match counts {
            Ok((open, due)) if open == 0 && arrived as i64 >= due => break,
            Ok((open, due)) => spinner.set_message(format!(
                "draining: {open} verifications open, {arrived}/{due} webhooks arrived"
            )),
            Err(error) => spinner.set_message(format!("draining: the database: {error}")),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    spinner.finish_and_clear();
}

/// Transactions committed so far in the run's database.
pub(super) async fn commits(pool: &sqlx::PgPool) -> Result<i64> {
    // Statistics reach the view when a backend reports them; ask for this one's now.
    sqlx::query("SELECT pg_stat_force_next_flush()")
        .execute(pool)
        .await?;
    Ok(sqlx::query_scalar(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?)
}
