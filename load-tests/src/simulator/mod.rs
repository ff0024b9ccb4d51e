//! A provider simulator that speaks 5SIM's wire format, so the real 5SIM client runs against
//! it unchanged, plus a control API for tests and demos.
//!
//! 5SIM side (bearer auth): `GET /v1/user/buy/activation/{country}/{operator}/{product}`,
//! `GET /v1/user/check/{id}`, `GET /v1/user/cancel/{id}`, `GET /v1/user/finish/{id}`.
//!
//! Control side (no auth; bind it to a private address):
//! - `GET /_sim/config`, `POST /_sim/config` with any subset of `{"latency_ms",
//!   "sms_delay_ms", "no_sms_ratio", "out_of_stock_ratio", "error_ratio"}`;
//! - `POST /_sim/orders/{id}/sms` `{"text": "..."}` delivers an SMS to an order;
//! - `GET /_sim/orders/{id}` shows an order; `GET /_sim/stats` counts calls.

mod behaviour;
mod checkout;
mod orders;
mod routes;

pub use behaviour::Behaviour;
pub use orders::{OrderStatus, SimOrder};
pub use routes::routes;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};
use tokio::net::TcpListener;

use namaskah_core::Shutdown;

/// The simulator's state: behaviour, orders and call counters.
pub struct Simulator {
    api_key: String,
    behaviour: Mutex<Behaviour>,
    orders: orders::Orders,
    stats: Stats,
}

/// Calls by kind, for tests that count purchases.
#[derive(Default)]
pub struct Stats {
    pub buys: AtomicU64,
    pub checks: AtomicU64,
    pub cancels: AtomicU64,
    pub finishes: AtomicU64,
    /// 5SIM requests being answered right now.
    pub in_flight: AtomicU64,
    /// 5SIM requests received, answered or not.
    pub requests: AtomicU64,
}

impl Simulator {
    pub fn new(api_key: impl Into<String>, behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            api_key: api_key.into(),
            behaviour: Mutex::new(behaviour),
            orders: orders::Orders::default(),
            stats: Stats::default(),
        })
    }

    pub fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        if let Ok(mut current) = self.behaviour.lock() {
            *current = behaviour;
        }
    }

    /// Successful purchases so far.
    pub fn purchases(&self) -> u64 {
        self.stats.buys.load(Ordering::Relaxed)
    }

    /// 5SIM requests received so far, whatever became of them.
    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// 5SIM requests being answered right now (tests use it to act mid-request).
    pub fn in_flight(&self) -> u64 {
        self.stats.in_flight.load(Ordering::Relaxed)
    }

    pub fn order(&self, id: i64) -> Option<SimOrder> {
        self.orders.get(id)
    }

    /// Delivers an SMS to an order, as if the service had sent it. `false` if the order is
    /// unknown or can no longer receive one.
    pub fn deliver_sms(&self, id: i64, text: &str) -> bool {
        self.orders.deliver_sms(id, text)
    }
}

/// Serves the simulator until shutdown.
pub async fn serve(simulator: Arc<Simulator>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "provider simulator listening");
    warp::serve(routes(simulator))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
        .await;
}
