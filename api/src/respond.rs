//! Turning handler results into HTTP responses.

use futures_util::FutureExt;
use std::{cell::Cell, convert::Infallible, future::Future, panic::AssertUnwindSafe};
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use crate::{ApiError, auth::RATE_LIMIT, rate_limit::Decision};

/// A successful answer: a status and a JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub location: Option<String>,
}

impl Reply {
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_vec(value).unwrap_or_default(),
            location: None,
        }
    }

    pub fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn reply_response(reply: Reply) -> Response {
    let mut response = json_response(reply.status, reply.body);
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A `200` with a strong `ETag` (a digest of the body), or `304 Not Modified` when the
/// client's `If-None-Match` already names it. Clients must revalidate (`no-cache`): the
/// data can change at any time.
pub fn cacheable_response(reply: Reply, if_none_match: Option<&str>) -> Response {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(&reply.body);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let matches = if_none_match.is_some_and(|header| {
        header
            .split(',')
            .map(|tag| tag.trim().trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*")
    });
    let mut response = if matches {
        let mut response = Response::new(Vec::new().into());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        reply_response(reply)
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Which wire format errors take: v1's `{"error": {"code", "message"}}`, or RFC 9457
/// problem details (`application/problem+json`) for v2. Set per request by [`respond`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

impl Version {
    /// The path prefix, `v1` or `v2`.
    pub fn prefix(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

tokio::task_local! {
    static VERSION: Version;
}

/// The version of the request being handled (v1 outside any request).
pub fn version() -> Version {
    VERSION.try_with(|version| *version).unwrap_or(Version::V1)
}

/// An error's body and content type, in the request's version.
pub fn error_body(error: &ApiError) -> (&'static str, Vec<u8>) {
    match version() {
        Version::V1 => ("application/json", error.body()),
        Version::V2 => ("application/problem+json", error.problem_body()),
    }
}

pub fn error_response(error: &ApiError) -> Response {
    let (content_type, body) = error_body(error);
    let mut response = json_response(error.status(), body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if matches!(
        error,
        ApiError::MissingApiKey | ApiError::InvalidApiKey | ApiError::RevokedApiKey
    ) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(seconds) = error.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// `RateLimit-Limit`, `-Remaining` and `-Reset` (IETF draft `RateLimit` header fields), on
/// every answer to an authenticated request, refusals included.
fn add_rate_limit_headers(response: &mut Response, decision: Decision) {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(decision.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(decision.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(decision.reset_secs));
}

/// Runs a handler; its error, or a panic, becomes a JSON error response. A panic is a bug,
/// but the client still gets a well-formed `500` instead of a dropped connection.
pub async fn respond(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    respond_as(Version::V1, handler).await
}

/// [`respond`] for `/v2`: errors as problem details.
pub async fn respond_v2(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    respond_as(Version::V2, handler).await
}

async fn respond_as(
    version: Version,
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    // Boxed: handler futures are large, and warp's nested filters already use a lot of stack.
    VERSION
        .scope(version, Box::pin(respond_in_version(handler)))
        .await
}

async fn respond_in_version(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    let (outcome, rate_limit) = RATE_LIMIT
        .scope(Cell::new(None), async {
            let outcome = AssertUnwindSafe(handler).catch_unwind().await;
            (outcome, RATE_LIMIT.with(Cell::get))
        })
        .await;
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error_response(&error),
        Err(_) => {
            tracing::error!("request handler panicked");
            namaskah_core::errors::record(namaskah_core::errors::Failure {
                role: "api",
                kind: "panic".to_owned(),
                message: "a request handler panicked".to_owned(),
                ..Default::default()
            });
            error_response(&ApiError::Internal)
        }
    };
    if let Some(decision) = rate_limit {
        add_rate_limit_headers(&mut response, decision);
    }
    Ok(response)
}

/// What a routing miss means for the client.
pub fn routing_error(rejection: &warp::Rejection) -> ApiError {
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge {
            limit: crate::body::BODY_LIMIT,
        }
    } else if let Some(header) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::InvalidRequest(format!("the `{}` header is malformed", header.name()))
    } else if rejection.is_not_found() {
        ApiError::NoRoute("this method and path".to_owned())
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::Internal
    }
}

/// A `405` says which methods the path does take (RFC 9110, 15.5.6).
pub(crate) fn allow_on_405(path: warp::path::FullPath, mut response: Response) -> Response {
    if response.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED {
        let methods = crate::openapi::allowed_methods(path.as_str()).join(", ");
        if let Ok(value) = warp::http::HeaderValue::from_str(&methods) {
            response
                .headers_mut()
                .insert(warp::http::header::ALLOW, value);
        }
    }
    response
}

/// Routing misses as JSON errors.
pub(crate) async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    Ok(error_response(&routing_error(&rejection)))
}
