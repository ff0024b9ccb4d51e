//! The last hour, one sample every few seconds: what the overview's charts draw.
//!
//! Rates come from differences between two readings of our own counters (so they need no
//! RabbitMQ management API); a counter that went down belongs to a restarted process and
//! counts from zero, as Prometheus' `rate()` treats it.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, VecDeque};

use super::exposition::{self, Line};

/// One hour of samples taken every `SAMPLE_EVERY`.
pub const SAMPLE_EVERY_SECONDS: u64 = 5;
pub const CAPACITY: usize = 3600 / SAMPLE_EVERY_SECONDS as usize;

/// Our counters at one moment, summed over every process read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub accepted: f64,
    pub completed: f64,
    pub refunded: f64,
    pub webhooks_delivered: f64,
    pub webhooks_failed: f64,
    /// The API's request latency histogram (cumulative buckets).
    pub api_latency: Vec<(f64, f64)>,
    pub published: BTreeMap<String, f64>,
    pub handled: BTreeMap<String, f64>,
    /// Each provider's circuit breaker: its state (0 closed, 1 half-open, 2 open) and when
    /// it last changed (Unix seconds). Not a counter: processes combine by the worst state.
    pub breakers: BTreeMap<String, (f64, f64)>,
}

impl Totals {
    pub fn from_lines(lines: &[Line]) -> Self {
        Self {
            accepted: exposition::sum(lines, "namaskah_charges_total", &[]),
            completed: exposition::sum(
                lines,
                "namaskah_verifications_finished_total",
                &[("status", "completed")],
            ),
            refunded: exposition::sum(lines, "namaskah_refunds_total", &[]),
            webhooks_delivered: exposition::sum(
                lines,
                "namaskah_webhook_attempts_total",
                &[("outcome", "delivered")],
            ),
            webhooks_failed: exposition::sum(
                lines,
                "namaskah_webhook_attempts_total",
                &[("outcome", "failed")],
            ),
            // Scrapes and health checks are not what a customer waits for.
            api_latency: exposition::buckets(
                lines,
                "namaskah_http_request_duration_seconds",
                "route",
                &["/metrics", "/healthz", "/readyz"],
            ),
            published: exposition::sum_by(lines, "namaskah_messages_published_total", "queue"),
            handled: exposition::sum_by(lines, "namaskah_jobs_total", "queue"),
            breakers: breakers(lines),
        }
    }

    /// The breakers of several processes as one: per provider the worst state, and the
    /// latest change among the processes in that state.
    pub fn combined_breakers<'a>(
        readings: impl IntoIterator<Item = &'a Totals>,
    ) -> BTreeMap<String, (f64, f64)> {
        let mut combined: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for totals in readings {
            for (provider, &(state, changed_at)) in &totals.breakers {
                let entry = combined
                    .entry(provider.clone())
                    .or_insert((state, changed_at));
                if state > entry.0 || (state == entry.0 && changed_at > entry.1) {
                    *entry = (state, changed_at);
                }
            }
        }
        combined
    }

    /// How much every counter grew since `before`, a reading of the same process.
    fn increase_since(&self, before: &Totals) -> Totals {
        let maps = |now: &BTreeMap<String, f64>, earlier: &BTreeMap<String, f64>| {
            now.iter()
                .map(|(key, value)| {
                    let earlier = earlier.get(key).copied().unwrap_or(0.0);
                    (key.clone(), increase(*value, earlier))
                })
                .collect()
        };
        Totals {
            accepted: increase(self.accepted, before.accepted),
            completed: increase(self.completed, before.completed),
            refunded: increase(self.refunded, before.refunded),
            webhooks_delivered: increase(self.webhooks_delivered, before.webhooks_delivered),
            webhooks_failed: increase(self.webhooks_failed, before.webhooks_failed),
            api_latency: bucket_increase(&self.api_latency, &before.api_latency),
            published: maps(&self.published, &before.published),
            handled: maps(&self.handled, &before.handled),
            breakers: self.breakers.clone(),
        }
    }

    /// Adds another process's figures to these.
    fn add(&mut self, other: &Totals) {
        self.accepted += other.accepted;
        self.completed += other.completed;
        self.refunded += other.refunded;
        self.webhooks_delivered += other.webhooks_delivered;
        self.webhooks_failed += other.webhooks_failed;
        for &(bound, count) in &other.api_latency {
            match self.api_latency.iter_mut().find(|(b, _)| *b == bound) {
                Some((_, total)) => *total += count,
                None => self.api_latency.push((bound, count)),
            }
        }
        self.api_latency.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (key, value) in &other.published {
            *self.published.entry(key.clone()).or_insert(0.0) += value;
        }
        for (key, value) in &other.handled {
            *self.handled.entry(key.clone()).or_insert(0.0) += value;
        }
    }
}

