//! All configuration, read from environment variables with local defaults.
//!
//! Every variable is documented in the README's configuration table. A bad value stops the
//! process with one line naming the variable and what it expects (exit code 2, see `main`).

use std::{
    collections::HashMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration,
};

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
    /// Errors and panics also go to Sentry when set.
    pub sentry_dsn: Option<Secret>,
    /// Where workers and the scheduler serve `/metrics` (the API and dashboard serve it on
    /// their own port); `None` when switched off.
    pub metrics_addr: Option<SocketAddr>,
    /// Where spans go over OTLP/HTTP (the `otlp` cargo feature); `None` exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Redis shared by the API replicas for rate limits; `None` limits in each process.
    pub redis_url: Option<String>,
    pub payments: PaymentSettings,
}

/// Wallet top-ups. A provider without its secret is switched off.
#[derive(Clone, Debug)]
pub struct PaymentSettings {
    /// The wallet's currency: every top-up must be in it.
    pub currency: String,
    /// Paystack's secret key: authenticates our calls and signs its webhooks (HMAC-SHA512).
    pub paystack_secret_key: Option<Secret>,
    pub paystack_base_url: String,
    /// Stripe's API key, for creating checkout sessions.
    pub stripe_secret_key: Option<Secret>,
    /// Stripe's webhook signing secret (`whsec_…`).
    pub stripe_webhook_secret: Option<Secret>,
    pub stripe_base_url: String,
    /// How old a Stripe signature's timestamp may be.
    pub stripe_tolerance: Duration,
    /// Where Stripe's checkout sends the payer back.
    pub checkout_return_url: String,
}

/// PostgreSQL connections per role. The roles of one process share one pool, sized as the
/// sum of their shares; the reasoning behind the defaults is in docs/deployment.md.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// The API: one short transaction per request, plus event-stream polls.
    pub api: u32,
    /// Each worker role (ordering, polling, refund, webhooks): connections are held only
    /// between provider calls, so far fewer than the prefetch.
    pub worker: u32,
    pub scheduler: u32,
    pub dashboard: u32,
    /// `DATABASE_MAX_CONNECTIONS`: when set, the whole process's pool, whatever it runs.
    pub process_cap: Option<u32>,
}

impl PoolSettings {
    /// The pool of a process running these roles. The outbox relay holds one connection
    /// while it awaits the broker's confirms, hence the extra one.
    pub fn process_pool(&self, roles: PoolRoles) -> u32 {
        if let Some(cap) = self.process_cap {
            return cap;
        }
        let shares = [
            (roles.api, self.api),
            (roles.scheduler, self.scheduler),
            (roles.dashboard, self.dashboard),
        ];
        let fixed: u32 = shares
            .iter()
            .filter(|(runs, _)| *runs)
            .map(|(_, share)| share)
            .sum();
        let workers = self.worker.saturating_mul(roles.workers);
        (fixed + workers + u32::from(roles.relay)).max(1)
    }
}

/// Which roles share a process's pool (see [`PoolSettings::process_pool`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolRoles {
    pub api: bool,
    /// How many worker roles run here.
    pub workers: u32,
    pub scheduler: bool,
    pub dashboard: bool,
    pub relay: bool,
}

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

/// The CRM endpoint (`CRM_URL`) and the secret its requests are signed with (`CRM_SECRET`).
#[derive(Clone, Debug)]
pub struct CrmSettings {
    pub url: String,
    pub secret: crate::webhooks::WebhookSecret,
}

