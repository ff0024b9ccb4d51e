//! Webhook delivery to customers' endpoints.

use std::time::Duration;

use super::{ConfigError, env::Env};

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

impl WebhookSettings {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            timeout: env.duration("WEBHOOK_TIMEOUT", "15s")?,
            retry_delays: env.duration_list("WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h")?,
            disable_after: env.duration("WEBHOOK_DISABLE_AFTER", "5days")?,
            endpoint_concurrency: env.number("WEBHOOK_ENDPOINT_CONCURRENCY", 16, 1..=1000)?,
            rotation_overlap: env.duration("WEBHOOK_ROTATION_OVERLAP", "24h")?,
            allow_http: env.flag("WEBHOOK_ALLOW_HTTP", false)?,
            allow_private_networks: env.flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", false)?,
        })
    }
}
