//! The job submission API (warp): `/v1/…`, health and readiness.
//!
//! [`serve`] runs the API on a listener until shutdown; [`routes`] builds the filter tree, so
//! tests can start the real application on port 0.

mod auth;
mod body;
mod error;
mod health;
mod idempotency;
mod respond;
mod routes;
mod state;
mod v1;

pub use error::ApiError;
pub use routes::routes;
pub use state::AppState;

use std::{net::SocketAddr, sync::Arc};
use tokio::net::TcpListener;

use namaskah_core::Shutdown;

/// Serves the API on `listener` until `shutdown` is triggered, then lets in-flight requests
/// finish.
pub async fn serve(state: Arc<AppState>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "API listening");
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
