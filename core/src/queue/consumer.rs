//! The plumbing every worker shares: receive, decode, handle, then ack, retry or park.
//!
//! A worker only implements [`JobHandler`]: given a message, do the work and say how it
//! went. This module turns that answer into broker actions:
//!
//! - `Ok(Handled::Done)`: ack.
//! - `Ok(Handled::Again { after, .. })`: a short wait is sat out here, the message held
//!   unacknowledged, and the follow-up handled at once (`hold`); a longer one publishes the
//!   follow-up through a delay tier, then acks (the polling worker's "no SMS yet, look again
//!   in 3 s").
//! - `Ok(Handled::FollowUps(..))`: publish each follow-up, then ack (the deliveries of a
//!   webhook group that go on as messages of their own).
//! - `Err(JobError::Retryable)`: publish the next attempt through the delay tier the retry
//!   policy picks, then ack; after the last attempt, park.
//! - `Err(JobError::Unavailable)`: the database was away; the same attempt runs again after
//!   the retry policy's first delay, held or through a delay tier like `Again`. An outage
//!   spends no attempt, so a restart of PostgreSQL parks nothing.
//! - `Err(JobError::Permanent)` or an undecodable body: park at once.
//!
//! Parking publishes the message to `<queue>.dead` with headers saying why. Every publish
//! waits for its confirm before the ack, so a message is never dropped between the two; if
//! the process dies in between, the broker redelivers and the handler's idempotence makes
//! the second run harmless.
//!
//! Every exchange with the broker has a deadline ([`super::BROKER_REPLY_TIMEOUT`]), and a
//! lost connection waits only briefly for the handlers at work: a worker that is alive must
//! be consuming.

use async_trait::async_trait;
use chrono::Utc;
use futures_util::{FutureExt, StreamExt};
use lapin::{
    Channel, Connection,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::{AMQPValue, FieldTable, ShortString},
};
use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};
use tokio::{sync::Semaphore, task::JoinSet};
use tracing::Instrument;

use super::{
    BrokerError, Envelope, QueueName, TRACE_ID_HEADER, Topology, backoff_delay,
    close_within_timeout,
    hold::{HoldEnded, Holds},
    open_confirming,
    relay::{expect_ack, publish},
    topology::long_string,
    within_reply_timeout,
};
use crate::{
    Shutdown,
    config::{HoldPolicy, RetryPolicy},
    errors::{self, Failure},
    store::StoreError,
};

/// How long a message whose follow-up could not be published waits before it is requeued.
const REQUEUE_PAUSE: Duration = Duration::from_secs(1);

/// Which delivery of a message this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub max: u32,
}

impl Attempt {
    /// No retry will follow this one: a handler should settle the work rather than fail.
    pub fn is_last(self) -> bool {
        self.number >= self.max
    }
}

/// How a handler finished.
#[derive(Debug)]
pub enum Handled {
    Done,
    /// Not finished: run `next` again after `after` (a new attempt budget, not a retry).
    Again {
        after: Duration,
        next: Envelope,
    },
    /// This message is done with, but parts of its work go on as messages of their own.
    FollowUps(Vec<FollowUp>),
}

/// A message to publish, due after `after`, before the current one is acked.
#[derive(Debug)]
pub struct FollowUp {
    pub after: Duration,
    pub next: Envelope,
}

/// Why a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Might work later: a provider or the database was unreachable.
    #[error("{0}")]
    Retryable(String),
    /// Will never work: retrying would only repeat the failure.
    #[error("{0}")]
    Permanent(String),
    /// The database was unreachable or overloaded: nothing about this message failed, so
    /// it waits for the database without spending an attempt.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for JobError {
    /// Database trouble is worth a retry: the row is still there when the database is back.
    /// An outage (`StoreError::is_connection_problem`) spends no attempt.
    fn from(error: StoreError) -> Self {
        if error.is_connection_problem() {
            JobError::Unavailable(error.to_string())
        } else {
            JobError::Retryable(error.to_string())
        }
    }
}

/// A worker's logic for one queue.
#[async_trait]
pub trait JobHandler: Send + Sync + 'static {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError>;
}

#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    pub amqp_url: String,
    pub topology: Topology,
    pub queue: QueueName,
    /// Messages handled at once.
    pub prefetch: u16,
    /// Messages held through a short wait, on top of `prefetch`.
    pub hold: HoldPolicy,
    pub retry: RetryPolicy,
}

