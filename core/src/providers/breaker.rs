//! A circuit breaker per provider: after a run of failures the provider is skipped at once
//! (open) instead of every order waiting out its timeout again; after a cool-down one call
//! probes it (half-open); a probe that succeeds closes the breaker, one that fails opens it
//! again for twice as long (up to `MAX_COOL_DOWN`).
//!
//! Each process learns on its own: a breaker opens after `failures` calls in a row fail,
//! which in a busy process takes about one provider timeout — as quick as a shared store
//! could tell it, without a round trip to one on every call. Its state is exported as
//! metrics, which the dashboard and the alert read.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A failed probe doubles the cool-down, up to this.
const MAX_COOL_DOWN: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Closed,
    HalfOpen,
    Open,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::HalfOpen => "half_open",
            State::Open => "open",
        }
    }

    /// The value of `namaskah_provider_breaker_state`.
    fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

/// When a breaker opens and how long it stays open.
#[derive(Clone, Copy, Debug)]
pub struct BreakerSettings {
    /// Calls in a row that fail before the breaker opens.
    pub failures: u32,
    pub cool_down: Duration,
}

struct Inner {
    state: State,
    failures_in_a_row: u32,
    opened_at: Instant,
    cool_down: Duration,
    probe_in_flight: bool,
}

pub struct Breaker {
    provider: String,
    settings: BreakerSettings,
    inner: Mutex<Inner>,
}

/// Leave to make one call; say how it went with [`Breaker::record`]. A permit dropped
/// without a record (its caller gave up on the call before the provider's own timeout, or
/// shut down) tells nothing of the provider: it is released, and a probe's turn passes to
/// the next call, so a lost probe cannot leave the breaker waiting for it forever.
#[must_use]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    recorded: bool,
}

