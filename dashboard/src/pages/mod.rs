//! One module per page.

pub mod errors;
pub mod export;
pub mod lists;
pub mod login;
pub mod overview;
pub mod parked;
pub mod tenants;
pub mod usage;
pub mod verifications;

use serde_json::{Value, json};
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{admins::Session, audit};

use crate::{DashboardState, request::html, templates};

/// Renders `template` inside the layout, with the session's user and CSRF token.
pub fn page(
    state: &DashboardState,
    session: &Session,
    template: &str,
    title: &str,
    mut context: Value,
) -> Response {
    if let Some(map) = context.as_object_mut() {
        map.insert("title".into(), json!(title));
        map.insert("user".into(), json!(session.username));
        map.insert("csrf".into(), json!(session.csrf_token));
        map.insert(format!("nav_{template}"), json!(true));
    }
    html(
        StatusCode::OK,
        templates::render(&state.templates, template, &context),
    )
}

/// Writes an audit row; failing to audit is logged loudly but does not undo the action.
pub async fn audit(
    state: &DashboardState,
    actor: &str,
    action: &str,
    target: Option<&str>,
    details: Value,
    ip: &str,
) {
    if let Err(error) = audit::append(&state.pool, actor, action, target, &details, ip).await {
        tracing::error!(%error, action, "could not write the audit log");
    }
}

pub fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
