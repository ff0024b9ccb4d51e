//! What nearly every request reads, kept in this process (moka): API keys by hash, the tier
//! plans, the catalogue and the tenants (brand and prices, and which host names are whose). PostgreSQL tells every API process what changed (triggers of
//! migration 0007 `NOTIFY namaskah_cache`), and [`listen_for_changes`] drops it at once, so a
//! revoked key or a new price is seen by every replica within milliseconds; the time-to-live
//! bounds staleness should a notification ever be missed.
//!
//! A load that raced an invalidation must not put the old value back: each cache has a
//! generation, bumped on every invalidation, and a loaded value is kept only if the
//! generation did not move while it was being read.

use moka::future::Cache;
use sqlx::{PgPool, postgres::PgListener};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use namaskah_core::{
    Shutdown,
    domain::{ApiKeyHash, TenantId, Tier},
    store::{
        StoreError,
        api_keys::{self, KeyOwner},
        services::{self, Offer},
        tenants::{self, PriceBook, Tenant},
        tiers::{self, TierPlan},
    },
};

const CHANNEL: &str = "namaskah_cache";

/// One cache and its generation.
struct Generational<K, V> {
    cache: Cache<K, V>,
    generation: AtomicU64,
    name: &'static str,
}

impl<K, V> Generational<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(name: &'static str, capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
            name,
        }
    }

    /// The cached value, or `load`'s, kept when it is `Some` and nothing changed meanwhile.
    async fn get_or_load<F>(&self, key: K, load: F) -> Result<Option<V>, StoreError>
    where
        F: Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(value) = self.cache.get(&key).await {
            metrics::counter!("namaskah_cache_requests_total", "cache" => self.name, "result" => "hit")
                .increment(1);
            return Ok(Some(value));
        }
        metrics::counter!("namaskah_cache_requests_total", "cache" => self.name, "result" => "miss")
            .increment(1);
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = load.await?;
        if let Some(value) = &loaded
            && self.generation.load(Ordering::Acquire) == generation
        {
            self.cache.insert(key, value.clone()).await;
        }
        Ok(loaded)
    }

    async fn invalidate(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key).await;
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }
}

pub struct Caches {
    keys: Generational<Vec<u8>, KeyOwner>,
    tiers: Generational<(), Arc<HashMap<Tier, TierPlan>>>,
    catalogue: Generational<(), Arc<Vec<Offer>>>,
    tenants: Generational<TenantId, Arc<TenantProfile>>,
    /// Host name → the tenant whose custom domain it is; `None` (also cached) for none.
    domains: Generational<String, Option<TenantId>>,
}

/// A tenant as requests need it: what its customers see and what they pay.
#[derive(Debug)]
pub struct TenantProfile {
    pub tenant: Tenant,
    pub prices: PriceBook,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            keys: Generational::new("api_keys", 100_000, Duration::from_secs(300)),
            tiers: Generational::new("tiers", 1, Duration::from_secs(60)),
            catalogue: Generational::new("catalogue", 1, Duration::from_secs(60)),
            tenants: Generational::new("tenants", 10_000, Duration::from_secs(60)),
            domains: Generational::new("tenant_domains", 10_000, Duration::from_secs(60)),
        }
    }
}

impl Caches {
    /// The owner of a key, revoked or not; `None` for a key nobody has.
    pub async fn key_owner(
        &self,
        pool: &PgPool,
        hash: &ApiKeyHash,
    ) -> Result<Option<KeyOwner>, StoreError> {
        self.keys
            .get_or_load(hash.0.clone(), api_keys::find_by_hash(pool, hash))
            .await
    }

    pub async fn tier_plan(&self, pool: &PgPool, tier: Tier) -> Result<TierPlan, StoreError> {
        let plans = self
            .tiers
            .get_or_load((), async {
                let plans = tiers::all(pool).await?;
                Ok(Some(Arc::new(
                    plans.into_iter().map(|plan| (plan.tier, plan)).collect(),
                )))
            })
            .await?
            .unwrap_or_default();
        // The foreign key on accounts.tier makes a missing plan impossible short of a
        // hand-edited database; refuse rather than guess limits.
        plans
            .get(&tier)
            .cloned()
            .ok_or(StoreError::Missing("the account's tier plan"))
    }