/// The periodic jobs: when each runs, and their limits.
#[derive(Clone, Debug)]
pub struct SchedulerSettings {
    /// Each job's cron schedule (with seconds); `None` when switched off.
    pub schedules: Vec<(&'static str, Option<cron::Schedule>)>,
    /// SMS texts, codes and phone numbers older than this are erased.
    pub personal_data_retention: Duration,
    /// Webhook attempts older than this are deleted.
    pub history_retention: Duration,
    /// Where the `crm` job sends new accounts and usage, signed like our webhooks.
    pub crm: Option<CrmSettings>,
    pub backup_dir: PathBuf,
    /// Backups kept; older ones are deleted.
    pub backup_keep: usize,
    /// A verification pending or ordering for longer than this is re-sent to ordering.
    pub ordering_stuck_after: Duration,
    /// A settled verification not refunded after this long gets its refund re-sent.
    pub refund_stuck_after: Duration,
    /// Outbox rows unsent for this long are published by the sweeper itself.
    pub outbox_stuck_after: Duration,
    /// The sweeper nudges one verification at most this often.
    pub nudge_interval: Duration,
    /// How often a follower tries to become leader.
    pub leader_poll: Duration,
}

/// The jobs and their default schedules (cron with seconds: sec min hour day month weekday).
pub const DEFAULT_SCHEDULES: [(&str, &str, &str); 10] = [
    ("sweeper", "SCHEDULE_SWEEPER", "*/10 * * * * *"),
    (
        "idempotency_expiry",
        "SCHEDULE_IDEMPOTENCY_EXPIRY",
        "0 */15 * * * *",
    ),
    ("retention", "SCHEDULE_RETENTION", "0 30 3 * * *"),
    ("backup", "SCHEDULE_BACKUP", "0 0 2 * * *"),
    ("sampling", "SCHEDULE_SAMPLING", "*/15 * * * * *"),
    ("low_balance", "SCHEDULE_LOW_BALANCE", "30 * * * * *"),
    ("renewals", "SCHEDULE_RENEWALS", "0 */10 * * * *"),
    ("crm", "SCHEDULE_CRM", "0 */5 * * * *"),
    ("invariants", "SCHEDULE_INVARIANTS", "0 */5 * * * *"),
    ("usage_rollup", "SCHEDULE_USAGE_ROLLUP", "0 15 * * * *"),
];

/// How webhooks are delivered.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Limit for one delivery attempt, connection included.
    pub timeout: Duration,
    /// The delays between attempts: the first attempt is immediate, then one more attempt
    /// after each delay in turn. After the last, the message has failed for that endpoint.
    pub retry_delays: Vec<Duration>,
    /// An endpoint whose every attempt has failed for this long is disabled.
    pub disable_after: Duration,
    /// Deliveries one worker makes to one endpoint at the same time, so a slow endpoint does
    /// not hold up the others.
    pub endpoint_concurrency: usize,
    /// How long the old secret keeps signing after a rotation.
    pub rotation_overlap: Duration,
    pub allow_http: bool,
    pub allow_private_networks: bool,
}
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

/// A retry budget for one queue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Deliveries in all, the first one included.
    pub max_attempts: u32,
    /// The delay before the second attempt; it doubles with each attempt.
    pub base_delay: Duration,
    /// No delay grows past this.
    pub max_delay: Duration,
    /// Fraction of the delay added or removed at random (0.2 = ±20 %), so retries spread.
    pub jitter: f64,
}

/// How many messages a worker may keep waiting in its own memory, and for how long at most.
/// A held message stays unacknowledged, so a worker that dies lets the broker deliver it
/// again; nothing depends on the process surviving the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldPolicy {
    pub up_to: Duration,
    pub max_messages: u16,
}

impl HoldPolicy {
    /// Holds nothing: every wait goes through a delay tier.
    pub const NONE: HoldPolicy = HoldPolicy {
        up_to: Duration::ZERO,
        max_messages: 0,
    };

    /// Whether a wait of `delay` may be held rather than sent through a delay tier.
    pub fn covers(self, delay: Duration) -> bool {
        self.max_messages > 0 && delay <= self.up_to
    }
}

