//! Exponential backoff with jitter.

use rand::RngExt;
use std::time::Duration;

use crate::config::RetryPolicy;

/// The delay before attempt `attempt + 1`, after `attempt` has failed: the base delay doubled
/// per earlier attempt, capped, then moved by up to ±jitter at random so that many failures
/// at once do not come back at once.
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(30);
    let exponential = policy.base_delay.saturating_mul(1 << doublings);
    let capped = exponential.min(policy.max_delay);
    if policy.jitter <= 0.0 {
        return capped;
    }
    let factor = 1.0 + rand::rng().random_range(-policy.jitter..=policy.jitter);
    capped.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter,
        }
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let delays: Vec<u64> = (1..=7)
            .map(|a| backoff_delay(&policy(0.0), a).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        for _ in 0..100 {
            let delay = backoff_delay(&policy(0.2), 3);
            assert!(delay >= Duration::from_millis(3200) && delay <= Duration::from_millis(4800));
        }
    }
}
