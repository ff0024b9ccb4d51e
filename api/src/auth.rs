//! API keys on requests: `Authorization: Bearer nmk_…`, checked against the key cache, then
//! counted against the account's tier rate limit.

use std::{cell::Cell, sync::Arc};

use namaskah_core::{
    domain::{ApiKey, Scope},
    store::{api_keys, tiers::TierPlan},
};

use crate::{ApiError, AppState, rate_limit::Decision};

pub use namaskah_core::store::api_keys::KeyOwner;

tokio::task_local! {
    /// The rate-limit decision of the request being handled, for its `RateLimit-*` headers.
    pub(crate) static RATE_LIMIT: Cell<Option<Decision>>;
}

/// An authenticated caller and what its tier allows.
#[derive(Clone, Debug)]
pub struct Caller {
    pub owner: KeyOwner,
    pub plan: TierPlan,
}

impl std::ops::Deref for Caller {
    type Target = KeyOwner;

    fn deref(&self) -> &KeyOwner {
        &self.owner
    }
}

/// The account behind the request's key, if the key is valid, live, has `scope` and is
/// within its rate limit.
pub async fn authenticate(
    state: &Arc<AppState>,
    header: Option<&str>,
    scope: Scope,
) -> Result<Caller, ApiError> {
    let header = header.ok_or(ApiError::MissingApiKey)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(ApiError::MissingApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingApiKey);
    }
    let key = ApiKey::parse(token.trim()).ok_or(ApiError::InvalidApiKey)?;
    let owner = state
        .caches
        .key_owner(&state.pool, &key.hash())
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    if owner.revoked_at.is_some() {
        return Err(ApiError::RevokedApiKey);
    }
    let plan = state.caches.tier_plan(&state.pool, owner.tier).await?;
    let decision = state.rate_limiter.check(owner.key_id, &plan).await;
    // Outside a request (tests calling handlers directly) there is nowhere to put headers.
    let _ = RATE_LIMIT.try_with(|slot| slot.set(Some(decision)));
    if !decision.allowed {
        metrics::counter!("namaskah_rate_limited_total", "tier" => plan.tier.as_str()).increment(1);
        return Err(ApiError::RateLimited {
            retry_after_secs: decision.retry_after_secs,
        });
    }
    if !owner.has_scope(scope) {
        return Err(ApiError::InsufficientScope(scope));
    }
    if state.key_touch_due(owner.key_id) {
        let pool = state.pool.clone();
        let key_id = owner.key_id;
        tokio::spawn(async move {
            if let Err(error) = api_keys::touch(&pool, key_id).await {
                tracing::debug!(%error, "could not record API key use");
            }
        });
    }
    Ok(Caller { owner, plan })
}
