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
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, store::ping(&state.pool)).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    let rabbitmq = match tokio::time::timeout(CHECK_TIMEOUT, state.broker.check()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
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
