//! Idempotency keys: a retried POST gets the first response instead of a second effect.
//!
//! The key is claimed in its own short transaction before the work starts, so a concurrent
//! duplicate finds the claim and is told `409` at once instead of waiting. The work's
//! transaction stores the response on the claim; a failure that leaves no effect releases
//! the claim so the client can retry.

use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::domain::AccountId;

/// A claim older than this is taken to belong to a process that died mid-request.
const STALE_CLAIM_SECS: f64 = 60.0;

/// What the stored key says about a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: go ahead, then store the response.
    Fresh,
    /// The same request was answered before: send this again.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used for a different request.
    Mismatch,
    /// The same request is being processed right now.
    InProgress,
}

/// A stored key: request hash, state, response status and body.
type StoredKey = (Vec<u8>, String, Option<i16>, Option<Vec<u8>>);

pub async fn claim(
    pool: &PgPool,
    account: AccountId,
    key: &str,
    request_hash: &[u8],
) -> Result<Claim, StoreError> {
    // Take the key if it is new, expired, or a stale claim of a dead process.
    let taken: Option<i32> = sqlx::query_scalar(
        "INSERT INTO idempotency_keys (account_id, key, request_hash, state)
         VALUES ($1, $2, $3, 'in_progress')
         ON CONFLICT (account_id, key) DO UPDATE SET
             request_hash = excluded.request_hash, state = 'in_progress',
             response_status = NULL, response_body = NULL,
             created_at = now(), expires_at = now() + interval '24 hours'
         WHERE idempotency_keys.expires_at < now()
            OR (idempotency_keys.state = 'in_progress'
                AND idempotency_keys.request_hash = excluded.request_hash
                AND idempotency_keys.created_at < now() - make_interval(secs => $4))
         RETURNING 1",
    )
    .bind(account)
    .bind(key)
    .bind(request_hash)
    .bind(STALE_CLAIM_SECS)
    .fetch_optional(pool)
    .await?;
    if taken.is_some() {
        return Ok(Claim::Fresh);
    }
    let existing: Option<StoredKey> = sqlx::query_as(
        "SELECT request_hash, state, response_status, response_body
         FROM idempotency_keys WHERE account_id = $1 AND key = $2",
    )
    .bind(account)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(match existing {
        // Expired and purged between the two statements: rare enough to ask for a retry.
        None => Claim::InProgress,
        Some((hash, _, _, _)) if hash != request_hash => Claim::Mismatch,
        Some((_, state, Some(status), Some(body))) if state == "completed" => Claim::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body,
        },
        Some(_) => Claim::InProgress,
    })
}

/// Stores the response on the claim, inside the transaction that did the work.
pub async fn complete(
    conn: &mut PgConnection,
    account: AccountId,
    key: &str,
    status: u16,
    body: &[u8],
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_body = $4
         WHERE account_id = $1 AND key = $2",
    )
    .bind(account)
    .bind(key)
    .bind(i16::try_from(status).unwrap_or(500))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a claim up after a failure that had no effect.
pub async fn release(pool: &PgPool, account: AccountId, key: &str) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND state = 'in_progress'",
    )
    .bind(account)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes expired keys; returns how many.
pub async fn purge_expired(pool: &PgPool) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
