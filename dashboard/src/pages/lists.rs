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

pub async fn webhooks(state: &DashboardState, session: &Session) -> Response {
    let pool = &state.pool;
    let endpoints = sqlx::query_as::<_, EndpointRow>(
        "SELECT e.url, e.enabled, e.disabled_reason,
                count(a.id) FILTER (WHERE a.attempted_at > now() - interval '1 hour') AS attempts,
                count(a.id) FILTER (WHERE a.attempted_at > now() - interval '1 hour' AND NOT a.succeeded) AS failed
         FROM webhook_endpoints e
         LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id
         LEFT JOIN webhook_attempts a ON a.delivery_id = d.id
         WHERE e.deleted_at IS NULL
         GROUP BY e.id ORDER BY e.created_at DESC LIMIT 200",
    )
    .fetch_all(pool)
    .await;
    let failing = sqlx::query_as::<_, FailingRow>(
        "SELECT m.id, m.event_type AS event, e.url, d.attempts, d.last_attempt_at AS last
         FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.status = 'failed' OR (d.status = 'pending' AND d.attempts > 1)
         ORDER BY d.updated_at DESC LIMIT 100",
    )
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
