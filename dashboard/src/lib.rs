//! The operator dashboard: server-rendered pages (warp + handlebars) and a WebSocket that
//! pushes the overview's numbers and charts every few seconds.
//!
//! Every request passes the network allowlist first (`DASHBOARD_ALLOW_CIDRS`); every page
//! but the login needs a session; every form that changes something carries the session's
//! CSRF token; every such change is written to the audit log.

mod assets;
mod charts;
mod live;
mod pages;
mod rabbit;
pub mod request;
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
    live: live::Live,
    /// The content security policy, which names the asset origin when there is one.
    policy: warp::http::HeaderValue,
}

/// The dashboard could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("a dashboard template does not compile: {0}")]
    Template(#[from] Box<handlebars::TemplateError>),
    #[error("cannot build the dashboard's HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("ASSET_BASE_URL cannot go in a content security policy")]
    AssetOrigin,
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
            templates: templates::registry(config.dashboard.asset_base_url.as_deref())
                .map_err(Box::new)?,
            policy: security::headers::content_security_policy(
                config.dashboard.asset_base_url.as_deref(),
            )
            .ok_or(DashboardError::AssetOrigin)?,
            live: live::Live::default(),
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
    live::seed(&state).await;
    tokio::spawn(live::run(Arc::clone(&state), shutdown.clone()));
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
        .await;
}
