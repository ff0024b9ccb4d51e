//! The append-only audit log of administrator actions (a trigger refuses UPDATE and DELETE).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
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
