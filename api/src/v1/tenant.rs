//! `/v1/tenant`: a white-label tenant managed by its own administrators (keys with the
//! `tenant_admin` scope): its brand, its accounts and its prices.
//!
//! Everything here is scoped by the caller's tenant: another tenant's account answers `404`,
//! exactly as if it did not exist. Every change is written to the audit log, in the same
//! transaction as the change.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use std::{collections::HashSet, sync::Arc};
use warp::http::StatusCode;

use namaskah_core::{
    domain::{AccountId, ApiKey, Cents, CountryCode, OWNER_SCOPES, Scope, ServiceCode, Tier},
    pricing,
    store::{
        StoreError, accounts, api_keys, audit, referrals,
        tenants::{self, BrandChange, Price},
    },
    views::timestamp,
};

use crate::{
    ApiError, AppState,
    auth::{Caller, authenticate},
    body::{parse_json, parse_query},
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
    v1::api_keys::KeyView,
};

/// At most this many prices in one `PUT /v1/tenant/prices` (the catalogue has fewer rows).
const MAX_PRICES: usize = 1_000;
const MAX_PRICE_CENTS: i64 = 100_000_000;

/// `PATCH /v1/tenant`: only the fields present change; `null` clears an optional one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrandPatch {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        example = "https://acme.example/logo.svg",
        max_length = 2048,
        pattern = "^\\s*https://[^\\s\\x00-\\x1f\\x7f-\\x9f]+\\s*$"
    )]
    logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "#0b5fff", pattern = "^\\s*#[0-9a-f]{6}\\s*$")]
    primary_colour: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "#ffb000", pattern = "^\\s*#[0-9a-f]{6}\\s*$")]
    accent_colour: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        example = "help@acme.example",
        pattern = "^\\s*(?=[^\\s\\x00-\\x1f\\x7f-\\x9f]{3,254}\\s*$)[^\\s\\x00-\\x1f\\x7f-\\x9f]*@[^\\s\\x00-\\x1f\\x7f-\\x9f]*\\s*$"
    )]
    support_email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(
        value_type = Option<String>,
        example = "verify.acme.example",
        max_length = 253,
        pattern = "^\\s*([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\.)+(?=[a-zA-Z0-9-]*[a-zA-Z])[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\\s*$"
    )]
    custom_domain: Option<Option<String>>,
    /// Whether the tenant's customers may open an account themselves in the web app
    /// (`APP_ADDR`, under the custom domain); when `false` only `POST /v1/tenant/accounts`
    /// opens one.
    customer_sign_up: Option<bool>,
}

/// A field that is present, `null` or not: `Some(None)` for `null`, absent is `None` by default.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateAccountRequest {
    #[schema(
        example = "customer@acme.example",
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[^\\s\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    email: String,
    /// Another account's referral code (of this tenant): that account is rewarded when this
    /// one first tops up.
    #[serde(default)]
    referral_code: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PricesRequest {
    /// The tenant's whole price list; prices not in it go back to the catalogue's.
    prices: Vec<Price>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    limit: Option<i64>,
    offset: Option<i64>,
}

/// One of the tenant's accounts, as its administrators see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantAccount {
    #[schema(value_type = String, format = Uuid)]
    id: AccountId,
    email: String,
    tier: String,
    balance_cents: i64,
    referral_code: String,
    #[serde(serialize_with = "timestamp")]
    created_at: DateTime<Utc>,
}

impl From<&accounts::Account> for TenantAccount {
    fn from(account: &accounts::Account) -> Self {
        Self {
            id: account.id,
            email: account.email.clone(),
            tier: account.tier.as_str().to_owned(),
            balance_cents: account.balance_cents,
            referral_code: account.referral_code.clone(),
            created_at: account.created_at,
        }
    }
}

