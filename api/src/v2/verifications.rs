//! `/v2/verifications`: cursor pagination, `expand=events`, and bulk creation.
//! Creating one and cancelling are v1's handlers, answering in v2's error format.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};
use warp::http::StatusCode;

use namaskah_core::{
    domain::{Scope, VerificationId},
    store::{
        StoreError,
        events::{self, Event},
        verifications::{self, Verification},
    },
    views::{VerificationView, timestamp},
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::{parse_json, parse_query},
    charge::{self, OrderRequest},
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
    v1::verifications::list_filter,
    v2::cursor,
};

/// The API's own ceiling on a bulk request; tiers may allow fewer.
pub const MAX_BATCH_ITEMS: usize = 100;

/// An event of a verification (`expand=events`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct EventView {
    id: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(serialize_with = "timestamp")]
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&Event> for EventView {
    fn from(event: &Event) -> Self {
        Self {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
            created_at: event.created_at,
        }
    }
}

/// What `expand` may name.
#[derive(Debug, Default)]
struct Expand {
    events: bool,
}

fn parse_expand(expand: Option<&str>) -> Result<Expand, ApiError> {
    let mut parsed = Expand::default();
    for part in expand
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match part {
            "events" => parsed.events = true,
            other => {
                return Err(ApiError::InvalidQuery(format!(
                    "`expand` can name only `events`, not {other:?}"
                )));
            }
        }
    }
    Ok(parsed)
}

fn view_with_events(verification: &Verification, events: Option<&[&Event]>) -> Value {
    let mut view = json!(VerificationView::from(verification));
    if let Some(events) = events {
        view["events"] = json!(
            events
                .iter()
                .map(|e| EventView::from(*e))
                .collect::<Vec<_>>()
        );
    }
    view
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetQuery {
    expand: Option<String>,
}

/// `GET /v2/verifications/{id}?expand=events`.
pub async fn get(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: GetQuery = parse_query(&query)?;
    let expand = parse_expand(query.expand.as_deref())?;
    let id = VerificationId::parse(&id).ok_or(ApiError::NotFound("verification"))?;
    let verification = verifications::find_for_account(&state.pool, caller.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("verification"))?;
    let events = if expand.events {
        Some(events::of_verifications(&state.pool, caller.account_id, &[id]).await?)
    } else {
        None
    };
    let events: Option<Vec<&Event>> = events.as_ref().map(|e| e.iter().collect());
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &view_with_events(&verification, events.as_deref()),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    expand: Option<String>,
}

/// `GET /v2/verifications?status=&limit=&cursor=&expand=`: newest first; `next_cursor`
/// fetches the next page and is `null` on the last.
pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: ListQuery = parse_query(&query)?;
    let (status, limit) = list_filter(query.status.as_deref(), query.limit)?;
    let after = query.cursor.as_deref().map(cursor::decode).transpose()?;
    let expand = parse_expand(query.expand.as_deref())?;
    // One row more than asked tells whether another page exists.
    let mut rows =
        verifications::page_for_account(&state.pool, caller.account_id, status, after, limit + 1)
            .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if has_more => Some(cursor::encode(last.created_at, last.id)),
        _ => None,
    };
    let events = if expand.events {
        let ids: Vec<VerificationId> = rows.iter().map(|v| v.id).collect();
        events::of_verifications(&state.pool, caller.account_id, &ids).await?
    } else {
        Vec::new()
    };
    let mut by_verification: HashMap<String, Vec<&Event>> = HashMap::new();
    for event in &events {
        if let Some(id) = event.payload.pointer("/data/id").and_then(Value::as_str) {
            by_verification
                .entry(id.to_owned())
                .or_default()
                .push(event);
        }
    }
    let data: Vec<Value> = rows
        .iter()
        .map(|v| {
            let events = expand.events.then(|| {
                by_verification
                    .get(&v.id.to_string())
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
            });
            view_with_events(v, events)
        })
        .collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data, "next_cursor": next_cursor }),
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// Each item is checked on its own, so a malformed item fails alone.
    #[schema(value_type = Vec<OrderRequest>, min_items = 1, max_items = 100)]
    items: Vec<Value>,
    #[serde(default)]
    atomic: bool,
}

