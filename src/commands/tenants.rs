//! `namaskah tenants create`: a white-label tenant, its first administrator account and that
//! account's `tenant_admin` key. Everything else about the tenant is managed through
//! `/v1/tenant` with that key.

use anyhow::Result;
use serde_json::json;
use std::process::ExitCode;

use namaskah::prerequisites;
use namaskah_core::{
    Config,
    domain::{ApiKey, Cents, Scope, Tier},
    store::{
        self, StoreError, accounts, api_keys,
        tenants::{self, Brand},
    },
};

/// What `namaskah tenants create` was asked for.
pub struct NewTenant {
    pub slug: String,
    pub name: String,
    pub admin_email: String,
    pub custom_domain: Option<String>,
    pub support_email: Option<String>,
}

pub async fn create(config: Config, options: NewTenant) -> Result<ExitCode> {
    let slug = options.slug.trim().to_owned();
    let admin_email = options.admin_email.trim().to_owned();
    let brand = Brand {
        name: options.name.trim().to_owned(),
        logo_url: None,
        primary_colour: None,
        accent_colour: None,
        support_email: options.support_email.map(|e| e.trim().to_owned()),
        custom_domain: options.custom_domain.map(|d| d.trim().to_ascii_lowercase()),
    };
    if let Err(invalid) = tenants::validate_slug(&slug).and_then(|()| brand.validate()) {
        eprintln!("{invalid}");
        return Ok(ExitCode::from(2));
    }
    if !accounts::is_email(&admin_email) {
        eprintln!("--admin-email must be an e-mail address, got {admin_email:?}");
        return Ok(ExitCode::from(2));
    }
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 1).await?;
    let mut tx = pool.begin().await?;
    let created = async {
        let tenant = tenants::create(&mut tx, &slug, &brand).await?;
        let admin =
            accounts::create(&mut tx, tenant.id, &admin_email, Tier::Free, Cents::ZERO).await?;
        Ok::<_, StoreError>((tenant, admin))
    }
    .await;
    let (tenant, admin) = match created {
        Ok(created) => created,
        Err(StoreError::AlreadyExists(what)) => {
            eprintln!("{what} already exists");
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    let key = ApiKey::generate();
    api_keys::insert(
        &mut tx,
        admin.id,
        &key,
        &[Scope::TenantAdmin],
        "created by `namaskah tenants create`",
    )
    .await?;
    tx.commit().await?;
    let output = json!({
        "tenant_id": tenant.id,
        "slug": tenant.slug,
        "brand": tenant.brand,
        "admin_account_id": admin.id,
        "admin_email": admin.email,
        "api_key": key.expose(),
        "api_key_prefix": key.prefix(),
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
