//! Provider call counts per minute, for the dashboard's provider health.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::StoreError;

/// Calls counted in one process since the last flush.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub successes: i64,
    pub failures: i64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
}

pub async fn add(
    pool: &PgPool,
    provider: &str,
    operation: &str,
    tally: &Tally,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO provider_calls (provider, operation, minute, successes, failures, last_success_at, last_failure)
         VALUES ($1, $2, date_trunc('minute', now()), $3, $4, $5, $6)
         ON CONFLICT (provider, operation, minute) DO UPDATE SET
             successes = provider_calls.successes + excluded.successes,
             failures = provider_calls.failures + excluded.failures,
             last_success_at = greatest(provider_calls.last_success_at, excluded.last_success_at),
             last_failure = coalesce(excluded.last_failure, provider_calls.last_failure)",
    )
    .bind(provider)
    .bind(operation)
    .bind(tally.successes)
    .bind(tally.failures)
    .bind(tally.last_success_at)
    .bind(tally.last_failure.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Per provider over the last hour.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Health {
    pub provider: String,
    pub successes: i64,
    pub failures: i64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
}

pub async fn last_hour(pool: &PgPool) -> Result<Vec<Health>, StoreError> {
    Ok(sqlx::query_as::<_, Health>(
        "SELECT provider, sum(successes)::bigint AS successes, sum(failures)::bigint AS failures,
                max(last_success_at) AS last_success_at,
                (array_agg(last_failure ORDER BY minute DESC) FILTER (WHERE last_failure IS NOT NULL))[1] AS last_failure
         FROM provider_calls WHERE minute > now() - interval '1 hour'
         GROUP BY provider ORDER BY provider",
    )
    .fetch_all(pool)
    .await?)
}