/// One item's failure in a bulk request.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ItemError {
    pub index: usize,
    pub status: u16,
    pub code: &'static str,
    pub detail: String,
}

impl ItemError {
    fn new(index: usize, error: &ApiError) -> Self {
        Self {
            index,
            status: error.status().as_u16(),
            code: error.code(),
            detail: error.to_string(),
        }
    }
}

/// `POST /v2/verifications/batch` `{"items": [{"service", "country"?}, …], "atomic"?}`.
///
/// Each item is validated, priced and charged on its own, all in one transaction with a
/// savepoint per item: a failed item is rolled back alone (`atomic: false`, the answer lists
/// each item's outcome) or fails the whole batch (`atomic: true`, `422 batch_rejected`,
/// nothing charged). An `Idempotency-Key` covers the whole batch, stored in the same
/// transaction, so a retried batch never charges twice.
pub async fn batch(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let body = body?;
    let request: BatchRequest = parse_json(&body)?;
    let most = usize::try_from(caller.plan.max_batch_items)
        .unwrap_or(1)
        .min(MAX_BATCH_ITEMS);
    if request.items.is_empty() || request.items.len() > most {
        return Err(ApiError::InvalidRequest(format!(
            "`items` must hold 1 to {most} orders (the most this account's tier allows)"
        )));
    }
    let path = "/v2/verifications/batch";
    let key = idempotency_key.as_deref();
    let guard =
        match idempotency::start(&state, caller.account_id, key, "POST", path, &body).await? {
            Begin::Replay(response) => return Ok(response),
            Begin::Proceed(guard) => guard,
        };
    let result = async {
        let sheet = charge::PriceSheet::for_caller(&state, &caller).await?;
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let mut outcomes: Vec<Result<Verification, ApiError>> = Vec::new();
        for item in &request.items {
            let outcome: Result<Verification, ApiError> = async {
                let order = serde_json::from_value::<OrderRequest>(item.clone())
                    .map_err(|e| ApiError::InvalidRequest(e.to_string()))?
                    .validate()?;
                // Each charge sees the counter the ones before it moved (same transaction).
                let mut savepoint = sqlx::Acquire::begin(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                let charged =
                    charge::charge(&mut savepoint, &caller, &sheet, &state.provider_order, &order)
                        .await?;
                savepoint.commit().await.map_err(StoreError::from)?;
                Ok(charged)
            }
            .await;
            match outcome {
                // The database failing is no item's fault: the whole batch is retried.
                Err(error) if !error.is_client_error() => return Err(error),
                Ok(verification) => outcomes.push(Ok(verification)),
                Err(error) => outcomes.push(Err(error)),
            }
        }
        let failures: Vec<ItemError> = outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| outcome.as_ref().err().map(|e| ItemError::new(index, e)))
            .collect();
        if request.atomic && !failures.is_empty() {
            return Err(ApiError::BatchRejected(failures));
        }
        let created: Vec<&Verification> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
        let results: Vec<Value> = outcomes
            .iter()
            .enumerate()
            .map(|(index, outcome)| match outcome {
                Ok(verification) => json!({
                    "index": index,
                    "status": 201,
                    "verification": VerificationView::from(verification),
                }),
                Err(error) => json!({
                    "index": index,
                    "status": error.status().as_u16(),
                    "error": serde_json::from_slice::<Value>(&error.problem_body()).unwrap_or(Value::Null),
                }),
            })
            .collect();
        let status = if failures.is_empty() { StatusCode::CREATED } else { StatusCode::OK };
        let reply = Reply::json(
            status,
            &json!({ "results": results, "created": created.len(), "failed": failures.len() }),
        );
        if let Some(guard) = &guard {
            guard.store(&mut tx, &reply).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        if !created.is_empty() {
            state.outbox.notify();
        }
        for verification in created {
            charge::record_accepted(verification);
        }
        Ok(reply)
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}
