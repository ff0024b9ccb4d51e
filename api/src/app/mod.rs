//! The customer web app: a tenant's customers sign in, top up, rent a number and watch the
//! code arrive, in pages branded by the `Host` they come to.
//!
//! It runs in the API role, on a listener of its own (`APP_ADDR`, default 127.0.0.1:8082):
//! cookies and CSRF tokens on one origin, bearer keys on the other, and each with its own
//! content security policy. Every action goes through the same code as the JSON API (the
//! handlers' `*_as` forms, with the session's account as the caller), so an order from a
//! page is charged, queued, made idempotent and refunded exactly as one from the API.
//!
//! | page | GET | POST |
//! |---|---|---|
//! | `/sign-in`, `/sign-up`, `/sign-out` | forms | session cookie; sign-up where the tenant allows it |
//! | `/forgot`, `/reset/{token}` | forms | mails a link; sets a new password |
//! | `/` | services and prices, open rentals | `/rent` |
//! | `/verifications/{id}` | number, live code, countdown, timeline | `/verifications/{id}/cancel` |
//! | `/history` | filters by status and service | |
//! | `/wallet` | balance, ledger, top-ups | `/wallet/top-up` → the provider's checkout |
//! | `/developers` | API keys, webhook endpoints and their attempts | create, rotate, revoke |
//! | `/security` | two-factor sign-in | turn it on or off |
//! | `/events` | the account's events (server-sent), for the live pages | |
//! | `/brand.css` | the tenant's colours | |

mod assets;
mod calls;
mod mail;
mod pages;
mod routes;
mod templates;
mod visit;

use handlebars::Handlebars;
use std::sync::Arc;
use tokio::net::TcpListener;
use warp::http::HeaderValue;

use namaskah_core::{Shutdown, config::AppSettings};
use namaskah_dashboard::security::{session, throttle::LoginThrottle};

use crate::AppState;

/// The web app's session cookie: `Lax`, so that a customer coming back from the payment
/// provider's checkout (a link from another site) is still signed in.
const COOKIE: session::SessionCookie = session::SessionCookie {
    name: "namaskah_app_session",
    same_site: "Lax",
};

/// What every web-app request shares besides the API's own state.
pub struct WebApp {
    api: Arc<AppState>,
    settings: AppSettings,
    templates: Handlebars<'static>,
    mailer: Option<mail::Mailer>,
    throttle: LoginThrottle,
    policy: HeaderValue,
}

/// The web app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WebAppError {
    #[error("a web app template does not compile: {0}")]
    Template(#[from] Box<handlebars::TemplateError>),
    #[error("SMTP_URL is not usable: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

impl WebApp {
    pub fn new(api: Arc<AppState>, settings: AppSettings) -> Result<Self, WebAppError> {
        let mailer = settings
            .smtp_url
            .as_ref()
            .map(|url| mail::Mailer::new(url.expose(), &settings.mail_from))
            .transpose()?;
        Ok(Self {
            api,
            templates: templates::registry().map_err(Box::new)?,
            mailer,
            throttle: LoginThrottle::default(),
            policy: HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self'; \
                 img-src 'self' data: https:; connect-src 'self'; object-src 'none'; \
                 form-action 'self' https:; base-uri 'none'; frame-ancestors 'none'",
            ),
            settings,
        })
    }
}

/// Serves the web app until shutdown.
pub async fn serve(app: Arc<WebApp>, listener: TcpListener, shutdown: Shutdown) {
    let address = listener.local_addr().ok();
    tracing::info!(?address, "web app listening");
    warp::serve(routes::routes(app))
        .incoming(listener)
        .graceful(async move { shutdown.wait().await })
        .run()
        .await;
    tracing::info!("web app stopped");
}