/// `GET /v1/tenant`: the caller's tenant and its brand.
pub async fn get(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let tenant = tenants::find(&state.pool, caller.tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(reply_response(Reply::json(StatusCode::OK, &tenant)))
}

/// `PATCH /v1/tenant`: changes the brand. A custom domain another tenant has is `409`.
pub async fn update(
    state: Arc<AppState>,
    authorization: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let patch: BrandPatch = parse_json(&body?)?;
    let change = BrandChange {
        name: patch.name,
        logo_url: patch.logo_url,
        primary_colour: patch.primary_colour,
        accent_colour: patch.accent_colour,
        support_email: patch.support_email,
        custom_domain: patch.custom_domain,
        customer_sign_up: patch.customer_sign_up,
    };
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    let tenant = tenants::update_brand(&mut tx, caller.tenant_id, &change)
        .await
        .map_err(conflict)?
        .map_err(|invalid| ApiError::InvalidRequest(invalid.to_string()))?;
    record(
        &mut tx,
        &caller,
        "tenant.brand_changed",
        None,
        json!(tenant.brand),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    // This replica shows the new brand at once; the others on the trigger's notification.
    state.caches.apply("tenants").await;
    Ok(reply_response(Reply::json(StatusCode::OK, &tenant)))
}

/// `GET /v1/tenant/accounts`: the tenant's accounts, newest first.
pub async fn accounts(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let query: PageQuery = parse_query(&query)?;
    let (limit, offset) = crate::body::page(query.limit, query.offset)?;
    let mut page = tenants::accounts(&state.pool, caller.tenant_id, limit + 1, offset).await?;
    let has_more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let data: Vec<TenantAccount> = page.iter().map(TenantAccount::from).collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data, "limit": limit, "offset": offset, "has_more": has_more }),
    )))
}

/// `GET /v1/tenant/accounts/{id}`.
pub async fn account(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let id = AccountId::parse(&id).ok_or(ApiError::NotFound("account"))?;
    let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
    let account = tenants::account(&mut conn, caller.tenant_id, id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &TenantAccount::from(&account),
    )))
}

/// `POST /v1/tenant/accounts`: a new account of the tenant (the tenant's sign-up), on the
/// free tier with an empty wallet, and its first key (`read`, `write`), shown only in this
/// answer. With a referral code, the account is linked to its referrer in the same
/// transaction; a code that cannot be used refuses the whole sign-up. Money only comes
/// in through payments; the tier only changes through `POST /v1/subscription`.
pub async fn create_account(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let body = body?;
    let request: CreateAccountRequest = parse_json(&body)?;
    let email = request.email.trim().to_owned();
    if !accounts::is_email(&email) {
        return Err(ApiError::InvalidRequest(
            "`email` must be an e-mail address of 3 to 254 characters".to_owned(),
        ));
    }
    let path = "/v1/tenant/accounts";
    let guard = match idempotency::start(
        &state,
        caller.account_id,
        idempotency_key.as_deref(),
        "POST",
        path,
        &body,
    )
    .await?
    {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(guard) => guard,
    };
    let result = async {
        let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
        let account = accounts::create(&mut tx, caller.tenant_id, &email, Tier::Free, Cents::ZERO)
            .await
            .map_err(conflict)?;
        if let Some(code) = &request.referral_code {
            let link = referrals::link(&mut tx, account.id, code).await?;
            crate::v1::referrals::refusal(&link)?;
        }
        let key = ApiKey::generate();
        let key_id =
            api_keys::insert(&mut tx, account.id, &key, &OWNER_SCOPES, "first key").await?;
        let summary = api_keys::find_for_account(&mut tx, account.id, key_id)
            .await?
            .ok_or(StoreError::Missing("the key just created"))?;
        let target = account.id.to_string();
        record(
            &mut tx,
            &caller,
            "tenant.account_created",
            Some(&target),
            json!({}),
        )
        .await?;
        let answer = |key: Option<&ApiKey>| {
            Reply::json(
                StatusCode::CREATED,
                &json!({
                    "account": TenantAccount::from(&account),
                    "api_key": KeyView::new(&summary, key),
                }),
            )
            .with_location(format!("{path}/{}", account.id))
        };
        // The key itself is never stored, not even for a replay.
        if let Some(guard) = &guard {
            guard.store(&mut tx, &answer(None)).await?;
        }
        tx.commit().await.map_err(StoreError::from)?;
        tracing::info!(account = %account.id, tenant = %caller.tenant_id, "tenant account created");
        Ok(answer(Some(&key)))
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}

/// `GET /v1/tenant/prices`: the tenant's own prices (the catalogue's apply elsewhere).
pub async fn prices(
    state: Arc<AppState>,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let prices = tenants::prices(&state.pool, caller.tenant_id).await?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": prices }),
    )))
}

