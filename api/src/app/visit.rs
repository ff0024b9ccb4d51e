//! One web-app request (a visit): whose tenant it came to, who is signed in, the form it
//! sent; and the responses pages return.

use bytes::Bytes;
use serde_json::{Value, json};
use std::{collections::HashMap, net::IpAddr, sync::Arc};
use warp::{
    http::{Method, StatusCode},
    reply::Response,
};

// Pages answer as the dashboard's do.
pub use namaskah_dashboard::request::{html, redirect, text};

use namaskah_core::store::customers::Session;

use super::{WebApp, templates};
use crate::cache::TenantProfile;

/// What a page handler gets.
pub struct Visit {
    pub method: Method,
    /// Path segments without empty ones: `/verifications/abc/cancel` → `["verifications", "abc", "cancel"]`.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub client: IpAddr,
    /// The tenant whose custom domain the request came to, else the default one.
    pub tenant: Arc<TenantProfile>,
    pub session: Option<Session>,
    pub session_token: Option<String>,
    pub last_event_id: Option<String>,
    /// Where a page's live updates start: the account's event stream as it stood before the
    /// page read anything, so that nothing that happens while it renders is missed.
    pub live_from: Option<String>,
}

impl Visit {
    /// The urlencoded form body; a field sent twice keeps its last value.
    pub fn form(&self) -> HashMap<String, String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&self.body)
            .map(|pairs| pairs.into_iter().collect())
            .unwrap_or_default()
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .get(name)
            .map(String::as_str)
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    /// What every page's layout shows: the tenant's brand, who is signed in, the CSRF token.
    pub fn context(&self, title: &str, page: &str, extra: Value) -> Value {
        let brand = &self.tenant.tenant.brand;
        let mut context = json!({
            "title": title,
            "brand": {
                "name": brand.name,
                "logo_url": brand.logo_url,
                "support_email": brand.support_email,
            },
            "signed_in": self.session.is_some(),
            "email": self.session.as_ref().map(|s| s.email.clone()),
            "csrf": self.session.as_ref().map(|s| s.csrf_token.clone()),
            "live_url": self.live_from.as_ref().map(|after| format!("/events?after={after}")),
            format!("nav_{page}"): true,
        });
        if let (Some(context), Value::Object(extra)) = (context.as_object_mut(), extra) {
            context.extend(extra);
        }
        context
    }
}

impl WebApp {
    /// A page of the layout.
    pub fn page(
        &self,
        visit: &Visit,
        status: StatusCode,
        template: &str,
        title: &str,
        extra: Value,
    ) -> Response {
        let context = visit.context(title, template, extra);
        html(
            status,
            templates::render(&self.templates, template, &context),
        )
    }

    /// A page that only says something (and links on).
    pub fn message(&self, visit: &Visit, status: StatusCode, title: &str, text: &str) -> Response {
        self.page(visit, status, "message", title, json!({ "text": text }))
    }
}

/// A form's page: `422` when it comes back with an error, else `200`.
pub fn form_status(error: Option<&str>) -> StatusCode {
    if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

/// A page that shows why an action was refused: its status and message, or `200` and none.
pub fn refusal_status(refused: Option<(StatusCode, String)>) -> (StatusCode, Option<String>) {
    refused.map_or((StatusCode::OK, None), |(status, message)| {
        (status, Some(message))
    })
}