    /// Every enabled offer of `providers`; callers filter by service and country.
    pub async fn offers(
        &self,
        pool: &PgPool,
        providers: &[String],
    ) -> Result<Arc<Vec<Offer>>, StoreError> {
        Ok(self
            .catalogue
            .get_or_load((), async {
                Ok(Some(Arc::new(
                    services::enabled_offers(pool, providers, None, None).await?,
                )))
            })
            .await?
            .unwrap_or_default())
    }

    /// The tenant's brand and prices.
    pub async fn tenant(
        &self,
        pool: &PgPool,
        id: TenantId,
    ) -> Result<Arc<TenantProfile>, StoreError> {
        self.tenants
            .get_or_load(id, async {
                let Some(tenant) = tenants::find(pool, id).await? else {
                    return Ok(None);
                };
                let prices = tenants::price_book(pool, id).await?;
                Ok(Some(Arc::new(TenantProfile { tenant, prices })))
            })
            .await?
            // Accounts reference their tenant, so only a hand-edited database lacks it.
            .ok_or(StoreError::Missing("the account's tenant"))
    }

    /// The tenant a request's `Host` names by its custom domain, or the default tenant.
    pub async fn tenant_for_host(
        &self,
        pool: &PgPool,
        host: Option<&str>,
    ) -> Result<TenantId, StoreError> {
        let Some(host) = host.and_then(host_name) else {
            return Ok(TenantId::DEFAULT);
        };
        let found = self
            .domains
            .get_or_load(host.clone(), async {
                Ok(Some(
                    tenants::find_by_domain(pool, &host)
                        .await?
                        .map(|tenant| tenant.id),
                ))
            })
            .await?
            .flatten();
        Ok(found.unwrap_or(TenantId::DEFAULT))
    }

    /// Drops a key at once (this replica's revocations need not wait for the notification).
    pub async fn forget_key(&self, hash: &ApiKeyHash) {
        self.keys.invalidate(&hash.0).await;
    }

    /// Drops what a notification names.
    pub async fn apply(&self, payload: &str) {
        match payload {
            "services" => self.catalogue.clear(),
            "tiers" => self.tiers.clear(),
            "api_keys" => self.keys.clear(),
            "tenants" => {
                self.tenants.clear();
                self.domains.clear();
            }
            other => match other
                .strip_prefix("api_key:")
                .and_then(|hex| hex::decode(hex).ok())
            {
                Some(hash) => self.keys.invalidate(&hash).await,
                None => {
                    tracing::warn!(payload, "unknown cache notification; dropping everything");
                    self.clear();
                }
            },
        }
    }

    pub fn clear(&self) {
        self.keys.clear();
        self.tiers.clear();
        self.catalogue.clear();
        self.tenants.clear();
        self.domains.clear();
    }
}

/// `Host` without its port, lowercase, if it could be a tenant's custom domain at all
/// (IP addresses and single labels such as `localhost` cannot).
fn host_name(host: &str) -> Option<String> {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    tenants::is_host_name(&name).then_some(name)
}

/// Applies change notifications until shutdown. Whenever the listening connection is
/// (re)established everything is dropped, since changes made while it was down were missed.
pub async fn listen_for_changes(database_url: String, caches: Arc<Caches>, shutdown: Shutdown) {
    let mut failures = 0u32;
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&database_url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.wait() => return,
            listener = listener => match listener {
                Ok(listener) => listener,
                Err(error) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(%error, "cannot listen for cache changes; caches expire by age until it can");
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        failures = 0;
        caches.clear();
        loop {
            let notification = tokio::select! {
                _ = shutdown.wait() => return,
                notification = listener.try_recv() => notification,
            };
            match notification {
                Ok(Some(notification)) => caches.apply(notification.payload()).await,
                // The connection dropped; notifications in between are lost.
                Ok(None) => caches.clear(),
                Err(error) => {
                    tracing::warn!(%error, "lost the cache-change listener; reconnecting");
                    caches.clear();
                    break;
                }
            }
        }
    }
}
