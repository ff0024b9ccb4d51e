//! Error tracking: failures grouped by fingerprint; resolve and reopen.

use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{admins::Session, error_groups};

use super::{audit, when};
use crate::{
    DashboardState,
    request::{Request, redirect, text},
};

pub async fn page(state: &DashboardState, request: &Request, session: &Session) -> Response {
    let all = request.query("all").is_some();
    let groups = match error_groups::list(&state.pool, all, 200).await {
        Ok(groups) => groups,
        Err(error) => {
            tracing::error!(%error, "cannot list error groups");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable.",
            );
        }
    };
    let rows: Vec<_> = groups
        .iter()
        .map(|g| {
            json!({
                "fingerprint": g.fingerprint,
                "short": &g.fingerprint[..12.min(g.fingerprint.len())],
                "role": g.role,
                "queue": g.queue,
                "kind": g.kind,
                "message": g.message,
                "verification_id": g.verification_id,
                "trace_id": g.trace_id,
                "occurrences": g.occurrences,
                "first_seen": when(&g.first_seen),
                "last_seen": when(&g.last_seen),
                "resolved": g.resolved_at.is_some(),
            })
        })
        .collect();
    super::page(
        state,
        session,
        "errors",
        "Errors",
        json!({ "groups": rows, "all": all }),
    )
}

pub async fn act(
    state: &DashboardState,
    request: &Request,
    session: &Session,
    fingerprint: &str,
    action: &str,
) -> Response {
    let resolved = match action {
        "resolve" => true,
        "reopen" => false,
        _ => return text(StatusCode::NOT_FOUND, "Not found."),
    };
    match error_groups::set_resolved(&state.pool, fingerprint, resolved).await {
        Ok(true) => {
            audit(
                state,
                &session.username,
                &format!("error_{action}"),
                Some(fingerprint),
                json!({}),
                &request.ip(),
            )
            .await;
            redirect("/errors")
        }
        Ok(false) => text(StatusCode::NOT_FOUND, "No such error group."),
        Err(error) => {
            tracing::error!(%error, "cannot update an error group");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable.",
            )
        }
    }
}
