//! Webhooks, scheduler runs and the audit log: recent rows.

use serde::Serialize;
use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    store::{admins::Session, audit, scheduler_runs},
    views::timestamp_opt,
};

use super::when;
use crate::{DashboardState, request::text};

#[derive(Serialize, sqlx::FromRow)]
struct EndpointRow {
    url: String,
    enabled: bool,
    disabled_reason: Option<String>,
    attempts: i64,
    failed: i64,
}

#[derive(Serialize, sqlx::FromRow)]
struct FailingRow {
    id: String,
    event: String,
    url: String,
    attempts: i32,
    #[serde(serialize_with = "timestamp_opt")]
    last: Option<chrono::DateTime<chrono::Utc>>,
}

/// Failing deliveries the webhooks page shows.
const FAILING_SHOWN: i64 = 100;
/// Failed attempts of still failing deliveries read to find them: a delivery gives up
/// after eight attempts with the default `WEBHOOK_RETRY_SCHEDULE`, so this many name at
/// least `FAILING_SHOWN` deliveries.
const FAILED_ATTEMPTS_READ: i64 = 1_000;

pub async fn webhooks(state: &DashboardState, session: &Session) -> Response {
    let pool = &state.pool;
    // Both lists start from the attempts (kept `RETENTION_HISTORY`), never from the
    // deliveries, which are kept for replays and grow with the service's whole history.
    let endpoints = sqlx::query_as::<_, EndpointRow>(
        "SELECT e.url, e.enabled, e.disabled_reason,
                coalesce(h.attempts, 0) AS attempts, coalesce(h.failed, 0) AS failed
         FROM webhook_endpoints e
         LEFT JOIN (
             SELECT d.endpoint_id, count(*) AS attempts, count(*) FILTER (WHERE NOT a.succeeded) AS failed
             FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
             WHERE a.attempted_at > now() - interval '1 hour'
             GROUP BY d.endpoint_id
         ) h ON h.endpoint_id = e.id
         WHERE e.deleted_at IS NULL
         ORDER BY e.created_at DESC LIMIT 200",
    )
    .fetch_all(pool)
    .await;
    // A delivery is failing when one of its attempts failed and it has not succeeded since:
    // given up, or waiting for its next retry. The newest failed attempts, through their
    // partial index (migration 0028), name the deliveries to show; the scan stops once it
    // has found enough of them that are still failing.
    let failing = sqlx::query_as::<_, FailingRow>(
        "WITH recent_failures AS (
             SELECT newest.delivery_id, max(newest.attempted_at) AS failed_at
             FROM (SELECT a.delivery_id, a.attempted_at
                   FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
                   WHERE NOT a.succeeded AND d.status <> 'succeeded'
                   ORDER BY a.attempted_at DESC LIMIT $1) newest
             GROUP BY newest.delivery_id
         )
         SELECT m.id, m.event_type AS event, e.url, d.attempts, d.last_attempt_at AS last
         FROM recent_failures f
         JOIN webhook_deliveries d ON d.id = f.delivery_id
         JOIN webhook_messages m ON m.id = d.message_id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         ORDER BY f.failed_at DESC LIMIT $2",
    )
    .bind(FAILED_ATTEMPTS_READ)
    .bind(FAILING_SHOWN)
    .fetch_all(pool)
    .await;
    let (Ok(endpoints), Ok(failing)) = (endpoints, failing) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    super::page(
        state,
        session,
        "webhooks",
        "Webhooks",
        json!({ "endpoints": endpoints, "failing": failing }),
    )
}

pub async fn scheduler(state: &DashboardState, session: &Session) -> Response {
    let Ok(runs) = scheduler_runs::recent(&state.pool, 200).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    let leader = scheduler_runs::leader_present(&state.pool)
        .await
        .unwrap_or(false);
    let rows: Vec<_> = runs
        .iter()
        .map(|r| {
            json!({
                "job": r.job, "tick": when(&r.tick), "instance": r.instance, "outcome": r.outcome,
                "seconds": r.finished_at.map(|f| format!("{:.2}", (f - r.started_at).num_milliseconds() as f64 / 1000.0)),
                "rows": r.rows_touched, "error": r.error, "failed": r.outcome == "failed",
            })
        })
        .collect();
    super::page(
        state,
        session,
        "scheduler",
        "Scheduler",
        json!({ "runs": rows, "leader": leader }),
    )
}

pub async fn audit(state: &DashboardState, session: &Session) -> Response {
    let Ok(entries) = audit::recent(&state.pool, 300).await else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The database is unavailable.",
        );
    };
    let rows: Vec<_> = entries
        .iter()
        .map(|e| json!({ "at": when(&e.at), "actor": e.actor, "action": e.action, "target": e.target, "details": e.details.to_string(), "ip": e.ip }))
        .collect();
    super::page(
        state,
        session,
        "audit",
        "Audit log",
        json!({ "entries": rows }),
    )
}
