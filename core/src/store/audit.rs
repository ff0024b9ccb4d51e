//! The append-only audit log of administrator actions (a trigger refuses UPDATE, DELETE and
//! TRUNCATE), chained by hash so that a change made around the trigger is found: see
//! migration 0021 for what each entry's hash covers, and [`verify_chain`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::StoreError;

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub details: Value,
    pub ip: Option<String>,
}

pub async fn append(
    pool: &PgPool,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &Value,
    ip: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (actor, action, target, details, ip) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(details)
    .bind(ip)
    .execute(pool)
    .await?;
    Ok(())
}

/// Appends inside the caller's transaction, so the entry commits with the change it records.
/// For actions through the API, which has no client address to record.
pub async fn append_in(
    conn: &mut sqlx::PgConnection,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: &Value,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(details)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
    Ok(sqlx::query_as::<_, AuditEntry>(
        "SELECT id, at, actor, action, target, details, ip FROM audit_log ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The hash before the first entry.
const GENESIS: [u8; 32] = [0; 32];
/// Entries read per round trip while verifying.
const PAGE: i64 = 1_000;

/// What [`verify_chain`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainState {
    pub entries: u64,
    /// The last entry's id and hash (hex), if the log is not empty.
    pub head: Option<(i64, String)>,
    /// The first place where the chain does not hold, in words naming the entry.
    pub first_break: Option<String>,
}

/// An entry as hashed: every field as text, rendered by PostgreSQL exactly as the migration's
/// `audit_log_hash` renders it.
#[derive(sqlx::FromRow)]
struct HashedEntry {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: Option<String>,
    details: String,
    ip: Option<String>,
    previous_hash: Vec<u8>,
    entry_hash: Vec<u8>,
}

impl HashedEntry {
    fn expected_hash(&self, previous: &[u8]) -> Vec<u8> {
        let mut content = String::new();
        let id = self.id.to_string();
        for field in [
            Some("v1"),
            Some(id.as_str()),
            Some(self.at.as_str()),
            Some(self.actor.as_str()),
            Some(self.action.as_str()),
            self.target.as_deref(),
            Some(self.details.as_str()),
            self.ip.as_deref(),
        ] {
            match field {
                Some(text) => content.push_str(&format!("{}:{text};", text.len())),
                None => content.push_str("-:;"),
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(content.as_bytes());
        hasher.finalize().to_vec()
    }
}

/// Recomputes the whole chain, oldest entry first, and compares the anchored heads: an
/// entry edited, deleted, or inserted other than through the chaining trigger breaks it at
/// that entry; a chain rewritten from some entry on disagrees with the anchors after it.
pub async fn verify_chain(pool: &PgPool) -> Result<ChainState, StoreError> {
    let mut state = ChainState {
        entries: 0,
        head: None,
        first_break: None,
    };
    let mut previous = GENESIS.to_vec();
    let mut previous_id: Option<i64> = None;
    'pages: loop {
        let page: Vec<HashedEntry> = sqlx::query_as(
            "SELECT id, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at,
                    actor, action, target, details::text AS details, ip,
                    previous_hash, entry_hash
             FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(previous_id.unwrap_or(i64::MIN))
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        for entry in &page {
            state.entries += 1;
            let after = previous_id.map_or("the start of the log".to_owned(), |id| {
                format!("entry {id}")
            });
            if entry.previous_hash != previous {
                state.first_break = Some(format!(
                    "entry {}: does not follow {after} (an entry between them was deleted, or this one was inserted out of order)",
                    entry.id
                ));
                break 'pages;
            }
            if entry.entry_hash != entry.expected_hash(&previous) {
                state.first_break = Some(format!(
                    "entry {}: its content does not match its hash (edited after it was written, or written around the chaining trigger)",
                    entry.id
                ));
                break 'pages;
            }
            previous.clone_from(&entry.entry_hash);
            previous_id = Some(entry.id);
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    if let Some(id) = previous_id {
        state.head = Some((id, hex::encode(&previous)));
    }
    if state.first_break.is_none() {
        state.first_break = anchor_mismatch(pool).await?;
    }
    Ok(state)
}

/// The first anchor that the log no longer bears out.
async fn anchor_mismatch(pool: &PgPool) -> Result<Option<String>, StoreError> {
    let mismatch: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT a.entry_id, l.id FROM audit_anchors a
         LEFT JOIN audit_log l ON l.id = a.entry_id
         WHERE l.entry_hash IS DISTINCT FROM a.entry_hash
         ORDER BY a.entry_id LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    Ok(mismatch.map(|(anchored, found)| match found {
        Some(id) => format!(
            "entry {id}: its hash differs from the one anchored for it (the chain was rewritten from this entry or before)"
        ),
        None => format!("entry {anchored}: anchored, but no longer in the log (deleted)"),
    }))
}

/// Records the chain's head as an anchor; the head it anchored, or `None` when the log is
/// empty or its head was anchored already.
pub async fn anchor_head(pool: &PgPool) -> Result<Option<(i64, String)>, StoreError> {
    let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO audit_anchors (entry_id, entry_hash)
         SELECT id, entry_hash FROM audit_log ORDER BY id DESC LIMIT 1
         ON CONFLICT (entry_id) DO NOTHING
         RETURNING entry_id, entry_hash",
    )
    .fetch_optional(pool)
    .await?;
    Ok(head.map(|(id, hash)| (id, hex::encode(hash))))
}
