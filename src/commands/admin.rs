//! `namaskah admin create`.

use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

use namaskah::prerequisites;
use namaskah_core::{
    Config,
    store::{self, StoreError, admins},
};
use namaskah_dashboard::security::credentials;

pub async fn create(config: Config, username: &str) -> Result<ExitCode> {
    let username = username.trim().to_ascii_lowercase();
    let valid = (2..=32).contains(&username.len())
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        eprintln!("--username must be 2 to 32 letters, digits, '.', '_' or '-'");
        return Ok(ExitCode::from(2));
    }
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 1).await?;
    let password = credentials::generate_password();
    let hash = credentials::hash_password(&password)?;
    let secret = credentials::generate_totp_secret();
    match admins::create(&pool, &username, &hash, &secret).await {
        Ok(_) => {}
        Err(StoreError::AlreadyExists(what)) => {
            eprintln!("{what} already exists: {username}");
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    }
    let output = json!({
        "username": username,
        "password": password,
        "otpauth_uri": credentials::otpauth_uri(&secret, &username)?,
        "note": "shown only now: store the password, and add the otpauth URI to an authenticator app",
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
