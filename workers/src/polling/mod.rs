//! The polling worker: waits for the SMS of a verification that has a number.
//!
//! A `poll_sms` message loads its verification (in one statement with the other messages in
//! hand, `batch::Batcher`) and asks the provider about the order:
//! - the SMS is there → store code and text, `completed` (one statement with the other
//!   completions in hand), tell the provider we are done;
//! - not yet → look again later, on the poll cadence (fast at first, then slower), never
//!   past the deadline;
//! - a first poll that comes before its time (published at once for the consumer to hold,
//!   see `ordering`) waits until it is due;
//! - a group of polls (the first polls of numbers recorded together) is asked about member
//!   by member, side by side, once all are due (`group`);
//! - the deadline has passed → cancel the order at the provider, `timed_out`, refund queued;
//! - the provider ended the order itself → `failed` (or `timed_out`), refund queued.
//!
//! A `cancel_order` message (the customer cancelled) cancels the order at the provider, then
//! `cancelled`, refund queued. If the SMS beat the cancellation, the provider refuses to
//! cancel and the verification completes instead. Every ending is one conditional update
//! from `waiting_sms`, so a cancel racing an SMS ends in exactly one of the two.

mod group;

use async_trait::async_trait;
use chrono::Utc;
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;

use namaskah_core::{
    config::Config,
    domain::{Status, Transition, VerificationId},
    providers::{self, OrderState, Provider, ProviderError},
    queue::{Attempt, Envelope, Handled, Job, JobError, JobHandler},
    store::verifications::{self, Guard, ReceivedSms, Verification},
    telemetry::LogLimit,
};

use crate::{WorkerDeps, batch::Batcher, settle_owing_refund};

/// The shortest wait between two polls, so a deadline a few milliseconds away does not
/// cause a burst of polls.
const MIN_POLL_DELAY: Duration = Duration::from_millis(250);

/// How often a provider's repeated refusals are logged.
const PROVIDER_WARNING_INTERVAL: Duration = Duration::from_secs(60);

pub struct PollingWorker {
    deps: WorkerDeps,
    /// Loads the verifications of the messages in hand in one statement.
    loads: Batcher<VerificationId, Option<Verification>>,
    /// Completes the verifications whose SMS came, in one statement.
    completions: Batcher<ReceivedSms, Option<Verification>>,
    /// A provider that refuses cancels or finishes refuses them all: one warning a minute
    /// per provider (each call is counted in `namaskah_provider_requests_total`).
    provider_warnings: LogLimit,
    /// The members of groups asked about at once: as many as `WORKER_PREFETCH`, as if each
    /// had come as a message of its own, so a group does not multiply the calls in flight.
    group_slots: Semaphore,
}

impl PollingWorker {
    pub fn new(deps: WorkerDeps) -> Result<Self, crate::WorkerSetupError> {
        // One connection for the loads, one for the completions.
        let keyed = crate::batch::keyed_pool(&deps.config, 2)?;
        let pool = keyed.clone();
        let batch = crate::batch::limit(&deps.config);
        let loads = Batcher::spawn("polling_loads", batch, move |ids: Vec<VerificationId>| {
            let pool = pool.clone();
            async move { verifications::find_many(&pool, &ids).await }
        });
        let pool = keyed;
        let completions = Batcher::spawn(
            "polling_completions",
            batch,
            move |received: Vec<ReceivedSms>| {
                let pool = pool.clone();
                async move { verifications::complete_many(&pool, &received).await }
            },
        );
        let group_slots = Semaphore::new(usize::from(deps.config.worker_prefetch));
        Ok(Self {
            deps,
            loads,
            completions,
            provider_warnings: LogLimit::new(PROVIDER_WARNING_INTERVAL),
            group_slots,
        })
    }

