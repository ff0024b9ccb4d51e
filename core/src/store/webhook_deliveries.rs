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
    pub message_id: String,
    pub event_type: String,
    pub payload: Value,
    pub trace_id: String,
    /// When the event was committed.
    pub message_created_at: chrono::DateTime<chrono::Utc>,
    pub endpoint: Endpoint,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    delivery_id: Uuid,
    message_id: String,
    event_type: String,
    payload: Value,
    trace_id: String,
    message_created_at: chrono::DateTime<chrono::Utc>,
    #[sqlx(flatten)]
    endpoint: Endpoint,
}

/// The outcome of claiming attempt `n` of a delivery.
#[derive(Debug)]
pub enum AttemptClaim {
    Claimed(Box<DeliveryJob>),
    /// The same attempt is running elsewhere (a duplicate message); look again later.
    Busy {
        retry_after: Duration,
    },
    /// Delivered or given up already, or a newer attempt exists.
    NotNeeded,
    /// The endpoint was disabled or deleted: the delivery should be given up.
    EndpointGone,
    /// No such delivery.
    Missing,
}

/// One delivery's attempt, to be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub delivery_id: Uuid,
    pub attempt: u32,
}

/// Claims the attempts and loads what they need, in one statement for the whole batch; the
/// answers are in the order of `requests`. A newer attempt takes over from an older one; the
/// same attempt only once the previous claim is older than `lease` (its worker died
/// mid-request). A delivery asked for twice in one batch (a duplicate message) is claimed
/// once; the second request is answered as if it came just after the first.
pub async fn claim_attempts(
    pool: &PgPool,
    requests: &[ClaimRequest],
    lease: Duration,
) -> Result<Vec<AttemptClaim>, StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = requests
        .iter()
        .filter(|request| seen.insert(request.delivery_id))
        .map(|request| (request.delivery_id, attempt_number(request.attempt)))
        .unzip();
    let claimed = sqlx::query_as::<_, JobRow>(
        "WITH claimed AS (
             UPDATE webhook_deliveries d SET attempts = w.attempt, last_attempt_at = now(), updated_at = now()
             FROM unnest($1::uuid[], $2::int[]) AS w(id, attempt)
             WHERE d.id = w.id AND d.status = 'pending'
               AND (d.attempts < w.attempt
                    OR (d.attempts = w.attempt AND d.last_attempt_at < now() - make_interval(secs => $3)))
               -- A subquery, not a join: each delivery is then reached through its primary
               -- key. Joined, the planner could walk every delivery of every endpoint of
               -- the batch instead, as it did on young tables whose statistics lagged.
               AND (SELECT e.enabled AND e.deleted_at IS NULL
                    FROM webhook_endpoints e WHERE e.id = d.endpoint_id)
             RETURNING d.id, d.message_id, d.endpoint_id
         )
         SELECT c.id AS delivery_id, m.id AS message_id, m.event_type, m.payload, m.trace_id,
                m.created_at AS message_created_at,
                e.id, e.account_id, e.url, e.description, e.event_types, e.enabled, e.secret,
                e.previous_secret, e.previous_secret_expires_at, e.failing_since, e.disabled_at,
                e.disabled_reason, e.created_at, e.updated_at
         FROM claimed c
         JOIN webhook_messages m ON m.id = c.message_id
         JOIN webhook_endpoints e ON e.id = c.endpoint_id",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut jobs: std::collections::HashMap<Uuid, JobRow> = claimed
        .into_iter()
        .map(|row| (row.delivery_id, row))
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        // `remove`: a second request for the same delivery finds it claimed by the first.
        let answer = match jobs.remove(&request.delivery_id) {
            Some(row) => AttemptClaim::Claimed(Box::new(DeliveryJob {
                delivery_id: row.delivery_id,
                message_id: row.message_id,
                event_type: row.event_type,
                payload: row.payload,
                trace_id: row.trace_id,
                message_created_at: row.message_created_at,
                endpoint: row.endpoint,
            })),
            None => why_not_claimed(pool, *request, lease).await?,
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Why an attempt was not claimed (the rare path).
async fn why_not_claimed(
    pool: &PgPool,
    request: ClaimRequest,
    lease: Duration,
) -> Result<AttemptClaim, StoreError> {
    let current: Option<(String, i32, Option<f64>, bool)> = sqlx::query_as(
        "SELECT d.status, d.attempts,
                extract(epoch FROM d.last_attempt_at + make_interval(secs => $2) - now())::float8,
                e.enabled AND e.deleted_at IS NULL
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.id = $1",
    )
    .bind(request.delivery_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(match current {
        None => AttemptClaim::Missing,
        Some((status, _, _, _)) if status != "pending" => AttemptClaim::NotNeeded,
        Some((_, _, _, false)) => AttemptClaim::EndpointGone,
        Some((_, attempts, remaining, true)) if attempts == attempt_number(request.attempt) => {
            AttemptClaim::Busy {
                retry_after: Duration::from_secs_f64(remaining.unwrap_or(0.0).max(0.0))
                    + Duration::from_secs(1),
            }
        }
        Some(_) => AttemptClaim::NotNeeded,
    })
}

fn attempt_number(attempt: u32) -> i32 {
    i32::try_from(attempt).unwrap_or(i32::MAX)
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

/// A successful attempt, to be recorded.
#[derive(Clone, Debug)]
pub struct DeliveredAttempt {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub outcome: AttemptOutcome,
}

/// Records successful attempts, the common case, in one statement for the whole batch: the
/// attempts, their deliveries, and the health of their endpoints.
pub async fn record_successes(
    pool: &PgPool,
    delivered: &[DeliveredAttempt],
) -> Result<(), StoreError> {
    let mut deliveries = Vec::with_capacity(delivered.len());
    let mut endpoints = Vec::with_capacity(delivered.len());
    let mut attempts = Vec::with_capacity(delivered.len());
    let mut status_codes = Vec::with_capacity(delivered.len());
    let mut latencies = Vec::with_capacity(delivered.len());
    let mut excerpts = Vec::with_capacity(delivered.len());
    for attempt in delivered {
        deliveries.push(attempt.delivery_id);
        endpoints.push(attempt.endpoint_id);
        attempts.push(attempt_number(attempt.outcome.attempt));
        status_codes.push(attempt.outcome.status_code.map(i32::from));
        latencies.push(i32::try_from(attempt.outcome.latency.as_millis()).unwrap_or(i32::MAX));
        excerpts.push(attempt.outcome.response_excerpt.as_deref());
    }
    sqlx::query(
        "WITH attempt AS (
             INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, status_code, latency_ms,
                                           response_excerpt)
             SELECT delivery_id, attempt, true, status_code, latency_ms, response_excerpt
             FROM unnest($1::uuid[], $3::int[], $4::int[], $5::int[], $6::text[])
                 AS a(delivery_id, attempt, status_code, latency_ms, response_excerpt)
         ), delivered AS (
             UPDATE webhook_deliveries SET status = 'succeeded', next_attempt_at = NULL, updated_at = now()
             WHERE id = ANY ($1) AND status = 'pending'
         )
         UPDATE webhook_endpoints SET failing_since = NULL
         WHERE id = ANY ($2) AND failing_since IS NOT NULL",
    )
    .bind(&deliveries)
    .bind(&endpoints)
    .bind(&attempts)
    .bind(&status_codes)
    .bind(&latencies)
    .bind(&excerpts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores the attempt and its consequences atomically: the delivery's status, the
/// endpoint's failure run, and, when that run is older than `disable_after`, the endpoint's
/// disabling with an `endpoint.disabled` event for the owner's other endpoints.
pub async fn record_attempt(
    pool: &PgPool,
    job: &DeliveryJob,
    outcome: &AttemptOutcome,
    after_failure: AfterFailure,
    disable_after: Duration,
) -> Result<Recorded, StoreError> {
    if outcome.succeeded {
        record_successes(
            pool,
            &[DeliveredAttempt {
                delivery_id: job.delivery_id,
                endpoint_id: job.endpoint.id,
                outcome: outcome.clone(),
            }],
        )
        .await?;
        return Ok(Recorded::default());
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, status_code, latency_ms,
                                       response_excerpt, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job.delivery_id)
    .bind(attempt_number(outcome.attempt))
    .bind(false)
    .bind(outcome.status_code.map(i32::from))
    .bind(i32::try_from(outcome.latency.as_millis()).unwrap_or(i32::MAX))
    .bind(outcome.response_excerpt.as_deref())
    .bind(outcome.error.as_deref())
    .execute(&mut *tx)
    .await?;

    let mut recorded = Recorded::default();
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
        webhook_messages::record_event(&mut tx, account, "endpoint.disabled", &data, &job.trace_id)
            .await?;
        recorded.endpoint_disabled = true;
    }
    tx.commit().await?;
    Ok(recorded)
}
