//! The simulator's HTTP routes.

use rand::RngExt;
use serde::Deserialize;
use std::{
    convert::Infallible,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use warp::{
    Filter,
    http::StatusCode,
    reply::{self, Reply, Response},
};

use super::{OrderStatus, Simulator, behaviour::BehaviourUpdate};

pub fn routes(
    sim: Arc<Simulator>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_sim = warp::any().map(move || Arc::clone(&sim));
    let auth = warp::header::optional::<String>("authorization");

    let buy = warp::path!("v1" / "user" / "buy" / "activation" / String / String / String)
        .and(warp::get())
        .and(with_sim.clone())
        .and(auth)
        .then(buy);
    let check = warp::path!("v1" / "user" / "check" / i64)
        .and(warp::get())
        .and(with_sim.clone())
        .and(auth)
        .then(check);
    let cancel = warp::path!("v1" / "user" / "cancel" / i64)
        .and(warp::get())
        .and(with_sim.clone())
        .and(auth)
        .then(cancel);
    let finish = warp::path!("v1" / "user" / "finish" / i64)
        .and(warp::get())
        .and(with_sim.clone())
        .and(auth)
        .then(finish);

    let get_config = warp::path!("_sim" / "config")
        .and(warp::get())
        .and(with_sim.clone())
        .map(|sim: Arc<Simulator>| reply::json(&sim.behaviour()).into_response());
    let set_config = warp::path!("_sim" / "config")
        .and(warp::post())
        .and(with_sim.clone())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .map(set_config);
    let inject_sms = warp::path!("_sim" / "orders" / i64 / "sms")
        .and(warp::post())
        .and(with_sim.clone())
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .map(inject_sms);
    let show_order = warp::path!("_sim" / "orders" / i64)
        .and(warp::get())
        .and(with_sim.clone())
        .map(|id: i64, sim: Arc<Simulator>| match sim.order(id) {
            Some(order) => reply::json(&order).into_response(),
            None => text(StatusCode::NOT_FOUND, "order not found"),
        });
    let stats = warp::path!("_sim" / "stats")
        .and(warp::get())
        .and(with_sim)
        .map(|sim: Arc<Simulator>| {
            reply::json(&serde_json::json!({
                "buys": sim.stats.buys.load(Ordering::Relaxed),
                "checks": sim.stats.checks.load(Ordering::Relaxed),
                "cancels": sim.stats.cancels.load(Ordering::Relaxed),
                "finishes": sim.stats.finishes.load(Ordering::Relaxed),
            }))
            .into_response()
        });

    buy.or(check)
        .unify()
        .or(cancel)
        .unify()
        .or(finish)
        .unify()
        .or(get_config)
        .unify()
        .or(set_config)
        .unify()
        .or(inject_sms)
        .unify()
        .or(show_order)
        .unify()
        .or(stats)
        .unify()
        .or(super::checkout::routes())
        .unify()
        .recover(|_| async { Ok::<_, Infallible>(text(StatusCode::NOT_FOUND, "not found")) })
        .unify()
}

fn text(status: StatusCode, body: &'static str) -> Response {
    reply::with_status(body, status).into_response()
}

/// Counts a 5SIM request as in flight until it is answered or abandoned.
struct InFlight<'a>(&'a Simulator);

