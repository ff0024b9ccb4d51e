//! How much the workers batch, and where their batches run (the batcher itself is
//! `namaskah_core::batch`).

pub use namaskah_core::batch::Batcher;
use namaskah_core::{Config, store};
use sqlx::PgPool;

/// The largest batch worth having: the messages one worker holds at once.
pub fn limit(config: &Config) -> usize {
    usize::from(config.worker_prefetch).max(1)
}

/// The connections for a worker's `batchers` of statements that reach their rows by key:
/// one each, as a batcher runs one statement at a time, on a `store::keyed_pool` so that
/// their plans use the keys even while the tables are young.
pub fn keyed_pool(config: &Config, batchers: u32) -> Result<PgPool, store::StoreError> {
    store::keyed_pool(&config.database_url, batchers)
}
