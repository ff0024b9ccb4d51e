//! `GET /v1/usage?from=&to=&service=`: the account's usage per service and day, from the
//! daily aggregates (`store::usage`), so a year costs a few hundred rows, not a table scan.

use chrono::{Duration, NaiveDate, Utc};
use serde::Deserialize;
use std::sync::Arc;
use warp::http::StatusCode;

use namaskah_core::{
    domain::{Scope, ServiceCode},
    store::usage,
};

use crate::{
    ApiError, AppState,
    auth::authenticate,
    body::parse_query,
    respond::{Reply, reply_response},
};

const MAX_DAYS: i64 = 366;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    from: Option<String>,
    to: Option<String>,
    service: Option<String>,
}

fn date(value: Option<&str>, name: &str, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            ApiError::InvalidQuery(format!("`{name}` must be a date like 2026-11-25"))
        }),
    }
}

pub async fn get(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: UsageQuery = parse_query(&query)?;
    let today = Utc::now().date_naive();
    let to = date(query.to.as_deref(), "to", today)?;
    let from = date(query.from.as_deref(), "from", to - Duration::days(29))?;
    if from > to || (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::InvalidQuery(format!(
            "`from` must not be after `to`, and the range at most {MAX_DAYS} days"
        )));
    }
    let service = query
        .service
        .as_deref()
        .map(ServiceCode::parse)
        .transpose()
        .map_err(|invalid| ApiError::InvalidQuery(invalid.to_string()))?;
    let report = usage::report(
        &state.pool,
        Some(caller.account_id),
        from,
        to,
        service.as_ref().map(ServiceCode::as_str),
    )
    .await?;
    Ok(reply_response(Reply::json(StatusCode::OK, &report)))
}
