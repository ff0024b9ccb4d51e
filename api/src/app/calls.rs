//! The web app acting through the API's own handlers: the signed-in customer becomes the
//! caller, and the handler's JSON answer is read back for the page.

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::{
    domain::OWNER_SCOPES,
    store::{api_keys::KeyOwner, customers::Session},
};

use crate::{ApiError, AppState, auth::Caller};

/// What an action came to: the answer's JSON, or why it was refused, said for a person.
pub enum Outcome {
    Done(Value),
    Refused { status: StatusCode, message: String },
}

/// The signed-in customer as an API caller: the account's owner scopes, its tier's plan, and
/// the session as its rate-limit bucket (a session is limited like one API key).
pub async fn caller(state: &Arc<AppState>, session: &Session) -> Result<Caller, ApiError> {
    let plan = state.caches.tier_plan(&state.pool, session.tier).await?;
    let decision = state.rate_limiter.check(session.id, &plan).await;
    if !decision.allowed {
        return Err(ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs,
        });
    }
    Ok(Caller {
        owner: KeyOwner {
            key_id: session.id,
            account_id: session.account_id,
            tenant_id: session.tenant_id,
            tier: session.tier,
            scopes: OWNER_SCOPES.iter().map(|s| s.as_str().to_owned()).collect(),
            revoked_at: None,
        },
        plan,
    })
}

/// Runs an API handler as the signed-in customer, and says what it came to.
pub async fn act<F, Fut>(state: &Arc<AppState>, session: &Session, handler: F) -> Outcome
where
    F: FnOnce(Arc<AppState>, Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let result = match caller(state, session).await {
        Ok(caller) => handler(Arc::clone(state), caller).await,
        Err(error) => Err(error),
    };
    outcome(result).await
}

/// Reads a handler's result: its JSON on success, its error's message otherwise.
pub async fn outcome(result: Result<Response, ApiError>) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            return Outcome::Refused {
                status: error.status(),
                message: error.to_string(),
            };
        }
    };
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        return Outcome::Done(json);
    }
    let message = json
        .pointer("/error/message")
        .or_else(|| json.get("detail"))
        .and_then(Value::as_str)
        .unwrap_or("The request was refused.")
        .to_owned();
    Outcome::Refused { status, message }
}

/// A JSON body for a handler.
pub fn body(value: &Value) -> Result<Bytes, ApiError> {
    Ok(Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
}

/// The idempotency key a form carries (each form is rendered with a fresh one, so a
/// double-click or a resubmitted page does the work once).
pub fn idempotency_key(form: &std::collections::HashMap<String, String>) -> Option<String> {
    form.get("idempotency_key")
        .map(|key| key.trim().to_owned())
        .filter(|key| !key.is_empty())
}
