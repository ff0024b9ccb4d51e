//! Every provider call counted and timed: metrics for Prometheus, per-minute tallies for the
//! dashboard's provider health, and failures for error tracking.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::PgPool;
use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{OrderState, Provider, ProviderError, PurchasedNumber};
use crate::{
    Shutdown,
    errors::{self, Failure},
    store::provider_calls::{self, Tally},
};

/// Tallies of this process's provider calls since the last flush.
#[derive(Clone, Default)]
pub struct CallStats {
    tallies: Arc<Mutex<HashMap<(String, &'static str), Tally>>>,
}

impl CallStats {
    fn count(&self, provider: &str, operation: &'static str, outcome: &Result<(), String>) {
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let tally = tallies.entry((provider.to_owned(), operation)).or_default();
        match outcome {
            Ok(()) => {
                tally.successes += 1;
                tally.last_success_at = Some(Utc::now());
            }
            Err(error) => {
                tally.failures += 1;
                tally.last_failure = Some(error.clone());
            }
        }
    }

    /// Writes the tallies to the database every few seconds until shutdown.
    pub async fn flush_periodically(self, pool: PgPool, shutdown: Shutdown) {
        const EVERY: Duration = Duration::from_secs(5);
        loop {
            let stop = tokio::select! {
                _ = shutdown.wait() => true,
                _ = tokio::time::sleep(EVERY) => false,
            };
            let drained: Vec<_> = match self.tallies.lock() {
                Ok(mut tallies) => tallies.drain().collect(),
                Err(_) => Vec::new(),
            };
            for ((provider, operation), tally) in drained {
                if let Err(error) = provider_calls::add(&pool, &provider, operation, &tally).await {
                    tracing::debug!(%error, "could not write provider call counts");
                }
            }
            if stop {
                break;
            }
        }
    }
}

/// A provider wrapped to count its calls.
pub struct Instrumented {
    inner: Arc<dyn Provider>,
    stats: CallStats,
}

impl Instrumented {
    pub fn new(inner: Arc<dyn Provider>, stats: CallStats) -> Self {
        Self { inner, stats }
    }

    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, ProviderError>>,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let result = call.await;
        let provider = self.inner.name().to_owned();
        let outcome = match &result {
            Ok(_) => "success",
            Err(ProviderError::OutOfStock) => "out_of_stock",
            Err(error) if error.is_retryable() => "unavailable",
            Err(_) => "rejected",
        };
        metrics::counter!("namaskah_provider_requests_total",
            "provider" => provider.clone(), "operation" => operation, "outcome" => outcome)
        .increment(1);
        metrics::histogram!("namaskah_provider_request_duration_seconds",
            "provider" => provider.clone(), "operation" => operation)
        .record(started.elapsed().as_secs_f64());
        // Out of stock and "no such order" are answers, not failures of the provider.
        let failed = match &result {
            Err(error) if error.is_retryable() || matches!(error, ProviderError::Rejected(_)) => {
                Some(error.to_string())
            }
            _ => None,
        };
        self.stats
            .count(&provider, operation, &failed.clone().map_or(Ok(()), Err));
        if let Some(message) = failed {
            errors::record(Failure {
                role: "worker",
                queue: None,
                kind: format!("provider_{outcome}"),
                message: format!("{provider} {operation}: {message}"),
                ..Failure::default()
            });
        }
        result
    }
}

#[async_trait]
impl Provider for Instrumented {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn buy(&self, product: &str, country: &str) -> Result<PurchasedNumber, ProviderError> {
        self.observe("buy", self.inner.buy(product, country)).await
    }

    async fn check(&self, order_id: &str) -> Result<OrderState, ProviderError> {
        self.observe("check", self.inner.check(order_id)).await
    }

    async fn cancel(&self, order_id: &str) -> Result<(), ProviderError> {
        self.observe("cancel", self.inner.cancel(order_id)).await
    }

    async fn finish(&self, order_id: &str) -> Result<(), ProviderError> {
        self.observe("finish", self.inner.finish(order_id)).await
    }
}
