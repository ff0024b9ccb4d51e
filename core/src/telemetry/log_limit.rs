//! Warnings that repeat with every message of a kind (a provider refusing to cancel, say)
//! are logged at most once per key per interval, with how many were held back; the
//! metrics count each one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

pub struct LogLimit {
    interval: Duration,
    /// Per key: when it was last logged, and how many were held back since.
    seen: Mutex<HashMap<String, (Instant, u64)>>,
}

impl LogLimit {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            seen: Mutex::default(),
        }
    }

    /// `Some(held_back)` when a warning under `key` may be logged now, with the number held
    /// back since the last one; `None` when it should be held back.
    pub fn check(&self, key: &str) -> Option<u64> {
        let Ok(mut seen) = self.seen.lock() else {
            // A poisoned lock must not silence warnings.
            return Some(0);
        };
        let now = Instant::now();
        match seen.get_mut(key) {
            Some((last, held_back)) if now.duration_since(*last) < self.interval => {
                *held_back += 1;
                None
            }
            Some((last, held_back)) => {
                *last = now;
                Some(std::mem::take(held_back))
            }
            None => {
                seen.insert(key.to_owned(), (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_key_per_interval_with_the_count_held_back() {
        let limit = LogLimit::new(Duration::from_millis(50));
        assert_eq!(limit.check("5sim"), Some(0));
        assert_eq!(limit.check("5sim"), None);
        assert_eq!(limit.check("5sim"), None);
        assert_eq!(limit.check("simulator"), Some(0), "each key on its own");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.check("5sim"), Some(2));
        assert_eq!(limit.check("5sim"), None);
    }
}
