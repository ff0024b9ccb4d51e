//! Request bodies: size-limited, parsed with errors that say what is wrong.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use std::convert::Infallible;
use warp::Filter;

use crate::ApiError;

/// Bodies larger than this are refused with `413`.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The raw body, read up to [`BODY_LIMIT`]. Chunked bodies without a length are fine.
pub fn limited()
-> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(|length: Option<u64>, stream| async move {
            if length.is_some_and(|length| length > BODY_LIMIT as u64) {
                return Err(ApiError::PayloadTooLarge { limit: BODY_LIMIT });
            }
            read_up_to(stream, BODY_LIMIT).await
        })
}

async fn read_up_to<S, B>(stream: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| ApiError::InvalidRequest(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Parses a JSON object body into `T`; syntax errors are `invalid_json`, anything but an
/// object, and wrong or unknown fields, `invalid_request`.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidJson(
            "the body is empty; send a JSON object".to_owned(),
        ));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson(error.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::InvalidRequest(
            "the body must be a JSON object".to_owned(),
        ));
    }
    serde_json::from_value(value).map_err(|error| ApiError::InvalidRequest(error.to_string()))
}

/// The query string, or an empty one.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::InvalidQuery(format!("invalid query string: {e}")))
}

/// `limit` (1–100, default 20) and `offset` (0–1,000,000, default 0) of a list, checked.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<(i64, i64), ApiError> {
    Ok((page_limit(limit)?, page_offset(offset)?))
}

pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::InvalidQuery(
            "`limit` must be from 1 to 100".to_owned(),
        ));
    }
    Ok(limit)
}

pub fn page_offset(offset: Option<i64>) -> Result<i64, ApiError> {
    let offset = offset.unwrap_or(0);
    if !(0..=1_000_000).contains(&offset) {
        return Err(ApiError::InvalidQuery(
            "`offset` must be from 0 to 1000000".to_owned(),
        ));
    }
    Ok(offset)
}
