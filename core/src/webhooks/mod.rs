//! Webhooks to customers, following the Standard Webhooks specification
//! (https://www.standardwebhooks.com): signing and verification, endpoint secrets, and the
//! guard that keeps deliveries away from private networks.

pub mod secret;
pub mod signing;
pub mod ssrf;

pub use secret::WebhookSecret;
