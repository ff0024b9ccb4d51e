//! Submitting verifications through the real API, as integrators would: at a fixed rate
//! (open loop: late answers do not slow the submissions) or with a fixed number of clients
//! each submitting as soon as its last answer came (closed loop); some are then cancelled.

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use rand::RngExt;
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    sync::{Semaphore, mpsc::UnboundedSender},
    task::JoinSet,
    time::MissedTickBehavior,
};

/// More submissions than this waiting for their answer means the API cannot keep up; further
/// ones are counted as refused by the client rather than piling up without bound.
const MAX_IN_FLIGHT: usize = 2_048;
/// How long after acceptance a verification picked for cancelling is cancelled.
const CANCEL_AFTER: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug)]
pub enum Pace {
    /// Submissions per second.
    Rate(u32),
    /// Clients submitting back to back.
    Concurrency(u32),
}

#[derive(Clone, Copy, Debug)]
pub enum Until {
    Count(u64),
    Elapsed(Duration),
}

pub struct Plan {
    pub pace: Pace,
    pub until: Until,
    /// While this is set, submissions go on past `until` (a drill's faults must happen
    /// under load, however long a broker node takes to start again).
    pub go_on_while: Option<Arc<AtomicBool>>,
    pub cancel_ratio: f64,
    /// Share of orders sent with an `Idempotency-Key` (unique to the submission).
    pub idempotency_key_ratio: f64,
    /// (service, country) pairs to order, picked at random.
    pub orders: Vec<(String, String)>,
}

/// One submission and its answer.
pub struct Sample {
    pub submitted_at: DateTime<Utc>,
    pub latency_ms: f64,
    /// The verification id, or what went wrong (`422 unknown_service`, `transport: timeout`).
    pub outcome: Result<String, String>,
}

/// `samples` as CSV: submission time (RFC 3339), latency in ms, and the verification id or
/// what went wrong.
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut csv = String::from("submitted_at,latency_ms,outcome\n");
    for sample in samples {
        let outcome = match &sample.outcome {
            Ok(id) => id,
            Err(problem) => problem,
        };
        csv.push_str(&format!(
            "{},{:.3},{outcome}\n",
            sample
                .submitted_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            sample.latency_ms
        ));
    }
    csv
}

pub struct Driven {
    pub samples: Vec<Sample>,
    pub seconds: f64,
    pub cancels_requested: usize,
    /// Submissions sent with an `Idempotency-Key`.
    pub submitted_with_idempotency_key: u64,
    /// Cancel requests answered with something other than 200, 202 or 409 (already final).
    pub cancel_errors: BTreeMap<String, usize>,
}

struct Client {
    http: reqwest::Client,
    /// The API's replicas; submissions take turns, and a cancel goes where its order went.
    apis: Vec<String>,
    keys: Vec<String>,
    plan: Plan,
    issued: AtomicU64,
    /// Submissions sent with an `Idempotency-Key` so far.
    keyed: AtomicU64,
    started: Instant,
}

impl Client {
    /// The next submission's number, or `None` once the plan is done.
    fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let more = match self.plan.until {
            Until::Count(count) => n < count,
            Until::Elapsed(duration) => self.started.elapsed() < duration,
        };
        let held_open = self
            .plan
            .go_on_while
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed));
        (more || held_open).then_some(n)
    }

    fn api(&self, n: u64) -> &str {
        &self.apis[n as usize % self.apis.len()]
    }

    async fn submit(&self, n: u64) -> Sample {
        let key = &self.keys[n as usize % self.keys.len()];
        let (service, country) = {
            let mut rng = rand::rng();
            &self.plan.orders[rng.random_range(0..self.plan.orders.len())]
        };
        let mut request = self
            .http
            .post(format!("{}/v1/verifications", self.api(n)))
            .bearer_auth(key)
            .json(&serde_json::json!({ "service": service, "country": country }));
        if self.plan.idempotency_key_ratio > 0.0
            && rand::rng().random_bool(self.plan.idempotency_key_ratio)
        {
            request = request.header("Idempotency-Key", format!("load-{n}"));
            self.keyed.fetch_add(1, Ordering::Relaxed);
        }
        let submitted_at = Utc::now();
        let clock = Instant::now();
        let answer = request.send().await;
        let outcome = match answer {
            Ok(response) => {
                let status = response.status();
                let body: serde_json::Value = response.json().await.unwrap_or_default();
                if status == reqwest::StatusCode::CREATED {
                    body["id"]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| "201 without an id".to_owned())
                } else {
                    let code = body["error"]["code"].as_str().unwrap_or("unknown");
                    Err(format!("{} {code}", status.as_u16()))
                }
            }
            Err(error) => Err(transport_error(&error)),
        };
        Sample {
            submitted_at,
            latency_ms: clock.elapsed().as_secs_f64() * 1_000.0,
            outcome,
        }
    }

    async fn cancel(&self, n: u64, id: String) -> Result<(), String> {
        tokio::time::sleep(CANCEL_AFTER).await;
        let key = &self.keys[n as usize % self.keys.len()];
        let response = self
            .http
            .post(format!("{}/v1/verifications/{id}/cancel", self.api(n)))
            .bearer_auth(key)
            .send()
            .await
            .map_err(|error| format!("cancel {}", transport_error(&error)))?;
        match response.status().as_u16() {
            200 | 202 | 409 => Ok(()),
            other => Err(format!("cancel {other}")),
        }
    }

    fn should_cancel(&self) -> bool {
        self.plan.cancel_ratio > 0.0 && rand::rng().random_bool(self.plan.cancel_ratio)
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "other"
    };
    format!("transport: {kind}")
}