fn breakers(lines: &[Line]) -> BTreeMap<String, (f64, f64)> {
    let states = exposition::sum_by(lines, "namaskah_provider_breaker_state", "provider");
    let changed = exposition::sum_by(
        lines,
        "namaskah_provider_breaker_changed_at_seconds",
        "provider",
    );
    states
        .into_iter()
        .map(|(provider, state)| {
            let at = changed.get(&provider).copied().unwrap_or(0.0);
            (provider, (state, at))
        })
        .collect()
}

/// Each process's counters at one moment, by where they were read.
pub type Readings = BTreeMap<String, Totals>;

/// What happened in one queue over a sample's interval.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueSample {
    pub name: String,
    /// Ready plus unacknowledged where known.
    pub depth: Option<f64>,
    pub publish_rate: Option<f64>,
    pub ack_rate: Option<f64>,
}

/// One point of every chart. `None` where nothing is known (drawn as a gap).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub accepted_per_second: Option<f64>,
    pub completed_per_second: Option<f64>,
    pub refunded_per_second: Option<f64>,
    /// Delivered attempts over all attempts, 0 to 1; `None` without attempts.
    pub webhook_success: Option<f64>,
    pub api_p50_seconds: Option<f64>,
    pub api_p99_seconds: Option<f64>,
    pub queues: Vec<QueueSample>,
}

#[derive(Default)]
pub struct History {
    samples: VecDeque<Sample>,
    last_readings: Option<(DateTime<Utc>, Readings)>,
}

impl History {
    pub fn samples(&self) -> impl ExactSizeIterator<Item = &Sample> + Clone {
        self.samples.iter()
    }

    pub fn latest(&self) -> Option<&Sample> {
        self.samples.back()
    }

    /// Adds a sample, dropping the oldest beyond an hour.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// Turns a reading of each process's counters (and the queues' depths) into a sample:
    /// rates over the time since the previous reading, from the processes read both times
    /// (one that stopped answering or just appeared adds nothing rather than a leap). The
    /// first reading gives depths only.
    pub fn record(
        &mut self,
        at: DateTime<Utc>,
        readings: Readings,
        depths: &[(String, Option<f64>)],
    ) -> Sample {
        let previous = self.last_readings.replace((at, readings.clone()));
        let mut sample = Sample {
            at,
            ..Sample::default()
        };
        let growth = previous.as_ref().and_then(|(then, before)| {
            let seconds = (at - *then).num_milliseconds() as f64 / 1000.0;
            let mut growth = Totals::default();
            let mut compared = false;
            for (source, now) in &readings {
                if let Some(earlier) = before.get(source) {
                    growth.add(&now.increase_since(earlier));
                    compared = true;
                }
            }
            (compared && seconds > 0.0).then_some((growth, seconds))
        });
        if let Some((growth, seconds)) = &growth {
            sample.accepted_per_second = Some(growth.accepted / seconds);
            sample.completed_per_second = Some(growth.completed / seconds);
            sample.refunded_per_second = Some(growth.refunded / seconds);
            let attempts = growth.webhooks_delivered + growth.webhooks_failed;
            sample.webhook_success = (attempts > 0.0).then(|| growth.webhooks_delivered / attempts);
            sample.api_p50_seconds = exposition::quantile(&growth.api_latency, 0.5);
            sample.api_p99_seconds = exposition::quantile(&growth.api_latency, 0.99);
        }
        sample.queues = depths
            .iter()
            .map(|(name, depth)| {
                let rate = |pick: fn(&Totals) -> &BTreeMap<String, f64>| {
                    let (growth, seconds) = growth.as_ref()?;
                    Some(pick(growth).get(name).copied().unwrap_or(0.0) / seconds)
                };
                QueueSample {
                    name: name.clone(),
                    depth: *depth,
                    publish_rate: rate(|t| &t.published),
                    ack_rate: rate(|t| &t.handled),
                }
            })
            .collect();
        self.push(sample.clone());
        sample
    }
}