/// Consumes `options.queue` until shutdown, reconnecting whenever the broker goes away.
/// On shutdown it cancels its subscription, lets in-flight messages finish, and returns.
pub async fn run_consumer(
    options: ConsumerOptions,
    handler: Arc<dyn JobHandler>,
    shutdown: Shutdown,
) {
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        match consume_until_disconnected(&options, &handler, &shutdown).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(queue = %options.queue, %error, failures, "consumer lost RabbitMQ; reconnecting");
                }
            }
        }
        if shutdown.is_triggered() {
            break;
        }
        let pause = Duration::from_millis(250 * u64::from(failures.clamp(1, 20)));
        tokio::select! {
            _ = shutdown.wait() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!(queue = %options.queue, "consumer stopped");
}

/// One connection's worth of consuming.
async fn consume_until_disconnected(
    options: &ConsumerOptions,
    handler: &Arc<dyn JobHandler>,
    shutdown: &Shutdown,
) -> Result<(), BrokerError> {
    let consumer_tag = format!(
        "namaskah-{}-{}",
        options.queue,
        uuid::Uuid::new_v4().simple()
    );
    let (connection, channel, mut deliveries) = subscribe(options, &consumer_tag).await?;
    tracing::info!(queue = %options.queue, prefetch = options.prefetch, "consuming");
    let handling = Arc::new(Semaphore::new(usize::from(options.prefetch.max(1))));
    let holds = Arc::new(Holds::new(options.hold, options.queue));

    let mut in_flight = JoinSet::new();
    let outcome = loop {
        tokio::select! {
            _ = shutdown.wait() => {
                let _ = channel
                    .basic_cancel(consumer_tag.clone().into(), BasicCancelOptions::default())
                    .await;
                break Ok(());
            }
            // Reap finished tasks so the set does not grow without bound.
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            delivery = deliveries.next() => match delivery {
                Some(Ok(delivery)) => {
                    let task = Processor {
                        channel: channel.clone(),
                        options: options.clone(),
                        handler: Arc::clone(handler),
                        handling: Arc::clone(&handling),
                        holds: Arc::clone(&holds),
                        shutdown: shutdown.clone(),
                    };
                    in_flight.spawn(async move { task.process(delivery).await });
                }
                Some(Err(error)) => break Err(BrokerError::Channel(error)),
                None => break Err(BrokerError::NotConfirmed("the broker cancelled the consumer".to_owned())),
            },
        }
    };
    if outcome.is_ok() {
        // Shutting down: finish what was started; their acks go out on this channel before
        // it closes.
        while in_flight.join_next().await.is_some() {}
        close_within_timeout(&connection).await;
    } else {
        finish_or_leave_behind(&mut in_flight, options.queue).await;
        // A lost connection may take its close's whole deadline to answer; the new one
        // need not wait for that.
        tokio::spawn(async move { close_within_timeout(&connection).await });
    }
    outcome
}

/// How long a consumer that lost its connection waits for the messages it was handling
/// before it reconnects without them.
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(5);

/// After a lost connection, gives the handlers in flight a moment to finish their work (their
/// acks fail; the broker delivers those messages again), then leaves the rest to finish in
/// the background. A handler stuck on a hung provider must not keep the worker from
/// consuming on a new connection: the broker has already given its message back, and the
/// handlers are idempotent.
async fn finish_or_leave_behind(in_flight: &mut JoinSet<()>, queue: QueueName) {
    let finished = tokio::time::timeout(IN_FLIGHT_GRACE, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(%queue, left = in_flight.len(), "reconnecting while some handlers are still at work; their messages come again");
        in_flight.detach_all();
    }
}

/// A connection, its confirming channel with the topology declared, and the subscription.
async fn subscribe(
    options: &ConsumerOptions,
    consumer_tag: &str,
) -> Result<(Connection, Channel, lapin::Consumer), BrokerError> {
    let (connection, channel) =
        open_confirming(&options.amqp_url, options.queue.as_str(), &options.topology).await?;
    // The broker may hand over the held messages on top of those being handled.
    let unacknowledged = options.prefetch.saturating_add(options.hold.max_messages);
    let deliveries = within_reply_timeout(async {
        channel
            .basic_qos(unacknowledged, BasicQosOptions::default())
            .await
            .map_err(BrokerError::Channel)?;
        channel
            .basic_consume(
                options.topology.queue(options.queue).into(),
                consumer_tag.to_owned().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::Channel)
    })
    .await?;
    Ok((connection, channel, deliveries))
}

/// Handles one delivery from decode to ack.
struct Processor {
    channel: Channel,
    options: ConsumerOptions,
    handler: Arc<dyn JobHandler>,
    /// One permit per message being handled (`prefetch`); a held message gives its back.
    handling: Arc<Semaphore>,
    holds: Arc<Holds>,
    shutdown: Shutdown,
}

