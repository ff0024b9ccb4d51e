//! `/v1/webhook-messages`: every event sent to an account, its attempts, and replay.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{Scope, new_trace_id},
    store::webhook_messages::{self, Attempt, DeliveryStatus, Message},
    views::{timestamp, timestamp_opt},
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::{parse_json, parse_query},
    idempotency,
    respond::{Reply, reply_response},
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveryView {
    endpoint_id: Uuid,
    status: String,
    attempts: i32,
    #[serde(serialize_with = "timestamp_opt")]
    next_attempt_at: Option<DateTime<Utc>>,
}

/// An event and its delivery to each endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct MessageView {
    id: String,
    event_type: String,
    payload: Value,
    #[serde(serialize_with = "timestamp")]
    created_at: DateTime<Utc>,
    deliveries: Vec<DeliveryView>,
}

impl MessageView {
    fn new(message: Message, deliveries: &[DeliveryStatus]) -> Self {
        Self {
            deliveries: deliveries
                .iter()
                .filter(|d| d.message_id == message.id)
                .map(|d| DeliveryView {
                    endpoint_id: d.endpoint_id,
                    status: d.status.clone(),
                    attempts: d.attempts,
                    next_attempt_at: d.next_attempt_at,
                })
                .collect(),
            id: message.id,
            event_type: message.event_type,
            payload: message.payload,
            created_at: message.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AttemptView {
    endpoint_id: Uuid,
    attempt: i32,
    #[serde(serialize_with = "timestamp")]
    attempted_at: DateTime<Utc>,
    succeeded: bool,
    status_code: Option<i32>,
    latency_ms: i32,
    response_excerpt: Option<String>,
    error: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            endpoint_id: a.endpoint_id,
            attempt: a.attempt,
            attempted_at: a.attempted_at,
            succeeded: a.succeeded,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            error: a.error,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    event_type: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    endpoint_id: Option<Uuid>,
}

/// A message id is `msg_` and 32 hex digits; anything else cannot exist.
fn valid_message_id(id: &str) -> Result<&str, ApiError> {
    let valid =
        id.len() == 36 && id.starts_with("msg_") && id[4..].chars().all(|c| c.is_ascii_hexdigit());
    if valid {
        Ok(id)
    } else {
        Err(ApiError::NotFound("webhook message"))
    }
}

pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: ListQuery = parse_query(&query)?;
    let (limit, offset) = crate::body::page(query.limit, query.offset)?;
    if let Some(event_type) = query.event_type.as_deref()
        && !crate::v1::webhook_endpoints::EVENT_TYPES.contains(&event_type)
    {
        return Err(ApiError::InvalidQuery(format!(
            "`event_type` must be one of {}; got {event_type:?}",
            crate::v1::webhook_endpoints::EVENT_TYPES.join(", ")
        )));
    }
    let mut messages = webhook_messages::list(
        &state.pool,
        owner.account_id,
        query.event_type.as_deref(),
        limit + 1,
        offset,
    )
    .await?;
    let has_more = messages.len() as i64 > limit;
    messages.truncate(limit as usize);
    let ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    let deliveries = webhook_messages::deliveries_of(&state.pool, &ids).await?;
    let data: Vec<MessageView> = messages
        .into_iter()
        .map(|m| MessageView::new(m, &deliveries))
        .collect();
    let body = json!({ "data": data, "limit": limit, "offset": offset, "has_more": has_more });
    Ok(reply_response(Reply::json(StatusCode::OK, &body)))
}

pub async fn attempts(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let message = webhook_messages::find(&state.pool, owner.account_id, valid_message_id(&id)?)
        .await?
        .ok_or(ApiError::NotFound("webhook message"))?;
    let attempts = webhook_messages::attempts_of(&state.pool, &message.id).await?;
    let data: Vec<AttemptView> = attempts.into_iter().map(AttemptView::from).collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data }),
    )))
}

/// `POST /v1/webhook-messages/{id}/replay` `{"endpoint_id"?}`: sends the message again (same
/// `msg_` id) to one endpoint, or to every endpoint subscribed to its type.
pub async fn replay(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let body = body?;
    let request: ReplayRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest::default()
    } else {
        parse_json(&body)?
    };
    let path = format!("/v1/webhook-messages/{id}/replay");
    let key = idempotency_key.as_deref();
    idempotency::around(
        &state,
        owner.account_id,
        key,
        ("POST", &path),
        &body,
        || async {
            let message =
                webhook_messages::find(&state.pool, owner.account_id, valid_message_id(&id)?)
                    .await?
                    .ok_or(ApiError::NotFound("webhook message"))?;
            let trace_id = new_trace_id();
            let replayed = webhook_messages::replay(
                &state.pool,
                owner.account_id,
                &message.id,
                request.endpoint_id,
                &trace_id,
            )
            .await?;
            if request.endpoint_id.is_some() && replayed == 0 {
                return Err(ApiError::NotFound("webhook endpoint"));
            }
            state.outbox.notify();
            Ok(Reply::json(
                StatusCode::ACCEPTED,
                &json!({ "replayed": replayed }),
            ))
        },
    )
    .await
}