#[derive(Clone, Copy, Debug)]
pub struct RetryPolicies {
    pub ordering: RetryPolicy,
    pub polling: RetryPolicy,
    pub refund: RetryPolicy,
    pub webhooks: RetryPolicy,
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
        let jitter = env.fraction("RETRY_JITTER", 0.2)?;
        Ok(Self {
            database_url: env.url(
                "DATABASE_URL",
                "postgres://postgres@127.0.0.1:5432/namaskah",
                &["postgres", "postgresql"],
            )?,
            database_pools: PoolSettings {
                api: env.number("DATABASE_POOL_API", 8, 1..=1000)?,
                worker: env.number("DATABASE_POOL_WORKER", 6, 1..=1000)?,
                scheduler: env.number("DATABASE_POOL_SCHEDULER", 4, 1..=1000)?,
                dashboard: env.number("DATABASE_POOL_DASHBOARD", 4, 1..=1000)?,
                process_cap: match env.raw("DATABASE_MAX_CONNECTIONS") {
                    Some(_) => Some(env.number("DATABASE_MAX_CONNECTIONS", 10, 1..=1000)?),
                    None => None,
                },
            },
            amqp_url: env.url(
                "AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                &["amqp", "amqps"],
            )?,
            queue_prefix: env.queue_prefix("QUEUE_PREFIX")?,
            api_addr: env.socket_addr("API_ADDR", "127.0.0.1:8080")?,
            event_stream_max_age: env.duration("EVENT_STREAM_MAX_AGE", "1h")?,
            simulator_addr,
            providers: env.providers(simulator_addr)?,
            provider_timeout: env.duration("PROVIDER_TIMEOUT", "10s")?,
            provider_timeouts: env.pairs(
                "PROVIDER_TIMEOUTS",
                "provider=duration pairs, like 5sim=5s,textverified=15s",
                |value| parse_duration(value).filter(|timeout| !timeout.is_zero()),
            )?,
            provider_connect_timeout: env.duration("PROVIDER_CONNECT_TIMEOUT", "3s")?,
            provider_guard: crate::providers::guarded::GuardSettings {
                breaker: crate::providers::breaker::BreakerSettings {
                    failures: env.number("PROVIDER_BREAKER_FAILURES", 5, 1..=1000)?,
                    cool_down: env.duration("PROVIDER_BREAKER_COOL_DOWN", "15s")?,
                },
                max_in_flight: env.number("PROVIDER_MAX_IN_FLIGHT", 16, 1..=10_000)?,
                slot_wait: env.duration("PROVIDER_TIMEOUT", "10s")?,
            },
            provider_rate_limits: env.rate_limits("PROVIDER_RATE_LIMITS")?,
            worker_prefetch: env.number("WORKER_PREFETCH", 32, 1..=10_000)?,
            worker_hold: HoldPolicy {
                up_to: env.duration("WORKER_HOLD_UP_TO", "5s")?,
                max_messages: env.number("WORKER_HOLD_MESSAGES", 512, 0..=50_000)?,
            },
            queue_delivery_limit: env.number("QUEUE_DELIVERY_LIMIT", 20, 2..=1000)?,
            outbox_poll_interval: env.duration("OUTBOX_POLL_INTERVAL", "200ms")?,
            outbox_batch_size: env.number("OUTBOX_BATCH_SIZE", 256, 1..=10_000)?,
            retry: RetryPolicies {
                ordering: env.retry_policy("ORDERING_RETRY", "5,1s,30s", jitter)?,
                polling: env.retry_policy("POLLING_RETRY", "10,1s,30s", jitter)?,
                refund: env.retry_policy("REFUND_RETRY", "10,1s,1m", jitter)?,
                webhooks: env.retry_policy("WEBHOOKS_RETRY", "5,1s,1m", jitter)?,
            },
            poll_cadence: env.duration_list("POLL_CADENCE", "2s,3s,5s,10s")?,
            deadline_grace: env.duration("DEADLINE_GRACE", "30s")?,
            ordering_lease: env.duration("ORDERING_LEASE", "60s")?,
            startup_wait: env.duration("STARTUP_WAIT", "60s")?,
            webhooks: WebhookSettings {
                timeout: env.duration("WEBHOOK_TIMEOUT", "15s")?,
                retry_delays: env
                    .duration_list("WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h")?,
                disable_after: env.duration("WEBHOOK_DISABLE_AFTER", "5days")?,
                endpoint_concurrency: env.number("WEBHOOK_ENDPOINT_CONCURRENCY", 16, 1..=1000)?,
                rotation_overlap: env.duration("WEBHOOK_ROTATION_OVERLAP", "24h")?,
                allow_http: env.flag("WEBHOOK_ALLOW_HTTP", false)?,
                allow_private_networks: env.flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", false)?,
            },
            scheduler: SchedulerSettings {
                schedules: DEFAULT_SCHEDULES
                    .iter()
                    .map(|(job, variable, default)| Ok((*job, env.schedule(variable, default)?)))
                    .collect::<Result<_, ConfigError>>()?,
                personal_data_retention: env.duration("RETENTION_PERSONAL_DATA", "30days")?,
                history_retention: env.duration("RETENTION_HISTORY", "7days")?,
                crm: match env.raw("CRM_URL") {
                    None => None,
                    Some(_) => Some(CrmSettings {
                        url: env.url("CRM_URL", "", &["http", "https"])?,
                        secret: env
                            .raw("CRM_SECRET")
                            .as_deref()
                            .and_then(crate::webhooks::WebhookSecret::parse)
                            .ok_or_else(|| {
                                env.error(
                                    "CRM_SECRET",
                                    "a whsec_… secret (base64 after whsec_), required with CRM_URL",
                                )
                            })?,
                    }),
                },
                backup_dir: PathBuf::from(
                    env.raw("BACKUP_DIR")
                        .unwrap_or_else(|| "backups".to_owned()),
                ),
                backup_keep: env.number("BACKUP_KEEP", 7, 1..=1000)?,
                ordering_stuck_after: env.duration("SWEEP_ORDERING_AFTER", "2m")?,
                refund_stuck_after: env.duration("SWEEP_REFUND_AFTER", "1m")?,
                outbox_stuck_after: env.duration("SWEEP_OUTBOX_AFTER", "10s")?,
                nudge_interval: env.duration("SWEEP_NUDGE_INTERVAL", "1m")?,
                leader_poll: env.duration("SCHEDULER_LEADER_POLL", "1s")?,
            },
            dashboard: DashboardSettings {
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
            },
            sentry_dsn: env.raw("SENTRY_DSN").map(Secret::new),
            otlp_endpoint: env.raw("OTEL_EXPORTER_OTLP_ENDPOINT"),
            payments: PaymentSettings {
                currency: match env.raw("WALLET_CURRENCY") {
                    None => "USD".to_owned(),
                    Some(code)
                        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) =>
                    {
                        code
                    }
                    Some(_) => {
                        return Err(env.error(
                            "WALLET_CURRENCY",
                            "a three-letter ISO 4217 code such as USD",
                        ));
                    }
                },
                paystack_secret_key: env.raw("PAYSTACK_SECRET_KEY").map(Secret::new),
                paystack_base_url: env.url(
                    "PAYSTACK_BASE_URL",
                    "https://api.paystack.co",
                    &["http", "https"],
                )?,
                stripe_secret_key: env.raw("STRIPE_SECRET_KEY").map(Secret::new),
                stripe_webhook_secret: env.raw("STRIPE_WEBHOOK_SECRET").map(Secret::new),
                stripe_base_url: env.url(
                    "STRIPE_BASE_URL",
                    "https://api.stripe.com",
                    &["http", "https"],
                )?,
                stripe_tolerance: env.duration("STRIPE_WEBHOOK_TOLERANCE", "5m")?,
                checkout_return_url: env.url(
                    "CHECKOUT_RETURN_URL",
                    "http://127.0.0.1:8080/docs",
                    &["http", "https"],
                )?,
            },
            redis_url: match env.raw("REDIS_URL") {
                Some(url) if url.starts_with("redis://") => Some(url),
                Some(_) => return Err(env.error("REDIS_URL", "a redis:// URL")),
                None => None,
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

    /// How long a call to `provider` may take to connect and to be answered.
    pub fn provider_call_timeouts(&self, provider: &str) -> crate::providers::CallTimeouts {
        let response = self
            .provider_timeouts
            .iter()
            .find(|(name, _)| name == provider)
            .map_or(self.provider_timeout, |(_, timeout)| *timeout);
        crate::providers::CallTimeouts {
            connect: self.provider_connect_timeout.min(response),
            response,
        }
    }

    /// The provider settings by name, if it is in the failover list.
    pub fn provider(&self, name: &str) -> Option<&ProviderSettings> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn provider_names(&self) -> Vec<String> {
        self.providers.iter().map(|p| p.name.clone()).collect()
    }
}

/// Typed reads of single variables, each with the error that names it.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn error(&self, variable: &'static str, expected: impl Into<String>) -> ConfigError {
        ConfigError {
            variable,
            expected: expected.into(),
        }
    }

