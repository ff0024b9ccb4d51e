//! One dashboard request, and the responses pages return.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::{collections::HashMap, net::IpAddr};
use warp::{
    http::{HeaderValue, Method, StatusCode, header},
    reply::Response,
};

use namaskah_core::store::admins::Session;

/// What a page handler gets.
pub struct Request {
    pub method: Method,
    /// Path segments, without empty ones: `/errors/abc/resolve` → `["errors", "abc", "resolve"]`.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub client: IpAddr,
    pub session: Option<Session>,
    pub session_token: Option<String>,
}

impl Request {
    /// The urlencoded form body.
    pub fn form(&self) -> HashMap<String, String> {
        serde_urlencoded::from_bytes(&self.body).unwrap_or_default()
    }

    pub fn form_as<T: DeserializeOwned>(&self) -> Option<T> {
        serde_urlencoded::from_bytes(&self.body).ok()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn ip(&self) -> String {
        self.client.to_string()
    }
}

/// A page, with a weak ETag of its body so that a browser's revalidation of an unchanged
/// page is answered `304` (see `router::revalidated`).
pub fn html(status: StatusCode, body: String) -> Response {
    let digest = Sha256::digest(body.as_bytes());
    let etag = format!("W/\"{}\"", hex::encode(&digest[..12]));
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    response
}

pub fn redirect(to: &str) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A plain-text answer. A `503` (the database is away) says when to look again.
pub fn text(status: StatusCode, body: &'static str) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}
