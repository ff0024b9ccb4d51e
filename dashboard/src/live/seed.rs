//! The charts' first hour after the dashboard starts, read from PostgreSQL: what it records
//! (verifications accepted, completed and refunded, webhook attempts) per sample interval.
//! Queue depths and API latency are not in the database; their lines begin when the
//! dashboard does (Prometheus keeps their longer history).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::collections::BTreeMap;

use super::history::{CAPACITY, SAMPLE_EVERY_SECONDS, Sample};

/// Counts per interval start.
type Buckets = BTreeMap<DateTime<Utc>, i64>;

/// One sample per interval of the last hour, oldest first.
pub async fn last_hour(pool: &PgPool) -> Result<Vec<Sample>, sqlx::Error> {
    let step = format!("{SAMPLE_EVERY_SECONDS} seconds");
    // Each query stays on an index on time: a verification is completed or refunded well
    // within its SMS timeout and retries after it was created, so two hours back is enough.
    let accepted = buckets(
        pool,
        "SELECT date_bin($1::interval, created_at, 'epoch'), count(*) FROM verifications
         WHERE created_at > now() - interval '1 hour' GROUP BY 1",
        &step,
    )
    .await?;
    let completed = buckets(
        pool,
        "SELECT date_bin($1::interval, completed_at, 'epoch'), count(*) FROM verifications
         WHERE created_at > now() - interval '2 hours' AND status = 'completed'
           AND completed_at > now() - interval '1 hour' GROUP BY 1",
        &step,
    )
    .await?;
    let refunded = buckets(
        pool,
        "SELECT date_bin($1::interval, refunded_at, 'epoch'), count(*) FROM verifications
         WHERE created_at > now() - interval '2 hours' AND refunded_at > now() - interval '1 hour'
         GROUP BY 1",
        &step,
    )
    .await?;
    let webhooks: Vec<(DateTime<Utc>, i64, i64)> = sqlx::query_as(
        "SELECT date_bin($1::interval, attempted_at, 'epoch'), count(*),
                count(*) FILTER (WHERE succeeded)
         FROM webhook_attempts WHERE attempted_at > now() - interval '1 hour' GROUP BY 1",
    )
    .bind(&step)
    .fetch_all(pool)
    .await?;
    let webhooks: BTreeMap<_, _> = webhooks
        .into_iter()
        .map(|(at, all, delivered)| (at, (all, delivered)))
        .collect();
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT date_bin($1::interval, now(), 'epoch')")
        .bind(&step)
        .fetch_one(pool)
        .await?;
    let seconds = SAMPLE_EVERY_SECONDS as f64;
    let per_second =
        |buckets: &Buckets, at| buckets.get(&at).copied().unwrap_or(0) as f64 / seconds;
    // The interval under way is still filling; it is left to the live samples.
    Ok((1..=CAPACITY as i64)
        .rev()
        .map(|back| now - chrono::Duration::seconds(back * SAMPLE_EVERY_SECONDS as i64))
        .map(|at| Sample {
            at,
            accepted_per_second: Some(per_second(&accepted, at)),
            completed_per_second: Some(per_second(&completed, at)),
            refunded_per_second: Some(per_second(&refunded, at)),
            webhook_success: webhooks
                .get(&at)
                .filter(|(all, _)| *all > 0)
                .map(|(all, delivered)| *delivered as f64 / *all as f64),
            ..Sample::default()
        })
        .collect())
}

async fn buckets(pool: &PgPool, sql: &'static str, step: &str) -> Result<Buckets, sqlx::Error> {
    let rows: Vec<(DateTime<Utc>, i64)> = sqlx::query_as(sql).bind(step).fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
}