    fn url(
        &self,
        name: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        let scheme = value.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if schemes.contains(&scheme) => Ok(value),
            // The value may hold a password, so the message does not repeat it.
            _ => Err(self.error(
                name,
                format!("a URL starting with {}://", schemes.join(":// or ")),
            )),
        }
    }

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

    /// `provider=value,…` (empty when unset), each value read by `parse`.
    fn pairs<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<(String, T)>, ConfigError> {
        let value = self.raw(name).unwrap_or_default();
        value
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                pair.split_once('=')
                    .and_then(|(provider, value)| Some((provider.trim(), parse(value.trim())?)))
                    .filter(|(provider, _)| !provider.is_empty())
                    .map(|(provider, value)| (provider.to_owned(), value))
                    .ok_or_else(|| self.error(name, expected))
            })
            .collect()
    }

    /// A comma-separated list of URLs (empty when unset).
    fn url_list(&self, name: &'static str, schemes: &[&str]) -> Result<Vec<String>, ConfigError> {
        let value = self.raw(name).unwrap_or_default();
        value
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| match url.split_once("://") {
                Some((scheme, rest)) if schemes.contains(&scheme) && !rest.is_empty() => {
                    Ok(url.to_owned())
                }
                _ => Err(self.error(
                    name,
                    format!(
                        "URLs starting with {}://, separated by commas",
                        schemes.join(":// or ")
                    ),
                )),
            })
            .collect()
    }

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

    fn socket_addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        value.parse().map_err(|_| {
            self.error(
                name,
                format!("an address like 127.0.0.1:8080, got {value:?}"),
            )
        })
    }

    fn number<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(value) = self.raw(name) else {
            return Ok(default);
        };
        let expected = || {
            self.error(
                name,
                format!(
                    "a whole number from {} to {}, got {value:?}",
                    range.start(),
                    range.end()
                ),
            )
        };
        let number: T = value.trim().parse().map_err(|_| expected())?;
        if range.contains(&number) {
            Ok(number)
        } else {
            Err(expected())
        }
    }

    /// A comma-separated list of networks (`10.0.0.0/8`) or single addresses.
    fn networks(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        value
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<ipnet::IpNet>()
                    .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| self.error(name, format!("comma-separated networks like 10.0.0.0/8 or addresses, got {part:?}")))
            })
            .collect()
    }

    /// A cron expression with seconds, or `off`.
    fn schedule(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Option<cron::Schedule>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        if value.trim().eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        cron::Schedule::from_str(value.trim()).map(Some).map_err(|_| {
            self.error(
                name,
                format!("a cron expression with seconds like \"*/10 * * * * *\", or off; got {value:?}"),
            )
        })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self
            .raw(name)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(other) => Err(self.error(name, format!("true or false, got {other:?}"))),
        }
    }

    fn fraction(&self, name: &'static str, default: f64) -> Result<f64, ConfigError> {
        let Some(value) = self.raw(name) else {
            return Ok(default);
        };
        match value.trim().parse::<f64>() {
            Ok(fraction) if (0.0..=1.0).contains(&fraction) => Ok(fraction),
            _ => Err(self.error(name, format!("a number from 0 to 1, got {value:?}"))),
        }
    }

    fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        parse_duration(&value).ok_or_else(|| {
            self.error(
                name,
                format!("a duration like 250ms, 2s or 5m, got {value:?}"),
            )
        })
    }

    fn duration_list(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<Vec<Duration>, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        let durations: Option<Vec<Duration>> = value.split(',').map(parse_duration).collect();
        match durations {
            Some(list) if !list.is_empty() => Ok(list),
            _ => Err(self.error(
                name,
                format!("a comma-separated list of durations like 2s,3s,5s, got {value:?}"),
            )),
        }
    }

    fn retry_policy(
        &self,
        name: &'static str,
        default: &str,
        jitter: f64,
    ) -> Result<RetryPolicy, ConfigError> {
        let value = self.raw(name).unwrap_or_else(|| default.to_owned());
        let expected = || {
            self.error(
                name,
                format!("`max_attempts,base_delay,max_delay` like 5,1s,30s, got {value:?}"),
            )
        };
        let parts: Vec<&str> = value.split(',').map(str::trim).collect();
        let [attempts, base, cap] = parts.as_slice() else {
            return Err(expected());
        };
        let max_attempts: u32 = attempts.parse().map_err(|_| expected())?;
        let base_delay = parse_duration(base).ok_or_else(expected)?;
        let max_delay = parse_duration(cap).ok_or_else(expected)?;
        if max_attempts == 0 || base_delay > max_delay {
            return Err(expected());
        }
        Ok(RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
            jitter,
        })
    }

    fn queue_prefix(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.raw(name).unwrap_or_default();
        let valid = value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if valid {
            Ok(value)
        } else {
            Err(self.error(
                name,
                format!("up to 64 letters, digits, '.', '-' or '_', got {value:?}"),
            ))
        }
    }

    fn providers(&self, simulator_addr: SocketAddr) -> Result<Vec<ProviderSettings>, ConfigError> {
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

/// The key the simulator accepts unless `SIMULATOR_API_KEY` says otherwise.
pub const DEFAULT_SIMULATOR_KEY: &str = "simulator-key";

/// `250ms`, `2s`, `5m`, `1h`, or combinations humantime accepts.
pub fn parse_duration(value: &str) -> Option<Duration> {
    humantime::parse_duration(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_map(&map)
    }

    #[test]
    fn defaults_describe_a_local_installation() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(
            config.database_url,
            "postgres://postgres@127.0.0.1:5432/namaskah"
        );
        assert_eq!(config.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.provider_names(), vec!["simulator"]);
        assert_eq!(config.providers[0].base_url, "http://127.0.0.1:8090/v1");
        assert_eq!(config.retry.ordering.max_attempts, 5);
    }

    #[test]
    fn a_process_pool_is_the_sum_of_its_roles_shares_unless_capped() {
        let pools = config(&[]).expect("defaults").database_pools;
        let api_only = PoolRoles {
            api: true,
            relay: true,
            ..PoolRoles::default()
        };
        assert_eq!(pools.process_pool(api_only), 9);
        let one_worker = PoolRoles {
            workers: 1,
            relay: true,
            ..PoolRoles::default()
        };
        assert_eq!(pools.process_pool(one_worker), 7);
        let everything = PoolRoles {
            api: true,
            workers: 4,
            scheduler: true,
            dashboard: true,
            relay: true,
        };
        assert_eq!(pools.process_pool(everything), 8 + 4 * 6 + 4 + 4 + 1);

        let capped = config(&[
            ("DATABASE_MAX_CONNECTIONS", "8"),
            ("DATABASE_POOL_API", "50"),
        ])
        .expect("valid")
        .database_pools;
        assert_eq!(capped.process_pool(everything), 8);
        assert_eq!(
            config(&[("DATABASE_POOL_WORKER", "0")])
                .unwrap_err()
                .variable,
            "DATABASE_POOL_WORKER"
        );
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let error = config(&[("API_ADDR", "localhost")]).unwrap_err();
        assert_eq!(error.variable, "API_ADDR");
        assert!(
            error
                .to_string()
                .starts_with("API_ADDR: expected an address")
        );

        let error = config(&[("PROVIDERS", "simulator,nope")]).unwrap_err();
        assert_eq!(error.variable, "PROVIDERS");

        let error = config(&[("ORDERING_RETRY", "5,10s,1s")]).unwrap_err();
        assert_eq!(error.variable, "ORDERING_RETRY");

        let error = config(&[("DASHBOARD_METRICS_URLS", "http://a:9464/metrics,ftp://b")]);
        assert_eq!(error.unwrap_err().variable, "DASHBOARD_METRICS_URLS");
        let error = config(&[("ASSET_BASE_URL", "https://cdn.example.com/x?y=1")]);
        assert_eq!(error.unwrap_err().variable, "ASSET_BASE_URL");
        let error = config(&[("PROVIDER_RATE_LIMITS", "5sim=0")]);
        assert_eq!(error.unwrap_err().variable, "PROVIDER_RATE_LIMITS");
        let limits = config(&[("PROVIDER_RATE_LIMITS", "5sim=50, textverified=10")])
            .expect("valid")
            .provider_rate_limits;
        assert_eq!(limits.len(), 2);
        assert_eq!(
            (limits[1].0.as_str(), limits[1].1.get()),
            ("textverified", 10)
        );
        let error = config(&[("PROVIDER_TIMEOUTS", "simulator=0s")]);
        assert_eq!(error.unwrap_err().variable, "PROVIDER_TIMEOUTS");
        let error = config(&[("PROVIDER_TIMEOUTS", "simulator")]);
        assert_eq!(error.unwrap_err().variable, "PROVIDER_TIMEOUTS");
    }

    #[test]
    fn each_provider_may_have_its_own_timeout_and_connecting_never_takes_longer() {
        let config = config(&[
            ("PROVIDER_TIMEOUT", "8s"),
            ("PROVIDER_TIMEOUTS", "simulator=2s"),
            ("PROVIDER_CONNECT_TIMEOUT", "3s"),
        ])
        .expect("valid");
        let simulator = config.provider_call_timeouts("simulator");
        assert_eq!(simulator.response, Duration::from_secs(2));
        assert_eq!(simulator.connect, Duration::from_secs(2));
        let other = config.provider_call_timeouts("5sim");
        assert_eq!(other.response, Duration::from_secs(8));
        assert_eq!(other.connect, Duration::from_secs(3));
    }

    #[test]
    fn dashboard_sources_and_asset_origin_parse() {
        let config = config(&[
            (
                "DASHBOARD_METRICS_URLS",
                " http://api:8080/metrics, http://worker:9464/metrics ,",
            ),
            ("ASSET_BASE_URL", "https://cdn.example.com/namaskah/"),
        ])
        .expect("valid");
        assert_eq!(
            config.dashboard.metrics_urls,
            ["http://api:8080/metrics", "http://worker:9464/metrics"]
        );
        assert_eq!(
            config.dashboard.asset_base_url.as_deref(),
            Some("https://cdn.example.com/namaskah")
        );
    }

    #[test]
    fn schedules_parse_or_switch_off() {
        let config = config(&[("SCHEDULE_BACKUP", "off")]).expect("valid");
        let backup = config
            .scheduler
            .schedules
            .iter()
            .find(|(job, _)| *job == "backup");
        assert!(matches!(backup, Some((_, None))));
        let error = config_error_for("SCHEDULE_SWEEPER", "every ten seconds");
        assert_eq!(error.variable, "SCHEDULE_SWEEPER");
    }

    fn config_error_for(variable: &str, value: &str) -> ConfigError {
        config(&[(variable, value)]).expect_err("invalid")
    }

    #[test]
    fn a_real_provider_needs_its_key() {
        let error = config(&[("PROVIDERS", "5sim")]).unwrap_err();
        assert_eq!(error.variable, "FIVESIM_API_KEY");
        let ok = config(&[("PROVIDERS", "5sim,simulator"), ("FIVESIM_API_KEY", "k")]).unwrap();
        assert_eq!(ok.provider_names(), vec!["5sim", "simulator"]);
    }

    #[test]
    fn a_database_url_with_a_password_is_not_echoed() {
        let error = config(&[("DATABASE_URL", "mysql://u:hunter2@h/db")]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("k3y")), "Secret(***)");
    }
}
