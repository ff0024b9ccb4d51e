//! The SMS providers: which, in what order, and how each call to them is bounded.

use std::{net::SocketAddr, num::NonZeroU32};

use super::{ConfigError, Secret, env::Env, parse_duration};
use crate::providers::{breaker::BreakerSettings, guarded::GuardSettings};

#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// The name used in `PROVIDERS` and in the catalogue's `provider` column.
    pub name: String,
    pub protocol: ProviderProtocol,
    pub base_url: String,
    pub api_key: Secret,
    /// TextVerified's API username (the account e-mail); unused by 5SIM.
    pub username: Option<String>,
}

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderProtocol {
    /// 5SIM's REST API; the simulator speaks it too.
    FiveSim,
    /// TextVerified's API v2.
    TextVerified,
}

/// The key the simulator accepts unless `SIMULATOR_API_KEY` says otherwise.
pub const DEFAULT_SIMULATOR_KEY: &str = "simulator-key";

/// How long provider calls may take, how they are guarded and how fast they may start.
pub(super) struct ProviderLimits {
    pub timeout: std::time::Duration,
    pub timeouts: Vec<(String, std::time::Duration)>,
    pub connect_timeout: std::time::Duration,
    pub guard: GuardSettings,
    pub rate_limits: Vec<(String, NonZeroU32)>,
}

impl ProviderLimits {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            timeout: env.duration("PROVIDER_TIMEOUT", "10s")?,
            timeouts: env.pairs(
                "PROVIDER_TIMEOUTS",
                "provider=duration pairs, like 5sim=5s,textverified=15s",
                |value| parse_duration(value).filter(|timeout| !timeout.is_zero()),
            )?,
            connect_timeout: env.duration("PROVIDER_CONNECT_TIMEOUT", "3s")?,
            guard: GuardSettings {
                breaker: BreakerSettings {
                    failures: env.number("PROVIDER_BREAKER_FAILURES", 5, 1..=1000)?,
                    cool_down: env.duration("PROVIDER_BREAKER_COOL_DOWN", "15s")?,
                },
                max_in_flight: env.number("PROVIDER_MAX_IN_FLIGHT", 16, 1..=10_000)?,
                slot_wait: env.duration("PROVIDER_TIMEOUT", "10s")?,
            },
            rate_limits: env.rate_limits("PROVIDER_RATE_LIMITS")?,
        })
    }
}

impl Env<'_> {
    /// `name=calls_per_second,…` (empty when unset).
    fn rate_limits(
        &self,
        name: &'static str,
    ) -> Result<Vec<(String, std::num::NonZeroU32)>, ConfigError> {
        self.pairs(
            name,
            "provider=calls_per_second pairs, like 5sim=50,textverified=10",
            |value| value.parse().ok(),
        )
    }

    pub(super) fn providers(
        &self,
        simulator_addr: SocketAddr,
    ) -> Result<Vec<ProviderSettings>, ConfigError> {
        let list = self
            .raw("PROVIDERS")
            .unwrap_or_else(|| "simulator".to_owned());
        let mut providers: Vec<ProviderSettings> = Vec::new();
        for name in list.split(',').map(str::trim) {
            if providers.iter().any(|p| p.name == name) {
                return Err(self.error(
                    "PROVIDERS",
                    format!("each provider once, got {name:?} twice"),
                ));
            }
            let provider = match name {
                "simulator" => ProviderSettings {
                    name: name.to_owned(),
                    protocol: ProviderProtocol::FiveSim,
                    base_url: self
                        .raw("SIMULATOR_BASE_URL")
                        .unwrap_or_else(|| format!("http://{simulator_addr}/v1")),
                    api_key: Secret::new(
                        self.raw("SIMULATOR_API_KEY")
                            .unwrap_or_else(|| DEFAULT_SIMULATOR_KEY.to_owned()),
                    ),
                    username: None,
                },
                "5sim" => ProviderSettings {
                    name: name.to_owned(),
                    protocol: ProviderProtocol::FiveSim,
                    base_url: self
                        .raw("FIVESIM_BASE_URL")
                        .unwrap_or_else(|| "https://5sim.net/v1".to_owned()),
                    api_key: Secret::new(self.required_secret("FIVESIM_API_KEY", "5sim")?),
                    username: None,
                },
                "textverified" => ProviderSettings {
                    name: name.to_owned(),
                    protocol: ProviderProtocol::TextVerified,
                    base_url: self
                        .raw("TEXTVERIFIED_BASE_URL")
                        .unwrap_or_else(|| "https://www.textverified.com".to_owned()),
                    api_key: Secret::new(
                        self.required_secret("TEXTVERIFIED_API_KEY", "textverified")?,
                    ),
                    username: Some(
                        self.required_secret("TEXTVERIFIED_API_USERNAME", "textverified")?,
                    ),
                },
                _ => {
                    return Err(self.error(
                        "PROVIDERS",
                        format!(
                            "a comma-separated list of simulator, 5sim, textverified, got {name:?}"
                        ),
                    ));
                }
            };
            providers.push(provider);
        }
        for provider in &providers {
            if !provider.base_url.starts_with("http://")
                && !provider.base_url.starts_with("https://")
            {
                let variable = match provider.name.as_str() {
                    "simulator" => "SIMULATOR_BASE_URL",
                    "5sim" => "FIVESIM_BASE_URL",
                    _ => "TEXTVERIFIED_BASE_URL",
                };
                return Err(self.error(variable, "an http:// or https:// URL"));
            }
        }
        Ok(providers)
    }

    fn required_secret(&self, name: &'static str, provider: &str) -> Result<String, ConfigError> {
        self.raw(name)
            .ok_or_else(|| self.error(name, format!("a value, since PROVIDERS lists {provider}")))
    }
}
