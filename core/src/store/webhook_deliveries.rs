//! The delivery worker's view of a webhook delivery: load it, claim an attempt, record how
//! the attempt went (and disable an endpoint that has failed for too long).

use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use super::{StoreError, webhook_endpoints::Endpoint, webhook_messages};
use crate::domain::AccountId;

/// Everything one attempt needs.
#[derive(Clone, Debug)]
pub struct DeliveryJob {
    pub delivery_id: Uuid,
    pub status: String,
    pub message_id: String,
    pub event_type: String,
    pub payload: Value,
    pub trace_id: String,
    pub endpoint: Endpoint,
    pub endpoint_deleted: bool,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    delivery_id: Uuid,
    status: String,
    message_id: String,
    event_type: String,
    payload: Value,
    trace_id: String,
    endpoint_deleted: bool,
    #[sqlx(flatten)]
    endpoint: Endpoint,
}

pub async fn load(pool: &PgPool, delivery_id: Uuid) -> Result<Option<DeliveryJob>, StoreError> {
    let row = sqlx::query_as::<_, JobRow>(
        "SELECT d.id AS delivery_id, d.status, m.id AS message_id, m.event_type, m.payload, m.trace_id,
                e.deleted_at IS NOT NULL AS endpoint_deleted,
                e.id, e.account_id, e.url, e.description, e.event_types, e.enabled, e.secret,
                e.previous_secret, e.previous_secret_expires_at, e.failing_since, e.disabled_at,
                e.disabled_reason, e.created_at, e.updated_at
         FROM webhook_deliveries d
         JOIN webhook_messages m ON m.id = d.message_id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1",
    )
    .bind(delivery_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|row| DeliveryJob {
        delivery_id: row.delivery_id,
        status: row.status,
        message_id: row.message_id,
        event_type: row.event_type,
        payload: row.payload,
        trace_id: row.trace_id,
        endpoint: row.endpoint,
        endpoint_deleted: row.endpoint_deleted,
    }))
}

/// The outcome of claiming attempt `n` of a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum AttemptClaim {
    Claimed,
    /// The same attempt is running elsewhere (a duplicate message); look again later.
    Busy {
        retry_after: Duration,
    },
    /// Delivered or given up already, or a newer attempt exists.
    NotNeeded,
}

/// Claims attempt `attempt`. A newer attempt takes over from an older one; the same attempt
/// only once the previous claim is older than `lease` (its worker died mid-request).
pub async fn claim_attempt(
    pool: &PgPool,
    delivery_id: Uuid,
    attempt: u32,
    lease: Duration,
) -> Result<AttemptClaim, StoreError> {
    let attempt = i32::try_from(attempt).unwrap_or(i32::MAX);
    let claimed = sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $2, last_attempt_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'pending'
           AND (attempts < $2 OR (attempts = $2 AND last_attempt_at < now() - make_interval(secs => $3)))",
    )
    .bind(delivery_id)
    .bind(attempt)
    .bind(lease.as_secs_f64())
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 1 {
        return Ok(AttemptClaim::Claimed);
    }
    let current: Option<(String, i32, Option<f64>)> = sqlx::query_as(
        "SELECT status, attempts,
                extract(epoch FROM last_attempt_at + make_interval(secs => $2) - now())::float8
         FROM webhook_deliveries WHERE id = $1",
    )
    .bind(delivery_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(match current {
        Some((status, attempts, remaining)) if status == "pending" && attempts == attempt => {
            AttemptClaim::Busy {
                retry_after: Duration::from_secs_f64(remaining.unwrap_or(0.0).max(0.0))
                    + Duration::from_secs(1),
            }
        }
        _ => AttemptClaim::NotNeeded,
    })
}

