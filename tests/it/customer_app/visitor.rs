//! The web app's visitor for tests: a cookie, a `Host`, forms posted from the page's own
//! origin; and the steps most tests take (top up, rent, read the live stream).

use reqwest::{StatusCode, header, redirect::Policy};
use std::time::Duration;

use crate::support::{PAYSTACK_SECRET, TestEnv};
use namaskah_core::payments::notices::paystack_signature;

/// A browser, as far as these pages need one: a cookie, the `Host` it visits, no redirects
/// followed.
pub struct Visitor {
    base: String,
    pub host: String,
    cookie: std::sync::Mutex<Option<String>>,
    pub http: reqwest::Client,
}

/// One answer: status, `Location`, body.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the first form field (or hidden input) with this name.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in:\n{}", self.body))
            + marker.len();
        self.body[start..]
            .split('"')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Visitor {
    /// A visitor of the app under `host` (a tenant's custom domain), or its own address.
    pub fn new(env: &TestEnv, host: Option<&str>) -> Visitor {
        let own = env.app.trim_start_matches("http://").to_owned();
        Visitor {
            base: env.app.clone(),
            host: host.map_or(own, str::to_owned),
            cookie: std::sync::Mutex::new(None),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
        }
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().ok().and_then(|c| c.clone())
    }

    pub fn set_cookie(&self, cookie: Option<String>) {
        if let Ok(mut slot) = self.cookie.lock() {
            *slot = cookie;
        }
    }

    /// `request` under this visitor's host and with its session, if it has one.
    pub fn as_visitor(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let request = request.header(header::HOST, &self.host);
        match self.cookie() {
            Some(cookie) => {
                request.header(header::COOKIE, format!("namaskah_app_session={cookie}"))
            }
            None => request,
        }
    }

    /// The response to a GET of `path` as it comes, body unread: for event streams.
    pub async fn open(&self, path: &str) -> reqwest::Response {
        self.as_visitor(self.http.get(format!("{}{path}", self.base)))
            .send()
            .await
            .expect("app answers")
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = self.as_visitor(request).send().await.expect("app answers");
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap_or_default();
            if let Some(rest) = value.strip_prefix("namaskah_app_session=") {
                let token = rest.split(';').next().unwrap_or_default();
                self.set_cookie((!token.is_empty()).then(|| token.to_owned()));
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}: {body}"
        );
        Page {
            status,
            location,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// A form post, from a page of this very origin.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::ORIGIN, format!("http://{}", self.host))
            .form(fields);
        self.send(request).await
    }

    /// Signs up (the tenant must allow it) and stays signed in.
    pub async fn sign_up(&self, email: &str, password: &str) {
        let page = self
            .post("/sign-up", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert!(self.cookie().is_some(), "signed in after sign-up");
    }

    /// The CSRF token of the signed-in session (from any page with a form).
    pub async fn csrf(&self) -> String {
        self.get("/wallet").await.field("csrf")
    }
}

/// Tops up through the wallet page: the checkout opens (the simulator stands in for
/// Paystack's API), then Paystack's signed webhook arrives, twice, as webhooks do.
pub async fn top_up(env: &TestEnv, visitor: &Visitor, amount: &str) {
    let csrf = visitor.csrf().await;
    let key = uuid::Uuid::new_v4().to_string();
    let page = visitor
        .post(
            "/wallet/top-up",
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("amount", amount),
                ("provider", "paystack"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let checkout = page.location.expect("redirected to the checkout");
    assert!(
        checkout.starts_with("https://checkout.paystack.invalid/"),
        "{checkout}"
    );
    let reference = checkout.rsplit('/').next().unwrap_or_default();
    let (sql_amount,): (i64,) =
        sqlx::query_as("SELECT amount_cents FROM payments WHERE reference = $1")
            .bind(reference)
            .fetch_one(&env.pool)
            .await
            .expect("payment");
    let body = serde_json::json!({"event": "charge.success", "data": {"id": 1, "status": "success",
        "reference": reference, "amount": sql_amount, "currency": "USD",
        "customer": {"email": "payer@example.com"}}})
    .to_string();
    for _ in 0..2 {
        let answer = env
            .http
            .post(format!("{}/v1/payments/paystack/webhook", env.api))
            .header("content-type", "application/json")
            .header(
                "x-paystack-signature",
                paystack_signature(PAYSTACK_SECRET, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await
            .expect("webhook");
        assert_eq!(answer.status(), StatusCode::OK);
    }
}

/// Rents `service` from the rent page and returns the verification's id.
pub async fn rent(visitor: &Visitor, service: &str, key: &str) -> String {
    let csrf = visitor.csrf().await;
    let page = visitor
        .post(
            "/rent",
            &[
                ("csrf", &csrf),
                ("idempotency_key", key),
                ("service", service),
                ("country", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    page.location
        .expect("to the verification")
        .trim_start_matches("/verifications/")
        .to_owned()
}

/// Reads an event stream until `needle` (within 10 s): whether it came, and what was read.
pub async fn read_until(stream: &mut reqwest::Response, needle: &str) -> (bool, String) {
    let mut read = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(chunk)) = stream.chunk().await {
            read.push_str(&String::from_utf8_lossy(&chunk));
            if read.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    (found == Ok(true), read)
}
