//! The refund worker: gives the price of a timed-out, cancelled or failed verification back.
//!
//! One statement moves the verification to `refunded`, writes the refund ledger row and
//! credits the balance. A second delivery of the same message finds nothing to refund (and
//! the ledger's `UNIQUE (kind, verification_id)` would refuse a second row anyway).

use async_trait::async_trait;

use namaskah_core::{
    queue::{Attempt, Envelope, Handled, Job, JobError, JobHandler},
    store::ledger,
};

use crate::WorkerDeps;

pub struct RefundWorker {
    deps: WorkerDeps,
}

impl RefundWorker {
    pub fn new(deps: WorkerDeps) -> Self {
        Self { deps }
    }
}

#[async_trait]
impl JobHandler for RefundWorker {
    async fn handle(&self, envelope: &Envelope, _attempt: Attempt) -> Result<Handled, JobError> {
        let Job::Refund { verification_id } = envelope.job else {
            return Err(JobError::Permanent(format!(
                "the refund queue does not take {:?}",
                envelope.job
            )));
        };
        match ledger::refund(&self.deps.pool, verification_id).await? {
            Some(refund) => {
                metrics::counter!("namaskah_refunds_total").increment(1);
                metrics::counter!("namaskah_refunded_cents_total")
                    .increment(u64::try_from(refund.amount_cents).unwrap_or(0));
                metrics::counter!("namaskah_verifications_finished_total", "status" => "refunded")
                    .increment(1);
                tracing::info!(amount_cents = refund.amount_cents, "refunded")
            }
            None => tracing::debug!("nothing to refund (already refunded, or not refundable)"),
        }
        Ok(Handled::Done)
    }
}
