//! `/v1/webhook-endpoints`: where an account's events go.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{Scope, new_trace_id},
    store::{
        webhook_endpoints::{self, Endpoint, EndpointPatch, NewEndpoint},
        webhook_messages,
    },
    views::{timestamp, timestamp_opt},
    webhooks::{WebhookSecret, ssrf::check_url_resolving},
};

use crate::{
    ApiError, AppState,
    auth::{Caller, authenticate},
    body::parse_json,
    idempotency,
    respond::{Reply, json_response, reply_response},
};

/// Every event type an endpoint can subscribe to.
pub const EVENT_TYPES: [&str; 10] = [
    "verification.number_assigned",
    "verification.completed",
    "verification.timed_out",
    "verification.cancelled",
    "verification.failed",
    "verification.refunded",
    "account.low_balance",
    "account.subscription_downgraded",
    "endpoint.disabled",
    "webhook.test",
];

/// A webhook endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EndpointView {
    id: Uuid,
    url: String,
    description: String,
    event_types: Vec<String>,
    enabled: bool,
    #[serde(serialize_with = "timestamp_opt")]
    disabled_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    #[serde(serialize_with = "timestamp_opt")]
    failing_since: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp")]
    updated_at: DateTime<Utc>,
    /// Shown when the endpoint is created and when its secret is rotated, never otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl EndpointView {
    pub(crate) fn new(endpoint: &Endpoint, with_secret: bool) -> Self {
        Self {
            id: endpoint.id,
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            event_types: endpoint.event_types.clone(),
            enabled: endpoint.enabled,
            disabled_at: endpoint.disabled_at,
            disabled_reason: endpoint.disabled_reason.clone(),
            failing_since: endpoint.failing_since,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
            secret: with_secret.then(|| endpoint.secret.clone()),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateEndpointRequest)]
pub(crate) struct CreateRequest {
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PatchEndpointRequest)]
pub(crate) struct PatchRequest {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverRequest {
    since: DateTime<Utc>,
}

async fn validate_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    check_url_resolving(url, state.webhook_urls)
        .await
        .map(|url| url.to_string())
        .map_err(|refused| ApiError::InvalidWebhookUrl(refused.to_string()))
}

fn validate_event_types(event_types: &[String]) -> Result<Vec<String>, ApiError> {
    if let Some(unknown) = event_types
        .iter()
        .find(|t| !EVENT_TYPES.contains(&t.as_str()))
    {
        return Err(ApiError::InvalidRequest(format!(
            "unknown event type {unknown:?}; expected some of {}",
            EVENT_TYPES.join(", ")
        )));
    }
    let mut unique = event_types.to_vec();
    unique.sort();
    unique.dedup();
    Ok(unique)
}

fn validate_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > 500 {
        return Err(ApiError::InvalidRequest(
            "`description` is limited to 500 characters".to_owned(),
        ));
    }
    Ok(())
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound("webhook endpoint"))
}

/// `POST /v1/webhook-endpoints`: the secret is in this answer and nowhere else.
pub async fn create(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    create_as(state, owner, idempotency_key, body).await
}

/// [`create`] for a caller already known: the web app's signed-in customer.
pub(crate) async fn create_as(
    state: Arc<AppState>,
    owner: Caller,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let request: CreateRequest = parse_json(&body)?;
    let key = idempotency_key.as_deref();
    let route = ("POST", "/v1/webhook-endpoints");
    idempotency::around(&state, owner.account_id, key, route, &body, || async {
        validate_description(&request.description)?;
        let new = NewEndpoint {
            url: validate_url(&state, &request.url).await?,
            description: request.description,
            event_types: validate_event_types(&request.event_types)?,
            enabled: request.enabled,
        };
        let secret = WebhookSecret::generate();
        let endpoint =
            webhook_endpoints::create(&state.pool, owner.account_id, &new, &secret).await?;
        Ok(
            Reply::json(StatusCode::CREATED, &EndpointView::new(&endpoint, true))
                .with_location(format!("/v1/webhook-endpoints/{}", endpoint.id)),
        )
    })
    .await
}

pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let endpoints = webhook_endpoints::list(&state.pool, owner.account_id).await?;
    let data: Vec<EndpointView> = endpoints
        .iter()
        .map(|e| EndpointView::new(e, false))
        .collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data }),
    )))
}

