//! TextVerified (https://www.textverified.com/docs/api/v2), API v2. United States numbers.
//!
//! - `POST /api/pub/v2/auth` with `X-API-KEY` and `X-API-USERNAME` mints a bearer token
//!   (`{"token", "expiresIn", "expiresAt"}`); it is cached until a minute before it expires,
//!   and minted again once if a request is answered `401`.
//! - `POST /api/pub/v2/verifications` `{"serviceName", "capability": "sms"}` answers `201` with
//!   a link (`{"method", "href"}`) to the verification, whose details carry `id`, `number`
//!   and `state` (`verificationPending`, `verificationCompleted`, `verificationCanceled`,
//!   `verificationTimedOut`, `verificationReported`, `verificationRefunded`, …).
//! - `GET /api/pub/v2/sms?reservationId={id}` lists the SMS (`smsContent`, `parsedCode`).
//! - `POST /api/pub/v2/verifications/{id}/cancel` gives the number back.
//! - Errors are `{"errorCode", "errorDescription"}`; `Unavailable` means out of stock.
//!
//! TextVerified completes verifications on its own, so `finish` has nothing to do.

use async_trait::async_trait;
use serde::Deserialize;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use super::{
    CallTimeouts, OrderState, Provider, ProviderError, PurchasedNumber, excerpt, extract_code,
    http_client, transport_error,
};
use crate::config::{ProviderSettings, Secret};

/// A token is renewed this long before TextVerified says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

pub struct TextVerified {
    name: String,
    base_url: String,
    api_key: Secret,
    username: String,
    http: reqwest::Client,
    token: Mutex<Option<CachedToken>>,
}

