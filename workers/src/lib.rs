//! The workers, one per queue. Each file reads as the story of its queue:
//!
//! - [`ordering`]: buy a number (with failover), record it, schedule the first poll.
//! - [`polling`]: ask for the SMS until it comes or the deadline passes; cancel on request.
//! - [`refund`]: give the price back, exactly once.
//!
//! The plumbing (ack, retry, parking) is `namaskah_core::queue::consumer`.

mod batch;
mod catalogue;
pub mod ordering;
pub mod polling;
pub mod refund;
pub mod webhook_delivery;

use sqlx::PgPool;
use std::{fmt, sync::Arc};

use namaskah_core::{
    Config, Shutdown,
    config::HoldPolicy,
    domain::Transition,
    providers::Providers,
    queue::{
        ConsumerOptions, Handled, JobError, JobHandler, OutboxSignal, QueueName, Topology,
        run_consumer,
    },
    store::{
        StoreError,
        verifications::{self, Guard, Verification},
    },
};

/// Which worker to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerKind {
    Ordering,
    Polling,
    Refund,
    Webhooks,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 4] = [
        WorkerKind::Ordering,
        WorkerKind::Polling,
        WorkerKind::Refund,
        WorkerKind::Webhooks,
    ];

    pub fn queue(self) -> QueueName {
        match self {
            WorkerKind::Ordering => QueueName::Ordering,
            WorkerKind::Polling => QueueName::Polling,
            WorkerKind::Refund => QueueName::Refund,
            WorkerKind::Webhooks => QueueName::Webhooks,
        }
    }
}

impl fmt::Display for WorkerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.queue().as_str())
    }
}

/// What workers share.
#[derive(Clone)]
pub struct WorkerDeps {
    pub pool: PgPool,
    pub providers: Providers,
    pub config: Arc<Config>,
    /// Wakes this process's outbox relay after a commit that wrote outbox rows.
    pub outbox: OutboxSignal,
}

/// A worker could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorkerSetupError {
    #[error("cannot build the webhook HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A worker ready to consume its queue.
pub struct Worker {
    options: ConsumerOptions,
    handler: Arc<dyn JobHandler>,
}

impl Worker {
    pub fn new(kind: WorkerKind, deps: WorkerDeps) -> Result<Self, WorkerSetupError> {
        let config = Arc::clone(&deps.config);
        let (handler, retry): (Arc<dyn JobHandler>, _) = match kind {
            WorkerKind::Ordering => (
                Arc::new(ordering::OrderingWorker::new(deps)?),
                config.retry.ordering,
            ),
            WorkerKind::Polling => (
                Arc::new(polling::PollingWorker::new(deps)?),
                config.retry.polling,
            ),
            WorkerKind::Refund => (
                Arc::new(refund::RefundWorker::new(deps)),
                config.retry.refund,
            ),
            WorkerKind::Webhooks => {
                // A webhook message's attempt number counts delivery attempts too, so the
                // budget for database trouble starts after the delivery schedule's.
                let mut retry = config.retry.webhooks;
                let schedule =
                    u32::try_from(config.webhooks.retry_delays.len()).unwrap_or(u32::MAX);
                retry.max_attempts = retry
                    .max_attempts
                    .saturating_add(schedule)
                    .saturating_add(1);
                (Arc::new(webhook_delivery::WebhookWorker::new(deps)?), retry)
            }
        };
        let options = ConsumerOptions {
            amqp_url: config.amqp_url.clone(),
            topology: Topology::from_config(&config),
            queue: kind.queue(),
            prefetch: config.worker_prefetch,
            // Only the polling worker waits often (the poll cadence), so only it holds:
            // every held message is one the broker may hand over on top of WORKER_PREFETCH,
            // and other queues' backlogs should stay in the broker, visible to the
            // autoscaler and to the other replicas.
            hold: match kind {
                WorkerKind::Polling => config.worker_hold,
                _ => HoldPolicy::NONE,
            },
            retry,
        };
        Ok(Self { options, handler })
    }

    /// Consumes until shutdown.
    pub async fn run(self, shutdown: Shutdown) {
        run_consumer(self.options, self.handler, shutdown).await;
    }
}

/// Moves a verification into a status owed a refund (the refund message goes with it) and
/// wakes the relay. Finding the row already moved by someone else is not an error.
pub(crate) async fn settle_owing_refund(
    deps: &WorkerDeps,
    verification: &Verification,
    transition: Transition,
    guard: Guard,
    reason: Option<&str>,
) -> Result<Handled, JobError> {
    let settled = verifications::settle_owing_refund(
        &deps.pool,
        verification.id,
        transition,
        guard,
        reason,
        &verification.trace_id,
    )
    .await?;
    if settled.is_some() {
        deps.outbox.notify();
        tracing::info!(to = %transition.to(), reason, "verification settled; refund queued");
    }
    Ok(Handled::Done)
}
