//! A provider behind its circuit breaker and its bulkhead, so that one provider that hangs
//! or slows down cannot hold every worker slot:
//! - while its breaker is open a call fails at once ([`ProviderError::CircuitOpen`]) and the
//!   ordering worker goes on to the next provider, or retries later if none is left;
//! - at most `max_in_flight` calls wait on it at a time. A purchase over the cap goes to the
//!   next provider at once ([`ProviderError::Busy`]); polls, cancels and finishes, which only
//!   this provider can answer, wait for a slot up to the provider timeout.

use async_trait::async_trait;
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::Semaphore;

use super::breaker::{Breaker, BreakerSettings};
use super::{OrderState, Provider, ProviderError, PurchasedNumber};

/// How a provider is guarded (`PROVIDER_BREAKER_FAILURES`, `PROVIDER_BREAKER_COOL_DOWN`,
/// `PROVIDER_MAX_IN_FLIGHT`).
#[derive(Clone, Copy, Debug)]
pub struct GuardSettings {
    pub breaker: BreakerSettings,
    pub max_in_flight: usize,
    /// How long a poll, cancel or finish waits for a slot.
    pub slot_wait: Duration,
}

pub struct Guarded {
    inner: Arc<dyn Provider>,
    breaker: Breaker,
    slots: Semaphore,
    slot_wait: Duration,
}

impl Guarded {
    pub fn new(inner: Arc<dyn Provider>, settings: GuardSettings) -> Self {
        Self {
            breaker: Breaker::new(inner.name(), settings.breaker),
            slots: Semaphore::new(settings.max_in_flight.max(1)),
            slot_wait: settings.slot_wait,
            inner,
        }
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    async fn guard<T>(
        &self,
        wait_for_slot: bool,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let name = self.inner.name();
        let Some(permit) = self.breaker.admit(Instant::now()) else {
            return Err(ProviderError::CircuitOpen(name.to_owned()));
        };
        let slot = if wait_for_slot {
            tokio::time::timeout(self.slot_wait, self.slots.acquire())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            self.slots.try_acquire().ok()
        };
        let Some(_slot) = slot else {
            // Not the provider's failure: it was never asked.
            self.breaker.release(permit);
            return Err(ProviderError::Busy(name.to_owned()));
        };
        let result = call.await;
        let failed = matches!(&result, Err(error) if error.is_retryable());
        self.breaker.record(permit, failed, Instant::now());
        result
    }
}

#[async_trait]
impl Provider for Guarded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError> {
        self.guard(false, self.inner.buy(product, country)).await
    }

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError> {
        self.guard(true, self.inner.check(order_id)).await
    }

    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError> {
        self.guard(true, self.inner.cancel(order_id)).await
    }

    async fn finish(&self, order_id: &str) -> Result<(), ProviderError> {
        self.guard(true, self.inner.finish(order_id)).await
    }
}
