//! Initialising a checkout at the payment provider (the only outbound calls of payments).

use async_trait::async_trait;
use serde::Deserialize;
use std::{collections::HashMap, sync::Arc, time::Duration};

use super::PaymentProvider;
use crate::config::{PaymentSettings, Secret};

/// What to charge the payer.
#[derive(Clone, Debug)]
pub struct CheckoutRequest<'a> {
    /// Ours; the provider echoes it in its webhook.
    pub reference: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub email: &'a str,
    /// Where the payer comes back to after paying (or giving up); `None`: the configured
    /// `CHECKOUT_RETURN_URL`. The web app sends its customers back to their wallet.
    pub return_to: Option<&'a str>,
}

/// Where the payer goes to pay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkout {
    pub checkout_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0} did not answer: {1}")]
    Unreachable(&'static str, String),
    #[error("{provider} refused the checkout ({status}): {message}")]
    Refused {
        provider: &'static str,
        status: u16,
        message: String,
    },
    #[error("{0} answered something unexpected: {1}")]
    BadAnswer(&'static str, String),
}

#[async_trait]
pub trait Gateway: Send + Sync {
    async fn initialize(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, GatewayError>;
}

/// The configured gateways; a provider without its secret key has none.
#[derive(Clone, Default)]
pub struct Gateways(HashMap<PaymentProvider, Arc<dyn Gateway>>);

impl Gateways {
    pub fn from_config(settings: &PaymentSettings) -> Result<Self, reqwest::Error> {
        crate::telemetry::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("Namaskah/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut gateways = Self::default();
        if let Some(key) = &settings.paystack_secret_key {
            gateways.insert(
                PaymentProvider::Paystack,
                Arc::new(Paystack {
                    http: http.clone(),
                    base_url: settings.paystack_base_url.trim_end_matches('/').to_owned(),
                    secret_key: key.clone(),
                }),
            );
        }
        if let Some(key) = &settings.stripe_secret_key {
            gateways.insert(
                PaymentProvider::Stripe,
                Arc::new(Stripe {
                    http,
                    base_url: settings.stripe_base_url.trim_end_matches('/').to_owned(),
                    secret_key: key.clone(),
                    return_url: settings.checkout_return_url.clone(),
                }),
            );
        }
        Ok(gateways)
    }

    pub fn insert(&mut self, provider: PaymentProvider, gateway: Arc<dyn Gateway>) {
        self.0.insert(provider, gateway);
    }

    pub fn get(&self, provider: PaymentProvider) -> Option<&Arc<dyn Gateway>> {
        self.0.get(&provider)
    }
}

/// `POST /transaction/initialize` (amounts in the currency's subunit, as ours).
struct Paystack {
    http: reqwest::Client,
    base_url: String,
    secret_key: Secret,
}

#[derive(Deserialize)]
struct PaystackAnswer {
    status: bool,
    #[serde(default)]
    message: String,
    data: Option<PaystackCheckout>,
}

#[derive(Deserialize)]
struct PaystackCheckout {
    authorization_url: String,
}

#[async_trait]
impl Gateway for Paystack {
    async fn initialize(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, GatewayError> {
        const NAME: &str = "Paystack";
        let mut body = serde_json::json!({
            "email": request.email,
            "amount": request.amount_cents,
            "currency": request.currency,
            "reference": request.reference,
        });
        // Without it, Paystack's own setting (its dashboard's callback URL) applies.
        if let Some(return_to) = request.return_to {
            body["callback_url"] = serde_json::Value::from(return_to);
        }
        let response = self
            .http
            .post(format!("{}/transaction/initialize", self.base_url))
            .bearer_auth(self.secret_key.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| GatewayError::Unreachable(NAME, e.to_string()))?;
        let status = response.status().as_u16();
        let answer: PaystackAnswer = response
            .json()
            .await
            .map_err(|e| GatewayError::BadAnswer(NAME, e.to_string()))?;
        match answer.data {
            Some(data) if answer.status => Ok(Checkout {
                checkout_url: data.authorization_url,
            }),
            _ => Err(GatewayError::Refused {
                provider: NAME,
                status,
                message: answer.message,
            }),
        }
    }
}

/// `POST /v1/checkout/sessions` (form-encoded, as Stripe's API takes it).
struct Stripe {
    http: reqwest::Client,
    base_url: String,
    secret_key: Secret,
    return_url: String,
}

#[derive(Deserialize)]
struct StripeSession {
    url: Option<String>,
}

#[derive(Deserialize)]
struct StripeError {
    error: StripeErrorBody,
}

#[derive(Deserialize)]
struct StripeErrorBody {
    #[serde(default)]
    message: String,
}

#[async_trait]
impl Gateway for Stripe {
    async fn initialize(&self, request: &CheckoutRequest<'_>) -> Result<Checkout, GatewayError> {
        const NAME: &str = "Stripe";
        let amount = request.amount_cents.to_string();
        let currency = request.currency.to_ascii_lowercase();
        let return_to = request.return_to.unwrap_or(&self.return_url);
        let form = [
            ("mode", "payment"),
            ("client_reference_id", request.reference),
            ("customer_email", request.email),
            ("metadata[reference]", request.reference),
            (
                "payment_intent_data[metadata][reference]",
                request.reference,
            ),
            ("line_items[0][quantity]", "1"),
            ("line_items[0][price_data][currency]", currency.as_str()),
            ("line_items[0][price_data][unit_amount]", amount.as_str()),
            (
                "line_items[0][price_data][product_data][name]",
                "Wallet top-up",
            ),
            ("success_url", return_to),
            ("cancel_url", return_to),
        ];
        let response = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.base_url))
            .bearer_auth(self.secret_key.expose())
            .header("Idempotency-Key", request.reference)
            .form(&form)
            .send()
            .await
            .map_err(|e| GatewayError::Unreachable(NAME, e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| GatewayError::Unreachable(NAME, e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<StripeError>(&body)
                .map(|e| e.error.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            return Err(GatewayError::Refused {
                provider: NAME,
                status: status.as_u16(),
                message,
            });
        }
        let session: StripeSession = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::BadAnswer(NAME, e.to_string()))?;
        session
            .url
            .map(|checkout_url| Checkout { checkout_url })
            .ok_or_else(|| GatewayError::BadAnswer(NAME, "no checkout url".to_owned()))
    }
}
