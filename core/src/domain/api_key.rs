//! API keys: shown to their owner once, stored only as a hash.

use rand::RngExt;
use sha2::{Digest, Sha256};
use std::fmt;

/// Every key starts with this, so a leaked key is recognisable in a scan.
const KEY_MARK: &str = "nmk_";
/// Random characters after the mark: 40 base-62 characters, about 238 bits.
const RANDOM_LEN: usize = 40;
/// The part of a key shown in listings: the mark and the first 8 random characters.
const PREFIX_LEN: usize = KEY_MARK.len() + 8;

/// A whole API key, as the customer sends it. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// The stored form of a key: SHA-256 of it. Keys are long random strings, so a fast hash is
/// enough; there is nothing to guess that a slow hash would protect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyHash(pub Vec<u8>);

impl ApiKey {
    /// A new random key.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let random: String = (0..RANDOM_LEN)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(format!("{KEY_MARK}{random}"))
    }

    /// A key as presented in a request; `None` when it cannot be one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        let well_formed = text.len() == KEY_MARK.len() + RANDOM_LEN
            && text.starts_with(KEY_MARK)
            && text[KEY_MARK.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        well_formed.then(|| Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn prefix(&self) -> &str {
        &self.0[..PREFIX_LEN]
    }

    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.0.as_bytes()).to_vec())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix())
    }
}

/// The scopes of an account's first key, its owner's: everything the account may do with
/// its own data, key rotation, export and erasure included. Narrower keys are made from it.
pub const OWNER_SCOPES: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Read,
    Write,
    Admin,
    /// Manages the key's tenant: its brand, its accounts and its prices.
    TenantAdmin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::TenantAdmin => "tenant_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            "tenant_admin" => Some(Scope::TenantAdmin),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hide_in_debug() {
        let key = ApiKey::generate();
        assert_eq!(ApiKey::parse(key.expose()), Some(key.clone()));
        assert!(key.prefix().starts_with("nmk_"));
        assert!(!format!("{key:?}").contains(&key.expose()[PREFIX_LEN..]));
        assert_ne!(ApiKey::generate(), key);
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(ApiKey::parse("").is_none());
        assert!(ApiKey::parse("nmk_short").is_none());
        assert!(ApiKey::parse(&format!("xyz_{}", "a".repeat(40))).is_none());
        assert!(ApiKey::parse(&format!("nmk_{}", "é".repeat(20))).is_none());
    }
}
