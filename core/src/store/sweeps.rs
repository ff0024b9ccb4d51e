//! The sweeper's queries: find work whose message was lost and send it again.
//!
//! Every nudge goes through the outbox and stamps `last_nudged_at`, so a second sweep within
//! the nudge interval sends nothing more; and every message is a nudge that the workers
//! handle idempotently, so even a repeated one changes no state.
//!
//! Each scan walks `verifications_open_since_idx`, which holds only the open rows: a row
//! that became open before the age a sweep looks for (its `updated_at` or deadline is
//! later than its `open_since`) is the only kind that can qualify.

use sqlx::PgPool;
use std::time::Duration;

use super::StoreError;
use crate::domain::VerificationId;

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// `waiting_sms` past its deadline plus `grace`: poll again (the poll times it out).
pub async fn nudge_overdue_polls(
    pool: &PgPool,
    grace: Duration,
    nudge_interval: Duration,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "WITH due AS (
             UPDATE verifications SET last_nudged_at = now()
             WHERE open_since < now() - make_interval(secs => $1)
               AND status = 'waiting_sms' AND deadline < now() - make_interval(secs => $1)
               AND (last_nudged_at IS NULL OR last_nudged_at < now() - make_interval(secs => $2))
             RETURNING id, trace_id
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'polling', jsonb_build_object('type', 'poll_sms', 'verification_id', id, 'attempt', 1,
                                              'trace_id', trace_id)
         FROM due",
    )
    .bind(secs(grace))
    .bind(secs(nudge_interval))
    .execute(pool)
    .await?
    .rows_affected())
}

/// `pending` or `ordering` for longer than `stuck_after` with no live claim: send the order
/// again as a newer attempt, which takes the row over.
pub async fn nudge_stuck_orders(
    pool: &PgPool,
    stuck_after: Duration,
    lease: Duration,
    nudge_interval: Duration,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "WITH due AS (
             UPDATE verifications SET last_nudged_at = now()
             WHERE open_since < now() - make_interval(secs => $1)
               AND status IN ('pending', 'ordering') AND updated_at < now() - make_interval(secs => $1)
               AND (ordering_claimed_at IS NULL OR ordering_claimed_at < now() - make_interval(secs => $2))
               AND (last_nudged_at IS NULL OR last_nudged_at < now() - make_interval(secs => $3))
             RETURNING id, trace_id, order_attempts
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'ordering', jsonb_build_object('type', 'order_number', 'verification_id', id,
                                               'attempt', order_attempts + 1, 'trace_id', trace_id)
         FROM due",
    )
    .bind(secs(stuck_after))
    .bind(secs(lease))
    .bind(secs(nudge_interval))
    .execute(pool)
    .await?
    .rows_affected())
}

/// Verifications stuck in `ordering` with every attempt used and no live claim (the last
/// worker died): the sweeper fails them through the usual transition, and the refund follows.
pub async fn abandoned_orders(
    pool: &PgPool,
    max_attempts: u32,
    stuck_after: Duration,
    lease: Duration,
) -> Result<Vec<(VerificationId, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, trace_id FROM verifications
         WHERE open_since < now() - make_interval(secs => $2)
           AND status = 'ordering' AND order_attempts >= $1
           AND updated_at < now() - make_interval(secs => $2)
           AND (ordering_claimed_at IS NULL OR ordering_claimed_at < now() - make_interval(secs => $3))
         LIMIT 1000",
    )
    .bind(i32::try_from(max_attempts).unwrap_or(i32::MAX))
    .bind(secs(stuck_after))
    .bind(secs(lease))
    .fetch_all(pool)
    .await?)
}

/// Timed out, cancelled or failed, but not refunded after `stuck_after`: send the refund again.
pub async fn nudge_stuck_refunds(
    pool: &PgPool,
    stuck_after: Duration,
    nudge_interval: Duration,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "WITH due AS (
             UPDATE verifications SET last_nudged_at = now()
             WHERE open_since < now() - make_interval(secs => $1)
               AND status IN ('timed_out', 'cancelled', 'failed') AND updated_at < now() - make_interval(secs => $1)
               AND (last_nudged_at IS NULL OR last_nudged_at < now() - make_interval(secs => $2))
             RETURNING id, trace_id
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'refund', jsonb_build_object('type', 'refund', 'verification_id', id, 'attempt', 1,
                                             'trace_id', trace_id)
         FROM due",
    )
    .bind(secs(stuck_after))
    .bind(secs(nudge_interval))
    .execute(pool)
    .await?
    .rows_affected())
}

/// How many verifications the sweeper has nudged at least once: each one's message was lost
/// or given up, and the safety net carried it on. Load runs report it; it scans the table.
pub async fn nudged_verifications(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM verifications WHERE last_nudged_at IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// Final rows that still carry `open_since` (written by a release before migration 0019,
/// which did not clear it): cleared, so the open rows' index holds only open rows.
pub async fn clear_stale_open_since(pool: &PgPool) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE verifications SET open_since = NULL
         WHERE open_since IS NOT NULL AND status IN ('completed', 'refunded')",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Unsent outbox rows older than `age`.
pub async fn stale_outbox_rows(pool: &PgPool, age: Duration) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND created_at < now() - make_interval(secs => $1)",
    )
    .bind(secs(age))
    .fetch_one(pool)
    .await?)
}
