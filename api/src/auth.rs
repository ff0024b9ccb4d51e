//! API keys on requests: `Authorization: Bearer nmk_…`.

use std::sync::Arc;

use namaskah_core::{
    domain::{ApiKey, Scope},
    store::api_keys::{self, KeyOwner},
};

use crate::{ApiError, AppState};

/// The account behind the request's key, if the key is valid, live and has `scope`.
pub async fn authenticate(
    state: &Arc<AppState>,
    header: Option<&str>,
    scope: Scope,
) -> Result<KeyOwner, ApiError> {
    let header = header.ok_or(ApiError::MissingApiKey)?;
    let (scheme, token) = header
        .trim()
        .split_once(' ')
        .ok_or(ApiError::MissingApiKey)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingApiKey);
    }
    let key = ApiKey::parse(token.trim()).ok_or(ApiError::InvalidApiKey)?;
    let owner = api_keys::find_by_hash(&state.pool, &key.hash())
        .await?
        .ok_or(ApiError::InvalidApiKey)?;
    if owner.revoked_at.is_some() {
        return Err(ApiError::RevokedApiKey);
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
    Ok(owner)
}
