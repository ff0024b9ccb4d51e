//! The overview, live: every few seconds one task samples health, queues and our own
//! counters, keeps the last hour in this process (seeded from PostgreSQL at start), and
//! hands every WebSocket client the same update: the numbers and the charts redrawn.
//!
//! Rates are computed from our processes' `/metrics` (this process's own recorder when
//! `DASHBOARD_METRICS_URLS` is empty, as in `namaskah up`), so the queue table's publish
//! and ack rates do not need RabbitMQ's management API.

mod exposition;
mod figures;
pub mod history;
mod seed;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;

use namaskah_core::{Shutdown, metrics_exporter, queue::QueueName};

use crate::{DashboardState, snapshot};
use history::{History, Readings, SAMPLE_EVERY_SECONDS, Sample, Totals};

/// The source name of this process's own recorder.
const THIS_PROCESS: &str = "this process";
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the sampler shares with the pages and the WebSocket clients.
pub struct Live {
    history: Mutex<History>,
    /// Each provider's circuit breaker as the last sample read it.
    breakers: Mutex<std::collections::BTreeMap<String, (f64, f64)>>,
    /// The latest WebSocket message (JSON), `None` before the first sample.
    updates: watch::Sender<Option<Arc<str>>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            history: Mutex::new(History::default()),
            breakers: Mutex::default(),
            updates: watch::Sender::new(None),
        }
    }
}

impl Live {
    /// The charts of the hour so far (the page's first paint).
    pub fn charts(&self) -> String {
        let history = self.history();
        figures::render(history.samples())
    }

    /// The latest sample, for the rates the page shows before the first update.
    pub fn latest(&self) -> Option<Sample> {
        self.history().latest().cloned()
    }

    /// Fills each provider's breaker state into a snapshot.
    pub fn describe_breakers(&self, snapshot: &mut snapshot::Snapshot) {
        let breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        for provider in &mut snapshot.providers {
            provider.breaker = breakers
                .get(&provider.name)
                .map(|&(state, changed_at)| snapshot::describe_breaker(state, changed_at));
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.updates.subscribe()
    }

    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        // A panic while holding the lock leaves a whole history behind; keep using it.
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Fills the history with the last hour PostgreSQL knows of (before the first page).
pub async fn seed(state: &DashboardState) {
    match seed::last_hour(&state.pool).await {
        Ok(samples) => {
            let mut history = state.live.history();
            for sample in samples {
                history.push(sample);
            }
        }
        Err(error) => {
            tracing::warn!(%error, "the overview's charts start empty: cannot read the last hour");
        }
    }
}

/// Samples until shutdown.
pub async fn run(state: Arc<DashboardState>, shutdown: Shutdown) {
    let mut ticker = tokio::time::interval(Duration::from_secs(SAMPLE_EVERY_SECONDS));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = ticker.tick() => sample(&state).await,
        }
    }
}

async fn sample(state: &DashboardState) {
    let (mut snapshot, readings) = tokio::join!(snapshot::gather(state), read_metrics(state));
    let depths: Vec<(String, Option<f64>)> = QueueName::ALL
        .iter()
        .map(|queue| {
            let depth = snapshot
                .queues
                .iter()
                .find(|q| q.name == queue.as_str())
                .map(|q| (q.ready + q.unacked.unwrap_or(0)) as f64);
            (queue.as_str().to_owned(), depth)
        })
        .collect();
    *state
        .live
        .breakers
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Totals::combined_breakers(readings.values());
    state.live.describe_breakers(&mut snapshot);
    let (latest, charts) = {
        let mut history = state.live.history();
        let latest = history.record(Utc::now(), readings, &depths);
        (latest, figures::render(history.samples()))
    };
    fill_queue_rates(&mut snapshot, &latest);
    let message = json!({
        "values": snapshot::live_values(&snapshot),
        "charts": charts,
    });
    state
        .live
        .updates
        .send_replace(Some(Arc::from(message.to_string())));
}

/// Publish and ack rates from our own counters where the management API gave none.
pub fn fill_queue_rates(snapshot: &mut snapshot::Snapshot, latest: &Sample) {
    for queue in &mut snapshot.queues {
        let Some(ours) = latest.queues.iter().find(|q| q.name == queue.name) else {
            continue;
        };
        queue.publish_rate = queue.publish_rate.or(ours.publish_rate);
        queue.ack_rate = queue.ack_rate.or(ours.ack_rate);
    }
}

/// Every configured process's counters; a process that does not answer is left out.
async fn read_metrics(state: &DashboardState) -> Readings {
    let urls = &state.config.dashboard.metrics_urls;
    if urls.is_empty() {
        let lines = exposition::parse(&metrics_exporter::render());
        return Readings::from([(THIS_PROCESS.to_owned(), Totals::from_lines(&lines))]);
    }
    let scrapes = urls.iter().map(|url| async move {
        let text = async {
            state
                .http
                .get(url)
                .timeout(SCRAPE_TIMEOUT)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await
        }
        .await;
        match text {
            Ok(text) => Some((url.clone(), Totals::from_lines(&exposition::parse(&text)))),
            Err(error) => {
                // The URL may carry a password: neither it nor the error's copy is logged.
                tracing::debug!(error = %error.without_url(), "cannot read one process's metrics");
                None
            }
        }
    });
    futures_util::future::join_all(scrapes)
        .await
        .into_iter()
        .flatten()
        .collect()
}
