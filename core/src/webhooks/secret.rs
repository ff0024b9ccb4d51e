//! Endpoint secrets: `whsec_` followed by base64 of the key bytes.

use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngExt;
use std::fmt;

const PREFIX: &str = "whsec_";

/// A signing secret. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// A new secret with a 32-byte key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key[..]);
        Self {
            text: format!("{PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    /// Accepts `whsec_<base64>` (and, as the specification's libraries do, the bare base64).
    pub fn parse(text: &str) -> Option<Self> {
        let encoded = text.strip_prefix(PREFIX).unwrap_or(text);
        let key = STANDARD.decode(encoded).ok()?;
        (key.len() >= 16).then(|| Self {
            text: format!("{PREFIX}{encoded}"),
            key,
        })
    }

    /// The secret as shown to the endpoint's owner.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// The HMAC key: the base64-decoded part after `whsec_`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_back() {
        let secret = WebhookSecret::generate();
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(WebhookSecret::parse(secret.expose()), Some(secret.clone()));
        assert_eq!(secret.key().len(), 32);
        assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
        assert!(WebhookSecret::parse("whsec_not base64!").is_none());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_none());
    }
}