/// `PUT /v1/tenant/prices`: replaces the tenant's price list (sending it again is harmless).
/// Each price must be for a service and country some provider sells.
pub async fn replace_prices(
    state: Arc<AppState>,
    authorization: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::TenantAdmin).await?;
    let request: PricesRequest = parse_json(&body?)?;
    validate_prices(&state, &request.prices).await?;
    let mut tx = state.pool.begin().await.map_err(StoreError::from)?;
    tenants::replace_prices(&mut tx, caller.tenant_id, &request.prices).await?;
    record(
        &mut tx,
        &caller,
        "tenant.prices_replaced",
        None,
        json!({ "prices": request.prices.len() }),
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    state.caches.apply("tenants").await;
    let prices = tenants::prices(&state.pool, caller.tenant_id).await?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": prices }),
    )))
}

async fn validate_prices(state: &AppState, prices: &[Price]) -> Result<(), ApiError> {
    if prices.len() > MAX_PRICES {
        return Err(ApiError::InvalidRequest(format!(
            "`prices` may hold at most {MAX_PRICES} entries"
        )));
    }
    let offers = state
        .caches
        .offers(&state.pool, &state.provider_order)
        .await?;
    let sold: HashSet<(String, String)> =
        pricing::price_list(&offers, &state.provider_order, &Default::default())
            .into_iter()
            .map(|quote| (quote.service, quote.country))
            .collect();
    let mut seen = HashSet::new();
    for (index, price) in prices.iter().enumerate() {
        let invalid = |why: String| ApiError::InvalidRequest(format!("`prices[{index}]`: {why}"));
        ServiceCode::parse(&price.service).map_err(|e| invalid(e.to_string()))?;
        CountryCode::parse(&price.country).map_err(|e| invalid(e.to_string()))?;
        if !(1..=MAX_PRICE_CENTS).contains(&price.price_cents) {
            return Err(invalid(format!(
                "`price_cents` must be from 1 to {MAX_PRICE_CENTS}"
            )));
        }
        let pair = (price.service.clone(), price.country.clone());
        if !seen.insert(pair.clone()) {
            return Err(invalid(format!(
                "`{}` in `{}` is listed twice",
                price.service, price.country
            )));
        }
        if !sold.contains(&pair) {
            return Err(ApiError::UnknownService(format!(
                "`prices[{index}]`: no provider sells `{}` in `{}`; see GET /v1/services",
                price.service, price.country
            )));
        }
    }
    Ok(())
}

/// A unique constraint the request ran into: `409`.
fn conflict(error: StoreError) -> ApiError {
    match error {
        StoreError::AlreadyExists(what) => ApiError::AlreadyExists(what),
        other => other.into(),
    }
}

/// Writes a tenant administrator's action to the audit log operators read.
async fn record(
    conn: &mut sqlx::PgConnection,
    caller: &Caller,
    action: &str,
    target: Option<&str>,
    mut details: serde_json::Value,
) -> Result<(), ApiError> {
    details["tenant_id"] = json!(caller.tenant_id);
    details["api_key_id"] = json!(caller.key_id);
    let actor = format!("tenant-admin:{}", caller.account_id);
    audit::append_in(conn, &actor, action, target, &details).await?;
    Ok(())
}
