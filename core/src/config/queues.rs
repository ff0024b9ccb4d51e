//! RabbitMQ's queues: names, retry budgets and how long workers hold messages.

use std::time::Duration;

use super::{
    ConfigError,
    env::{Env, parse_duration},
};

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

impl RetryPolicies {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        let jitter = env.fraction("RETRY_JITTER", 0.2)?;
        Ok(Self {
            ordering: env.retry_policy("ORDERING_RETRY", "5,1s,30s", jitter)?,
            polling: env.retry_policy("POLLING_RETRY", "10,1s,30s", jitter)?,
            refund: env.retry_policy("REFUND_RETRY", "10,1s,1m", jitter)?,
            webhooks: env.retry_policy("WEBHOOKS_RETRY", "5,1s,1m", jitter)?,
        })
    }
}

impl HoldPolicy {
    pub(super) fn read(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            up_to: env.duration("WORKER_HOLD_UP_TO", "5s")?,
            max_messages: env.number("WORKER_HOLD_MESSAGES", 512, 0..=50_000)?,
        })
    }
}

impl Env<'_> {
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

    pub(super) fn queue_prefix(&self, name: &'static str) -> Result<String, ConfigError> {
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
}
