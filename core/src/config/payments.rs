//! Wallet top-ups through Paystack and Stripe.

use std::time::Duration;

use super::{ConfigError, Secret, env::Env};

/// Wallet top-ups. A provider without its secret is switched off.
#[derive(Clone, Debug)]
pub struct PaymentSettings {
    /// The wallet's currency: every top-up must be in it.
    pub currency: String,
    /// Paystack's secret key: authenticates our calls and signs its webhooks (HMAC-SHA512).
    pub paystack_secret_key: Option<Secret>,
    pub paystack_base_url: String,
    /// Stripe's API key, for creating checkout sessions.
    pub stripe_secret_key: Option<Secret>,
    /// Stripe's webhook signing secret (`whsec_…`).
    pub stripe_webhook_secret: Option<Secret>,
    pub stripe_base_url: String,
    /// How old a Stripe signature's timestamp may be.
    pub stripe_tolerance: Duration,
    /// Where Stripe's checkout sends the payer back.
    pub checkout_return_url: String,
}

impl PaymentSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            currency: match env.raw("WALLET_CURRENCY") {
                None => "USD".to_owned(),
                Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => {
                    code
                }
                Some(_) => {
                    return Err(env.error(
                        "WALLET_CURRENCY",
                        "a three-letter ISO 4217 code such as USD",
                    ));
                }
            },
            paystack_secret_key: env.raw("PAYSTACK_SECRET_KEY").map(Secret::new),
            paystack_base_url: env.url(
                "PAYSTACK_BASE_URL",
                "https://api.paystack.co",
                &["http", "https"],
            )?,
            stripe_secret_key: env.raw("STRIPE_SECRET_KEY").map(Secret::new),
            stripe_webhook_secret: env.raw("STRIPE_WEBHOOK_SECRET").map(Secret::new),
            stripe_base_url: env.url(
                "STRIPE_BASE_URL",
                "https://api.stripe.com",
                &["http", "https"],
            )?,
            stripe_tolerance: env.duration("STRIPE_WEBHOOK_TOLERANCE", "5m")?,
            checkout_return_url: env.url(
                "CHECKOUT_RETURN_URL",
                "http://127.0.0.1:8080/docs",
                &["http", "https"],
            )?,
        })
    }
}