/// What each submission task reports.
enum Event {
    Submitted(Sample),
    CancelRequested,
    CancelFailed(String),
}

/// Submits according to `plan` to the API's replicas `apis` (at least one), with one of
/// `keys` per submission in turn, and waits for every answer and every cancel.
pub async fn drive(
    apis: &[String],
    keys: Vec<String>,
    plan: Plan,
    progress: &ProgressBar,
) -> Driven {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .build()
        .unwrap_or_default();
    let pace = plan.pace;
    let client = Arc::new(Client {
        http,
        apis: apis.to_vec(),
        keys,
        plan,
        issued: AtomicU64::new(0),
        keyed: AtomicU64::new(0),
        started: Instant::now(),
    });
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<Event>();
    // One submission, then perhaps its cancel, reported as they happen.
    let submit_one = {
        let progress = progress.clone();
        move |client: Arc<Client>, n: u64, events: UnboundedSender<Event>| {
            let progress = progress.clone();
            async move {
                let sample = client.submit(n).await;
                progress.inc(1);
                let accepted = sample.outcome.clone().ok();
                let _ = events.send(Event::Submitted(sample));
                if let Some(id) = accepted
                    && client.should_cancel()
                {
                    let _ = events.send(Event::CancelRequested);
                    if let Err(kind) = client.cancel(n, id).await {
                        let _ = events.send(Event::CancelFailed(kind));
                    }
                }
            }
        }
    };
    let mut tasks = JoinSet::new();
    match pace {
        Pace::Rate(rate) => {
            let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
            ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
            loop {
                ticker.tick().await;
                let Some(n) = client.next() else { break };
                while tasks.try_join_next().is_some() {}
                let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
                    progress.inc(1);
                    let _ = events.send(Event::Submitted(Sample {
                        submitted_at: Utc::now(),
                        latency_ms: 0.0,
                        outcome: Err(format!("client: over {MAX_IN_FLIGHT} in flight")),
                    }));
                    continue;
                };
                let task = submit_one(Arc::clone(&client), n, events.clone());
                tasks.spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
        }
        Pace::Concurrency(clients) => {
            for _ in 0..clients.max(1) {
                let client = Arc::clone(&client);
                let events = events.clone();
                let submit_one = submit_one.clone();
                tasks.spawn(async move {
                    while let Some(n) = client.next() {
                        submit_one(Arc::clone(&client), n, events.clone()).await;
                    }
                });
            }
        }
    }
    let seconds_submitting = {
        // The submissions end when the last answer is in; cancels may still run.
        while tasks.join_next().await.is_some() {}
        client.started.elapsed().as_secs_f64()
    };
    drop(events);
    let mut driven = Driven {
        samples: Vec::new(),
        seconds: seconds_submitting,
        cancels_requested: 0,
        submitted_with_idempotency_key: client.keyed.load(Ordering::Relaxed),
        cancel_errors: BTreeMap::new(),
    };
    while let Some(event) = received.recv().await {
        match event {
            Event::Submitted(sample) => driven.samples.push(sample),
            Event::CancelRequested => driven.cancels_requested += 1,
            Event::CancelFailed(kind) => *driven.cancel_errors.entry(kind).or_insert(0) += 1,
        }
    }
    driven
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_become_one_csv_line_each_with_their_outcome() {
        let at = DateTime::parse_from_rfc3339("2026-12-02T10:00:00.5Z")
            .expect("a time")
            .with_timezone(&Utc);
        let samples = [
            Sample {
                submitted_at: at,
                latency_ms: 1.23456,
                outcome: Ok("ver_1".to_owned()),
            },
            Sample {
                submitted_at: at,
                latency_ms: 30_000.0,
                outcome: Err("transport: timeout".to_owned()),
            },
        ];
        assert_eq!(
            samples_csv(&samples),
            "submitted_at,latency_ms,outcome\n\
             2026-12-02T10:00:00.500000Z,1.235,ver_1\n\
             2026-12-02T10:00:00.500000Z,30000.000,transport: timeout\n"
        );
    }
}