    async fn poll(
        &self,
        envelope: &Envelope,
        verification: Verification,
    ) -> Result<Handled, JobError> {
        let Some((provider, order_id)) = self.provider_of(&verification) else {
            // The provider was removed from the configuration: nobody can answer, so the
            // verification waits out its deadline and is refunded.
            return self.wait_or_expire(envelope, &verification, None).await;
        };
        // A check does not run past the deadline: then the order is cancelled and refunded
        // (and a code that came at the last moment still reaches the customer, see `expire`).
        let until_deadline = verification
            .deadline
            .and_then(|deadline| (deadline - Utc::now()).to_std().ok())
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + until_deadline;
        match providers::before(deadline, provider.check(&order_id)).await {
            Ok(OrderState::Received { code, text }) => {
                self.complete(&verification, provider, &order_id, &code, &text)
                    .await
            }
            Ok(OrderState::Waiting) => {
                self.wait_or_expire(envelope, &verification, Some(provider))
                    .await
            }
            Ok(OrderState::TimedOut) => {
                self.settle(
                    &verification,
                    Transition::TimeOut,
                    Some("the provider's order timed out"),
                )
                .await
            }
            Ok(OrderState::Cancelled) if verification.cancel_requested_at.is_some() => {
                self.settle(&verification, Transition::CancelWaiting, None)
                    .await
            }
            Ok(OrderState::Cancelled) => {
                self.settle(
                    &verification,
                    Transition::FailWaiting,
                    Some("the provider cancelled the order"),
                )
                .await
            }
            Ok(OrderState::Banned) => {
                self.settle(
                    &verification,
                    Transition::FailWaiting,
                    Some("the number was banned"),
                )
                .await
            }
            Ok(OrderState::Finished) => {
                self.settle(
                    &verification,
                    Transition::FailWaiting,
                    Some("the provider finished the order without an SMS"),
                )
                .await
            }
            Err(ProviderError::OrderNotFound) => {
                self.settle(
                    &verification,
                    Transition::FailWaiting,
                    Some("the provider no longer knows the order"),
                )
                .await
            }
            Err(ProviderError::OutOfTime) => self.expire(&verification, Some(provider)).await,
            Err(error) => {
                // Until the deadline, a provider that cannot answer is simply asked again.
                tracing::info!(%error, "could not check the order; polling again later");
                self.wait_or_expire(envelope, &verification, Some(provider))
                    .await
            }
        }
    }

    /// Not yet: poll again, or time out if the deadline has passed.
    async fn wait_or_expire(
        &self,
        envelope: &Envelope,
        verification: &Verification,
        provider: Option<&Arc<dyn Provider>>,
    ) -> Result<Handled, JobError> {
        let now = Utc::now();
        let deadline = verification.deadline.unwrap_or(now);
        if now >= deadline {
            return self.expire(verification, provider).await;
        }
        let elapsed = (now - verification.number_assigned_at.unwrap_or(now))
            .to_std()
            .unwrap_or_default();
        let until_deadline = (deadline - now).to_std().unwrap_or_default();
        let after = next_poll_delay(elapsed, &self.deps.config.poll_cadence)
            .min(until_deadline)
            .max(MIN_POLL_DELAY);
        Ok(Handled::Again {
            after,
            next: envelope.follow_up(Job::PollSms {
                verification_id: verification.id,
            }),
        })
    }

    /// The deadline passed: give the number back and time out. If the SMS slipped in at the
    /// last moment, the provider refuses the cancel and the customer gets the code.
    async fn expire(
        &self,
        verification: &Verification,
        provider: Option<&Arc<dyn Provider>>,
    ) -> Result<Handled, JobError> {
        if let (Some(provider), Some(order_id)) =
            (provider, verification.provider_order_id.as_deref())
        {
            match provider.cancel(order_id).await {
                Ok(()) | Err(ProviderError::OrderNotFound) => {}
                Err(ProviderError::OrderHasSms) => {
                    if let Ok(OrderState::Received { code, text }) = provider.check(order_id).await
                    {
                        return self
                            .complete(verification, provider, order_id, &code, &text)
                            .await;
                    }
                }
                // The provider's own timer frees the number; the customer's refund must not
                // wait for it.
                Err(error) => {
                    if let Some(held_back) = self.provider_warnings.check(provider.name()) {
                        tracing::warn!(provider = provider.name(), %error, held_back, "could not cancel the expired order at the provider");
                    }
                }
            }
        }
        self.settle(
            verification,
            Transition::TimeOut,
            Some("no SMS arrived before the deadline"),
        )
        .await
    }

    async fn complete(
        &self,
        verification: &Verification,
        provider: &Arc<dyn Provider>,
        order_id: &str,
        code: &str,
        text: &str,
    ) -> Result<Handled, JobError> {
        let completed = self
            .completions
            .call(ReceivedSms {
                id: verification.id,
                account_id: verification.account_id,
                code: code.to_owned(),
                text: text.to_owned(),
            })
            .await?;
        if let Some(completed) = &completed {
            metrics::counter!("namaskah_verifications_finished_total", "status" => "completed")
                .increment(1);
            if let Some(done_at) = completed.completed_at {
                let took = (done_at - completed.created_at)
                    .to_std()
                    .unwrap_or_default();
                metrics::histogram!("namaskah_verification_completion_seconds")
                    .record(took.as_secs_f64());
            }
            tracing::info!("SMS received; verification completed");
            if let Err(error) = provider.finish(order_id).await
                && let Some(held_back) = self.provider_warnings.check(provider.name())
            {
                tracing::warn!(provider = provider.name(), %error, held_back, "could not finish the order at the provider");
            }
        }
        Ok(Handled::Done)
    }

