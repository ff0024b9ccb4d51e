//! A provider behind its circuit breaker and its bulkhead, so that one provider that hangs
//! or slows down cannot hold every worker slot:
//! - while its breaker is open a call fails at once ([`ProviderError::CircuitOpen`]) and the
//!   ordering worker goes on to the next provider, or retries later if none is left;
//! - at most `max_in_flight` purchases wait on it at a time, and beside them at most
//!   `max_in_flight` calls about numbers already bought (polls, cancels, finishes): two
//!   bulkheads, so that the polling worker and the ordering worker never take each other's
//!   slots on the provider that is left when another hangs;
//! - at most its configured rate starts per second (a token bucket); after it answers `429`
//!   it is asked nothing until its `Retry-After` has passed.
//!
//! A purchase that would exceed any of these goes to the next provider at once
//! ([`ProviderError::Busy`]) — and once every provider was busy, waits for whichever frees
//! first (`Providers::buy_from_first_free`); polls, cancels and finishes, which only this
//! provider can answer, always wait their turn.

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};
use std::{
    future::Future,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::breaker::{Breaker, BreakerSettings, Permit};
use super::{OrderState, Provider, ProviderError, PurchasedNumber};

/// How a provider is guarded (`PROVIDER_BREAKER_FAILURES`, `PROVIDER_BREAKER_COOL_DOWN`,
/// `PROVIDER_MAX_IN_FLIGHT`).
#[derive(Clone, Copy, Debug)]
pub struct GuardSettings {
    pub breaker: BreakerSettings,
    /// Purchases in flight, and as many calls about bought numbers beside them.
    pub max_in_flight: usize,
    /// How long a poll, cancel or finish waits for a slot.
    pub slot_wait: Duration,
}

/// A `429` without `Retry-After` pauses the provider this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

pub struct Guarded {
    inner: Arc<dyn Provider>,
    breaker: Breaker,
    /// The bulkhead for purchases (the ordering worker).
    purchase_slots: Semaphore,
    /// The bulkhead for polls, cancels and finishes of numbers already bought (mostly the
    /// polling worker).
    order_slots: Semaphore,
    slot_wait: Duration,
    /// Calls per second this process may start (`PROVIDER_RATE_LIMITS`).
    rate: Option<DefaultDirectRateLimiter>,
    /// Until when the provider asked us (with a `429`) to leave it alone.
    paused_until: Mutex<Option<Instant>>,
}

impl Guarded {
    pub fn new(
        inner: Arc<dyn Provider>,
        settings: GuardSettings,
        calls_per_second: Option<NonZeroU32>,
    ) -> Self {
        Self {
            breaker: Breaker::new(inner.name(), settings.breaker),
            purchase_slots: Semaphore::new(settings.max_in_flight.max(1)),
            order_slots: Semaphore::new(settings.max_in_flight.max(1)),
            slot_wait: settings.slot_wait,
            rate: calls_per_second
                .map(|rate| DefaultDirectRateLimiter::direct(Quota::per_second(rate))),
            paused_until: Mutex::new(None),
            inner,
        }
    }

    /// Waits out a pause and the token bucket, if `may_wait` and it is short enough;
    /// `false` when the call must not go now.
    async fn take_turn(&self, may_wait: bool) -> bool {
        let paused_for = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .and_then(|until| until.checked_duration_since(Instant::now()));
        if let Some(pause) = paused_for {
            if !may_wait || pause > self.slot_wait {
                return false;
            }
            tokio::time::sleep(pause).await;
        }
        match &self.rate {
            None => true,
            Some(rate) if !may_wait => rate.check().is_ok(),
            Some(rate) => tokio::time::timeout(self.slot_wait, rate.until_ready())
                .await
                .is_ok(),
        }
    }

    fn pause(&self, retry_after: Option<Duration>) {
        let until = Instant::now() + retry_after.unwrap_or(DEFAULT_PAUSE);
        let mut paused = self
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// A turn to buy from the provider: its breaker lets the call through, a purchase slot
    /// is free and the rate allows it — at once, or within the slot wait if `wait`.
    pub async fn turn(&self, wait: bool) -> Result<Turn<'_>, ProviderError> {
        self.turn_in(&self.purchase_slots, wait).await
    }

    async fn turn_in<'a>(
        &'a self,
        slots: &'a Semaphore,
        wait: bool,
    ) -> Result<Turn<'a>, ProviderError> {
        let name = self.inner.name();
        let Some(permit) = self.breaker.admit(Instant::now()) else {
            return Err(ProviderError::CircuitOpen(name.to_owned()));
        };
        let slot = if wait {
            tokio::time::timeout(self.slot_wait, slots.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            slots.try_acquire().ok()
        };
        // Not the provider's failure: it was never asked (the permit goes back unused).
        let Some(slot) = slot else {
            return Err(ProviderError::Busy(name.to_owned()));
        };
        if !self.take_turn(wait).await {
            return Err(ProviderError::Busy(name.to_owned()));
        }
        Ok(Turn {
            guarded: self,
            permit,
            _slot: slot,
        })
    }

    /// Buys a number in a turn taken with [`Guarded::turn`].
    pub async fn buy_in_turn(
        &self,
        turn: Turn<'_>,
        product: &str,
        country: &str,
    ) -> Result<PurchasedNumber, ProviderError> {
        turn.call(self.inner.buy(product, country)).await
    }

    /// Calls the provider about a number it sold, waiting for a slot of the bulkhead kept
    /// for such calls: only this provider can answer them.
    async fn about_order<T>(
        &self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        self.turn_in(&self.order_slots, true)
            .await?
            .call(call)
            .await
    }
}

