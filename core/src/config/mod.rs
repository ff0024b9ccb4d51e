//! All configuration, read from environment variables with local defaults: one file per
//! section (database, queues, providers, webhooks, payments, dashboard, scheduler), read
//! together by [`Config::from_env`].
//!
//! Every variable is documented in the README's configuration table (a test keeps the two
//! in step). A bad value stops the process with one line naming the variable and what it
//! expects (exit code 2, see `main`).

pub mod amqp;
mod app;
mod dashboard;
mod database;
mod env;
mod payments;
mod providers;
mod queues;
mod scheduler;
#[cfg(test)]
mod tests;
pub mod tls;
mod webhooks;

use std::{collections::HashMap, fmt, net::SocketAddr, time::Duration};

pub use app::AppSettings;
pub use dashboard::DashboardSettings;
pub use database::{PoolRoles, PoolSettings};
pub use env::parse_duration;
pub use payments::PaymentSettings;
pub use providers::{DEFAULT_SIMULATOR_KEY, ProviderProtocol, ProviderSettings};
pub use queues::{HoldPolicy, RetryPolicies, RetryPolicy};
pub use scheduler::{CrmSettings, DEFAULT_SCHEDULES, SchedulerSettings};
pub use webhooks::WebhookSettings;

use env::Env;

