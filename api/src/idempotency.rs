//! `Idempotency-Key` on POST requests.
//!
//! Same key and same request → the stored response, marked `Idempotent-Replayed: true`.
//! Same key, different request → `422`. The same request still running → `409`.
//! A handler stores its successful response inside the transaction that did the work, so
//! the effect and the stored answer commit together.

use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use std::sync::Arc;
use warp::http::{HeaderValue, StatusCode};

use namaskah_core::{
    domain::AccountId,
    store::{
        StoreError,
        idempotency::{self, Claim},
    },
};

use crate::{
    ApiError, AppState,
    respond::{Reply, Version, error_body, error_response, json_response, reply_response, version},
};

/// What to do with a request that may carry a key.
pub enum Begin {
    /// Answer with this stored response; do nothing else.
    Replay(warp::reply::Response),
    /// Do the work; store the answer on the guard if there is one.
    Proceed(Option<Guard>),
}

/// A claimed key, waiting for the response.
pub struct Guard {
    account: AccountId,
    key: String,
}

impl Guard {
    /// Stores the successful response, inside the caller's transaction.
    pub async fn store(&self, conn: &mut PgConnection, reply: &Reply) -> Result<(), ApiError> {
        idempotency::complete(
            conn,
            self.account,
            &self.key,
            reply.status.as_u16(),
            &reply.body,
        )
        .await?;
        Ok(())
    }
}

/// Claims the key for `method path` with `body`: the usual first step of a POST handler.
pub async fn start(
    state: &Arc<AppState>,
    account: AccountId,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Begin, ApiError> {
    begin(state, account, header, &fingerprint(method, path, body)).await
}

/// Claims the key, if the request has one. `fingerprint` identifies the request: method,
/// path and canonical body.
pub async fn begin(
    state: &Arc<AppState>,
    account: AccountId,
    header: Option<&str>,
    fingerprint: &[u8],
) -> Result<Begin, ApiError> {
    let Some(key) = header else {
        return Ok(Begin::Proceed(None));
    };
    let key = validate(key)?;
    let hash = Sha256::digest(fingerprint).to_vec();
    match idempotency::claim(&state.pool, account, &key, &hash).await? {
        Claim::Fresh => Ok(Begin::Proceed(Some(Guard { account, key }))),
        Claim::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = json_response(status, body);
            if status.is_client_error() && version() == Version::V2 {
                response.headers_mut().insert(
                    warp::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
            }
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(Begin::Replay(response))
        }
        Claim::Mismatch => Err(ApiError::IdempotencyKeyReused),
        Claim::InProgress => Err(ApiError::IdempotencyKeyInUse),
    }
}

/// Turns the handler's result into the response, settling the key: a client error is stored
/// (the same request would fail the same way), a server error releases the key so the
/// client can retry.
pub async fn finish(
    state: &Arc<AppState>,
    guard: Option<Guard>,
    result: Result<Reply, ApiError>,
) -> warp::reply::Response {
    match (result, guard) {
        (Ok(reply), _) => reply_response(reply),
        (Err(error), Some(guard)) if error.is_client_error() => {
            let stored = async {
                let mut conn = state.pool.acquire().await?;
                idempotency::complete(
                    &mut conn,
                    guard.account,
                    &guard.key,
                    error.status().as_u16(),
                    &error_body(&error).1,
                )
                .await
            }
            .await;
            if let Err(store_error) = stored {
                tracing::warn!(%store_error, "could not store an error response under its idempotency key");
                let _ = idempotency::release(&state.pool, guard.account, &guard.key).await;
            }
            error_response(&error)
        }
        (Err(error), Some(guard)) => {
            if let Err(release_error) =
                idempotency::release(&state.pool, guard.account, &guard.key).await
            {
                tracing::warn!(%release_error, "could not release an idempotency key");
            }
            error_response(&error)
        }
        (Err(error), None) => error_response(&error),
    }
}

fn validate(key: &str) -> Result<String, ApiError> {
    let key = key.trim();
    let valid = (1..=255).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(key.to_owned())
    } else {
        Err(ApiError::InvalidIdempotencyKey(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".to_owned(),
        ))
    }
}

/// The identity of a request for idempotency: method, path and the body with JSON object
/// keys in a fixed order, so that formatting differences do not count as a different request.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let canonical = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|value| serde_json::to_vec(&value).ok())
        .unwrap_or_else(|| body.to_vec());
    let mut fingerprint = format!("{method} {path}\n").into_bytes();
    fingerprint.extend_from_slice(&canonical);
    fingerprint
}

/// Runs a POST handler's work under its `Idempotency-Key`, storing the answer afterwards.
/// For operations whose effect is not money: the answer is stored in its own statement, so a
/// crash between the effect and the store lets a retry do the work again.
pub async fn around<F, Fut>(
    state: &Arc<AppState>,
    account: AccountId,
    header: Option<&str>,
    method_and_path: (&str, &str),
    body: &[u8],
    work: F,
) -> Result<warp::reply::Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Reply, ApiError>>,
{
    let (method, path) = method_and_path;
    let guard = match start(state, account, header, method, path, body).await? {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(guard) => guard,
    };
    let mut result = work().await;
    if let (Ok(reply), Some(guard)) = (&result, &guard) {
        let stored = async {
            let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
            guard.store(&mut conn, reply).await
        }
        .await;
        if let Err(error) = stored {
            result = Err(error);
        }
    }
    Ok(finish(state, guard, result).await)
}