impl Breaker {
    pub fn new(provider: &str, settings: BreakerSettings) -> Self {
        let breaker = Self {
            provider: provider.to_owned(),
            settings,
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures_in_a_row: 0,
                opened_at: Instant::now(),
                cool_down: settings.cool_down,
                probe_in_flight: false,
            }),
        };
        breaker.export(State::Closed);
        // Every family is exported from the start, transitions at zero.
        for state in [State::Closed, State::HalfOpen, State::Open] {
            metrics::counter!("namaskah_provider_breaker_transitions_total",
                "provider" => breaker.provider.clone(), "to" => state.as_str())
            .increment(0);
        }
        breaker
    }

    pub fn state(&self) -> State {
        self.inner().state
    }

    /// A permit for one call, or `None` while the breaker is open (or half-open with its
    /// probe under way).
    pub fn admit(&self, now: Instant) -> Option<Permit<'_>> {
        let mut inner = self.inner();
        let probe = match inner.state {
            State::Closed => false,
            State::Open if now.duration_since(inner.opened_at) >= inner.cool_down => {
                self.move_to(&mut inner, State::HalfOpen);
                inner.probe_in_flight = true;
                true
            }
            State::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                true
            }
            State::Open | State::HalfOpen => return None,
        };
        Some(Permit {
            breaker: self,
            probe,
            recorded: false,
        })
    }

    /// How the permitted call went: `failed` when the provider did not answer properly
    /// (unreachable, timed out, 5xx, garbled), not when it answered "no stock" or "no".
    pub fn record(&self, mut permit: Permit<'_>, failed: bool, now: Instant) {
        permit.recorded = true;
        self.settle(permit.probe, failed, now);
    }

    fn settle(&self, probe: bool, failed: bool, now: Instant) {
        let mut inner = self.inner();
        if probe {
            inner.probe_in_flight = false;
            if failed {
                inner.cool_down = (inner.cool_down * 2).min(MAX_COOL_DOWN);
                inner.opened_at = now;
                self.move_to(&mut inner, State::Open);
            } else {
                inner.cool_down = self.settings.cool_down;
                inner.failures_in_a_row = 0;
                self.move_to(&mut inner, State::Closed);
            }
            return;
        }
        // A call let through before the breaker opened tells nothing new once it has.
        if inner.state != State::Closed {
            return;
        }
        if !failed {
            inner.failures_in_a_row = 0;
            return;
        }
        inner.failures_in_a_row += 1;
        if inner.failures_in_a_row >= self.settings.failures {
            inner.opened_at = now;
            inner.cool_down = self.settings.cool_down;
            self.move_to(&mut inner, State::Open);
        }
    }

    fn move_to(&self, inner: &mut Inner, state: State) {
        if inner.state == state {
            return;
        }
        match state {
            State::Open => tracing::warn!(provider = %self.provider, cool_down = ?inner.cool_down,
                "provider circuit breaker open: skipping the provider until a probe succeeds"),
            State::HalfOpen => {
                tracing::info!(provider = %self.provider, "provider circuit breaker half-open: probing")
            }
            State::Closed => {
                tracing::info!(provider = %self.provider, "provider circuit breaker closed: the provider answers again")
            }
        }
        inner.state = state;
        metrics::counter!("namaskah_provider_breaker_transitions_total",
            "provider" => self.provider.clone(), "to" => state.as_str())
        .increment(1);
        self.export(state);
    }

    fn export(&self, state: State) {
        metrics::gauge!("namaskah_provider_breaker_state", "provider" => self.provider.clone())
            .set(state.gauge());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        metrics::gauge!("namaskah_provider_breaker_changed_at_seconds", "provider" => self.provider.clone())
            .set(now);
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.recorded && self.probe {
            self.breaker.inner().probe_in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(
            "first",
            BreakerSettings {
                failures: 3,
                cool_down: Duration::from_secs(10),
            },
        )
    }

    fn call(breaker: &Breaker, failed: bool, now: Instant) -> bool {
        match breaker.admit(now) {
            Some(permit) => {
                breaker.record(permit, failed, now);
                true
            }
            None => false,
        }
    }

    #[test]
    fn a_run_of_failures_opens_it_and_a_success_between_resets_the_run() {
        let breaker = breaker();
        let now = Instant::now();
        call(&breaker, true, now);
        call(&breaker, true, now);
        call(&breaker, false, now);
        call(&breaker, true, now);
        call(&breaker, true, now);
        assert_eq!(breaker.state(), State::Closed);
        call(&breaker, true, now);
        assert_eq!(breaker.state(), State::Open);
        assert!(
            !call(&breaker, false, now + Duration::from_secs(9)),
            "skipped while open"
        );
    }

    #[test]
    fn after_the_cool_down_one_probe_decides() {
        let breaker = breaker();
        let start = Instant::now();
        for _ in 0..3 {
            call(&breaker, true, start);
        }
        let later = start + Duration::from_secs(10);
        let probe = breaker.admit(later).expect("a probe after the cool-down");
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(breaker.admit(later).is_none(), "one probe at a time");
        // It fails: open again, for twice as long.
        breaker.record(probe, true, later);
        assert_eq!(breaker.state(), State::Open);
        assert!(breaker.admit(later + Duration::from_secs(19)).is_none());
        let probe = breaker
            .admit(later + Duration::from_secs(20))
            .expect("a probe after the doubled cool-down");
        breaker.record(probe, false, later + Duration::from_secs(20));
        assert_eq!(breaker.state(), State::Closed);
        assert!(call(&breaker, false, later + Duration::from_secs(20)));
    }

    #[test]
    fn a_probe_whose_call_is_cancelled_passes_its_turn_to_the_next_call() {
        let breaker = breaker();
        let start = Instant::now();
        for _ in 0..3 {
            call(&breaker, true, start);
        }
        let after_cool_down = start + Duration::from_secs(10);
        let probe = breaker.admit(after_cool_down);
        assert!(probe.is_some());
        assert!(
            breaker.admit(after_cool_down).is_none(),
            "one probe at a time"
        );
        drop(probe);
        assert_eq!(breaker.state(), State::HalfOpen);
        assert!(
            call(&breaker, false, after_cool_down),
            "the next call probes"
        );
        assert_eq!(breaker.state(), State::Closed);
    }
}
