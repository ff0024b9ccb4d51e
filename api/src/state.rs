//! What every request handler shares.

use sqlx::PgPool;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicBool},
    time::{Duration, Instant},
};
use uuid::Uuid;

use namaskah_core::{
    Config,
    batch::Batcher,
    config::PaymentSettings,
    payments::gateway::Gateways,
    queue::{BrokerProbe, OutboxSignal},
    store::verifications::{self, ChargedOrder, Refusal, Verification},
    webhooks::ssrf::UrlPolicy,
};

use crate::{cache::Caches, rate_limit::RateLimiter};

/// Why the API cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("REDIS_URL is not usable: {0}")]
    Redis(redis::RedisError),
    #[error("cannot build the payment providers' HTTP client: {0}")]
    PaymentGateways(#[from] reqwest::Error),
}

/// The most orders one statement charges. Orders only share a statement when they arrive
/// while the one before runs, so an idle API still charges each order at once, alone.
const ORDER_BATCH_LIMIT: usize = 64;

/// Orders charged together: each answered with its verification or the reason it was refused.
pub type OrderBatcher = Batcher<ChargedOrder, Result<Verification, Refusal>>;

/// `last_used_at` is bookkeeping; writing it once a minute per key is plenty.
const KEY_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

pub struct AppState {
    pub pool: PgPool,
    /// Charges the orders that carry no Idempotency-Key (those commit with their stored
    /// answer, in a transaction of their own).
    pub orders: OrderBatcher,
    /// Provider names in failover order; the first that sells a service sets its price.
    pub provider_order: Vec<String>,
    /// Wakes this process's outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
    pub broker: BrokerProbe,
    /// Which webhook endpoint URLs are accepted.
    pub webhook_urls: UrlPolicy,
    /// How long a rotated-out webhook secret keeps signing.
    pub webhook_rotation_overlap: Duration,
    pub caches: Arc<Caches>,
    /// Ends the open event streams when the API shuts down.
    pub streams_stop: namaskah_core::Shutdown,
    /// How long one event stream stays open before it ends (`EVENT_STREAM_MAX_AGE`).
    pub event_stream_max_age: Duration,
    pub rate_limiter: RateLimiter,
    /// Checkouts at Paystack and Stripe; only the configured ones.
    pub payment_gateways: Gateways,
    pub payment_settings: PaymentSettings,
    /// For the cache-change listener's own connection.
    pub(crate) database_url: String,
    key_touches: Mutex<HashMap<Uuid, Instant>>,
    /// Whether this state's cache-change listener runs (`warm_up` or `serve` starts it).
    pub(crate) cache_listener_started: AtomicBool,
}

impl AppState {
    /// Fails only when `REDIS_URL` cannot be a Redis address. Must be called inside the
    /// Tokio runtime (the order batcher is a task).
    pub fn new(
        pool: PgPool,
        config: &Config,
        provider_order: Vec<String>,
        outbox: OutboxSignal,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            orders: order_batcher(pool.clone()),
            pool,
            provider_order,
            outbox,
            broker: BrokerProbe::new(config.amqp_url.clone()),
            webhook_urls: UrlPolicy {
                allow_http: config.webhooks.allow_http,
                allow_private_networks: config.webhooks.allow_private_networks,
            },
            webhook_rotation_overlap: config.webhooks.rotation_overlap,
            caches: Arc::new(Caches::default()),
            streams_stop: namaskah_core::Shutdown::new(),
            event_stream_max_age: config.event_stream_max_age,
            rate_limiter: RateLimiter::new(config.redis_url.as_deref(), &config.redis_tls)
                .map_err(SetupError::Redis)?,
            payment_gateways: Gateways::from_config(&config.payments)?,
            payment_settings: config.payments.clone(),
            database_url: config.database_url.clone(),
            key_touches: Mutex::new(HashMap::new()),
            cache_listener_started: AtomicBool::new(false),
        })
    }

    /// Whether `last_used_at` of this key is due for an update (and marks it done).
    pub(crate) fn key_touch_due(&self, key_id: Uuid) -> bool {
        let Ok(mut touches) = self.key_touches.lock() else {
            return false;
        };
        let now = Instant::now();
        match touches.get(&key_id) {
            Some(last) if now.duration_since(*last) < KEY_TOUCH_INTERVAL => false,
            _ => {
                touches.insert(key_id, now);
                true
            }
        }
    }
}

fn order_batcher(pool: PgPool) -> OrderBatcher {
    Batcher::spawn("api_orders", ORDER_BATCH_LIMIT, move |orders| {
        let pool = pool.clone();
        async move { verifications::insert_charged_many(&pool, &orders).await }
    })
}
