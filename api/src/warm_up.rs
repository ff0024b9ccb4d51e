//! What the API does before it takes its first request, so that the first requests are
//! answered as fast as the later ones: a cold process made every request of its first fifth
//! of a second wait for the same cache loads, new connections and first statements
//! (docs/benchmarks.md, "The API warmed before it listens").

use std::{sync::Arc, time::Duration, time::Instant};

use futures_util::future::try_join_all;
use sqlx::PgPool;

use namaskah_core::{
    Shutdown,
    store::{StoreError, verifications},
};

use crate::{AppState, cache};

/// The longest the warm-up may hold the API's start. What it has not done by then, the
/// first requests do, as they would without it.
const WARM_UP_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
enum WarmUpError {
    #[error("the cache-change listener stopped before it listened")]
    NotListening,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Readies `state` for traffic, best effort:
/// - starts listening for cache changes and waits until it listens, since connecting
///   empties the caches (before, a listener that connected after the first requests threw
///   their loads away);
/// - fills the caches ([`cache::Caches::warm_up`]);
/// - opens up to `connections` database connections, each with the order statement
///   prepared ([`verifications::prepare_for_orders`]).
///
/// Never fails the start: a failure or a database slower than [`WARM_UP_LIMIT`] leaves the
/// rest to the first requests, with a warning.
pub async fn warm_up(state: &Arc<AppState>, shutdown: &Shutdown, connections: u32) {
    let Some(listening) = spawn_cache_listener(state, shutdown) else {
        return;
    };
    let started = Instant::now();
    let warming = async {
        listening.await.map_err(|_| WarmUpError::NotListening)?;
        let keys = state
            .caches
            .warm_up(&state.pool, &state.provider_order)
            .await?;
        let prepared = prepare_connections(&state.pool, connections).await?;
        Ok::<_, WarmUpError>((keys, prepared))
    };
    match tokio::time::timeout(WARM_UP_LIMIT, warming).await {
        Ok(Ok((keys, prepared))) => tracing::info!(
            keys,
            connections = prepared,
            elapsed_ms = started.elapsed().as_millis(),
            "API warmed up"
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "API warm-up stopped; the first requests load what it did not")
        }
        Err(_) => tracing::warn!(
            limit_secs = WARM_UP_LIMIT.as_secs(),
            "API warm-up took too long; the first requests load what it did not"
        ),
    }
}

/// Starts the cache-change listener unless it runs already; the receiver hears once it
/// listens.
pub(crate) fn spawn_cache_listener(
    state: &Arc<AppState>,
    shutdown: &Shutdown,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    if state
        .cache_listener_started
        .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return None;
    }
    let (listening, heard) = tokio::sync::oneshot::channel();
    tokio::spawn(cache::listen_for_changes(
        state.database_url.clone(),
        Arc::clone(&state.caches),
        shutdown.clone(),
        listening,
    ));
    Some(heard)
}

/// Opens up to `wanted` connections at once (held together, so that the pool opens that
/// many instead of handing out one idle connection again) and readies each for orders.
async fn prepare_connections(pool: &PgPool, wanted: u32) -> Result<usize, StoreError> {
    let wanted = wanted.min(pool.options().get_max_connections());
    let prepared = try_join_all((0..wanted).map(|_| async {
        let mut conn = pool.acquire().await?;
        verifications::prepare_for_orders(&mut conn).await?;
        Ok::<_, StoreError>(conn)
    }))
    .await?;
    Ok(prepared.len())
}
