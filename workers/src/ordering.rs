//! The ordering worker: buys a number for a pending verification — or, for the group of
//! orders the outbox relay publishes as one message, for each verification of the group, side
//! by side; what does not finish goes on as a message of its own.
//!
//! 1. Claim the verification (`pending` → `ordering`), in one statement shared with the other
//!    messages in hand (`batch::Batcher`). A duplicate message finds it claimed and looks again
//!    after the claim's lease; a redelivery after a crash takes the claim over once the lease
//!    has expired.
//! 2. If the customer cancelled meanwhile: `cancelled`, refund queued. Done.
//! 3. Try the providers that sell the service there, in `PROVIDERS` order. Out of stock,
//!    down, breaker open or bulkhead full → the next one; if only busy ones are left, wait
//!    for a turn on them.
//! 4. A number: record it (`waiting_sms`, deadline = now + the service's SMS timeout) and
//!    queue the first poll, in one statement shared with the other numbers in hand.
//! 5. No number: if every provider was skipped (breakers open), look again in 5 s without
//!    spending the attempt (until `SWEEP_ORDERING_AFTER`); if a provider was only unreachable
//!    and retries remain, retry later through the delay tiers; otherwise `failed`, refund
//!    queued.

use async_trait::async_trait;
use chrono::Utc;
use std::time::Duration;
use tokio::{sync::Semaphore, time::Instant};
use tracing::Instrument;
use uuid::Uuid;

use namaskah_core::{
    Config,
    domain::{Transition, VerificationId},
    pricing,
    providers::{self, ProviderError, Purchase, PurchasedNumber},
    queue::{
        Attempt, Envelope, GroupedVerification, Handled, Job, JobError, JobHandler,
        member_follow_ups,
    },
    store::{
        services::Offer,
        verifications::{
            self, AssignedNumber, Guard, OrderingClaim, OrderingClaimRequest, Verification,
        },
    },
};

use crate::{
    WorkerDeps, batch::Batcher, catalogue::Catalogue, polling::first_poll_after,
    settle_owing_refund,
};

pub struct OrderingWorker {
    deps: WorkerDeps,
    catalogue: Catalogue,
    claims: Batcher<OrderingClaimRequest, OrderingClaim>,
    /// Records the numbers bought, with their first polls, in one statement.
    assignments: Batcher<AssignedNumber, Option<Verification>>,
    /// The orders of groups worked on at once: as many as `WORKER_PREFETCH`, as if each had
    /// come as a message of its own, so a group does not multiply the purchases in flight.
    group_slots: Semaphore,
}

impl OrderingWorker {
    pub fn new(deps: WorkerDeps) -> Result<Self, crate::WorkerSetupError> {
        // One connection for the claims, one for the assignments.
        let keyed = crate::batch::keyed_pool(&deps.config, 2)?;
        let pool = keyed.clone();
        let lease = deps.config.ordering_lease;
        let batch = crate::batch::limit(&deps.config);
        let claims = Batcher::spawn(
            "ordering_claims",
            batch,
            move |requests: Vec<OrderingClaimRequest>| {
                let pool = pool.clone();
                async move { verifications::claim_for_ordering(&pool, &requests, lease).await }
            },
        );
        let pool = keyed;
        let first_poll_delay_ms = first_poll_delay_ms(&deps.config);
        let assignments = Batcher::spawn(
            "ordering_assignments",
            batch,
            move |numbers: Vec<AssignedNumber>| {
                let pool = pool.clone();
                async move { verifications::assign_numbers(&pool, &numbers, first_poll_delay_ms).await }
            },
        );
        let catalogue = Catalogue::new(deps.pool.clone(), deps.providers.names());
        let group_slots = Semaphore::new(usize::from(deps.config.worker_prefetch));
        Ok(Self {
            deps,
            catalogue,
            claims,
            assignments,
            group_slots,
        })
    }

    /// The orders of a group, side by side (their claims and assignments share statements
    /// through the batchers), each as the message it would have been alone.
    async fn order_group(&self, orders: &[GroupedVerification], attempt: Attempt) -> Handled {
        let members = orders.iter().map(|order| {
            let alone = Envelope {
                attempt: attempt.number,
                ..order.order_alone()
            };
            let span = tracing::info_span!(
                "grouped_order",
                subject = %order.verification_id,
                trace_id = %order.trace_id,
            );
            async move {
                let handled = match self.group_slots.acquire().await {
                    Ok(_slot) => self.order(&alone, order.verification_id, attempt).await,
                    Err(_) => Err(JobError::Retryable("the worker is closing".to_owned())),
                };
                member_follow_ups(alone, attempt, &self.deps.config.retry.ordering, handled)
            }
            .instrument(span)
        });
        let follow_ups = futures_util::future::join_all(members)
            .await
            .into_iter()
            .flatten()
            .collect();
        Handled::FollowUps(follow_ups)
    }