impl Processor {
    async fn process(self, delivery: Delivery) {
        if delivery.redelivered {
            metrics::counter!("namaskah_messages_redelivered_total", "queue" => self.options.queue.as_str())
                .increment(1);
        }
        let envelope = match Envelope::parse(&delivery.data) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(queue = %self.options.queue, %error, "parking a malformed message");
                self.track("malformed", &error.to_string(), None);
                self.park(&delivery, "malformed", &error.to_string(), 1)
                    .await;
                return;
            }
        };
        let span = tracing::info_span!(
            "job",
            queue = %self.options.queue,
            subject = %envelope.job.subject_id(),
            attempt = envelope.attempt,
            trace_id = %envelope.trace_id,
        );
        crate::telemetry::adopt_trace_id(&span, &envelope.trace_id);
        self.process_envelope(delivery, envelope)
            .instrument(span)
            .await;
    }

    async fn process_envelope(&self, delivery: Delivery, mut envelope: Envelope) {
        // The broker futures of `forward` and `settle` are large; boxed, they take memory
        // only when they run, not in every held message's task.
        loop {
            let attempt = Attempt {
                number: envelope.attempt,
                max: self.options.retry.max_attempts,
            };
            let mut result = self.handle(&envelope, attempt).await;
            if let Err(JobError::Unavailable(reason)) = result {
                tracing::info!(%reason, "the database is away; waiting for it without spending the attempt");
                self.track("unavailable", &reason, Some(&envelope));
                result = Ok(Handled::Again {
                    after: self.options.retry.base_delay,
                    next: envelope.clone(),
                });
            }
            if let Ok(Handled::Again { after, next }) = result {
                match self.holds.wait(after, &self.shutdown).await {
                    HoldEnded::Waited => {
                        envelope = next;
                        continue;
                    }
                    // Not held: the rest of the wait goes round a delay tier.
                    HoldEnded::Send { after } => result = Ok(Handled::Again { after, next }),
                }
            }
            Box::pin(self.settle(&delivery, &envelope, attempt, result)).await;
            return;
        }
    }

    /// Runs the handler once, with one of the `prefetch` permits, and counts the outcome.
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        let Ok(_permit) = self.handling.acquire().await else {
            return Err(JobError::Retryable("the consumer is closing".to_owned()));
        };
        // A panicking handler must not leave its message unacknowledged forever.
        let started = std::time::Instant::now();
        let result = AssertUnwindSafe(self.handler.handle(envelope, attempt))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(JobError::Retryable("the handler panicked".to_owned())));
        let queue = self.options.queue.as_str();
        let outcome = match &result {
            Ok(Handled::Done) => "done",
            Ok(Handled::Again { .. }) => "again",
            Ok(Handled::FollowUps(follow_ups)) if follow_ups.is_empty() => "done",
            Ok(Handled::FollowUps(_)) => "again",
            Err(JobError::Retryable(_)) => "retryable",
            Err(JobError::Permanent(_)) => "permanent",
            Err(JobError::Unavailable(_)) => "unavailable",
        };
        metrics::counter!("namaskah_jobs_total", "queue" => queue, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("namaskah_job_duration_seconds", "queue" => queue)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// Turns a handler's answer into broker actions: ack, follow-ups, retry or park.
    async fn settle(
        &self,
        delivery: &Delivery,
        envelope: &Envelope,
        attempt: Attempt,
        result: Result<Handled, JobError>,
    ) {
        match result {
            Ok(Handled::Done) => self.ack(delivery).await,
            Ok(Handled::Again { after, next }) => {
                self.forward(delivery, &[FollowUp { after, next }]).await;
            }
            Ok(Handled::FollowUps(follow_ups)) => self.forward(delivery, &follow_ups).await,
            Err(JobError::Retryable(reason)) if !attempt.is_last() => {
                let delay = backoff_delay(&self.options.retry, attempt.number);
                tracing::info!(%reason, retry_in = ?delay, "retrying later");
                self.track("retryable", &reason, Some(envelope));
                let next = FollowUp {
                    after: delay,
                    next: envelope.next_attempt(),
                };
                self.forward(delivery, &[next]).await;
            }
            Err(JobError::Retryable(reason)) => {
                tracing::warn!(%reason, "retries exhausted; parking");
                self.track("retries_exhausted", &reason, Some(envelope));
                self.park(delivery, "retries_exhausted", &reason, attempt.number)
                    .await;
            }
            // Turned into `Again` before the hold (`process_envelope`); an outage never parks.
            Err(JobError::Unavailable(_)) => {
                let next = FollowUp {
                    after: self.options.retry.base_delay,
                    next: envelope.clone(),
                };
                self.forward(delivery, &[next]).await;
            }
            Err(JobError::Permanent(reason)) => {
                tracing::warn!(%reason, "permanent failure; parking");
                self.track("permanent", &reason, Some(envelope));
                self.park(delivery, "permanent_error", &reason, attempt.number)
                    .await;
            }
        }
    }

    /// Records a failure for error tracking.
    fn track(&self, kind: &str, message: &str, envelope: Option<&Envelope>) {
        let verification_id = envelope
            .filter(|e| e.job.is_about_a_verification())
            .map(|e| e.job.subject_id());
        errors::record(Failure {
            role: "worker",
            queue: Some(self.options.queue.as_str().to_owned()),
            kind: kind.to_owned(),
            message: message.to_owned(),
            verification_id,
            trace_id: envelope.map(|e| e.trace_id.clone()),
        });
    }

    /// Publishes each follow-up to come back after its delay, waits for every confirm, then
    /// acks the current delivery; if any publish fails, the delivery goes back to its queue
    /// (the follow-ups already out are duplicates the handlers shrug off).
    async fn forward(&self, delivery: &Delivery, follow_ups: &[FollowUp]) {
        let carried = carried_headers(delivery);
        let published = within_reply_timeout(async {
            let mut confirms = Vec::with_capacity(follow_ups.len());
            for FollowUp { after, next } in follow_ups {
                let mut headers = carried.clone();
                headers.insert(TRACE_ID_HEADER.into(), long_string(&next.trace_id));
                let confirm = publish(
                    &self.channel,
                    &self.options.topology,
                    next.job.queue(),
                    &next.to_bytes(),
                    *after,
                    headers,
                )
                .await?;
                confirms.push(confirm);
            }
            for confirm in confirms {
                expect_ack(confirm.await.map_err(BrokerError::Channel)?)?;
            }
            Ok(())
        })
        .await;
        match published {
            Ok(()) => self.ack(delivery).await,
            Err(error) => {
                tracing::warn!(%error, "cannot schedule the follow-up; returning the message to its queue");
                self.requeue(delivery).await;
            }
        }
    }

    async fn park(&self, delivery: &Delivery, reason: &str, error: &str, attempts: u32) {
        let mut headers = carried_headers(delivery);
        headers.insert("x-park-reason".into(), long_string(reason));
        headers.insert("x-error".into(), long_string(&truncate(error, 1000)));
        headers.insert(
            "x-attempts".into(),
            AMQPValue::LongLongInt(i64::from(attempts)),
        );
        headers.insert(
            "x-original-queue".into(),
            long_string(self.options.queue.as_str()),
        );
        headers.insert("x-parked-at".into(), long_string(&Utc::now().to_rfc3339()));
        let parking = self.options.topology.parking_queue(self.options.queue);
        let published = within_reply_timeout(async {
            let confirm = self
                .channel
                .basic_publish(
                    "".into(),
                    ShortString::from(parking),
                    lapin::options::BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &delivery.data,
                    lapin::BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_headers(headers),
                )
                .await
                .map_err(BrokerError::Channel)?;
            expect_ack(confirm.await.map_err(BrokerError::Channel)?)
        })
        .await;
        match published {
            Ok(()) => self.ack(delivery).await,
            Err(error) => {
                tracing::warn!(%error, "cannot park the message; returning it to its queue");
                self.requeue(delivery).await;
            }
        }
    }

    /// Gives a message back to the broker for another delivery, after a pause so a broker
    /// that refuses our publishes is not hammered. The quorum queue's delivery limit parks
    /// a message that comes back too often.
    async fn requeue(&self, delivery: &Delivery) {
        tokio::time::sleep(REQUEUE_PAUSE).await;
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        let nacked = within_reply_timeout(async {
            delivery
                .acker
                .nack(options)
                .await
                .map_err(BrokerError::Channel)
        });
        if let Err(error) = nacked.await {
            // The channel is gone; the broker requeues unacknowledged messages itself.
            tracing::warn!(%error, "nack failed");
        }
    }

    async fn ack(&self, delivery: &Delivery) {
        let acked = within_reply_timeout(async {
            delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .map_err(BrokerError::Channel)
        });
        if let Err(error) = acked.await {
            // The broker will redeliver it; handlers are idempotent.
            tracing::warn!(%error, "ack failed");
        }
    }
}

/// Headers that travel with a message across retries: when it was first seen.
fn carried_headers(delivery: &Delivery) -> FieldTable {
    let mut headers = FieldTable::default();
    let first_seen = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-seen").cloned())
        .unwrap_or_else(|| long_string(&Utc::now().to_rfc3339()));
    headers.insert("x-first-seen".into(), first_seen);
    if let Some(trace_id) = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(TRACE_ID_HEADER).cloned())
    {
        headers.insert(TRACE_ID_HEADER.into(), trace_id);
    }
    headers
}

fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}
