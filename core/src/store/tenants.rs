//! White-label tenants: their brand, their accounts and their own prices.
//!
//! Every account belongs to one tenant, and everything else (keys, verifications, webhook
//! endpoints, payments) belongs to an account, so scoping by account scopes by tenant. What
//! is the tenant's own is here: what its customers see (the brand), what its administrators
//! manage (its accounts) and what its customers pay (its prices).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

use super::{
    StoreError,
    accounts::{self, Account},
    violated_constraint,
};
use crate::domain::{AccountId, TenantId};

/// What a tenant's customers see: in `GET /v1/account`, `GET /v1/brand` and the dashboard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Brand {
    pub name: String,
    /// `https://…`
    pub logo_url: Option<String>,
    /// `#rrggbb`
    pub primary_colour: Option<String>,
    /// `#rrggbb`
    pub accent_colour: Option<String>,
    pub support_email: Option<String>,
    /// Requests under this host name are the tenant's.
    pub custom_domain: Option<String>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    #[schema(value_type = String, format = Uuid)]
    pub id: TenantId,
    pub slug: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub brand: Brand,
    /// Whether its customers may sign up in the web app themselves.
    pub customer_sign_up: bool,
    pub created_at: DateTime<Utc>,
}

/// A tenant as operators list it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct TenantSummary {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub tenant: Tenant,
    pub accounts: i64,
    pub prices: i64,
}

/// A tenant's price for a service in a country, replacing the catalogue's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TenantPrice)]
pub struct Price {
    #[schema(example = "telegram", pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    pub service: String,
    #[schema(example = "us", pattern = "^[a-zA-Z]{2}$")]
    pub country: String,
    #[schema(minimum = 1, maximum = 100_000_000)]
    #[serde(deserialize_with = "crate::domain::deserialize_whole_cents")]
    pub price_cents: i64,
}

/// A tenant's prices by (service, country), as pricing reads them.
pub type PriceBook = HashMap<(String, String), i64>;

/// Why a brand change was refused; each names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidBrand {
    #[error("`name` must be 1–100 printable characters")]
    Name,
    #[error("`logo_url` must be an https:// URL of at most 2048 characters, without spaces")]
    LogoUrl,
    #[error("`{0}` must be a colour written #rrggbb (lowercase hex)")]
    Colour(&'static str),
    #[error("`support_email` must be an e-mail address")]
    SupportEmail,
    #[error("`custom_domain` must be a lowercase host name such as `verify.example.com`")]
    CustomDomain,
    #[error(
        "`slug` must be 1–63 lowercase letters, digits or dashes, starting with a letter or digit"
    )]
    Slug,
}

/// A change to a brand: `None` keeps a field; `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default)]
pub struct BrandChange {
    pub name: Option<String>,
    pub logo_url: Option<Option<String>>,
    pub primary_colour: Option<Option<String>>,
    pub accent_colour: Option<Option<String>>,
    pub support_email: Option<Option<String>>,
    pub custom_domain: Option<Option<String>>,
    /// Not part of the brand's look, but changed with it: whether customers may sign up.
    pub customer_sign_up: Option<bool>,
}

impl BrandChange {
    /// The brand after the change, or why the change is refused.
    pub fn apply_to(&self, brand: &Brand) -> Result<Brand, InvalidBrand> {
        fn pick(change: &Option<Option<String>>, current: &Option<String>) -> Option<String> {
            match change {
                Some(value) => value.as_deref().map(str::trim).map(str::to_owned),
                None => current.clone(),
            }
        }
        let brand = Brand {
            name: self
                .name
                .as_deref()
                .map_or_else(|| brand.name.clone(), |n| n.trim().to_owned()),
            logo_url: pick(&self.logo_url, &brand.logo_url),
            primary_colour: pick(&self.primary_colour, &brand.primary_colour),
            accent_colour: pick(&self.accent_colour, &brand.accent_colour),
            support_email: pick(&self.support_email, &brand.support_email),
            custom_domain: pick(&self.custom_domain, &brand.custom_domain)
                .map(|d| d.to_ascii_lowercase()),
        };
        brand.validate()?;
        Ok(brand)
    }
}

