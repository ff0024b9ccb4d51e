//! Failures grouped by fingerprint, for the dashboard's error tracking.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

/// One failure.
#[derive(Clone, Debug, Default)]
pub struct Failure {
    /// The role that failed (`api`, `worker`, `scheduler`, …).
    pub role: &'static str,
    pub queue: Option<String>,
    /// What kind of failure: `retryable`, `permanent`, `malformed`, `panic`, `internal_error`…
    pub kind: String,
    pub message: String,
    pub verification_id: Option<Uuid>,
    pub trace_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ErrorGroup {
    pub fingerprint: String,
    pub role: String,
    pub queue: Option<String>,
    pub kind: String,
    pub message: String,
    pub verification_id: Option<Uuid>,
    pub trace_id: Option<String>,
    pub occurrences: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Counts an occurrence; a resolved group with a new occurrence is open again.
pub async fn record(pool: &PgPool, fingerprint: &str, failure: &Failure) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO error_groups (fingerprint, role, queue, kind, message, verification_id, trace_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (fingerprint) DO UPDATE SET
             occurrences = error_groups.occurrences + 1, last_seen = now(),
             message = excluded.message, verification_id = excluded.verification_id,
             trace_id = excluded.trace_id, resolved_at = NULL",
    )
    .bind(fingerprint)
    .bind(failure.role)
    .bind(failure.queue.as_deref())
    .bind(&failure.kind)
    .bind(failure.message.chars().take(2000).collect::<String>())
    .bind(failure.verification_id)
    .bind(failure.trace_id.as_deref())
    .execute(pool)
    .await?;
    Ok(())
}

/// Groups, most recent first; resolved ones only when asked.
pub async fn list(
    pool: &PgPool,
    include_resolved: bool,
    limit: i64,
) -> Result<Vec<ErrorGroup>, StoreError> {
    Ok(sqlx::query_as::<_, ErrorGroup>(
        "SELECT fingerprint, role, queue, kind, message, verification_id, trace_id, occurrences,
                first_seen, last_seen, resolved_at
         FROM error_groups WHERE $1 OR resolved_at IS NULL
         ORDER BY last_seen DESC LIMIT $2",
    )
    .bind(include_resolved)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Marks a group resolved (or open again); `false` if there is no such group.
pub async fn set_resolved(
    pool: &PgPool,
    fingerprint: &str,
    resolved: bool,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE error_groups SET resolved_at = CASE WHEN $2 THEN now() ELSE NULL END WHERE fingerprint = $1",
    )
    .bind(fingerprint)
    .bind(resolved)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Open groups and their occurrences in the last hour.
pub async fn open_summary(pool: &PgPool) -> Result<(i64, i64), StoreError> {
    Ok(sqlx::query_as(
        "SELECT count(*), coalesce(sum(occurrences) FILTER (WHERE last_seen > now() - interval '1 hour'), 0)::bigint
         FROM error_groups WHERE resolved_at IS NULL",
    )
    .fetch_one(pool)
    .await?)
}
