//! `GET /v1/services`: what can be bought, where, for how much.

use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{CountryCode, ServiceCode},
    pricing,
    store::services,
};

use crate::{
    ApiError, AppState,
    body::parse_query,
    respond::{Reply, reply_response},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    service: Option<String>,
    country: Option<String>,
}

/// The catalogue is public: integrators browse it before they have a key.
pub async fn list(state: Arc<AppState>, query: String) -> Result<warp::reply::Response, ApiError> {
    let filter: Filter = parse_query(&query)?;
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
    let offers = services::enabled_offers(
        &state.pool,
        &state.provider_order,
        service.as_ref().map(ServiceCode::as_str),
        country.as_ref().map(CountryCode::as_str),
    )
    .await?;
    let data: Vec<_> = pricing::price_list(&offers, &state.provider_order)
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
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data }),
    )))
}
