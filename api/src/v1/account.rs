//! `GET /v1/account`: balance and tier.

use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{domain::Scope, store::accounts};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    respond::{Reply, reply_response},
};

pub async fn get(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let account = accounts::find(&state.pool, owner.account_id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    let body = json!({
        "id": account.id,
        "email": account.email,
        "tier": account.tier,
        "balance_cents": account.balance_cents,
        "referral_code": account.referral_code,
        "created_at": account.created_at,
    });
    Ok(reply_response(Reply::json(StatusCode::OK, &body)))
}
