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

/// What `/readyz` says of one engine: `ok`, `unavailable` or `timed out`. Only which engine
/// is down is public; why (an error naming hosts, users or ports) goes to the log.
async fn verdict<E: std::fmt::Display>(
    engine: &str,
    probe: impl std::future::Future<Output = Result<(), E>>,
) -> &'static str {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok",
        Ok(Err(error)) => {
            tracing::warn!(%error, engine, "readiness: no answer");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!(timeout = ?CHECK_TIMEOUT, engine, "readiness: timed out");
            "timed out"
        }
    }
}

pub async fn readyz(
    state: Arc<AppState>,
) -> Result<warp::reply::Response, std::convert::Infallible> {
    let postgres = verdict("PostgreSQL", store::ping(&state.pool)).await;
    let rabbitmq = verdict("RabbitMQ", state.broker.check()).await;
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
