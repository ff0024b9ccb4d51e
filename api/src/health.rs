//! `/healthz`: the process is alive. `/readyz`: it can do its work (PostgreSQL and RabbitMQ
//! answer), else `503` so load balancers stop sending traffic.

use serde_json::json;
use std::{sync::Arc, time::Duration};
use warp::http::StatusCode;

use namaskah_core::store;

use crate::{AppState, respond::json_response};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Result<warp::reply::Response, std::convert::Infallible> {
    Ok(json_response(
        StatusCode::OK,
        br#"{"status":"ok"}"#.to_vec(),
    ))
}

pub async fn readyz(
    state: Arc<AppState>,
) -> Result<warp::reply::Response, std::convert::Infallible> {
    // The public answer says only which engine is down; why (an error naming hosts, users
    // or ports) goes to the log, for operators.
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, store::ping(&state.pool)).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: PostgreSQL does not answer");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(timeout = ?CHECK_TIMEOUT, "readiness: PostgreSQL timed out");
            "timed out"
        }
    };
    let rabbitmq = match tokio::time::timeout(CHECK_TIMEOUT, state.broker.check()).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: RabbitMQ does not answer");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(timeout = ?CHECK_TIMEOUT, "readiness: RabbitMQ timed out");
            "timed out"
        }
    };
    let ready = postgres == "ok" && rabbitmq == "ok";
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "postgres": postgres, "rabbitmq": rabbitmq },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(
        status,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