    /// Step 3: the first provider that sells a number wins. A provider whose bulkhead or
    /// rate is full is passed over at first; when no other sells, the order waits for
    /// whichever busy one frees a slot first.
    async fn buy_from_first_with_stock(
        &self,
        verification: &Verification,
        budget: Instant,
    ) -> Result<Result<(Offer, PurchasedNumber), Failures>, JobError> {
        let provider_order = self.deps.providers.names();
        let offers = self
            .catalogue
            .offers_for(&verification.service, &verification.country)
            .await?;
        let mut failures = Failures::default();
        let mut busy = Vec::new();
        for offer in pricing::failover_order(&offers, &provider_order) {
            let Some(provider) = self.deps.providers.get(&offer.provider) else {
                continue;
            };
            match providers::before(
                budget,
                provider.buy(&offer.provider_product, &offer.provider_country),
            )
            .await
            {
                Ok(number) => return Ok(Ok((offer.clone(), number))),
                Err(ProviderError::Busy(_)) => busy.push(offer),
                Err(error) => failures.note(&offer.provider, &error),
            }
        }
        if !busy.is_empty() {
            let wanted: Vec<Purchase> = busy
                .iter()
                .map(|offer| Purchase {
                    provider: &offer.provider,
                    product: &offer.provider_product,
                    country: &offer.provider_country,
                })
                .collect();
            let bought =
                providers::before(budget, self.deps.providers.buy_from_first_free(&wanted)).await;
            match bought {
                Ok((index, number)) => return Ok(Ok((busy[index].clone(), number))),
                Err(error) => {
                    let raced: Vec<&str> = wanted.iter().map(|p| p.provider).collect();
                    failures.note(&raced.join(" or "), &error);
                }
            }
        }
        Ok(Err(failures))
    }

    /// Step 4.
    async fn record_number(
        &self,
        verification: &Verification,
        claim: Uuid,
        offer: &Offer,
        number: PurchasedNumber,
    ) -> Result<Handled, JobError> {
        let recorded = self
            .assignments
            .call(AssignedNumber {
                id: verification.id,
                claim,
                provider: offer.provider.clone(),
                provider_order_id: number.order_id.clone(),
                phone_number: number.phone_number.clone(),
                sms_timeout_secs: offer.sms_timeout_secs,
                trace_id: verification.trace_id.clone(),
            })
            .await;
        match recorded {
            Ok(Some(verification)) => {
                self.deps.outbox.notify();
                tracing::info!(provider = %offer.provider, deadline = ?verification.deadline, "number assigned");
                Ok(Handled::Done)
            }
            Ok(None) => {
                // Our claim was taken over (we were presumed dead): the number is not needed.
                tracing::warn!(provider = %offer.provider, "claim lost while buying; giving the number back");
                self.give_back(&offer.provider, &number.order_id).await;
                Ok(Handled::Done)
            }
            Err(error) => {
                // We cannot tell whether the row was updated; giving the number back would
                // risk cancelling the one the customer got. The provider's own timer frees
                // it if it stays unused.
                Err(error.into())
            }
        }
    }

    /// Orders whose providers are all skipped keep waiting for a probe up to
    /// `SWEEP_ORDERING_AFTER` after they were accepted; then their own retries go on.
    fn may_wait_for_a_probe(&self, verification: &Verification) -> bool {
        let waited = (Utc::now() - verification.created_at)
            .to_std()
            .unwrap_or_default();
        waited < self.deps.config.scheduler.ordering_stuck_after
    }

    async fn give_back(&self, provider: &str, order_id: &str) {
        let Some(provider) = self.deps.providers.get(provider) else {
            return;
        };
        if let Err(error) = provider.cancel(order_id).await {
            tracing::warn!(provider = provider.name(), %error, "could not give an unneeded number back");
        }
    }

    async fn settle(
        &self,
        verification: &Verification,
        claim: Uuid,
        transition: Transition,
        reason: Option<&str>,
    ) -> Result<Handled, JobError> {
        settle_owing_refund(
            &self.deps,
            verification,
            transition,
            Guard::OrderingClaim(claim),
            reason,
        )
        .await
    }
}

