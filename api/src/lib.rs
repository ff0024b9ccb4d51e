//! The job submission API (warp): `/v1/…`, health and readiness; and the customer web app
//! ([`app`]), on a listener of its own.
//!
//! [`serve`] runs the API on a listener until shutdown; [`routes`] builds the filter tree, so
//! tests can start the real application on port 0.

pub mod app;
mod auth;
mod body;
mod cache;
mod charge;
mod error;
mod health;
mod idempotency;
mod openapi;
pub mod rate_limit;
mod request_metrics;
mod respond;
mod routes;
mod state;
mod v1;
mod v2;
mod warm_up;

pub use error::ApiError;
pub use routes::routes;
pub use state::{AppState, SetupError as ApiSetupError};
pub use warm_up::warm_up;

use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

use namaskah_core::Shutdown;

/// Serves the API on `listener` until `shutdown` is triggered, then lets in-flight requests
/// finish.
pub async fn serve(state: Arc<AppState>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "API listening");
    // Started by `warm_up` when the caller warmed the API first.
    let _ = warm_up::spawn_cache_listener(&state, &shutdown);
    tokio::spawn(forget_idle_rate_limits(
        Arc::clone(&state),
        shutdown.clone(),
    ));
    // Event streams never end by themselves; they must end for the graceful shutdown to.
    let streams_stop = state.streams_stop.clone();
    let stopping = shutdown.clone();
    tokio::spawn(async move {
        stopping.wait().await;
        streams_stop.trigger();
    });
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
        .await;
    tracing::info!("API stopped");
}

/// Binds the API's address, with the error saying which address could not be bound.
pub async fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|error| {
        std::io::Error::new(error.kind(), format!("cannot listen on {address}: {error}"))
    })
}

async fn forget_idle_rate_limits(state: Arc<AppState>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
                state.rate_limiter.forget_idle_keys();
            }
        }
    }
}
