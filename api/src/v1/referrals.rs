//! `/v1/referrals`: the account's referral code, who it brought in and what it earned, and
//! claiming another account's code. The reward is credited with the referee's first paid
//! top-up (`store::payments::credit`), once.

use bytes::Bytes;
use serde::Deserialize;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::Scope,
    store::{
        StoreError,
        referrals::{self, Link},
    },
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::parse_json,
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
};

/// `GET /v1/referrals`.
pub async fn get(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let summary = referrals::summary(&state.pool, caller.account_id).await?;
    Ok(reply_response(Reply::json(StatusCode::OK, &summary)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimRequest {
    /// Another account's referral code.
    #[schema(min_length = 1, max_length = 64, pattern = "\\S")]
    code: String,
}

/// `POST /v1/referrals/claim` `{"code"}`: this account was referred by the code's owner.
/// Claiming again after success answers the same; nothing changes.
pub async fn claim(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    let body = body?;
    let request: ClaimRequest = parse_json(&body)?;
    if request.code.trim().is_empty() || request.code.chars().count() > 64 {
        return Err(ApiError::InvalidRequest(
            "`code` must be a referral code".to_owned(),
        ));
    }
    let key = idempotency_key.as_deref();
    let path = "/v1/referrals/claim";
    let guard =
        match idempotency::start(&state, caller.account_id, key, "POST", path, &body).await? {
            Begin::Replay(response) => return Ok(response),
            Begin::Proceed(guard) => guard,
        };
    let result = async {
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let link = referrals::link(&mut tx, caller.account_id, &request.code).await?;
        refusal(&link)?;
        let summary = referrals::summary_in(&mut tx, caller.account_id).await?;
        let reply = Reply::json(StatusCode::OK, &summary);
        if let Some(guard) = &guard {
            guard.store(&mut tx, &reply).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(reply)
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}

/// A link that did not happen, as the error that says why.
pub fn refusal(link: &Link) -> Result<(), ApiError> {
    let refused = |code, message, status| {
        Err(ApiError::ReferralRefused {
            code,
            message,
            status,
        })
    };
    match link {
        Link::Linked { .. } => Ok(()),
        Link::UnknownCode => refused(
            "unknown_referral_code",
            "no account has this referral code",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Link::OwnCode => refused(
            "self_referral",
            "an account cannot use its own referral code",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Link::Loop => refused(
            "referral_loop",
            "the code's owner was referred by this account; referrals cannot go in a circle",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Link::AlreadyReferred => refused(
            "already_referred",
            "this account already has a referrer",
            StatusCode::CONFLICT,
        ),
        Link::AlreadyPaid => refused(
            "referral_too_late",
            "referral codes are for new customers; this account has already topped up",
            StatusCode::CONFLICT,
        ),
    }
}
