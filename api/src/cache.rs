//! What nearly every request reads, kept in this process (moka): API keys by hash, the tier
//! plans, the catalogue and the tenants (brand and prices, and which host names are whose). PostgreSQL tells every API process what changed (triggers of
//! migration 0007 `NOTIFY namaskah_cache`), and [`listen_for_changes`] drops it at once, so a
//! revoked key or a new price is seen by every replica within milliseconds; the time-to-live
//! bounds staleness should a notification ever be missed.
//!
//! A load that raced an invalidation must not put the old value back: each cache has a
//! generation, bumped on every invalidation, and a loaded value is kept only if the
//! generation did not move while it was being read.

use futures_util::{StreamExt, TryStreamExt, stream};
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

/// The most keys [`Caches::warm_up`] loads, and how recently they must have been used (or
/// created): enough for the integrators who were busy before a restart, few enough to load
/// in milliseconds.
const WARM_KEYS: i64 = 1_000;
const WARM_KEYS_USED_WITHIN: Duration = Duration::from_secs(24 * 60 * 60);
/// How many tenants [`Caches::warm_up`] loads at once (each load is two short reads).
const WARM_TENANTS_AT_ONCE: usize = 8;

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
    /// Requests that miss the same key at the same moment (a cold start, an expiry under
    /// load) share one load instead of each sending its own query.
    async fn get_or_load<F, Fut>(&self, key: K, load: F) -> Result<Option<V>, StoreError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(value) = self.cache.get(&key).await {
            metrics::counter!("namaskah_cache_requests_total", "cache" => self.name, "result" => "hit")
                .increment(1);
            return Ok(Some(value));
        }
        metrics::counter!("namaskah_cache_requests_total", "cache" => self.name, "result" => "miss")
            .increment(1);
        // Only an `Ok` is kept: whatever must not be cached leaves as a `NotKept`.
        let shared = self.cache.try_get_with(key, async {
            let generation = self.generation.load(Ordering::Acquire);
            match load().await {
                Ok(Some(value)) if self.generation.load(Ordering::Acquire) == generation => {
                    Ok(value)
                }
                Ok(Some(value)) => Err(NotKept::Raced(value)),
                Ok(None) => Err(NotKept::Absent),
                Err(error) => Err(NotKept::Failed(error)),
            }
        });
        let not_kept = match shared.await {
            Ok(value) => return Ok(Some(value)),
            Err(not_kept) => not_kept,
        };
        match &*not_kept {
            NotKept::Raced(value) => Ok(Some(value.clone())),
            NotKept::Absent => Ok(None),
            NotKept::Failed(_) => match Arc::try_unwrap(not_kept) {
                Ok(NotKept::Failed(error)) => Err(error),
                // A failed load shared with others: ask again, for an error of our own to
                // answer with (the database is failing anyway, one more query costs
                // little).
                _ => load().await,
            },
        }
    }

    /// Where the invalidations stand, to pass to [`Self::put_unless_invalidated`] after a read.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `value`, read when the generation was `read_at`, unless an invalidation came in
    /// since (a value read across one may be stale).
    async fn put_unless_invalidated(&self, read_at: u64, key: K, value: V) -> bool {
        if self.generation() != read_at {
            return false;
        }
        self.cache.insert(key, value).await;
        true
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

/// A load's outcome that the cache must not keep.
enum NotKept<V> {
    /// The value was read while an invalidation came in: the caller may use it, the next
    /// caller must read again.
    Raced(V),
    /// Nothing has that key (an unknown API key, say): not cached, so that a key created a
    /// moment later is found.
    Absent,
    Failed(StoreError),
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
            .get_or_load(hash.0.clone(), || api_keys::find_by_hash(pool, hash))
            .await
    }

    pub async fn tier_plan(&self, pool: &PgPool, tier: Tier) -> Result<TierPlan, StoreError> {
        let plans = self.tier_plans(pool).await?;
        // The foreign key on accounts.tier makes a missing plan impossible short of a
        // hand-edited database; refuse rather than guess limits.
        plans
            .get(&tier)
            .cloned()
            .ok_or(StoreError::Missing("the account's tier plan"))
    }

    async fn tier_plans(&self, pool: &PgPool) -> Result<Arc<HashMap<Tier, TierPlan>>, StoreError> {
        Ok(self
            .tiers
            .get_or_load((), || async {
                let plans = tiers::all(pool).await?;
                Ok(Some(Arc::new(
                    plans.into_iter().map(|plan| (plan.tier, plan)).collect(),
                )))
            })
            .await?
            .unwrap_or_default())
    }

    /// Every enabled offer of `providers`; callers filter by service and country.
    pub async fn offers(
        &self,
        pool: &PgPool,
        providers: &[String],
    ) -> Result<Arc<Vec<Offer>>, StoreError> {
        Ok(self
            .catalogue
            .get_or_load((), || async {
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
            .get_or_load(id, || async move {
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
            .get_or_load(host.clone(), || async {
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

    /// Loads what the first requests after a start read: the tier plans, the catalogue, the
    /// default tenant, and the live keys used or created in the last day (the newest
    /// [`WARM_KEYS`]) with their tenants. Without it, the first requests each wait for the
    /// reads the cache would have saved, and a few hundred of them come in while those
    /// reads share the cores with everything else that is starting. Returns how many keys
    /// it loaded.
    pub async fn warm_up(&self, pool: &PgPool, providers: &[String]) -> Result<usize, StoreError> {
        // Read before the keys are: a key invalidated while they load is then not kept.
        let read_at = self.keys.generation();
        let (_, _, keys) = tokio::try_join!(
            self.tier_plans(pool),
            self.offers(pool, providers),
            api_keys::recently_active(pool, WARM_KEYS_USED_WITHIN, WARM_KEYS),
        )?;
        let tenants: std::collections::BTreeSet<TenantId> = keys
            .iter()
            .map(|key| key.owner.tenant_id)
            .chain([TenantId::DEFAULT])
            .collect();
        // Side by side, a few at a time: a white-label operator may have many tenants, and
        // one after another their loads could use up the warm-up's time limit.
        stream::iter(tenants)
            .map(|tenant| self.tenant(pool, tenant))
            .buffer_unordered(WARM_TENANTS_AT_ONCE)
            .try_collect::<Vec<_>>()
            .await?;
        let mut loaded = 0;
        for key in keys {
            if self
                .keys
                .put_unless_invalidated(read_at, key.key_hash, key.owner)
                .await
            {
                loaded += 1;
            }
        }
        Ok(loaded)
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
/// `listening` is told once the first connection listens (and the caches, emptied by it,
/// can be filled).
pub async fn listen_for_changes(
    database_url: String,
    caches: Arc<Caches>,
    shutdown: Shutdown,
    listening: tokio::sync::oneshot::Sender<()>,
) {
    let mut listening = Some(listening);
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
        if let Some(listening) = listening.take() {
            // Nobody waiting any more is fine: the API started without a warm cache.
            let _ = listening.send(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn cache() -> Generational<u32, u32> {
        Generational::new("test", 10, Duration::from_secs(60))
    }

    /// A load that counts its runs and takes long enough for the others to arrive meanwhile.
    async fn slow_load(runs: &AtomicUsize, value: Option<u32>) -> Result<Option<u32>, StoreError> {
        runs.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(value)
    }

    #[tokio::test]
    async fn a_value_read_before_an_invalidation_is_not_kept() {
        let cache = cache();
        let read_at = cache.generation();
        cache.invalidate(&7).await;
        assert!(!cache.put_unless_invalidated(read_at, 7, 42).await);
        assert_eq!(cache.cache.get(&7).await, None);

        let read_at = cache.generation();
        assert!(cache.put_unless_invalidated(read_at, 7, 43).await);
        assert_eq!(cache.cache.get(&7).await, Some(43));
    }

    #[tokio::test]
    async fn misses_of_one_key_at_one_moment_share_one_load() {
        let cache = cache();
        let runs = AtomicUsize::new(0);
        let answers = futures_util::future::join_all(
            (0..16).map(|_| cache.get_or_load(7, || slow_load(&runs, Some(42)))),
        )
        .await;
        assert!(answers.iter().all(|answer| matches!(answer, Ok(Some(42)))));
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "one load for sixteen misses"
        );
        cache
            .get_or_load(7, || slow_load(&runs, Some(0)))
            .await
            .ok();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "and then a hit");
    }

    #[tokio::test]
    async fn nothing_found_is_answered_but_not_kept() {
        let cache = cache();
        let runs = AtomicUsize::new(0);
        let answer = cache.get_or_load(7, || slow_load(&runs, None)).await;
        assert!(matches!(answer, Ok(None)));
        let answer = cache.get_or_load(7, || slow_load(&runs, Some(3))).await;
        assert!(matches!(answer, Ok(Some(3))), "created since: found");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_value_read_across_an_invalidation_is_answered_but_not_kept() {
        let cache = cache();
        let runs = AtomicUsize::new(0);
        let (answer, ()) =
            tokio::join!(cache.get_or_load(7, || slow_load(&runs, Some(1))), async {
                tokio::time::sleep(Duration::from_millis(10)).await;
                cache.invalidate(&7).await;
            });
        assert!(
            matches!(answer, Ok(Some(1))),
            "the caller gets what it read"
        );
        let answer = cache.get_or_load(7, || slow_load(&runs, Some(2))).await;
        assert!(matches!(answer, Ok(Some(2))), "the next one reads again");
    }

    #[tokio::test]
    async fn a_failed_load_is_an_error_for_every_caller_and_is_not_kept() {
        let cache = cache();
        let runs = AtomicUsize::new(0);
        let failing = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err::<Option<u32>, _>(StoreError::Missing("a test row"))
        };
        let answers =
            futures_util::future::join_all((0..4).map(|_| cache.get_or_load(7, failing))).await;
        assert!(
            answers
                .iter()
                .all(|answer| matches!(answer, Err(StoreError::Missing("a test row"))))
        );
        let answer = cache.get_or_load(7, || slow_load(&runs, Some(5))).await;
        assert!(
            matches!(answer, Ok(Some(5))),
            "the database is back: read again"
        );
    }
}
