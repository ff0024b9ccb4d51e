//! The service catalogue: per service, country and provider, a price and an SMS timeout.

use sqlx::PgPool;

use super::StoreError;

/// One catalogue row: `provider` sells `service` in `country`.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Offer {
    pub service: String,
    pub country: String,
    pub provider: String,
    pub provider_product: String,
    pub provider_country: String,
    pub price_cents: i64,
    pub sms_timeout_secs: i32,
}

const COLUMNS: &str =
    "service, country, provider, provider_product, provider_country, price_cents, sms_timeout_secs";

/// Enabled offers of the given providers, optionally for one service and one country.
pub async fn enabled_offers(
    pool: &PgPool,
    providers: &[String],
    service: Option<&str>,
    country: Option<&str>,
) -> Result<Vec<Offer>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM services
         WHERE enabled AND provider = ANY($1)
           AND ($2::text IS NULL OR service = $2)
           AND ($3::text IS NULL OR country = $3)
         ORDER BY service, country, provider"
    );
    Ok(sqlx::query_as::<_, Offer>(sqlx::AssertSqlSafe(sql))
        .bind(providers)
        .bind(service)
        .bind(country)
        .fetch_all(pool)
        .await?)
}

/// Adds or replaces an offer (operators and tests use it).
pub async fn upsert(pool: &PgPool, offer: &Offer, enabled: bool) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO services (service, country, provider, provider_product, provider_country,
                               price_cents, sms_timeout_secs, enabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (service, country, provider) DO UPDATE SET
             provider_product = excluded.provider_product,
             provider_country = excluded.provider_country,
             price_cents = excluded.price_cents,
             sms_timeout_secs = excluded.sms_timeout_secs,
             enabled = excluded.enabled",
    )
    .bind(&offer.service)
    .bind(&offer.country)
    .bind(&offer.provider)
    .bind(&offer.provider_product)
    .bind(&offer.provider_country)
    .bind(offer.price_cents)
    .bind(offer.sms_timeout_secs)
    .bind(enabled)
    .execute(pool)
    .await?;
    Ok(())
}