/// Leave to make one call to a guarded provider now; the call's outcome goes to its breaker.
pub struct Turn<'a> {
    guarded: &'a Guarded,
    permit: Permit<'a>,
    _slot: SemaphorePermit<'a>,
}

impl Turn<'_> {
    async fn call<T>(
        self,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let guarded = self.guarded;
        let result = call.await;
        // Being told to slow down is an answer, not a failure of the provider.
        if let Err(ProviderError::RateLimited { retry_after }) = &result {
            tracing::info!(
                provider = guarded.inner.name(),
                ?retry_after,
                "provider rate-limits us; pausing it"
            );
            guarded.pause(*retry_after);
        }
        let failed = matches!(&result, Err(error) if error.is_retryable()
            && !matches!(error, ProviderError::RateLimited { .. }));
        guarded.breaker.record(self.permit, failed, Instant::now());
        result
    }
}

#[async_trait]
impl Provider for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError> {
        self.turn(false)
            .await?
            .call(self.inner.buy(product, country))
            .await
    }

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError> {
        self.about_order(self.inner.check(order_id)).await
    }

    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError> {
        self.about_order(self.inner.cancel(order_id)).await
    }

    async fn finish(&self, order_id: &str) -> Result<(), ProviderError> {
        self.about_order(self.inner.finish(order_id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A provider that always answers "429, retry after 30 s" and counts how often it is asked.
    struct Throttling(AtomicU32);

    #[async_trait]
    impl Provider for Throttling {
        fn name(&self) -> &str {
            "throttling"
        }
        async fn buy(&self, _: &str, _: &str) -> Result<PurchasedNumber, ProviderError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(30)),
            })
        }
        async fn check(&self, _: &str) -> Result<OrderState, ProviderError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(OrderState::Waiting)
        }
        async fn cancel(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn finish(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    fn guarded(provider: &Arc<Throttling>) -> Guarded {
        Guarded::new(
            Arc::clone(provider) as Arc<dyn Provider>,
            GuardSettings {
                breaker: BreakerSettings {
                    failures: 1,
                    cool_down: Duration::from_secs(60),
                },
                max_in_flight: 4,
                slot_wait: Duration::from_millis(50),
            },
            NonZeroU32::new(1000),
        )
    }

    #[tokio::test]
    async fn a_429_pauses_the_provider_without_opening_its_breaker() {
        let provider = Arc::new(Throttling(AtomicU32::new(0)));
        let guarded = guarded(&provider);
        assert!(matches!(
            guarded.buy("telegram", "us").await,
            Err(ProviderError::RateLimited { .. })
        ));
        // Paused for 30 s: the next purchase goes elsewhere, and a poll does not wait that long.
        assert!(matches!(
            guarded.buy("telegram", "us").await,
            Err(ProviderError::Busy(_))
        ));
        assert!(matches!(
            guarded.check("1").await,
            Err(ProviderError::Busy(_))
        ));
        assert_eq!(provider.0.load(Ordering::Relaxed), 1, "asked once");
        assert_eq!(
            guarded.breaker().state(),
            super::super::breaker::State::Closed,
            "being told to slow down is not a failure"
        );
    }

    /// A provider whose purchases never end and whose polls answer at once.
    struct HangingPurchases;

    #[async_trait]
    impl Provider for HangingPurchases {
        fn name(&self) -> &str {
            "hanging-purchases"
        }
        async fn buy(&self, _: &str, _: &str) -> Result<PurchasedNumber, ProviderError> {
            std::future::pending().await
        }
        async fn check(&self, _: &str) -> Result<OrderState, ProviderError> {
            Ok(OrderState::Waiting)
        }
        async fn cancel(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
        async fn finish(&self, _: &str) -> Result<(), ProviderError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn purchases_in_flight_do_not_take_the_slots_of_polls_and_cancels() {
        let guarded = Arc::new(Guarded::new(
            Arc::new(HangingPurchases),
            GuardSettings {
                breaker: BreakerSettings {
                    failures: 5,
                    cool_down: Duration::from_secs(60),
                },
                max_in_flight: 2,
                slot_wait: Duration::from_millis(50),
            },
            None,
        ));
        let stuck: Vec<_> = (0..2)
            .map(|_| {
                let guarded = Arc::clone(&guarded);
                tokio::spawn(async move { guarded.buy("telegram", "us").await })
            })
            .collect();
        // Let both purchases take their slots.
        while guarded.purchase_slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(
                guarded.buy("telegram", "us").await,
                Err(ProviderError::Busy(_))
            ),
            "a third purchase goes elsewhere"
        );
        assert!(matches!(guarded.check("1").await, Ok(OrderState::Waiting)));
        assert!(guarded.cancel("1").await.is_ok());
        assert!(guarded.finish("1").await.is_ok());
        for purchase in stuck {
            purchase.abort();
        }
    }
}
