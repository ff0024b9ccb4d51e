//! `/v1/subscription`: the account's tier as a monthly subscription paid from the wallet.
//! Upgrades now (prorated), downgrades at the end of the paid period, renewals by the
//! scheduler (`store::subscriptions`).

use bytes::Bytes;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{AccountId, Scope, Tier},
    store::{
        StoreError,
        subscriptions::{self, Change},
    },
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::parse_json,
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
};

/// `GET /v1/subscription`.
pub async fn get(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let subscription = subscriptions::current(&state.pool, caller.account_id).await?;
    Ok(reply_response(Reply::json(StatusCode::OK, &subscription)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeRequest {
    /// `free`, `basic`, `pro` or `enterprise`.
    #[schema(value_type = namaskah_core::domain::Tier)]
    tier: String,
}

/// `POST /v1/subscription` `{"tier"}`: needs `admin`, since it spends the balance. Asking
/// twice for the same tier changes nothing the second time; with an `Idempotency-Key` the
/// retry also gets the first answer back.
pub async fn change(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    let body = body?;
    let request: ChangeRequest = parse_json(&body)?;
    let target = Tier::parse(&request.tier).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let key = idempotency_key.as_deref();
    let guard = match idempotency::start(
        &state,
        caller.account_id,
        key,
        "POST",
        "/v1/subscription",
        &body,
    )
    .await?
    {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(guard) => guard,
    };
    let result = apply(&state, caller.account_id, target).await;
    let result = match (result, &guard) {
        (Ok(reply), Some(guard)) => {
            let stored = async {
                let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
                guard.store(&mut conn, &reply).await
            }
            .await;
            stored.map(|()| reply)
        }
        (result, _) => result,
    };
    Ok(idempotency::finish(&state, guard, result).await)
}

async fn apply(state: &AppState, account: AccountId, target: Tier) -> Result<Reply, ApiError> {
    let (change, subscription) =
        subscriptions::change(&state.pool, account, target, Utc::now()).await?;
    let (outcome, charged_cents) = match change {
        Change::Upgraded { charged_cents } => ("upgraded", charged_cents),
        Change::DowngradeScheduled => ("downgrade_scheduled", 0),
        Change::Downgraded => ("downgraded", 0),
        Change::Unchanged => ("unchanged", 0),
        Change::InsufficientBalance {
            price_cents,
            balance_cents,
        } => {
            return Err(ApiError::InsufficientBalance {
                price_cents,
                balance_cents,
            });
        }
    };
    // The tier drives prices and limits through the caches; this replica need not wait for
    // the change notification.
    state.caches.apply("api_keys").await;
    let mut body = serde_json::to_value(&subscription).unwrap_or_default();
    body["change"] = json!(outcome);
    body["charged_cents"] = json!(charged_cents);
    Ok(Reply::json(StatusCode::OK, &body))
}
