//! Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure when configured);
//! only its SHA-256 is stored. Each session has a CSRF token every form must send back.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngExt;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "namaskah_session";

/// A new random token (32 bytes, URL-safe base64).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The session token from a `Cookie` header.
pub fn token_from_cookies(cookies: Option<&str>) -> Option<String> {
    cookies?
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

pub fn set_cookie(token: &str, secure: bool, max_age_secs: u64) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}")
}

pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", secure, 0)
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
        let header = set_cookie(&token, true, 60);
        assert!(
            header.contains("HttpOnly")
                && header.contains("SameSite=Strict")
                && header.contains("Secure")
        );
        let cookies = format!("other=1; {COOKIE}={token}");
        assert_eq!(token_from_cookies(Some(&cookies)), Some(token));
        assert!(!set_cookie("x", false, 60).contains("Secure"));
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
    }
}
