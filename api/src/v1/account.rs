//! `/v1/account`: balance, tier and the brand of the account's tenant; the GDPR export and
//! erasure. `/v1/brand`: a tenant's brand for pages shown before sign-in.

use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::Scope,
    store::{
        accounts,
        privacy::{self, Erasure},
    },
};

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
    let tenant = state.caches.tenant(&state.pool, account.tenant_id).await?;
    let body = json!({
        "id": account.id,
        "email": account.email,
        "tier": account.tier,
        "balance_cents": account.balance_cents,
        "referral_code": account.referral_code,
        "created_at": account.created_at,
        "brand": tenant.tenant.brand,
    });
    Ok(reply_response(Reply::json(StatusCode::OK, &body)))
}

/// `GET /v1/brand`: the brand of the tenant whose custom domain the request came to (the
/// default tenant's elsewhere). Public: a white-label sign-in page renders it.
pub async fn brand(
    state: Arc<AppState>,
    host: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let tenant = state
        .caches
        .tenant_for_host(&state.pool, host.as_deref())
        .await?;
    let tenant = state.caches.tenant(&state.pool, tenant).await?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &tenant.tenant.brand,
    )))
}

/// `GET /v1/account/export`: everything the account holds, as one JSON document (GDPR
/// access and portability). Needs `admin`: it holds the account's whole history.
pub async fn export(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    let document = privacy::export(&state.pool, owner.account_id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    tracing::info!(account = %owner.account_id, "account data exported");
    let mut response = reply_response(Reply::json(StatusCode::OK, &document));
    if let Ok(value) = format!(
        "attachment; filename=\"namaskah-account-{}.json\"",
        owner.account_id
    )
    .parse()
    {
        response
            .headers_mut()
            .insert(warp::http::header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `DELETE /v1/account`: erases the account's personal data (GDPR erasure). The ledger and
/// payments stay, anonymous; every key is revoked, so this is the key's last request.
pub async fn erase(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let owner = authenticate(&state, authorization.as_deref(), Scope::Admin).await?;
    match privacy::erase(&state.pool, owner.account_id).await? {
        Erasure::Erased | Erasure::AlreadyErased => {}
        Erasure::OpenVerifications(open) => {
            return Err(ApiError::OpenVerificationsBlockErasure(open));
        }
        Erasure::NoSuchAccount => return Err(ApiError::NotFound("account")),
    }
    // The revocations notify every replica; this one need not wait for it.
    state.caches.apply("api_keys").await;
    tracing::info!(account = %owner.account_id, "account erased");
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "id": owner.account_id, "erased": true }),
    )))
}
