//! `GET /v1/services`: what can be bought, where, for how much.

use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{CountryCode, Scope, ServiceCode},
    pricing,
    store::services::Offer,
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::parse_query,
    respond::{Reply, cacheable_response},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    service: Option<String>,
    country: Option<String>,
}

/// The request's context: the caller's key, the host it came to and the caller's ETag.
pub struct Asked {
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub if_none_match: Option<String>,
}

impl Asked {
    /// The headers [`list`] reads.
    pub fn filter() -> impl warp::Filter<Extract = (Asked,), Error = warp::Rejection> + Clone {
        use warp::Filter;
        warp::header::optional::<String>("authorization")
            .and(warp::header::optional::<String>("host"))
            .and(warp::header::optional::<String>("if-none-match"))
            .map(|authorization, host, if_none_match| Asked {
                authorization,
                host,
                if_none_match,
            })
    }
}

/// The catalogue is public: integrators browse it before they have a key. Prices are those
/// of a tenant: the key's, else the one whose custom domain the request came to, else the
/// default tenant's.
/// Answers carry an `ETag`; a client that sends it back in `If-None-Match` gets `304`.
pub async fn list(
    state: Arc<AppState>,
    query: String,
    asked: Asked,
) -> Result<warp::reply::Response, ApiError> {
    let filter: Filter = parse_query(&query)?;
    let tenant = match asked.authorization.as_deref() {
        Some(authorization) => {
            authenticate(&state, Some(authorization), Scope::Read)
                .await?
                .tenant_id
        }
        None => {
            state
                .caches
                .tenant_for_host(&state.pool, asked.host.as_deref())
                .await?
        }
    };
    let tenant = state.caches.tenant(&state.pool, tenant).await?;
    let service = filter
        .service
        .as_deref()
        .map(ServiceCode::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let country = filter
        .country
        .as_deref()
        .map(CountryCode::parse)
        .transpose()
        .map_err(|e| ApiError::InvalidQuery(e.to_string()))?;
    let offers = state
        .caches
        .offers(&state.pool, &state.provider_order)
        .await?;
    let wanted: Vec<Offer> = offers
        .iter()
        .filter(|o| service.as_ref().is_none_or(|s| o.service == s.as_str()))
        .filter(|o| country.as_ref().is_none_or(|c| o.country == c.as_str()))
        .cloned()
        .collect();
    let data: Vec<_> = pricing::price_list(&wanted, &state.provider_order, &tenant.prices)
        .into_iter()
        .map(|quote| {
            json!({
                "service": quote.service,
                "country": quote.country,
                "price_cents": quote.price_cents,
                "sms_timeout_secs": quote.sms_timeout_secs,
            })
        })
        .collect();
    Ok(cacheable_response(
        Reply::json(StatusCode::OK, &json!({ "data": data })),
        asked.if_none_match.as_deref(),
    ))
}