struct CachedToken {
    value: String,
    renew_at: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BearerToken {
    token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

#[derive(Deserialize)]
struct Link {
    href: Option<String>,
}

#[derive(Deserialize)]
struct Verification {
    id: String,
    number: String,
    state: String,
}

#[derive(Deserialize)]
struct SmsPage {
    #[serde(default)]
    data: Vec<Sms>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sms {
    sms_content: Option<String>,
    parsed_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    error_code: Option<String>,
    error_description: Option<String>,
}

/// A request to send, rebuilt if it must be repeated with a fresh token.
enum Call<'a> {
    Get(&'a str),
    Post(&'a str, Option<serde_json::Value>),
}

impl TextVerified {
    pub fn new(
        settings: &ProviderSettings,
        timeouts: CallTimeouts,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            name: settings.name.clone(),
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key: settings.api_key.clone(),
            username: settings.username.clone().unwrap_or_default(),
            http: http_client(timeouts)?,
            token: Mutex::new(None),
        })
    }

    async fn token(&self, force_new: bool) -> Result<String, ProviderError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && !force_new
            && Instant::now() < token.renew_at
        {
            metrics::counter!("namaskah_cache_requests_total", "cache" => "textverified_token", "result" => "hit").increment(1);
            return Ok(token.value.clone());
        }
        metrics::counter!("namaskah_cache_requests_total", "cache" => "textverified_token", "result" => "miss").increment(1);
        let response = self
            .http
            .post(format!("{}/api/pub/v2/auth", self.base_url))
            .header("X-API-KEY", self.api_key.expose())
            .header("X-API-USERNAME", &self.username)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let body = response.text().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(classify_error(status.as_u16(), &body));
        }
        let token: BearerToken = serde_json::from_str(&body)
            .map_err(|e| ProviderError::BadResponse(format!("bearer token: {e}")))?;
        let lifetime = Duration::from_secs_f64(token.expires_in.unwrap_or(900.0).max(0.0));
        *cached = Some(CachedToken {
            value: token.token.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(token.token)
    }

    /// Sends an authenticated request; returns the status and body.
    async fn send(&self, call: Call<'_>) -> Result<(u16, String), ProviderError> {
        let mut force_new_token = false;
        loop {
            let token = self.token(force_new_token).await?;
            let request = match &call {
                Call::Get(path) => self.http.get(self.url(path)),
                Call::Post(path, body) => {
                    let request = self.http.post(self.url(path));
                    match body {
                        Some(body) => request.json(body),
                        None => request.header("Content-Length", "0"),
                    }
                }
            };
            let response = request
                .bearer_auth(token)
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status().as_u16();
            if status == 429 {
                return Err(super::rate_limited(response.headers()));
            }
            let body = response.text().await.map_err(transport_error)?;
            if status == 401 && !force_new_token {
                // The cached token was revoked or expired early: mint one and try once more.
                force_new_token = true;
                continue;
            }
            return Ok((status, body));
        }
    }

    /// Accepts both paths and the absolute links TextVerified returns.
    fn url(&self, path_or_link: &str) -> String {
        if path_or_link.starts_with("http://") || path_or_link.starts_with("https://") {
            path_or_link.to_owned()
        } else {
            format!("{}{path_or_link}", self.base_url)
        }
    }

    async fn verification(&self, path_or_link: &str) -> Result<Verification, ProviderError> {
        let (status, body) = self.send(Call::Get(path_or_link)).await?;
        if !(200..300).contains(&status) {
            return Err(classify_error(status, &body));
        }
        parse(&body)
    }

    async fn latest_sms(&self, order_id: &str) -> Result<Option<Sms>, ProviderError> {
        let path = format!("/api/pub/v2/sms?reservationId={}", encode(order_id));
        let (status, body) = self.send(Call::Get(&path)).await?;
        if !(200..300).contains(&status) {
            return Err(classify_error(status, &body));
        }
        let page: SmsPage = parse(&body)?;
        Ok(page
            .data
            .into_iter()
            .rfind(|sms| sms.sms_content.as_deref().is_some_and(|t| !t.is_empty())))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ProviderError> {
    serde_json::from_str(body)
        .map_err(|e| ProviderError::BadResponse(format!("{e}: {}", excerpt(body, 200))))
}

/// Order ids are opaque strings; keep them from reshaping the URL.
fn encode(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect()
}

fn classify_error(status: u16, body: &str) -> ProviderError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|e| e.error_code.clone())
        .unwrap_or_default();
    let description = parsed
        .as_ref()
        .and_then(|e| e.error_description.clone())
        .unwrap_or_else(|| excerpt(body, 200));
    match (status, code.as_str()) {
        (_, "Unavailable") => ProviderError::OutOfStock,
        (_, "TooManyUnfinishedVerifications") | (429, _) | (500..=599, _) => {
            ProviderError::Unavailable(format!("HTTP {status} {code}: {description}"))
        }
        (404, _) => ProviderError::OrderNotFound,
        _ => ProviderError::Rejected(format!("HTTP {status} {code}: {description}")),
    }
}

fn national_to_e164(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    match digits.len() {
        10 => format!("+1{digits}"),
        _ if number.starts_with('+') => number.to_owned(),
        _ => format!("+{digits}"),
    }
}

fn received(sms: Sms) -> OrderState {
    let text = sms.sms_content.unwrap_or_default();
    let code = sms
        .parsed_code
        .filter(|code| !code.is_empty())
        .or_else(|| extract_code(&text))
        .unwrap_or_default();
    OrderState::Received { code, text }
}

#[async_trait]
impl Provider for TextVerified {
    fn name(&self) -> &str {
        &self.name
    }

    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError> {
        if !country.eq_ignore_ascii_case("US") {
            return Err(ProviderError::Rejected(format!(
                "TextVerified sells US numbers only, not {country}"
            )));
        }
        let request = serde_json::json!({ "serviceName": product, "capability": "sms" });
        let (status, body) = self
            .send(Call::Post("/api/pub/v2/verifications", Some(request)))
            .await?;
        if !(200..300).contains(&status) {
            return Err(classify_error(status, &body));
        }
        let link: Link = parse(&body)?;
        let href = link.href.ok_or_else(|| {
            ProviderError::BadResponse("the created verification has no link".to_owned())
        })?;
        let verification = self.verification(&href).await?;
        Ok(PurchasedNumber {
            order_id: verification.id,
            phone_number: national_to_e164(&verification.number),
        })
    }

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError> {
        let verification = self
            .verification(&format!("/api/pub/v2/verifications/{}", encode(order_id)))
            .await?;
        match verification.state.as_str() {
            "verificationPending"
            | "verificationCompleted"
            | "verificationReused"
            | "verificationReactivated" => match self.latest_sms(&verification.id).await? {
                Some(sms) => Ok(received(sms)),
                None if verification.state == "verificationCompleted" => Ok(OrderState::Finished),
                None => Ok(OrderState::Waiting),
            },
            "verificationCanceled" | "verificationRefunded" => Ok(OrderState::Cancelled),
            "verificationTimedOut" => Ok(OrderState::TimedOut),
            "verificationReported" => Ok(OrderState::Banned),
            other => Err(ProviderError::BadResponse(format!(
                "unknown state {other:?}"
            ))),
        }
    }

    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError> {
        let path = format!("/api/pub/v2/verifications/{}/cancel", encode(order_id));
        let (status, body) = self.send(Call::Post(&path, None)).await?;
        if (200..300).contains(&status) {
            return Ok(());
        }
        // A cancel refused because the SMS is already there must not lose the code.
        if let Ok(OrderState::Received { .. }) = self.check(order_id).await {
            return Err(ProviderError::OrderHasSms);
        }
        Err(classify_error(status, &body))
    }

    async fn finish(&self, _order_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_errors_are_classified() {
        let body = |code: &str| format!(r#"{{"errorCode":"{code}","errorDescription":"d"}}"#);
        assert_eq!(
            classify_error(400, &body("Unavailable")),
            ProviderError::OutOfStock
        );
        assert!(matches!(
            classify_error(400, &body("InsufficientBalance")),
            ProviderError::Rejected(_)
        ));
        assert!(matches!(
            classify_error(400, &body("TooManyUnfinishedVerifications")),
            ProviderError::Unavailable(_)
        ));
        assert!(matches!(
            classify_error(503, "oops"),
            ProviderError::Unavailable(_)
        ));
        assert_eq!(classify_error(404, ""), ProviderError::OrderNotFound);
    }

    #[test]
    fn national_numbers_become_e164() {
        assert_eq!(national_to_e164("2223334444"), "+12223334444");
        assert_eq!(national_to_e164("+12223334444"), "+12223334444");
    }
}
