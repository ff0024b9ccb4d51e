//! What every request handler shares.

use sqlx::PgPool;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};
use uuid::Uuid;

use namaskah_core::queue::{BrokerProbe, OutboxSignal};

/// `last_used_at` is bookkeeping; writing it once a minute per key is plenty.
const KEY_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

pub struct AppState {
    pub pool: PgPool,
    /// Provider names in failover order; the first that sells a service sets its price.
    pub provider_order: Vec<String>,
    /// Wakes this process's outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
    pub broker: BrokerProbe,
    key_touches: Mutex<HashMap<Uuid, Instant>>,
}

impl AppState {
    pub fn new(
        pool: PgPool,
        provider_order: Vec<String>,
        outbox: OutboxSignal,
        broker: BrokerProbe,
    ) -> Self {
        Self {
            pool,
            provider_order,
            outbox,
            broker,
            key_touches: Mutex::new(HashMap::new()),
        }
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