    async fn settle(
        &self,
        verification: &Verification,
        transition: Transition,
        reason: Option<&str>,
    ) -> Result<Handled, JobError> {
        settle_owing_refund(&self.deps, verification, transition, Guard::Status, reason).await
    }

    /// The customer cancelled: cancel at the provider first, then the verification.
    async fn cancel(&self, verification: Verification) -> Result<Handled, JobError> {
        let Some((provider, order_id)) = self.provider_of(&verification) else {
            return self
                .settle(&verification, Transition::CancelWaiting, None)
                .await;
        };
        match provider.cancel(&order_id).await {
            Ok(()) | Err(ProviderError::OrderNotFound) => {
                self.settle(&verification, Transition::CancelWaiting, None)
                    .await
            }
            Err(ProviderError::OrderHasSms) => match provider.check(&order_id).await {
                Ok(OrderState::Received { code, text }) => {
                    self.complete(&verification, provider, &order_id, &code, &text)
                        .await
                }
                Ok(_) => Err(JobError::Retryable(
                    "the provider says the order has an SMS, but shows none".to_owned(),
                )),
                Err(error) => Err(JobError::Retryable(error.to_string())),
            },
            Err(error) if error.is_retryable() => Err(JobError::Retryable(error.to_string())),
            // Polling goes on meanwhile; at the deadline the verification times out and is
            // refunded, so the customer's money is safe either way.
            Err(error) => Err(JobError::Permanent(format!(
                "the provider refused to cancel: {error}"
            ))),
        }
    }

    fn provider_of<'a>(
        &'a self,
        verification: &Verification,
    ) -> Option<(&'a Arc<dyn Provider>, String)> {
        let provider = self.deps.providers.get(verification.provider.as_deref()?)?;
        Some((provider, verification.provider_order_id.clone()?))
    }
}

#[async_trait]
impl JobHandler for PollingWorker {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        let verification_id = match &envelope.job {
            Job::PollSms { verification_id } | Job::CancelOrder { verification_id } => {
                *verification_id
            }
            Job::PollSmsGroup { polls } => {
                return Ok(self.poll_group(envelope, polls, attempt).await);
            }
            _ => {
                return Err(JobError::Permanent(format!(
                    "the polling queue does not take {:?}",
                    envelope.job
                )));
            }
        };
        let Some(verification) = self.loads.call(verification_id).await? else {
            return Err(JobError::Permanent("no such verification".to_owned()));
        };
        if verification.status != Status::WaitingSms {
            tracing::debug!(status = %verification.status, "not waiting for an SMS any more");
            return Ok(Handled::Done);
        }
        if let Job::CancelOrder { .. } = envelope.job {
            return self.cancel(verification).await;
        }
        if let Some(wait) = self.not_due_for(&verification) {
            return Ok(Handled::Again {
                after: wait,
                next: envelope.clone(),
            });
        }
        self.poll(envelope, verification).await
    }
}

impl PollingWorker {
    /// How long until the first poll of a verification is due, if it is not yet. The
    /// ordering worker publishes the first poll at once when the wait is short enough for
    /// the consumer to hold; it waits here, not at the provider.
    fn not_due_for(&self, verification: &Verification) -> Option<Duration> {
        let assigned = verification.number_assigned_at?;
        let due =
            assigned + chrono::Duration::from_std(first_poll_after(&self.deps.config)).ok()?;
        let wait = (due - Utc::now()).to_std().ok()?;
        (wait >= MIN_POLL_DELAY / 10).then_some(wait)
    }
}

/// When the first poll of a verification is due after its number was assigned.
pub fn first_poll_after(config: &Config) -> Duration {
    config
        .poll_cadence
        .first()
        .copied()
        .unwrap_or(Duration::from_secs(2))
}

/// The wait before the next poll, given how long the number has been assigned: the
/// cadence's delays in turn, then its last delay over and over.
pub fn next_poll_delay(elapsed: Duration, cadence: &[Duration]) -> Duration {
    let mut polls_due_by_now = 0;
    let mut at = Duration::ZERO;
    for delay in cadence {
        at += *delay;
        if at <= elapsed {
            polls_due_by_now += 1;
        }
    }
    cadence
        .get(polls_due_by_now)
        .or(cadence.last())
        .copied()
        .unwrap_or(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_fast_and_back_off() {
        let cadence: Vec<Duration> = [2, 3, 5, 10].map(Duration::from_secs).to_vec();
        let at = |secs: u64| next_poll_delay(Duration::from_secs(secs), &cadence).as_secs();
        assert_eq!(at(0), 2);
        assert_eq!(at(2), 3);
        assert_eq!(at(5), 5);
        assert_eq!(at(10), 10);
        assert_eq!(at(200), 10);
    }
}
