//! The operator dashboard: where it listens, who may reach it, where its assets come from.

use std::{net::SocketAddr, time::Duration};

use super::{ConfigError, env::Env};

/// The operator dashboard.
#[derive(Clone, Debug)]
pub struct DashboardSettings {
    pub addr: SocketAddr,
    /// Clients allowed to reach the dashboard at all.
    pub allow: Vec<ipnet::IpNet>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Mark the session cookie `Secure` (set it when served over https).
    pub secure_cookies: bool,
    pub session_ttl: Duration,
    /// RabbitMQ's management API, for rates and unacked counts when it is reachable.
    pub rabbitmq_management_url: String,
    /// The `/metrics` of every process whose counters the overview's charts add up; empty
    /// means this process's own (all roles in one process, as `namaskah up`).
    pub metrics_urls: Vec<String>,
    /// Where browsers fetch the dashboard's static assets (a CDN in front of
    /// `/static/`); `None` serves them from the dashboard itself.
    pub asset_base_url: Option<String>,
}

impl DashboardSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: env.socket_addr("DASHBOARD_ADDR", "127.0.0.1:8081")?,
            allow: env.networks("DASHBOARD_ALLOW_CIDRS", "127.0.0.0/8,::1/128")?,
            trusted_proxies: env.networks("DASHBOARD_TRUSTED_PROXIES", "")?,
            secure_cookies: env.flag("DASHBOARD_SECURE_COOKIES", false)?,
            session_ttl: env.duration("DASHBOARD_SESSION_TTL", "12h")?,
            rabbitmq_management_url: env.url(
                "RABBITMQ_MANAGEMENT_URL",
                "http://guest:guest@127.0.0.1:15672",
                &["http", "https"],
            )?,
            metrics_urls: env.url_list("DASHBOARD_METRICS_URLS", &["http", "https"])?,
            asset_base_url: env.asset_base_url("ASSET_BASE_URL")?,
        })
    }
}

impl Env<'_> {
    /// An origin and path prefix for static assets: `https://cdn.example.com` or
    /// `https://cdn.example.com/namaskah`, no query, no trailing slash kept.
    fn asset_base_url(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let Some(value) = self.raw(name).filter(|v| !v.trim().is_empty()) else {
            return Ok(None);
        };
        let value = value.trim().trim_end_matches('/');
        let valid = value.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "https" | "http")
                && !rest.is_empty()
                && !rest.contains(['?', '#', '@', '"', '\'', ' ', ';', ','])
        });
        if valid {
            Ok(Some(value.to_owned()))
        } else {
            Err(self.error(
                name,
                "an https:// origin with an optional path, like https://cdn.example.com/namaskah",
            ))
        }
    }
}
