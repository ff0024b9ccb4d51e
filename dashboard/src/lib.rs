//! The operator dashboard: server-rendered pages (warp + handlebars) and a WebSocket that
//! pushes the overview's numbers every few seconds.
//!
//! Every request passes the network allowlist first (`DASHBOARD_ALLOW_CIDRS`); every page
//! but the login needs a session; every form that changes something carries the session's
//! CSRF token; every such change is written to the audit log.

mod assets;
mod charts;
mod pages;
mod rabbit;
mod request;
mod router;
pub mod security;
mod snapshot;
mod templates;
mod timeline;

use handlebars::Handlebars;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::net::TcpListener;

use namaskah_core::{Config, Shutdown};

pub use router::routes;

/// What every dashboard request shares.
pub struct DashboardState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    templates: Handlebars<'static>,
    http: reqwest::Client,
    allowlist: security::client_ip::Allowlist,
    throttle: security::throttle::LoginThrottle,
}

/// The dashboard could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("a dashboard template does not compile: {0}")]
    Template(#[from] Box<handlebars::TemplateError>),
    #[error("cannot build the dashboard's HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

impl DashboardState {
    pub fn new(pool: PgPool, config: Arc<Config>) -> Result<Self, DashboardError> {
        let allowlist = security::client_ip::Allowlist {
            allow: config.dashboard.allow.clone(),
            trusted_proxies: config.dashboard.trusted_proxies.clone(),
        };
        namaskah_core::telemetry::install_crypto_provider();
        Ok(Self {
            pool,
            templates: templates::registry().map_err(Box::new)?,
            http: reqwest::Client::builder().build()?,
            allowlist,
            throttle: security::throttle::LoginThrottle::default(),
            config,
        })
    }
}

/// Serves the dashboard until shutdown.
pub async fn serve(state: Arc<DashboardState>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "dashboard listening");
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
        .await;
}
