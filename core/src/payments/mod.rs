//! Wallet top-ups through Paystack and Stripe.
//!
//! 1. The account asks for a top-up: a `pending` payment with our own `reference` is stored,
//!    then the provider's checkout is initialised through a [`gateway::Gateway`] (HTTP, base
//!    URL from configuration) and its checkout URL returned.
//! 2. The payer pays on the provider's page.
//! 3. The provider calls our webhook. [`notices`] checks its signature and reads the event;
//!    `store::payments::credit` finds the payment by provider and reference, checks amount and
//!    currency against what was initialised, and credits it exactly once.

pub mod gateway;
pub mod notices;

use serde::{Deserialize, Serialize};

/// Who takes the money.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProvider {
    Paystack,
    Stripe,
}

impl PaymentProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentProvider::Paystack => "paystack",
            PaymentProvider::Stripe => "stripe",
        }
    }
}

impl std::str::FromStr for PaymentProvider {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "paystack" => Ok(PaymentProvider::Paystack),
            "stripe" => Ok(PaymentProvider::Stripe),
            other => Err(format!(
                "unknown payment provider {other:?}: paystack or stripe"
            )),
        }
    }
}

impl TryFrom<String> for PaymentProvider {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}
