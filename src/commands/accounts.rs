//! `namaskah accounts create`.

use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

use namaskah::prerequisites;
use namaskah_core::{
    Config,
    domain::{ApiKey, Cents, OWNER_SCOPES, Scope, TenantId, Tier},
    store::{
        self, StoreError, accounts, api_keys,
        referrals::{self, Link},
    },
};

/// What `namaskah accounts create` was asked for.
pub struct NewAccount {
    pub email: String,
    pub balance_cents: i64,
    pub tier: String,
    pub referral_code: Option<String>,
    /// Comma-separated scopes of the first key; the owner's (read, write, admin) by default.
    pub scopes: Option<String>,
}

pub async fn create(config: Config, options: NewAccount) -> Result<ExitCode> {
    let NewAccount {
        email,
        balance_cents,
        tier,
        referral_code,
        scopes,
    } = options;
    let email = email.trim();
    if !accounts::is_email(email) {
        eprintln!("--email must be an e-mail address, got {email:?}");
        return Ok(ExitCode::from(2));
    }
    let Some(balance) = Cents::new(balance_cents) else {
        eprintln!("--balance-cents cannot be negative, got {balance_cents}");
        return Ok(ExitCode::from(2));
    };
    let scopes = match scopes.as_deref().map(parse_scopes) {
        None => OWNER_SCOPES.to_vec(),
        Some(Ok(scopes)) => scopes,
        Some(Err(error)) => {
            eprintln!("--scopes: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let tier = match Tier::parse(&tier) {
        Ok(tier) => tier,
        Err(error) => {
            eprintln!("--tier: {error}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 1).await?;
    let key = ApiKey::generate();
    let mut tx = pool.begin().await?;
    let account = match accounts::create(&mut tx, TenantId::DEFAULT, email, tier, balance).await {
        Ok(account) => account,
        Err(StoreError::AlreadyExists(what)) => {
            eprintln!("{what} already exists: {email}");
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    if let Some(code) = referral_code {
        let link = referrals::link(&mut tx, account.id, &code).await?;
        if !matches!(link, Link::Linked { .. }) {
            eprintln!("--referral-code {code:?} not accepted: {link:?}");
            return Ok(ExitCode::from(2));
        }
    }
    api_keys::insert(
        &mut tx,
        account.id,
        &key,
        &scopes,
        "created by `namaskah accounts create`",
    )
    .await?;
    tx.commit().await?;
    let output = json!({
        "account_id": account.id,
        "email": account.email,
        "tier": account.tier,
        "balance_cents": account.balance_cents,
        "referral_code": account.referral_code,
        "api_key": key.expose(),
        "api_key_prefix": key.prefix(),
        "scopes": scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `read,write` → the scopes, each known, at least one; `tenant_admin` is given by
/// `namaskah tenants create`, not here.
fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    let mut scopes = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match Scope::parse(name) {
            Some(Scope::TenantAdmin) | None => {
                return Err(format!(
                    "unknown scope {name:?}; choose from read, write, admin"
                ));
            }
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
        }
    }
    if scopes.is_empty() {
        return Err("name at least one scope: read, write, admin".to_owned());
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_once_each_and_refuse_what_an_account_may_not_hold() {
        assert_eq!(
            parse_scopes("read, write,read"),
            Ok(vec![Scope::Read, Scope::Write])
        );
        assert!(parse_scopes("tenant_admin").is_err());
        assert!(parse_scopes("everything").is_err());
        assert!(parse_scopes(" , ").is_err());
    }
}
