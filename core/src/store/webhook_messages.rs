//! Webhook messages (events), their deliveries to endpoints, and every attempt.
//!
//! Verification events are recorded by the database itself, in the statement of the status
//! change: trigger `verifications_status_changed` (migration 0019) writes the events of every
//! row the statement changed, with their deliveries and outbox rows, in one set-based
//! statement. Other events go through the SQL function `record_webhook_event` (migration
//! 0004), one at a time.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

use super::StoreError;
use crate::domain::AccountId;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Message {
    pub id: String,
    pub account_id: AccountId,
    pub event_type: String,
    pub payload: Value,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
}

/// A delivery's state, for listings.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct DeliveryStatus {
    pub message_id: String,
    pub endpoint_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Attempt {
    pub endpoint_id: Uuid,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub succeeded: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// Records an event for an account, delivered to its subscribed endpoints. Returns the
/// message id.
pub async fn record_event(
    conn: &mut PgConnection,
    account: AccountId,
    event_type: &str,
    data: &Value,
    trace_id: &str,
) -> Result<String, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT record_webhook_event($1, $2, $3, $4)")
            .bind(account)
            .bind(event_type)
            .bind(data)
            .bind(trace_id)
            .fetch_one(conn)
            .await?,
    )
}

/// A `webhook.test` event for one endpoint only.
pub async fn send_test(
    pool: &PgPool,
    account: AccountId,
    endpoint: Uuid,
    trace_id: &str,
) -> Result<String, StoreError> {
    let message_id = format!("msg_{}", Uuid::now_v7().simple());
    sqlx::query(
        "WITH message AS (
             INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
             VALUES ($1, $2, 'webhook.test',
                     jsonb_build_object('type', 'webhook.test', 'timestamp', api_timestamp(now()),
                                        'data', jsonb_build_object('endpoint_id', $3::uuid)),
                     $4)
             RETURNING id
         ), delivery AS (
             INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
             SELECT time_ordered_uuid(), id, $3 FROM message
             RETURNING id, endpoint_id
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'webhooks', deliver_webhook_job(id, endpoint_id, $4) FROM delivery",
    )
    .bind(&message_id)
    .bind(account)
    .bind(endpoint)
    .bind(trace_id)
    .execute(pool)
    .await?;
    Ok(message_id)
}

/// An account's messages, newest first, optionally of one event type: by the transaction
/// that wrote them, then by insertion (the event stream's order, and its index).
pub async fn list(
    pool: &PgPool,
    account: AccountId,
    event_type: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Message>, StoreError> {
    Ok(sqlx::query_as::<_, Message>(
        "SELECT id, account_id, event_type, payload, trace_id, created_at FROM webhook_messages
         WHERE account_id = $1 AND ($2::text IS NULL OR event_type = $2)
         ORDER BY xact_id DESC, seq DESC LIMIT $3 OFFSET $4",
    )
    .bind(account)
    .bind(event_type)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?)
}

pub async fn find(
    pool: &PgPool,
    account: AccountId,
    id: &str,
) -> Result<Option<Message>, StoreError> {
    Ok(sqlx::query_as::<_, Message>(
        "SELECT id, account_id, event_type, payload, trace_id, created_at FROM webhook_messages
         WHERE id = $1 AND account_id = $2",
    )
    .bind(id)
    .bind(account)
    .fetch_optional(pool)
    .await?)
}

/// The deliveries of the given messages.
pub async fn deliveries_of(
    pool: &PgPool,
    message_ids: &[String],
) -> Result<Vec<DeliveryStatus>, StoreError> {
    Ok(sqlx::query_as::<_, DeliveryStatus>(
        "SELECT message_id, endpoint_id, status, attempts, next_attempt_at FROM webhook_deliveries
         WHERE message_id = ANY($1) ORDER BY created_at",
    )
    .bind(message_ids)
    .fetch_all(pool)
    .await?)
}

/// The latest delivery attempts to the account's endpoints, newest first.
pub async fn recent_attempts(
    pool: &PgPool,
    account: AccountId,
    limit: i64,
) -> Result<Vec<Attempt>, StoreError> {
    Ok(sqlx::query_as::<_, Attempt>(
        "SELECT d.endpoint_id, a.attempt, a.attempted_at, a.succeeded, a.status_code, a.latency_ms,
                a.response_excerpt, a.error
         FROM webhook_endpoints e
         JOIN webhook_deliveries d ON d.endpoint_id = e.id
         JOIN webhook_attempts a ON a.delivery_id = d.id
         WHERE e.account_id = $1
         ORDER BY a.attempted_at DESC, a.id DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn attempts_of(pool: &PgPool, message_id: &str) -> Result<Vec<Attempt>, StoreError> {
    Ok(sqlx::query_as::<_, Attempt>(
        "SELECT d.endpoint_id, a.attempt, a.attempted_at, a.succeeded, a.status_code, a.latency_ms,
                a.response_excerpt, a.error
         FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
         WHERE d.message_id = $1 ORDER BY a.id",
    )
    .bind(message_id)
    .fetch_all(pool)
    .await?)
}

/// Sends a message again, to one endpoint or to every live endpoint of the account that
/// subscribes to its type: a new series of attempts under the same `msg_` id. Returns how
/// many deliveries were started.
pub async fn replay(
    pool: &PgPool,
    account: AccountId,
    message_id: &str,
    endpoint: Option<Uuid>,
    trace_id: &str,
) -> Result<u64, StoreError> {
    let started = sqlx::query(
        "WITH message AS (
             SELECT id, event_type FROM webhook_messages WHERE id = $1 AND account_id = $2
         ), targets AS (
             SELECT e.id FROM webhook_endpoints e, message m
             WHERE e.account_id = $2 AND e.enabled AND e.deleted_at IS NULL
               AND ($3::uuid IS NULL AND (cardinality(e.event_types) = 0 OR m.event_type = ANY (e.event_types))
                    OR e.id = $3)
         ), deliveries AS (
             INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
             SELECT time_ordered_uuid(), $1, id FROM targets
             ON CONFLICT (message_id, endpoint_id) DO UPDATE SET
                 status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
             RETURNING id, endpoint_id
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'webhooks', deliver_webhook_job(id, endpoint_id, $4) FROM deliveries",
    )
    .bind(message_id)
    .bind(account)
    .bind(endpoint)
    .bind(trace_id)
    .execute(pool)
    .await?;
    Ok(started.rows_affected())
}

/// Sends again every message that failed for an endpoint since `since`.
pub async fn recover(
    pool: &PgPool,
    account: AccountId,
    endpoint: Uuid,
    since: DateTime<Utc>,
    trace_id: &str,
) -> Result<u64, StoreError> {
    let started = sqlx::query(
        "WITH restarted AS (
             UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = now(),
                                             updated_at = now()
             FROM webhook_endpoints e
             WHERE d.endpoint_id = e.id AND e.id = $1 AND e.account_id = $2 AND e.deleted_at IS NULL
               AND d.status = 'failed' AND d.created_at >= $3
             RETURNING d.id, d.endpoint_id
         )
         INSERT INTO outbox (queue, payload)
         SELECT 'webhooks', deliver_webhook_job(id, endpoint_id, $4) FROM restarted",
    )
    .bind(endpoint)
    .bind(account)
    .bind(since)
    .bind(trace_id)
    .execute(pool)
    .await?;
    Ok(started.rows_affected())
}

/// How long a claimed attempt may run before another delivery of its message may take over.
pub fn attempt_lease(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(30)
}
