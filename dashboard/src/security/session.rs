//! Sessions: a random token in an HttpOnly, SameSite cookie (Secure when configured);
//! only its SHA-256 is stored. Each session has a CSRF token every form must send back.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// A session cookie: its name and how it travels with requests from other sites.
pub struct SessionCookie {
    pub name: &'static str,
    /// `Strict` for the dashboard (nothing links into it); `Lax` for the customer web app,
    /// whose customers come back from a payment provider's checkout by a link.
    pub same_site: &'static str,
}

/// The dashboard's. (The web app's has another name: browsers share cookies between the
/// ports of one host, and both may run on 127.0.0.1.)
pub const DASHBOARD: SessionCookie = SessionCookie {
    name: "namaskah_session",
    same_site: "Strict",
};

/// A new random token (32 bytes, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl SessionCookie {
    /// The session token from a `Cookie` header.
    pub fn token_from(&self, cookies: Option<&str>) -> Option<String> {
        cookies?
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.to_owned())
            .filter(|value| !value.is_empty())
    }

    /// `Set-Cookie` for a session: HttpOnly, this SameSite, Secure when asked.
    pub fn set(&self, token: &str, secure: bool, max_age_secs: u64) -> String {
        let secure = if secure { "; Secure" } else { "" };
        format!(
            "{}={token}; Path=/; HttpOnly; SameSite={}; Max-Age={max_age_secs}{secure}",
            self.name, self.same_site
        )
    }

    pub fn clear(&self, secure: bool) -> String {
        self.set("", secure, 0)
    }
}

/// Compares a submitted CSRF token with the session's in constant time.
pub fn csrf_matches(expected: &str, submitted: Option<&str>) -> bool {
    let Some(submitted) = submitted else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), submitted.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_and_carry_their_flags() {
        let token = new_token();
        let header = DASHBOARD.set(&token, true, 60);
        assert!(
            header.contains("HttpOnly")
                && header.contains("SameSite=Strict")
                && header.contains("Secure")
        );
        let cookies = format!("other=1; namaskah_session={token}");
        assert_eq!(DASHBOARD.token_from(Some(&cookies)), Some(token));
        assert!(!DASHBOARD.set("x", false, 60).contains("Secure"));
        let lax = SessionCookie {
            name: "other",
            same_site: "Lax",
        };
        assert!(lax.set("x", false, 60).contains("SameSite=Lax"));
        assert_eq!(lax.token_from(Some("namaskah_session=y")), None);
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
    }
}