impl Brand {
    pub fn validate(&self) -> Result<(), InvalidBrand> {
        let length = self.name.chars().count();
        if !(1..=100).contains(&length) || self.name.chars().any(char::is_control) {
            return Err(InvalidBrand::Name);
        }
        if let Some(url) = &self.logo_url
            && (!url.starts_with("https://")
                || url.len() <= "https://".len()
                || url.chars().count() > 2048
                || url.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(InvalidBrand::LogoUrl);
        }
        for (field, colour) in [
            ("primary_colour", &self.primary_colour),
            ("accent_colour", &self.accent_colour),
        ] {
            if let Some(colour) = colour
                && !is_colour(colour)
            {
                return Err(InvalidBrand::Colour(field));
            }
        }
        if let Some(email) = &self.support_email
            && (!(3..=254).contains(&email.chars().count())
                || !email.contains('@')
                || email.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(InvalidBrand::SupportEmail);
        }
        if let Some(domain) = &self.custom_domain
            && !is_host_name(domain)
        {
            return Err(InvalidBrand::CustomDomain);
        }
        Ok(())
    }
}

fn is_colour(text: &str) -> bool {
    text.len() == 7
        && text.starts_with('#')
        && text[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// At least two labels of lowercase letters, digits and inner dashes (the migration's check),
/// the last with a letter (so not an IPv4 address).
pub fn is_host_name(text: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    text.len() <= 253
        && text.split('.').count() >= 2
        && text.split('.').all(label_ok)
        && text
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(|c| c.is_ascii_lowercase()))
}

pub fn validate_slug(slug: &str) -> Result<(), InvalidBrand> {
    let ok = (1..=63).contains(&slug.len())
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-');
    if ok { Ok(()) } else { Err(InvalidBrand::Slug) }
}

const COLUMNS: &str = "id, slug, name, logo_url, primary_colour, accent_colour, support_email, \
                       custom_domain, customer_sign_up, created_at";

/// The tenant and its brand; the unique custom domain maps to [`StoreError::AlreadyExists`].
pub async fn create(
    conn: &mut PgConnection,
    slug: &str,
    brand: &Brand,
) -> Result<Tenant, StoreError> {
    let sql = format!(
        "INSERT INTO tenants (id, slug, name, logo_url, primary_colour, accent_colour,
                              support_email, custom_domain)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(TenantId::new())
        .bind(slug);
    bind_brand(query, brand)
        .fetch_one(conn)
        .await
        .map_err(unique_violation)
}

/// Binds the brand's six columns, in the table's order, after the statement's own.
fn bind_brand<'q>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, Tenant, sqlx::postgres::PgArguments>,
    brand: &'q Brand,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, Tenant, sqlx::postgres::PgArguments> {
    query
        .bind(&brand.name)
        .bind(&brand.logo_url)
        .bind(&brand.primary_colour)
        .bind(&brand.accent_colour)
        .bind(&brand.support_email)
        .bind(&brand.custom_domain)
}

fn unique_violation(error: sqlx::Error) -> StoreError {
    match violated_constraint(&error) {
        Some("tenants_slug_key") => StoreError::AlreadyExists("a tenant with this slug"),
        Some("tenants_custom_domain_key") => {
            StoreError::AlreadyExists("a tenant with this custom domain")
        }
        _ => error.into(),
    }
}

pub async fn find(pool: &PgPool, id: TenantId) -> Result<Option<Tenant>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
    Ok(sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// The tenant whose custom domain `host` is (lowercase, without a port).
pub async fn find_by_domain(pool: &PgPool, host: &str) -> Result<Option<Tenant>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE custom_domain = $1");
    Ok(sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(host)
        .fetch_optional(pool)
        .await?)
}

/// Every tenant with how many accounts and prices it has, by name.
pub async fn list(pool: &PgPool) -> Result<Vec<TenantSummary>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS},
                (SELECT count(*) FROM accounts a WHERE a.tenant_id = t.id) AS accounts,
                (SELECT count(*) FROM tenant_prices p WHERE p.tenant_id = t.id) AS prices
         FROM tenants t ORDER BY name, slug"
    );
    Ok(sqlx::query_as::<_, TenantSummary>(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?)
}

/// Changes the brand under the tenant's row lock, so two changes cannot interleave.
/// `Ok(Err(_))` when the change itself is refused.
pub async fn update_brand(
    conn: &mut PgConnection,
    id: TenantId,
    change: &BrandChange,
) -> Result<Result<Tenant, InvalidBrand>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE");
    let current = sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::Missing("tenant"))?;
    let brand = match change.apply_to(&current.brand) {
        Ok(brand) => brand,
        Err(invalid) => return Ok(Err(invalid)),
    };
    let sql = format!(
        "UPDATE tenants SET name = $2, logo_url = $3, primary_colour = $4, accent_colour = $5,
                            support_email = $6, custom_domain = $7,
                            customer_sign_up = coalesce($8, customer_sign_up)
         WHERE id = $1
         RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as::<_, Tenant>(sqlx::AssertSqlSafe(sql)).bind(id);
    let tenant = bind_brand(query, &brand)
        .bind(change.customer_sign_up)
        .fetch_one(conn)
        .await
        .map_err(unique_violation)?;
    Ok(Ok(tenant))
}

