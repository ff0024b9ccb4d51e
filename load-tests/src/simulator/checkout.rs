//! Stand-ins for Paystack's and Stripe's checkout initialisation, so top-ups run end to end
//! on one machine: point `PAYSTACK_BASE_URL` at `<simulator>/paystack` and
//! `STRIPE_BASE_URL` at `<simulator>/stripe`. The answers have the providers' shapes; the
//! payment itself is then confirmed by posting a signed webhook (as the tests do).

use bytes::Bytes;
use serde::Deserialize;
use std::collections::HashMap;
use warp::{
    Filter,
    http::StatusCode,
    reply::{self, Reply, Response},
};

#[derive(Deserialize)]
struct PaystackInitialize {
    email: String,
    amount: i64,
    currency: String,
    reference: String,
}

pub fn routes() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let auth = warp::header::optional::<String>("authorization");
    let paystack = warp::path!("paystack" / "transaction" / "initialize")
        .and(warp::post())
        .and(auth)
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .map(paystack_initialize);
    let stripe = warp::path!("stripe" / "v1" / "checkout" / "sessions")
        .and(warp::post())
        .and(auth)
        .and(warp::body::content_length_limit(16 * 1024))
        .and(warp::body::bytes())
        .map(stripe_session);
    paystack.or(stripe).unify()
}

fn bearer(auth: Option<&str>) -> bool {
    auth.and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|key| !key.trim().is_empty())
}

fn paystack_initialize(auth: Option<String>, body: Bytes) -> Response {
    let refuse = |status, message: &str| {
        reply::with_status(
            reply::json(&serde_json::json!({ "status": false, "message": message })),
            status,
        )
        .into_response()
    };
    if !bearer(auth.as_deref()) {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid key");
    }
    let Ok(request) = serde_json::from_slice::<PaystackInitialize>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "Invalid request body");
    };
    if request.amount <= 0 || request.currency.len() != 3 || !request.email.contains('@') {
        return refuse(StatusCode::BAD_REQUEST, "Invalid amount, currency or email");
    }
    reply::json(&serde_json::json!({
        "status": true,
        "message": "Authorization URL created",
        "data": {
            "authorization_url": format!("https://checkout.paystack.invalid/{}", request.reference),
            "access_code": "simulated",
            "reference": request.reference,
        }
    }))
    .into_response()
}

fn stripe_session(auth: Option<String>, body: Bytes) -> Response {
    let refuse = |status, message: &str| {
        reply::with_status(
            reply::json(&serde_json::json!({ "error": { "message": message } })),
            status,
        )
        .into_response()
    };
    if !bearer(auth.as_deref()) {
        return refuse(StatusCode::UNAUTHORIZED, "Invalid API Key provided");
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty());
    let (Some(reference), Some(_), Some(_)) = (
        field("client_reference_id"),
        field("line_items[0][price_data][unit_amount]"),
        field("success_url"),
    ) else {
        return refuse(StatusCode::BAD_REQUEST, "Missing required param");
    };
    reply::json(&serde_json::json!({
        "id": format!("cs_test_{reference}"),
        "object": "checkout.session",
        "url": format!("https://checkout.stripe.invalid/c/pay/cs_test_{reference}"),
    }))
    .into_response()
}
