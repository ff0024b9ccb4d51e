//! The throw-away world of a load run: the catalogue made fit for it, and its customers
//! with their API keys and webhook secrets.

use anyhow::{Context, Result};
use std::sync::{Arc, Mutex};

use namaskah_core::{
    domain::{AccountId, ApiKey, Cents, Scope, TenantId, Tier},
    store::{accounts, api_keys},
    webhooks::WebhookSecret,
};

/// The key the run's simulated providers accept (the role processes of a chaos run are
/// told it too).
pub(super) const SIMULATOR_KEY: &str = "load-simulator-key";
/// Enough that no load run ever runs an account dry.
const OPENING_BALANCE_CENTS: i64 = 1_000_000_000_000;

/// The customers of a run.
pub(super) struct Customers {
    pub(super) accounts: Vec<AccountId>,
    pub(super) keys: Vec<String>,
    pub(super) secrets: Arc<Mutex<Vec<WebhookSecret>>>,
}

/// Short SMS timeouts, so that orders without an SMS end within the run, and no rate
/// limits or open caps: the run measures the pipeline, not the limiter.
pub(super) async fn prepare_catalogue(pool: &sqlx::PgPool, sms_timeout_secs: i32) -> Result<()> {
    sqlx::query("UPDATE services SET sms_timeout_secs = $1")
        .bind(sms_timeout_secs)
        .execute(pool)
        .await?;
    sqlx::query(
        "UPDATE tiers SET requests_per_second = 100000, burst = 100000,
                          max_open_verifications = 1000000",
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn create_customers(pool: &sqlx::PgPool, count: u32) -> Result<Customers> {
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    let mut secrets = Vec::new();
    let mut tx = pool.begin().await?;
    for n in 0..count {
        let account = accounts::create(
            &mut tx,
            TenantId::DEFAULT,
            &format!("load{n}@example.com"),
            Tier::Enterprise,
            Cents::new(OPENING_BALANCE_CENTS).context("opening balance")?,
        )
        .await?;
        let key = ApiKey::generate();
        api_keys::insert(&mut tx, account.id, &key, &[Scope::Write], "load").await?;
        ids.push(account.id);
        keys.push(key.expose().to_owned());
        secrets.push(WebhookSecret::generate());
    }
    tx.commit().await?;
    Ok(Customers {
        accounts: ids,
        keys,
        secrets: Arc::new(Mutex::new(secrets)),
    })
}