/// The whole configuration of a Namaskah process.
#[derive(Clone, Debug)]
pub struct Config {
    /// PostgreSQL; the database is created if it does not exist.
    pub database_url: String,
    /// How many connections each role may hold in this process's pool.
    pub database_pools: PoolSettings,
    /// RabbitMQ.
    pub amqp_url: String,
    /// Prepended to every exchange and queue name, so several installations (or tests) can
    /// share one broker.
    pub queue_prefix: String,
    pub api_addr: SocketAddr,
    /// How long one `GET /v2/events` stream stays open; the client then reconnects with
    /// `Last-Event-ID` and misses nothing. Bounded so that load balancers' idle limits and
    /// rolling deploys meet streams that end on their own.
    pub event_stream_max_age: Duration,
    pub simulator_addr: SocketAddr,
    /// Providers in failover order: the first with stock sells the number.
    pub providers: Vec<ProviderSettings>,
    /// Upper bound for one HTTP request to a provider (`PROVIDER_TIMEOUT`), unless
    /// `PROVIDER_TIMEOUTS` names the provider.
    pub provider_timeout: Duration,
    /// Per provider response timeouts (`PROVIDER_TIMEOUTS`).
    pub provider_timeouts: Vec<(String, Duration)>,
    /// Upper bound for opening a connection to a provider (`PROVIDER_CONNECT_TIMEOUT`).
    pub provider_connect_timeout: Duration,
    /// Each provider's circuit breaker and cap on calls in flight.
    pub provider_guard: crate::providers::guarded::GuardSettings,
    /// Calls per second a process may start, per provider named in `PROVIDER_RATE_LIMITS`.
    pub provider_rate_limits: Vec<(String, std::num::NonZeroU32)>,
    /// Messages one worker handles at a time (per queue).
    pub worker_prefetch: u16,
    /// Short waits (`Handled::Again` within `up_to`) the polling worker sits out itself, the
    /// message unacknowledged, instead of sending it round through a delay tier.
    pub worker_hold: HoldPolicy,
    /// Quorum queues drop a message to its parking queue after this many deliveries, a
    /// safety net under the retry policy for messages that crash their worker.
    pub queue_delivery_limit: u32,
    /// How often the outbox relay looks for rows written by other processes.
    pub outbox_poll_interval: Duration,
    /// Rows the relay publishes per batch before awaiting the broker's confirms.
    pub outbox_batch_size: i64,
    pub retry: RetryPolicies,
    /// The delays between SMS polls; the last one repeats until the deadline.
    pub poll_cadence: Vec<Duration>,
    /// Extra time past a verification's deadline before it counts as overdue.
    pub deadline_grace: Duration,
    /// How long an ordering attempt may hold a verification before another delivery may
    /// take over (its worker is presumed dead). Longer than all provider calls of one attempt.
    pub ordering_lease: Duration,
    /// How long a starting role waits for PostgreSQL and RabbitMQ before giving up, so that
    /// a role started during an outage comes up when it ends instead of crash-looping.
    pub startup_wait: Duration,
    pub log_format: LogFormat,
    pub webhooks: WebhookSettings,
    pub scheduler: SchedulerSettings,
    pub dashboard: DashboardSettings,
    /// The customer web app.
    pub app: AppSettings,
    /// Errors and panics also go to Sentry when set.
    pub sentry_dsn: Option<Secret>,
    /// Where workers and the scheduler serve `/metrics` (the API and dashboard serve it on
    /// their own port); `None` when switched off.
    pub metrics_addr: Option<SocketAddr>,
    /// Where spans go over OTLP/HTTP (the `otlp` cargo feature); `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Redis shared by the API replicas for rate limits; `None` limits in each process.
    pub redis_url: Option<String>,
    /// The CA and client certificate of a `rediss://` connection.
    pub redis_tls: tls::RedisTls,
    pub payments: PaymentSettings,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A secret value: printed as `***` by `Debug` so it never reaches a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A variable whose value cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}: expected {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub expected: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads from a map; tests use it to build configurations without touching the
    /// process environment.
    pub fn from_map(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| values.get(name).cloned())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let simulator_addr = env.socket_addr("SIMULATOR_ADDR", "127.0.0.1:8090")?;
        let provider_limits = providers::ProviderLimits::read(&env)?;
        Ok(Self {
            database_url: tls::check_database_url(env.url(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/namaskah",
                &["postgres", "postgresql"],
            )?)
            .map_err(|reason| env.error("DATABASE_URL", reason))?,
            database_pools: PoolSettings::read(&env)?,
            amqp_url: {
                let url = env.url(
                    "AMQP_URL",
                    "amqp://guest:guest@127.0.0.1:5672/%2f",
                    &["amqp", "amqps"],
                )?;
                amqp::check(&url).map_err(|reason| env.error("AMQP_URL", reason))?;
                url
            },
            queue_prefix: env.queue_prefix("QUEUE_PREFIX")?,
            api_addr: env.socket_addr("API_ADDR", "127.0.0.1:8080")?,
            event_stream_max_age: env.duration("EVENT_STREAM_MAX_AGE", "1h")?,
            simulator_addr,
            providers: env.providers(simulator_addr)?,
            provider_timeout: provider_limits.timeout,
            provider_timeouts: provider_limits.timeouts,
            provider_connect_timeout: provider_limits.connect_timeout,
            provider_guard: provider_limits.guard,
            provider_rate_limits: provider_limits.rate_limits,
            worker_prefetch: env.number("WORKER_PREFETCH", 32, 1..=10_000)?,
            worker_hold: HoldPolicy::read(&env)?,
            queue_delivery_limit: env.number("QUEUE_DELIVERY_LIMIT", 20, 2..=1000)?,
            outbox_poll_interval: env.duration("OUTBOX_POLL_INTERVAL", "200ms")?,
            outbox_batch_size: env.number("OUTBOX_BATCH_SIZE", 256, 1..=10_000)?,
            retry: RetryPolicies::read(&env)?,
            poll_cadence: env.duration_list("POLL_CADENCE", "2s,3s,5s,10s")?,
            deadline_grace: env.duration("DEADLINE_GRACE", "30s")?,
            ordering_lease: env.duration("ORDERING_LEASE", "60s")?,
            startup_wait: env.duration("STARTUP_WAIT", "60s")?,
            webhooks: WebhookSettings::read(&env)?,
            scheduler: SchedulerSettings::read(&env)?,
            dashboard: DashboardSettings::read(&env)?,
            app: AppSettings::read(&env)?,
            sentry_dsn: env.raw("SENTRY_DSN").map(Secret::new),
            otlp_endpoint: env.raw("OTEL_EXPORTER_OTLP_ENDPOINT"),
            payments: PaymentSettings::read(&env)?,
            redis_url: match env.raw("REDIS_URL") {
                Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                    Some(url)
                }
                Some(_) => return Err(env.error("REDIS_URL", "a redis:// or rediss:// URL")),
                None => None,
            },
            redis_tls: {
                let files = (
                    env.raw("REDIS_CA_FILE"),
                    env.raw("REDIS_CLIENT_CERT"),
                    env.raw("REDIS_CLIENT_KEY"),
                );
                let wants_tls = files.0.is_some() || files.1.is_some() || files.2.is_some();
                if wants_tls
                    && !env
                        .raw("REDIS_URL")
                        .is_some_and(|url| url.starts_with("rediss://"))
                {
                    return Err(
                        env.error("REDIS_CA_FILE", "to be set only with a rediss:// REDIS_URL")
                    );
                }
                tls::RedisTls::read(files.0, files.1, files.2).map_err(|(variable, reason)| {
                    env.error(variable, format!("a readable PEM file: {reason}"))
                })?
            },
            metrics_addr: match env.raw("METRICS_ADDR").as_deref().map(str::trim) {
                Some("off") => None,
                _ => Some(env.socket_addr("METRICS_ADDR", "127.0.0.1:9464")?),
            },
            log_format: match env.raw("LOG_FORMAT").as_deref() {
                None | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(_) => return Err(env.error("LOG_FORMAT", "`text` or `json`")),
            },
        })
    }

    /// The provider settings by name, if it is in the failover list.
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.name.clone()).collect()
    }
}