/// When the first poll is published. A wait short enough for the polling worker to hold is
/// sat out there (it holds a poll until its time, see `polling`), which spares the message a
/// round through a delay tier.
fn first_poll_delay_ms(config: &Config) -> i32 {
    let first = first_poll_after(config);
    if config.worker_hold.covers(first) {
        return 0;
    }
    i32::try_from(first.as_millis()).unwrap_or(i32::MAX)
}

/// The part of the ordering lease the purchases of one attempt may take; the rest is for
/// recording the number.
const PURCHASE_SHARE_OF_LEASE: f64 = 0.8;

/// How soon an order whose every provider was skipped looks again.
const SKIPPED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why no provider sold a number.
#[derive(Default)]
struct Failures {
    /// At least one provider was only unreachable: a later attempt may succeed.
    retryable: bool,
    /// Some provider was asked (rather than every one skipped by its breaker or bulkhead).
    asked_any: bool,
    reasons: Vec<String>,
}

impl Failures {
    fn note(&mut self, provider: &str, error: &ProviderError) {
        tracing::info!(provider, %error, "provider could not sell a number; trying the next");
        self.retryable |= error.is_retryable();
        self.asked_any |= !matches!(
            error,
            ProviderError::CircuitOpen(_) | ProviderError::Busy(_)
        );
        self.reasons.push(format!("{provider}: {error}"));
    }
}

#[async_trait]
impl JobHandler for OrderingWorker {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        match &envelope.job {
            Job::OrderNumber { verification_id } => {
                self.order(envelope, *verification_id, attempt).await
            }
            Job::OrderNumbers { orders } => Ok(self.order_group(orders, attempt).await),
            other => Err(JobError::Permanent(format!(
                "the ordering queue does not take {other:?}"
            ))),
        }
    }
}

impl OrderingWorker {
    /// Steps 1–5 for one verification; `envelope` is its own message.
    async fn order(
        &self,
        envelope: &Envelope,
        verification_id: VerificationId,
        attempt: Attempt,
    ) -> Result<Handled, JobError> {
        // 1. Claim.
        let claimed = self
            .claims
            .call(OrderingClaimRequest {
                id: verification_id,
                attempt: attempt.number,
            })
            .await?;
        let (verification, claim) = match claimed {
            OrderingClaim::Claimed {
                verification,
                claim,
            } => (verification, claim),
            OrderingClaim::Busy { retry_after } => {
                tracing::debug!(
                    ?retry_after,
                    "another delivery holds the verification; looking again later"
                );
                return Ok(Handled::Again {
                    after: retry_after,
                    next: envelope.clone(),
                });
            }
            OrderingClaim::NotNeeded => {
                tracing::debug!("nothing to order (duplicate message)");
                return Ok(Handled::Done);
            }
        };

        // 2. Cancelled while waiting in the queue.
        if verification.cancel_requested_at.is_some() {
            return self
                .settle(&verification, claim, Transition::CancelBeforeNumber, None)
                .await;
        }

        // 3 and 4. The claim is ours for `ORDERING_LEASE`: the purchases end well within
        // it, so that the number is recorded before another delivery may take over.
        let budget = Instant::now()
            + self
                .deps
                .config
                .ordering_lease
                .mul_f64(PURCHASE_SHARE_OF_LEASE);
        let failures = match self
            .buy_from_first_with_stock(&verification, budget)
            .await?
        {
            Ok((offer, number)) => {
                return self
                    .record_number(&verification, claim, &offer, number)
                    .await;
            }
            Err(failures) => failures,
        };

        // 5.
        let reason = if failures.reasons.is_empty() {
            "no configured provider sells this service in this country".to_owned()
        } else {
            failures.reasons.join("; ")
        };
        if !failures.asked_any
            && !failures.reasons.is_empty()
            && self.may_wait_for_a_probe(&verification)
        {
            // Every provider was skipped, none asked: this attempt taught nothing, so it is
            // not spent, and its claim is let go so that the same attempt takes the row at
            // once when it comes back. Look again when a breaker may let a probe through.
            tracing::info!(%reason, "every provider skipped; looking again shortly");
            if let Err(error) =
                verifications::release_ordering_claim(&self.deps.pool, verification.id, claim).await
            {
                // Only slower: the claim then runs out its lease before the retry takes it.
                tracing::warn!(%error, "could not let go of the ordering claim");
            }
            return Ok(Handled::Again {
                after: SKIPPED_RETRY_AFTER,
                next: envelope.clone(),
            });
        }
        if failures.retryable && !attempt.is_last() {
            return Err(JobError::Retryable(reason));
        }
        self.settle(
            &verification,
            claim,
            Transition::FailOrdering,
            Some(&reason),
        )
        .await
    }
}
