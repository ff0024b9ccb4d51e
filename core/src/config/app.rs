//! The customer web app: where it listens, its sessions, and the mail it sends.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, Secret, env::Env};

/// The customer web app, served by the API role on a listener of its own.
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// `None` (`APP_ADDR=off`) serves no web app.
    pub addr: Option<SocketAddr>,
    /// Where the default tenant's customers reach the app (links in mail); a tenant with a
    /// custom domain is reached at `https://` that domain.
    pub public_url: String,
    /// Reverse proxies (the ingress) whose `X-Forwarded-For` is believed: behind one, the
    /// sign-in throttle must count each customer's address, not the proxy's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Mark the session cookie `Secure` (set it when served over https).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// `smtps://user:pass@host:465` (TLS), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS) or `smtp://host:25` (plain, for a relay on the same host); `None` sends no
    /// mail (password reset then says to ask support).
    pub smtp_url: Option<Secret>,
    /// The sender's address; the tenant's name is its display name.
    pub mail_from: String,
}

impl AppSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: match env.raw("APP_ADDR").as_deref().map(str::trim) {
                Some("off") => None,
                _ => Some(env.socket_addr("APP_ADDR", "127.0.0.1:8082")?),
            },
            public_url: env
                .url(
                    "APP_PUBLIC_URL",
                    "http://127.0.0.1:8082",
                    &["http", "https"],
                )?
                .trim_end_matches('/')
                .to_owned(),
            trusted_proxies: env.networks("APP_TRUSTED_PROXIES", "")?,
            secure_cookies: env.flag("APP_SECURE_COOKIES", false)?,
            session_ttl: env.duration("APP_SESSION_TTL", "24h")?,
            reset_ttl: env.duration("PASSWORD_RESET_TTL", "30m")?,
            smtp_url: match env.raw("SMTP_URL").filter(|v| !v.trim().is_empty()) {
                None => None,
                Some(url) if url.starts_with("smtp://") || url.starts_with("smtps://") => {
                    Some(Secret::new(url))
                }
                Some(_) => return Err(env.error("SMTP_URL", "an smtp:// or smtps:// URL")),
            },
            mail_from: match env.raw("MAIL_FROM") {
                None => "no-reply@namaskah.localhost".to_owned(),
                Some(address) if is_address(&address) => address.trim().to_owned(),
                Some(_) => return Err(env.error("MAIL_FROM", "an e-mail address")),
            },
        })
    }
}

fn is_address(text: &str) -> bool {
    let text = text.trim();
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !text.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | ','))
}
