//! The transactional outbox: messages written with the state change that causes them,
//! published later by the relay, which deletes each row once the broker has confirmed it.

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

/// Takes the oldest unsent rows out of the outbox, oldest first. The rows stay locked until
/// the transaction ends: committed once their messages are confirmed, they are gone; rolled
/// back (or the relay dies), they are unsent again. Rows another relay holds are skipped, so
/// any number of relays can run side by side without publishing the same row at the same
/// time.
pub async fn take_unsent(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut rows = sqlx::query_as::<_, OutboxRow>(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox
             WHERE sent_at IS NULL
             ORDER BY id
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, queue, payload, delay_ms",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    // RETURNING follows the plan's order; messages go out in the order they were written.
    rows.sort_unstable_by_key(|row| row.id);
    Ok(rows)
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