pub async fn get(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let endpoint = webhook_endpoints::find(&state.pool, owner.account_id, parse_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &EndpointView::new(&endpoint, false),
    )))
}

pub async fn update(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let id = parse_id(&id)?;
    let request: PatchRequest = parse_json(&body?)?;
    if let Some(description) = &request.description {
        validate_description(description)?;
    }
    let patch = EndpointPatch {
        url: match &request.url {
            Some(url) => Some(validate_url(&state, url).await?),
            None => None,
        },
        description: request.description,
        event_types: request
            .event_types
            .as_deref()
            .map(validate_event_types)
            .transpose()?,
        enabled: request.enabled,
    };
    let endpoint = webhook_endpoints::update(&state.pool, owner.account_id, id, &patch)
        .await?
        .ok_or(ApiError::NotFound("webhook endpoint"))?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &EndpointView::new(&endpoint, false),
    )))
}

pub async fn delete(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    if webhook_endpoints::delete(&state.pool, owner.account_id, parse_id(&id)?).await? {
        Ok(json_response(StatusCode::NO_CONTENT, Vec::new()))
    } else {
        Err(ApiError::NotFound("webhook endpoint"))
    }
}

/// `POST /v1/webhook-endpoints/{id}/rotate-secret`: a new secret; the old one keeps signing,
/// as a second signature, for `WEBHOOK_ROTATION_OVERLAP` (24 h).
pub async fn rotate_secret(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    rotate_secret_as(state, id, owner, idempotency_key, body).await
}

/// [`rotate_secret`] for a caller already known: the web app's signed-in customer.
pub(crate) async fn rotate_secret_as(
    state: Arc<AppState>,
    id: String,
    owner: Caller,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let path = format!("/v1/webhook-endpoints/{id}/rotate-secret");
    let key = idempotency_key.as_deref();
    idempotency::around(
        &state,
        owner.account_id,
        key,
        ("POST", &path),
        &body,
        || async {
            let endpoint = webhook_endpoints::rotate_secret(
                &state.pool,
                owner.account_id,
                parse_id(&id)?,
                &WebhookSecret::generate(),
                state.webhook_rotation_overlap,
            )
            .await?
            .ok_or(ApiError::NotFound("webhook endpoint"))?;
            Ok(Reply::json(
                StatusCode::OK,
                &EndpointView::new(&endpoint, true),
            ))
        },
    )
    .await
}

/// `POST /v1/webhook-endpoints/{id}/test`: a `webhook.test` event to this endpoint only.
pub async fn send_test(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let body = body?;
    let path = format!("/v1/webhook-endpoints/{id}/test");
    let key = idempotency_key.as_deref();
    idempotency::around(
        &state,
        owner.account_id,
        key,
        ("POST", &path),
        &body,
        || async {
            let endpoint = webhook_endpoints::find(&state.pool, owner.account_id, parse_id(&id)?)
                .await?
                .ok_or(ApiError::NotFound("webhook endpoint"))?;
            let trace_id = new_trace_id();
            let message_id =
                webhook_messages::send_test(&state.pool, owner.account_id, endpoint.id, &trace_id)
                    .await?;
            state.outbox.notify();
            Ok(Reply::json(
                StatusCode::ACCEPTED,
                &json!({ "message_id": message_id }),
            ))
        },
    )
    .await
}

/// `POST /v1/webhook-endpoints/{id}/recover` `{"since": "…"}`: re-sends every message that
/// failed for this endpoint since then.
pub async fn recover(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let body = body?;
    let request: RecoverRequest = parse_json(&body)?;
    let path = format!("/v1/webhook-endpoints/{id}/recover");
    let key = idempotency_key.as_deref();
    idempotency::around(
        &state,
        owner.account_id,
        key,
        ("POST", &path),
        &body,
        || async {
            let id = parse_id(&id)?;
            if webhook_endpoints::find(&state.pool, owner.account_id, id)
                .await?
                .is_none()
            {
                return Err(ApiError::NotFound("webhook endpoint"));
            }
            let trace_id = new_trace_id();
            let recovered = webhook_messages::recover(
                &state.pool,
                owner.account_id,
                id,
                request.since,
                &trace_id,
            )
            .await?;
            state.outbox.notify();
            Ok(Reply::json(
                StatusCode::ACCEPTED,
                &json!({ "recovered": recovered }),
            ))
        },
    )
    .await
}
