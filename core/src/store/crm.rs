//! What the `crm` job sends: accounts created since the last export, and the usage of the
//! days since then (whole days again, so the CRM overwrites them by account, service, day).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;

use super::StoreError;

const STREAM: &str = "accounts_and_usage";
/// On the first export, how much usage history goes along.
const FIRST_USAGE_DAYS: i32 = 90;

pub struct Batch {
    /// Where the mark moves once the CRM accepted this batch.
    pub until: DateTime<Utc>,
    pub accounts: Vec<Value>,
    pub usage: Vec<Value>,
}

pub async fn pending(pool: &PgPool, now: DateTime<Utc>) -> Result<Batch, StoreError> {
    let since: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT exported_until FROM crm_exports WHERE stream = $1")
            .bind(STREAM)
            .fetch_optional(pool)
            .await?;
    let accounts: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('account_id', id, 'email', email, 'tier', tier,
                                   'balance_cents', balance_cents, 'referral_code', referral_code,
                                   'referred_by', referred_by, 'created_at', api_timestamp(created_at))
         FROM accounts
         WHERE erased_at IS NULL AND created_at <= $2 AND ($1::timestamptz IS NULL OR created_at > $1)
         ORDER BY created_at, id",
    )
    .bind(since)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let usage: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('account_id', account_id, 'day', day, 'service', service,
                                   'verifications', verifications, 'completed', completed,
                                   'refunded', refunded, 'spend_cents', spend_cents,
                                   'refunded_cents', refunded_cents)
         FROM usage_by_day
         WHERE day >= coalesce(($1::timestamptz AT TIME ZONE 'UTC')::date,
                               ($2::timestamptz AT TIME ZONE 'UTC')::date - $3)
         ORDER BY day, account_id, service",
    )
    .bind(since)
    .bind(now)
    .bind(FIRST_USAGE_DAYS)
    .fetch_all(pool)
    .await?;
    Ok(Batch {
        until: now,
        accounts,
        usage,
    })
}

/// Records that everything up to `until` reached the CRM.
pub async fn mark(pool: &PgPool, until: DateTime<Utc>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO crm_exports (stream, exported_until) VALUES ($1, $2)
         ON CONFLICT (stream) DO UPDATE SET exported_until = greatest(crm_exports.exported_until, $2)",
    )
    .bind(STREAM)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(())
}
