//! Passwords (argon2id) and TOTP second factors (RFC 6238).

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier},
};
use rand::RngExt;
use totp_rs::{Builder, Secret, Totp};

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("the stored TOTP secret is not valid")]
    BadTotpSecret,
}

/// A new random password: 24 characters from an alphabet without look-alikes.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..24)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// argon2id with the library's recommended parameters, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| CredentialError::Hash(e.to_string()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A new TOTP secret, base32.
pub fn generate_totp_secret() -> String {
    Secret::generate().to_base32()
}

fn totp(secret: &str, username: &str) -> Result<Totp, CredentialError> {
    let secret = Secret::try_from_base32(secret).map_err(|_| CredentialError::BadTotpSecret)?;
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some("Namaskah"))
        .with_account_name(username)
        .build()
        .map_err(|_| CredentialError::BadTotpSecret)
}

/// Whether `secret` is a TOTP secret an operator can log in with (base32, long enough):
/// what `namaskah compliance` calls having 2FA.
pub fn totp_secret_is_usable(secret: &str, username: &str) -> bool {
    totp(secret, username).is_ok()
}

/// The `otpauth://` URI an authenticator app imports.
pub fn otpauth_uri(secret: &str, username: &str) -> Result<String, CredentialError> {
    totp(secret, username)?
        .to_url()
        .map_err(|_| CredentialError::BadTotpSecret)
}

/// The time step of `code` if it is valid now (one step of clock skew either way).
pub fn totp_step(secret: &str, username: &str, code: &str, unix_time: u64) -> Option<i64> {
    let step = totp(secret, username).ok()?.check(code.trim(), unix_time)?;
    i64::try_from(step).ok()
}

/// The current code (for tests and the first-login instructions).
pub fn current_totp(
    secret: &str,
    username: &str,
    unix_time: u64,
) -> Result<String, CredentialError> {
    Ok(totp(secret, username)?.generate(unix_time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_differ() {
        let password = generate_password();
        let hash = hash_password(&password).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&password, &hash));
        assert!(!verify_password("wrong", &hash));
    }

    #[test]
    fn totp_codes_check_against_their_step() {
        let secret = generate_totp_secret();
        let now = 1_800_000_000;
        let code = current_totp(&secret, "ops", now).expect("code");
        assert_eq!(totp_step(&secret, "ops", &code, now), Some(60_000_000));
        assert_eq!(totp_step(&secret, "ops", &code, now + 3600), None);
        assert!(
            otpauth_uri(&secret, "ops")
                .expect("uri")
                .starts_with("otpauth://totp/Namaskah:ops?")
        );
    }
}
