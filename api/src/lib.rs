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

pub use error::ApiError;
pub use routes::routes;
pub use state::{AppState, SetupError as ApiSetupError};

use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

use namaskah_core::Shutdown;

/// Serves the API on `listener` until `shutdown` is triggered, then lets in-flight requests
/// finish.
pub async fn serve(state: Arc<AppState>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "API listening");
    tokio::spawn(cache::listen_for_changes(
        state.database_url.clone(),
        Arc::clone(&state.caches),
        shutdown.clone(),
    ));
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