impl<'a> InFlight<'a> {
    fn enter(sim: &'a Simulator) -> Self {
        sim.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(sim)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every 5SIM call goes through: the bearer key, the configured latency and errors.
/// `Some(response)` short-circuits the call.
async fn gate(sim: &Simulator, authorization: Option<&str>) -> Option<Response> {
    let _in_flight = InFlight::enter(sim);
    sim.stats.requests.fetch_add(1, Ordering::Relaxed);
    let behaviour = sim.behaviour();
    if behaviour.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
    }
    let expected = format!("Bearer {}", sim.api_key);
    if authorization != Some(expected.as_str()) {
        return Some(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
    }
    if behaviour.error_ratio > 0.0 && rand::rng().random_bool(behaviour.error_ratio) {
        return Some(text(StatusCode::SERVICE_UNAVAILABLE, "server offline"));
    }
    if behaviour.throttle_ratio > 0.0 && rand::rng().random_bool(behaviour.throttle_ratio) {
        let mut refusal = text(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        refusal.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from_static("1"),
        );
        return Some(refusal);
    }
    None
}

async fn buy(
    country: String,
    operator: String,
    product: String,
    sim: Arc<Simulator>,
    authorization: Option<String>,
) -> Response {
    if let Some(refusal) = gate(&sim, authorization.as_deref()).await {
        return refusal;
    }
    let behaviour = sim.behaviour();
    let mut rng = rand::rng();
    if behaviour.out_of_stock_ratio > 0.0 && rng.random_bool(behaviour.out_of_stock_ratio) {
        // 5SIM answers this with a plain-text body.
        return text(StatusCode::OK, "no free phones");
    }
    let gets_sms = !(behaviour.no_sms_ratio > 0.0 && rng.random_bool(behaviour.no_sms_ratio));
    let sms_delay = gets_sms.then(|| Duration::from_millis(behaviour.sms_delay_ms));
    let order = sim.orders.create(&country, &operator, &product, sms_delay);
    sim.stats.buys.fetch_add(1, Ordering::Relaxed);
    reply::json(&order).into_response()
}

async fn check(id: i64, sim: Arc<Simulator>, authorization: Option<String>) -> Response {
    if let Some(refusal) = gate(&sim, authorization.as_deref()).await {
        return refusal;
    }
    sim.stats.checks.fetch_add(1, Ordering::Relaxed);
    match sim.orders.get(id) {
        Some(order) => reply::json(&order).into_response(),
        None => text(StatusCode::BAD_REQUEST, "order not found"),
    }
}

async fn cancel(id: i64, sim: Arc<Simulator>, authorization: Option<String>) -> Response {
    if let Some(refusal) = gate(&sim, authorization.as_deref()).await {
        return refusal;
    }
    sim.stats.cancels.fetch_add(1, Ordering::Relaxed);
    let outcome = sim.orders.update(id, |order| match order.status {
        OrderStatus::Pending => {
            order.status = OrderStatus::Canceled;
            Ok(order.clone())
        }
        OrderStatus::Canceled => Ok(order.clone()),
        OrderStatus::Received | OrderStatus::Finished => Err("order has sms"),
        OrderStatus::Timeout | OrderStatus::Banned => Err("order expired"),
    });
    match outcome {
        Some(Ok(order)) => reply::json(&order).into_response(),
        Some(Err(message)) => text(StatusCode::BAD_REQUEST, message),
        None => text(StatusCode::BAD_REQUEST, "order not found"),
    }
}

async fn finish(id: i64, sim: Arc<Simulator>, authorization: Option<String>) -> Response {
    if let Some(refusal) = gate(&sim, authorization.as_deref()).await {
        return refusal;
    }
    sim.stats.finishes.fetch_add(1, Ordering::Relaxed);
    let outcome = sim.orders.update(id, |order| match order.status {
        OrderStatus::Received | OrderStatus::Finished => {
            order.status = OrderStatus::Finished;
            Ok(order.clone())
        }
        _ => Err("order no sms"),
    });
    match outcome {
        Some(Ok(order)) => reply::json(&order).into_response(),
        Some(Err(message)) => text(StatusCode::BAD_REQUEST, message),
        None => text(StatusCode::BAD_REQUEST, "order not found"),
    }
}

fn set_config(sim: Arc<Simulator>, body: bytes::Bytes) -> Response {
    let update: BehaviourUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    match sim.behaviour().apply(update) {
        Ok(behaviour) => {
            sim.set_behaviour(behaviour.clone());
            reply::json(&behaviour).into_response()
        }
        Err(message) => json_error(StatusCode::BAD_REQUEST, &message),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectSms {
    text: String,
}

fn inject_sms(id: i64, sim: Arc<Simulator>, body: bytes::Bytes) -> Response {
    let request: InjectSms = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => return json_error(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    if sim.order(id).is_none() {
        return json_error(StatusCode::NOT_FOUND, "order not found");
    }
    if sim.deliver_sms(id, &request.text) {
        sim.order(id)
            .map(|order| reply::json(&order).into_response())
            .unwrap_or_else(|| json_error(StatusCode::NOT_FOUND, "order not found"))
    } else {
        json_error(
            StatusCode::CONFLICT,
            "the order can no longer receive an SMS",
        )
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    reply::with_status(
        reply::json(&serde_json::json!({ "error": message })),
        status,
    )
    .into_response()
}
