//! `/v1/verifications`: rent a number, read it back, list, cancel.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{Scope, Status, VerificationId},
    store::{
        self, StoreError,
        verifications::{self, CancelOutcome, Verification},
    },
};

use crate::{
    ApiError, AppState,
    auth::{Caller, authenticate},
    body::{parse_json, parse_query},
    charge::{self, OrderRequest},
    idempotency::{self, Begin},
    respond::{Reply, reply_response, version},
};
use namaskah_core::views::VerificationView;

/// `POST /v1/verifications` (and `/v2/verifications`): charge the price and queue the
/// order, in one transaction.
pub async fn create(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
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
    let order = parse_json::<OrderRequest>(&body)?.validate()?;
    let path = format!("/{}/verifications", version().prefix());
    let key = idempotency_key.as_deref();
    let guard =
        match idempotency::start(&state, caller.account_id, key, "POST", &path, &body).await? {
            Begin::Replay(response) => return Ok(response),
            Begin::Proceed(guard) => guard,
        };
    let result = async {
        let sheet = charge::PriceSheet::for_caller(&state, &caller).await?;
        let reply = |verification: &Verification| {
            Reply::json(StatusCode::CREATED, &VerificationView::from(verification))
                .with_location(format!("{path}/{}", verification.id))
        };
        let (verification, reply) = match &guard {
            // The stored answer commits with the charge.
            // Orders of one account in transactions of their own contend for its row; one
            // that PostgreSQL aborted to break a deadlock (a 503 by then) wrote nothing and
            // runs again.
            Some(guard) => {
                let mut attempt = 1;
                loop {
                    let charged = async {
                        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
                        let verification =
                            charge::charge(&mut tx, &caller, &sheet, &state.provider_order, &order)
                                .await?;
                        let reply = reply(&verification);
                        guard.store(&mut tx, &reply).await?;
                        tx.commit().await.map_err(StoreError::from)?;
                        Ok::<_, ApiError>((verification, reply))
                    }
                    .await;
                    match charged {
                        Err(ApiError::Unavailable) if attempt < store::CONFLICT_ATTEMPTS => {
                            attempt += 1;
                        }
                        done => break done?,
                    }
                }
            }
            // The charge is one statement, shared with the orders that arrive with it.
            None => {
                let verification = charge::charge_batched(&state, &caller, &sheet, &order).await?;
                let reply = reply(&verification);
                (verification, reply)
            }
        };
        state.outbox.notify();
        charge::record_accepted(&verification);
        Ok(reply)
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}

/// `GET /v1/verifications/{id}`. Another account's id is "not found", never "forbidden":
/// the answer must not reveal that the id exists.
pub async fn get(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let id = VerificationId::parse(&id).ok_or(ApiError::NotFound("verification"))?;
    let verification = verifications::find_for_account(&state.pool, owner.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("verification"))?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &VerificationView::from(&verification),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const DEFAULT_PAGE: i64 = 20;
const MAX_PAGE: i64 = 100;

/// The `status` filter and page size of a list request (v1 and v2), checked.
pub(crate) fn list_filter(
    status: Option<&str>,
    limit: Option<i64>,
) -> Result<(Option<Status>, i64), ApiError> {
    let status = status
        .map(Status::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "`limit` must be from 1 to {MAX_PAGE}"
        )));
    }
    Ok((status, limit))
}

/// `GET /v1/verifications?status=&limit=&offset=`: newest first.
pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: ListQuery = parse_query(&query)?;
    let (status, limit) = list_filter(query.status.as_deref(), query.limit)?;
    let offset = crate::body::page_offset(query.offset)?;
    // One row more than asked tells whether another page exists.
    let mut rows = verifications::list_for_account(
        &state.pool,
        owner.account_id,
        status,
        None,
        limit + 1,
        offset,
    )
    .await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let data: Vec<VerificationView> = rows.iter().map(VerificationView::from).collect();
    let body = json!({ "data": data, "limit": limit, "offset": offset, "has_more": has_more });
    Ok(reply_response(Reply::json(StatusCode::OK, &body)))
}

/// `POST /v1/verifications/{id}/cancel`: before a number is bought the verification is
/// cancelled at once (`200`); afterwards the workers cancel the provider order first
/// (`202`, the verification shows `cancel_requested`). Settled verifications: `409`.
pub async fn cancel(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    cancel_as(state, id, owner, idempotency_key, body).await
}

/// [`cancel`] for a caller already known: the web app's signed-in customer.
pub(crate) async fn cancel_as(
    state: Arc<AppState>,
    id: String,
    owner: Caller,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let key = idempotency_key.as_deref();
    let path = format!("/{}/verifications/{id}/cancel", version().prefix());
    let guard =
        match idempotency::start(&state, owner.account_id, key, "POST", &path, &body).await? {
            Begin::Replay(response) => return Ok(response),
            Begin::Proceed(guard) => guard,
        };
    let result = async {
        let id = VerificationId::parse(&id).ok_or(ApiError::NotFound("verification"))?;
        let reply = match verifications::cancel_by_customer(&state.pool, owner.account_id, id)
            .await?
        {
            CancelOutcome::Cancelled(v) => Reply::json(StatusCode::OK, &VerificationView::from(&v)),
            CancelOutcome::Requested(v) => {
                Reply::json(StatusCode::ACCEPTED, &VerificationView::from(&v))
            }
            CancelOutcome::NotCancellable(v) => {
                return Err(ApiError::NotCancellable(v.status.to_string()));
            }
            CancelOutcome::NotFound => return Err(ApiError::NotFound("verification")),
        };
        state.outbox.notify();
        if let Some(guard) = &guard {
            let mut conn = state
                .pool
                .acquire()
                .await
                .map_err(namaskah_core::store::StoreError::from)?;
            guard.store(&mut conn, &reply).await?;
        }
        Ok(reply)
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}