/// Marks a delivery failed without an attempt (its endpoint was disabled or deleted).
pub async fn give_up(pool: &PgPool, delivery_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_deliveries SET status = 'failed', updated_at = now() WHERE id = $1 AND status = 'pending'")
        .bind(delivery_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// What one attempt did.
#[derive(Clone, Debug)]
pub struct AttemptOutcome {
    pub attempt: u32,
    pub succeeded: bool,
    pub status_code: Option<u16>,
    pub latency: Duration,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// What happens after a failed attempt.
#[derive(Clone, Copy, Debug)]
pub enum AfterFailure {
    /// Another attempt after this delay.
    RetryIn(Duration),
    /// That was the last attempt.
    GiveUp,
}

/// The result of recording an attempt.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// The endpoint has been failing longer than allowed and is now disabled.
    pub endpoint_disabled: bool,
}

/// Stores the attempt and its consequences in one transaction: the delivery's status, the
/// endpoint's failure run, and, when that run is older than `disable_after`, the endpoint's
/// disabling with an `endpoint.disabled` event for the owner's other endpoints.
pub async fn record_attempt(
    pool: &PgPool,
    job: &DeliveryJob,
    outcome: &AttemptOutcome,
    after_failure: AfterFailure,
    disable_after: Duration,
) -> Result<Recorded, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, status_code, latency_ms,
                                       response_excerpt, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job.delivery_id)
    .bind(i32::try_from(outcome.attempt).unwrap_or(i32::MAX))
    .bind(outcome.succeeded)
    .bind(outcome.status_code.map(i32::from))
    .bind(i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX))
    .bind(outcome.response_excerpt.as_deref())
    .bind(outcome.error.as_deref())
    .execute(&mut *tx)
    .await?;

    let mut recorded = Recorded::default();
    if outcome.succeeded {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, updated_at = now()
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(job.delivery_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
            .bind(job.endpoint.id)
            .execute(&mut *tx)
            .await?;
    } else {
        let (status, next) = match after_failure {
            AfterFailure::RetryIn(delay) => ("pending", Some(delay.as_secs_f64())),
            AfterFailure::GiveUp => ("failed", None),
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $2,
                    next_attempt_at = now() + make_interval(secs => $3), updated_at = now()
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(job.delivery_id)
        .bind(status)
        .bind(next)
        .execute(&mut *tx)
        .await?;
        // The failure run starts now unless it already had; an endpoint whose run is older
        // than `disable_after` is disabled, once (`just_disabled` reads the row as it was).
        let (account, just_disabled): (AccountId, bool) = sqlx::query_as(
            "WITH before AS (
                 SELECT id, enabled, failing_since,
                        coalesce(failing_since < now() - make_interval(secs => $2), false) AS expired
                 FROM webhook_endpoints WHERE id = $1 FOR UPDATE
             )
             UPDATE webhook_endpoints e SET
                 failing_since = coalesce(before.failing_since, now()),
                 enabled = e.enabled AND NOT before.expired,
                 disabled_at = CASE WHEN before.enabled AND before.expired THEN now() ELSE e.disabled_at END,
                 disabled_reason = CASE WHEN before.enabled AND before.expired
                     THEN 'every delivery attempt failed since ' || api_timestamp(before.failing_since)
                     ELSE e.disabled_reason END,
                 updated_at = now()
             FROM before WHERE e.id = before.id
             RETURNING e.account_id, before.enabled AND before.expired",
        )
        .bind(job.endpoint.id)
        .bind(disable_after.as_secs_f64())
        .fetch_one(&mut *tx)
        .await?;
        if just_disabled {
            let data = json!({
                "endpoint_id": job.endpoint.id,
                "url": job.endpoint.url,
                "reason": format!("every delivery attempt failed for longer than {} s", disable_after.as_secs()),
            });
            webhook_messages::record_event(
                &mut tx,
                account,
                "endpoint.disabled",
                &data,
                &job.trace_id,
            )
            .await?;
            recorded.endpoint_disabled = true;
        }
    }
    tx.commit().await?;
    Ok(recorded)
}
