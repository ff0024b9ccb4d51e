//! The catalogue as the ordering worker reads it: every enabled offer of the configured
//! providers, read from PostgreSQL at most once per [`CATALOGUE_TTL`] instead of once per
//! order (one statement in three of a verification's was this read, issue 23).
//!
//! What that costs: an offer an operator disables may still be bought for up to the TTL.
//! An offer added or enabled is seen at once, because a service and country with no offer
//! in the cached copy reads the catalogue again before giving up. Prices are not read here:
//! the API charged the price when it accepted the order.

use moka::future::Cache;
use sqlx::PgPool;
use std::{sync::Arc, time::Duration};

use namaskah_core::store::{
    StoreError,
    services::{self, Offer},
};

pub const CATALOGUE_TTL: Duration = Duration::from_secs(5);

pub struct Catalogue {
    pool: PgPool,
    providers: Vec<String>,
    offers: Cache<(), Arc<Vec<Offer>>>,
}

impl Catalogue {
    pub fn new(pool: PgPool, providers: Vec<String>) -> Self {
        Self {
            pool,
            providers,
            offers: Cache::builder()
                .max_capacity(1)
                .time_to_live(CATALOGUE_TTL)
                .build(),
        }
    }

    /// The enabled offers for `service` in `country`, in catalogue order.
    pub async fn offers_for(&self, service: &str, country: &str) -> Result<Vec<Offer>, StoreError> {
        if let Some(all) = self.offers.get(&()).await {
            let found = matching(&all, service, country);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let all =
            Arc::new(services::enabled_offers(&self.pool, &self.providers, None, None).await?);
        self.offers.insert((), Arc::clone(&all)).await;
        Ok(matching(&all, service, country))
    }
}

fn matching(offers: &[Offer], service: &str, country: &str) -> Vec<Offer> {
    offers
        .iter()
        .filter(|offer| offer.service == service && offer.country == country)
        .cloned()
        .collect()
}
