//! `/v1/api-keys`: an account's keys. Managing keys takes the `admin` scope; only a
//! `tenant_admin` key can create another `tenant_admin` key.
//!
//! The key itself is in the answer to its creation and nowhere else: only its SHA-256 is
//! stored. A create replayed under its `Idempotency-Key` answers with the same id and
//! prefix but `"key": null`, because the key was never stored; if the first answer was
//! lost, revoke that key and create another. Revocation takes effect at once on every API
//! replica (see `cache.rs`).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{ApiKey, Scope},
    store::{
        StoreError,
        api_keys::{self, KeySummary},
    },
    views::{timestamp, timestamp_opt},
};

use crate::{
    ApiError, AppState,
    auth::{Caller, authenticate},
    body::parse_json,
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
};

const MAX_NAME_CHARS: usize = 100;

/// A scope as the API names it (for the document; requests are checked by `parse_scopes`).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ScopeName {
    Read,
    Write,
    Admin,
    TenantAdmin,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateApiKeyRequest)]
pub(crate) struct CreateRequest {
    #[serde(default)]
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    name: String,
    #[schema(value_type = Vec<ScopeName>, min_items = 1)]
    scopes: Vec<String>,
}

/// A key as the API shows it; `key` only in the answer that created it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyView {
    pub id: Uuid,
    pub key: Option<String>,
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyView {
    pub(crate) fn new(summary: &KeySummary, key: Option<&ApiKey>) -> Self {
        Self {
            id: summary.id,
            key: key.map(|k| k.expose().to_owned()),
            prefix: summary.prefix.clone(),
            name: summary.name.clone(),
            scopes: summary.scopes.clone(),
            created_at: summary.created_at,
            last_used_at: summary.last_used_at,
            revoked_at: summary.revoked_at,
        }
    }
}

fn parse_scopes(scopes: &[String]) -> Result<Vec<Scope>, ApiError> {
    if scopes.is_empty() {
        return Err(ApiError::InvalidRequest(
            "`scopes` must name at least one of read, write, admin".to_owned(),
        ));
    }
    let mut parsed: Vec<Scope> = Vec::new();
    for scope in scopes {
        let scope = Scope::parse(scope).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "unknown scope {scope:?}; scopes are read, write, admin, tenant_admin"
            ))
        })?;
        if !parsed.contains(&scope) {
            parsed.push(scope);
        }
    }
    Ok(parsed)
}

/// `POST /v1/api-keys`.
pub async fn create(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    create_as(state, caller, idempotency_key, body).await
}

/// [`create`] for a caller already known: the web app's signed-in customer.
pub(crate) async fn create_as(
    state: Arc<AppState>,
    caller: Caller,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let request: CreateRequest = parse_json(&body)?;
    let scopes = parse_scopes(&request.scopes)?;
    // A key can hand out no more than it holds.
    if let Some(beyond) = scopes.iter().find(|scope| !caller.has_scope(**scope)) {
        return Err(ApiError::InsufficientScope(*beyond));
    }
    let name = request.name.trim().to_owned();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::InvalidRequest(format!(
            "`name` must be at most {MAX_NAME_CHARS} printable characters"
        )));
    }
    let path = format!("/{}/api-keys", crate::respond::version().prefix());
    let guard = match idempotency::start(
        &state,
        caller.account_id,
        idempotency_key.as_deref(),
        "POST",
        &path,
        &body,
    )
    .await?
    {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(guard) => guard,
    };
    let result = async {
        let key = ApiKey::generate();
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let id = api_keys::insert(&mut tx, caller.account_id, &key, &scopes, &name).await?;
        let summary = api_keys::find_for_account(&mut tx, caller.account_id, id)
            .await?
            .ok_or(StoreError::Missing("the key just created"))?;
        let location = format!("{path}/{id}");
        if let Some(guard) = &guard {
            let without_key = Reply::json(StatusCode::CREATED, &KeyView::new(&summary, None))
                .with_location(location.clone());
            guard.store(&mut tx, &without_key).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(key_id = %id, prefix = %summary.prefix, "API key created");
        Ok(
            Reply::json(StatusCode::CREATED, &KeyView::new(&summary, Some(&key)))
                .with_location(location),
        )
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}

/// `GET /v1/api-keys`: every key of the account, newest first.
pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    let keys = api_keys::list_for_account(&state.pool, caller.account_id).await?;
    let data: Vec<KeyView> = keys.iter().map(|k| KeyView::new(k, None)).collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data }),
    )))
}

/// `DELETE /v1/api-keys/{id}`: revokes the key (it stays listed, with `revoked_at`).
/// Revoking twice is harmless; the key used for this very request may revoke itself.
pub async fn revoke(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    revoke_as(state, id, caller).await
}

/// [`revoke`] for a caller already known: the web app's signed-in customer.
pub(crate) async fn revoke_as(
    state: Arc<AppState>,
    id: String,
    caller: Caller,
) -> Result<warp::reply::Response, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("API key"))?;
    let (summary, hash) = api_keys::revoke(&state.pool, caller.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("API key"))?;
    // This replica drops it now; the others on the trigger's notification.
    state.caches.forget_key(&hash).await;
    tracing::info!(key_id = %id, prefix = %summary.prefix, "API key revoked");
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &KeyView::new(&summary, None),
    )))
}
