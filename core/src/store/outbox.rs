//! The transactional outbox: messages written with the state change that causes them,
//! published later by the relay.

use sqlx::{PgConnection, Postgres, Transaction};

use super::StoreError;
use crate::queue::Envelope;

/// An unsent message.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub queue: String,
    pub payload: serde_json::Value,
    pub delay_ms: i32,
}

/// Writes a message into the outbox as part of the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    envelope: &Envelope,
    delay_ms: i32,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO outbox (queue, payload, delay_ms) VALUES ($1, $2, $3)")
        .bind(envelope.job.queue().as_str())
        .bind(envelope.to_json())
        .bind(delay_ms)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks the oldest unsent rows. Rows another relay holds are skipped, so any number of
/// relays can run side by side without publishing the same row at the same time.
pub async fn lock_unsent(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    Ok(sqlx::query_as::<_, OutboxRow>(
        "SELECT id, queue, payload, delay_ms FROM outbox
         WHERE sent_at IS NULL
         ORDER BY id
         LIMIT $1
         FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

pub async fn mark_sent(tx: &mut Transaction<'_, Postgres>, ids: &[i64]) -> Result<(), StoreError> {
    sqlx::query("UPDATE outbox SET sent_at = now() WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Unsent rows, and the age of the oldest in seconds (0 when none).
pub async fn backlog(conn: &mut PgConnection) -> Result<(i64, f64), StoreError> {
    let (count, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), extract(epoch FROM now() - min(created_at))::float8
         FROM outbox WHERE sent_at IS NULL",
    )
    .fetch_one(conn)
    .await?;
    Ok((count, age.unwrap_or(0.0)))
}