/// The tenant's accounts, newest first.
pub async fn accounts(
    pool: &PgPool,
    tenant: TenantId,
    limit: i64,
    offset: i64,
) -> Result<Vec<Account>, StoreError> {
    let sql = format!(
        "SELECT {} FROM accounts WHERE tenant_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        accounts::COLUMNS
    );
    Ok(sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?)
}

/// One of the tenant's accounts; another tenant's account is `None`, as if it did not exist.
pub async fn account(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: AccountId,
) -> Result<Option<Account>, StoreError> {
    let sql = format!(
        "SELECT {} FROM accounts WHERE id = $1 AND tenant_id = $2",
        accounts::COLUMNS
    );
    Ok(sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(tenant)
        .fetch_optional(conn)
        .await?)
}

pub async fn prices(pool: &PgPool, tenant: TenantId) -> Result<Vec<Price>, StoreError> {
    Ok(sqlx::query_as::<_, Price>(
        "SELECT service, country, price_cents FROM tenant_prices WHERE tenant_id = $1
         ORDER BY service, country",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?)
}

pub async fn price_book(pool: &PgPool, tenant: TenantId) -> Result<PriceBook, StoreError> {
    Ok(prices(pool, tenant)
        .await?
        .into_iter()
        .map(|p| ((p.service, p.country), p.price_cents))
        .collect())
}

/// Replaces the tenant's whole price list with `prices` (PUT semantics: repeating it is
/// harmless). `conn` should be a transaction, so no reader sees half a list.
pub async fn replace_prices(
    conn: &mut PgConnection,
    tenant: TenantId,
    prices: &[Price],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM tenant_prices WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *conn)
        .await?;
    let services: Vec<&str> = prices.iter().map(|p| p.service.as_str()).collect();
    let countries: Vec<&str> = prices.iter().map(|p| p.country.as_str()).collect();
    let cents: Vec<i64> = prices.iter().map(|p| p.price_cents).collect();
    sqlx::query(
        "INSERT INTO tenant_prices (tenant_id, service, country, price_cents)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])",
    )
    .bind(tenant)
    .bind(&services)
    .bind(&countries)
    .bind(&cents)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Brand {
        Brand {
            name: "Acme Verify".to_owned(),
            logo_url: None,
            primary_colour: None,
            accent_colour: None,
            support_email: None,
            custom_domain: None,
        }
    }

    #[test]
    fn a_change_keeps_what_it_does_not_name_and_clears_what_it_sets_to_null() {
        let mut current = brand();
        current.support_email = Some("help@acme.test".to_owned());
        current.primary_colour = Some("#112233".to_owned());
        let change = BrandChange {
            primary_colour: Some(None),
            custom_domain: Some(Some("Verify.Acme.Test".to_owned())),
            ..BrandChange::default()
        };
        let changed = change.apply_to(&current).expect("valid");
        assert_eq!(changed.name, "Acme Verify");
        assert_eq!(changed.support_email.as_deref(), Some("help@acme.test"));
        assert_eq!(changed.primary_colour, None);
        assert_eq!(changed.custom_domain.as_deref(), Some("verify.acme.test"));
    }

    #[test]
    fn bad_brands_name_the_field() {
        let refuse = |change: BrandChange| change.apply_to(&brand()).expect_err("refused");
        let set = |value: &str| Some(Some(value.to_owned()));
        assert_eq!(
            refuse(BrandChange {
                name: Some(" ".to_owned()),
                ..BrandChange::default()
            }),
            InvalidBrand::Name
        );
        assert_eq!(
            refuse(BrandChange {
                logo_url: set("http://acme.test/logo.png"),
                ..BrandChange::default()
            }),
            InvalidBrand::LogoUrl
        );
        assert_eq!(
            refuse(BrandChange {
                accent_colour: set("#GGGGGG"),
                ..BrandChange::default()
            }),
            InvalidBrand::Colour("accent_colour")
        );
        assert_eq!(
            refuse(BrandChange {
                support_email: set("nobody"),
                ..BrandChange::default()
            }),
            InvalidBrand::SupportEmail
        );
        for domain in ["localhost", "-a.test", "a..test", "a_b.test", "10.0.0.1"] {
            assert_eq!(
                refuse(BrandChange {
                    custom_domain: set(domain),
                    ..BrandChange::default()
                }),
                InvalidBrand::CustomDomain,
                "{domain}"
            );
        }
        assert_eq!(validate_slug("Acme"), Err(InvalidBrand::Slug));
        assert_eq!(validate_slug("acme-2"), Ok(()));
    }
}
