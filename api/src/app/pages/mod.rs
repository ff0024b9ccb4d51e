//! The web app's pages, one module per part of the customer's day.

pub mod account;
pub mod developers;
pub mod history;
pub mod live;
pub mod rent;
pub mod reset;
pub mod wallet;

use std::time::Duration;

use namaskah_dashboard::security::credentials;

/// Passwords: long enough to resist guessing, short enough that hashing stays cheap.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=128;

/// Why a new password is refused, for the form.
pub fn password_problem(password: &str) -> Option<String> {
    let length = password.chars().count();
    (!PASSWORD_CHARS.contains(&length)).then(|| {
        format!(
            "Choose a password of {} to {} characters.",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )
    })
}

/// Hashes off the async threads: argon2 is meant to be slow.
pub async fn hash_password(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password).ok())
        .await
        .ok()
        .flatten()
}

/// Checks off the async threads. Without a stored hash it still spends the time of one,
/// so that an unknown address answers as slowly as a wrong password.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => credentials::verify_password(&password, &hash),
        None => {
            let _ = credentials::hash_password(&password);
            false
        }
    })
    .await
    .unwrap_or(false)
}

/// A failed sign-in locks the account after this many in a row, for this long.
pub const MAX_FAILURES: i32 = 10;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
