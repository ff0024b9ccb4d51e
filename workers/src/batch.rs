//! How much the workers batch (the batcher itself is `namaskah_core::batch`).

use namaskah_core::Config;
pub use namaskah_core::batch::Batcher;

/// The largest batch worth having: the messages one worker holds at once.
pub fn limit(config: &Config) -> usize {
    usize::from(config.worker_prefetch).max(1)
}
