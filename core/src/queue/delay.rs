//! Delay tiers: how a message waits without a broker plugin.
//!
//! Each tier is a fanout exchange bound to one quorum queue whose messages expire after the
//! tier's delay and are then dead-lettered (at least once) to the main exchange with their
//! original routing key, which brings them back to their own queue. All messages in a tier wait equally long,
//! so none is stuck behind a later-expiring one.

use std::time::Duration;

/// One fixed delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayTier {
    pub millis: u64,
}

/// The tiers every installation declares. A requested delay is served by the longest tier
/// not longer than it, so a message never waits longer than asked (except that any delay
/// under the shortest tier waits the shortest tier).
pub const TIERS_MS: [u64; 18] = [
    100, 250, 500, 1_000, 2_000, 3_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 1_800_000,
    3_600_000, 7_200_000, 18_000_000, 36_000_000, 86_400_000,
];

impl DelayTier {
    pub fn all() -> impl Iterator<Item = DelayTier> {
        TIERS_MS.into_iter().map(|millis| DelayTier { millis })
    }

    /// The tier for a requested delay; `None` for no delay at all.
    pub fn for_delay(delay: Duration) -> Option<DelayTier> {
        let wanted = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        if wanted == 0 {
            return None;
        }
        let millis = TIERS_MS
            .into_iter()
            .rev()
            .find(|&tier| tier <= wanted)
            .unwrap_or(TIERS_MS[0]);
        Some(DelayTier { millis })
    }

    /// The tier's short name, used in its exchange and queue names: `delay.q.2s`, `delay.q.250ms`.
    pub fn label(self) -> String {
        if self.millis.is_multiple_of(1000) {
            format!("{}s", self.millis / 1000)
        } else {
            format!("{}ms", self.millis)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_down_to_a_tier() {
        let tier = |ms| DelayTier::for_delay(Duration::from_millis(ms)).map(|t| t.millis);
        assert_eq!(tier(0), None);
        assert_eq!(tier(10), Some(100));
        assert_eq!(tier(2_000), Some(2_000));
        assert_eq!(tier(2_900), Some(2_000));
        assert_eq!(tier(299_000), Some(60_000));
        assert_eq!(tier(u64::MAX / 2), Some(86_400_000));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(DelayTier { millis: 2000 }.label(), "2s");
        assert_eq!(DelayTier { millis: 250 }.label(), "250ms");
    }
}
