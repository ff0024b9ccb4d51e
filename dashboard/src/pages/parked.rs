//! Parked messages: what each `<queue>.dead` holds and why; requeue one or all; purge.

use serde_json::json;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{queue::QueueName, store::admins::Session};

use super::audit;
use crate::{
    DashboardState, rabbit,
    request::{Request, redirect, text},
};

pub async fn page(state: &DashboardState, session: &Session) -> Response {
    let mut queues = Vec::new();
    for queue in QueueName::ALL {
        let (messages, error) = match rabbit::peek(&state.config, queue).await {
            Ok(messages) => (messages, None),
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        queues.push(json!({
            "name": queue.as_str(),
            "count": messages.len(),
            "messages": messages,
            "error": error,
        }));
    }
    super::page(
        state,
        session,
        "parked",
        "Parked messages",
        json!({ "queues": queues }),
    )
}

pub async fn act(
    state: &DashboardState,
    request: &Request,
    session: &Session,
    queue: &str,
    action: &str,
) -> Response {
    let Some(queue) = QueueName::parse(queue) else {
        return text(StatusCode::NOT_FOUND, "No such queue.");
    };
    let form = request.form();
    let id = form
        .get("id")
        .map(String::as_str)
        .filter(|id| !id.is_empty());
    let result = match action {
        "requeue" => rabbit::requeue(&state.config, queue, id).await,
        "purge" => rabbit::purge(&state.config, queue).await,
        _ => return text(StatusCode::NOT_FOUND, "Not found."),
    };
    match result {
        Ok(count) => {
            let details = json!({ "messages": count, "message_id": id });
            let action = format!("parked_{action}");
            audit(
                state,
                &session.username,
                &action,
                Some(queue.as_str()),
                details,
                &request.ip(),
            )
            .await;
            redirect("/parked")
        }
        Err(error) => {
            tracing::error!(%error, "parked-message action failed");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "RabbitMQ is unavailable; nothing was changed.",
            )
        }
    }
}