/// How much a counter grew; after a restart (it went down) all of its value is new.
fn increase(now: f64, before: f64) -> f64 {
    if now >= before { now - before } else { now }
}

/// The buckets' growth between two readings (a reset bucket set counts from zero).
fn bucket_increase(now: &[(f64, f64)], before: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let earlier = |bound: f64| {
        before
            .iter()
            .find(|(b, _)| *b == bound)
            .map_or(0.0, |(_, count)| *count)
    };
    // The last bucket counts every observation: if it went down, the process restarted.
    let reset = now
        .last()
        .is_some_and(|&(bound, count)| count < earlier(bound));
    now.iter()
        .map(|&(bound, count)| (bound, if reset { count } else { count - earlier(bound) }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn totals(accepted: f64, published: f64) -> Totals {
        Totals {
            accepted,
            completed: accepted / 2.0,
            webhooks_delivered: accepted,
            webhooks_failed: 0.0,
            api_latency: vec![(0.005, accepted), (f64::INFINITY, accepted)],
            published: BTreeMap::from([("ordering".to_owned(), published)]),
            ..Totals::default()
        }
    }

    #[test]
    fn rates_are_the_growth_over_the_interval_and_survive_a_restart() {
        let mut history = History::default();
        let start = Utc::now();
        let depth = [("ordering".to_owned(), Some(4.0))];
        let one = |totals: Totals| Readings::from([("api".to_owned(), totals)]);
        let first = history.record(start, one(totals(100.0, 10.0)), &depth);
        assert_eq!(first.accepted_per_second, None, "no rate from one reading");
        assert_eq!(first.queues[0].depth, Some(4.0));

        let second = history.record(
            start + Duration::seconds(5),
            one(totals(150.0, 35.0)),
            &depth,
        );
        assert_eq!(second.accepted_per_second, Some(10.0));
        assert_eq!(second.completed_per_second, Some(5.0));
        assert_eq!(second.webhook_success, Some(1.0));
        assert_eq!(second.queues[0].publish_rate, Some(5.0));
        assert!(second.api_p99_seconds.is_some_and(|p99| p99 <= 0.005));

        // The process restarted: its counters began again at zero.
        let third = history.record(
            start + Duration::seconds(10),
            one(totals(20.0, 5.0)),
            &depth,
        );
        assert_eq!(third.accepted_per_second, Some(4.0));
        assert_eq!(third.queues[0].publish_rate, Some(1.0));
        assert_eq!(history.samples().len(), 3);
    }

    #[test]
    fn a_process_that_stops_answering_or_appears_adds_no_leap() {
        let mut history = History::default();
        let start = Utc::now();
        let both = Readings::from([
            ("api".to_owned(), totals(100.0, 0.0)),
            ("worker".to_owned(), totals(1_000.0, 0.0)),
        ]);
        history.record(start, both.clone(), &[]);
        // The worker's scrape failed: only the API's growth counts.
        let api_only = Readings::from([("api".to_owned(), totals(110.0, 0.0))]);
        let sample = history.record(start + Duration::seconds(5), api_only, &[]);
        assert_eq!(sample.accepted_per_second, Some(2.0));
        // It is back; it was not read last time, so it adds nothing this time either.
        let mut back = both;
        back.insert("api".to_owned(), totals(120.0, 0.0));
        let sample = history.record(start + Duration::seconds(10), back, &[]);
        assert_eq!(sample.accepted_per_second, Some(2.0));
    }

    #[test]
    fn breakers_of_several_processes_combine_by_the_worst_state() {
        let process = |state: f64, at: f64| Totals {
            breakers: BTreeMap::from([("5sim".to_owned(), (state, at))]),
            ..Totals::default()
        };
        let readings = [
            process(0.0, 300.0),
            process(2.0, 100.0),
            process(2.0, 200.0),
        ];
        assert_eq!(
            Totals::combined_breakers(&readings).get("5sim"),
            Some(&(2.0, 200.0))
        );
    }

    #[test]
    fn an_hour_is_kept_and_no_more() {
        let mut history = History::default();
        let start = Utc::now();
        for second in 0..(CAPACITY + 10) {
            history.push(Sample {
                at: start + Duration::seconds(second as i64),
                ..Sample::default()
            });
        }
        assert_eq!(history.samples().len(), CAPACITY);
        assert_eq!(
            history.samples().next().map(|s| s.at),
            Some(start + Duration::seconds(10))
        );
    }
}
