//! Turning handler results into HTTP responses.

use futures_util::FutureExt;
use std::{convert::Infallible, future::Future, panic::AssertUnwindSafe};
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use crate::ApiError;

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

pub fn error_response(error: &ApiError) -> Response {
    let mut response = json_response(error.status(), error.body());
    if error.status() == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// Runs a handler; its error, or a panic, becomes a JSON error response. A panic is a bug,
/// but the client still gets a well-formed `500` instead of a dropped connection.
pub async fn respond(
    handler: impl Future<Output = Result<Response, ApiError>>,
) -> Result<Response, Infallible> {
    let outcome = AssertUnwindSafe(handler).catch_unwind().await;
    Ok(match outcome {
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
    })
}
