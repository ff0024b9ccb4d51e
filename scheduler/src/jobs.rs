//! The periodic jobs. Each returns how many rows (or items) it touched, or why it failed.

use std::sync::Arc;

use namaskah_core::{
    Config,
    domain::Transition,
    queue::{self, OutboxRelay, OutboxSignal, QueueDepth, Topology},
    store::{
        self, accounts, audit, housekeeping, idempotency, invariants, outbox, subscriptions,
        sweeps, usage,
        verifications::{self, Guard},
    },
};

use crate::backup;

/// What the jobs share.
pub struct JobContext {
    pub pool: sqlx::PgPool,
    pub config: Arc<Config>,
    /// Publishes stale outbox rows when the regular relays do not.
    pub relay: OutboxRelay,
    /// Wakes this process's relay after the jobs wrote outbox rows.
    pub outbox: OutboxSignal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobName {
    Sweeper,
    IdempotencyExpiry,
    Retention,
    Backup,
    Sampling,
    LowBalance,
    Renewals,
    Crm,
    Invariants,
    UsageRollup,
    AuditAnchor,
}

impl JobName {
    pub const ALL: [JobName; 11] = [
        JobName::Sweeper,
        JobName::IdempotencyExpiry,
        JobName::Retention,
        JobName::Backup,
        JobName::Sampling,
        JobName::LowBalance,
        JobName::Renewals,
        JobName::Crm,
        JobName::Invariants,
        JobName::UsageRollup,
        JobName::AuditAnchor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobName::Sweeper => "sweeper",
            JobName::IdempotencyExpiry => "idempotency_expiry",
            JobName::Retention => "retention",
            JobName::Backup => "backup",
            JobName::Sampling => "sampling",
            JobName::LowBalance => "low_balance",
            JobName::Renewals => "renewals",
            JobName::Crm => "crm",
            JobName::Invariants => "invariants",
            JobName::UsageRollup => "usage_rollup",
            JobName::AuditAnchor => "audit_anchor",
        }
    }

    pub fn parse(text: &str) -> Option<JobName> {
        JobName::ALL.into_iter().find(|job| job.as_str() == text)
    }
}

/// Runs one job to completion.
pub async fn run(job: JobName, context: &JobContext) -> Result<u64, String> {
    let result = match job {
        JobName::Sweeper => sweep(context).await,
        JobName::IdempotencyExpiry => idempotency::purge_expired(&context.pool)
            .await
            .map_err(|e| e.to_string()),
        JobName::Retention => retention(context).await,
        JobName::Backup => backup::run(&context.config)
            .await
            .map(|_| 1)
            .map_err(|e| e.to_string()),
        JobName::Sampling => sample(context).await,
        JobName::LowBalance => low_balance(context).await,
        JobName::Renewals => subscriptions::renew_due(&context.pool, chrono::Utc::now())
            .await
            .map(|done| done.renewed + done.downgraded)
            .map_err(|e| e.to_string()),
        JobName::Crm => match &context.config.scheduler.crm {
            Some(settings) => crate::crm::export(context, settings)
                .await
                .map_err(|e| e.to_string()),
            None => Ok(0),
        },
        JobName::Invariants => check_invariants(context).await,
        JobName::UsageRollup => usage::roll_up(&context.pool)
            .await
            .map_err(|e| e.to_string()),
        JobName::AuditAnchor => anchor_audit_chain(context).await,
    };
    if matches!(&result, Ok(rows) if *rows > 0) {
        context.outbox.notify();
    }
    result
}

/// Finds work whose message was lost and sends it again; idempotent by construction
/// (see `store::sweeps`).
pub async fn sweep(context: &JobContext) -> Result<u64, String> {
    let settings = &context.config.scheduler;
    let config = &context.config;
    let pool = &context.pool;
    let err = |e: store::StoreError| e.to_string();
    let mut touched = 0;
    touched += sweeps::nudge_overdue_polls(pool, config.deadline_grace, settings.nudge_interval)
        .await
        .map_err(err)?;
    touched += sweeps::nudge_stuck_orders(
        pool,
        settings.ordering_stuck_after,
        config.ordering_lease,
        settings.nudge_interval,
    )
    .await
    .map_err(err)?;
    let abandoned = sweeps::abandoned_orders(
        pool,
        config.retry.ordering.max_attempts,
        settings.ordering_stuck_after,
        config.ordering_lease,
    )
    .await
    .map_err(err)?;
    for (id, trace_id) in abandoned {
        let settled = verifications::settle_owing_refund(
            pool,
            id,
            Transition::FailOrdering,
            Guard::Status,
            Some("ordering did not finish after every attempt"),
            &trace_id,
        )
        .await
        .map_err(err)?;
        touched += u64::from(settled.is_some());
    }
    touched +=
        sweeps::nudge_stuck_refunds(pool, settings.refund_stuck_after, settings.nudge_interval)
            .await
            .map_err(err)?;
    touched += sweeps::clear_stale_open_since(pool).await.map_err(err)?;
    if sweeps::stale_outbox_rows(pool, settings.outbox_stuck_after)
        .await
        .map_err(err)?
        > 0
    {
        let published = context.relay.drain().await.map_err(|e| e.to_string())?;
        touched += published as u64;
    }
    Ok(touched)
}

async fn retention(context: &JobContext) -> Result<u64, String> {
    let settings = &context.config.scheduler;
    let erased = housekeeping::erase_personal_data(&context.pool, settings.personal_data_retention)
        .await
        .map_err(|e| e.to_string())?;
    let deleted = housekeeping::delete_sent_outbox_rows(&context.pool)
        .await
        .map_err(|e| e.to_string())?;
    let attempts =
        housekeeping::delete_old_webhook_attempts(&context.pool, settings.history_retention)
            .await
            .map_err(|e| e.to_string())?;
    let sessions = housekeeping::delete_expired_sessions(&context.pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok(erased + deleted + attempts + sessions)
}

async fn low_balance(context: &JobContext) -> Result<u64, String> {
    accounts::notify_low_balances(&context.pool)
        .await
        .map_err(|e| e.to_string())
}

async fn check_invariants(context: &JobContext) -> Result<u64, String> {
    let report = invariants::check(&context.pool, context.config.deadline_grace)
        .await
        .map_err(|e| e.to_string())?;
    let broken: i64 = report.violations.iter().map(|v| v.count).sum();
    metrics::gauge!("namaskah_invariant_violations").set(broken as f64);
    if report.is_clean() {
        Ok(report.verifications as u64)
    } else {
        Err(serde_json::to_string(&report.violations)
            .unwrap_or_else(|_| "invariants broken".to_owned()))
    }
}

/// Anchors the audit chain's head, and writes it to the log too: a copy outside the
/// database, which someone able to rewrite the chain and its anchors cannot reach.
async fn anchor_audit_chain(context: &JobContext) -> Result<u64, String> {
    let anchored = audit::anchor_head(&context.pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok(match anchored {
        Some((entry, hash)) => {
            tracing::info!(entry, hash, "audit chain head anchored");
            1
        }
        None => 0,
    })
}

/// Queue depth per queue, verifications by status, outbox lag: gauges for the metrics
/// exporter. Returns how many gauges were set.
async fn sample(context: &JobContext) -> Result<u64, String> {
    let mut samples = 0;
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM verifications GROUP BY status")
            .fetch_all(&context.pool)
            .await
            .map_err(|e| e.to_string())?;
    for (status, count) in counts {
        metrics::gauge!("namaskah_verifications", "status" => status).set(count as f64);
        samples += 1;
    }
    let mut conn = context.pool.acquire().await.map_err(|e| e.to_string())?;
    let (unsent, lag) = outbox::backlog(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    metrics::gauge!("namaskah_outbox_unsent").set(unsent as f64);
    metrics::gauge!("namaskah_outbox_lag_seconds").set(lag);
    samples += 2;
    let depths = queue_depths(context).await.map_err(|e| e.to_string())?;
    for QueueDepth {
        queue,
        ready,
        consumers,
        parked,
    } in depths
    {
        let name = queue.as_str();
        metrics::gauge!("namaskah_queue_messages", "queue" => name, "state" => "ready")
            .set(f64::from(ready));
        metrics::gauge!("namaskah_queue_messages", "queue" => name, "state" => "parked")
            .set(f64::from(parked));
        metrics::gauge!("namaskah_queue_consumers", "queue" => name).set(f64::from(consumers));
        samples += 3;
    }
    Ok(samples)
}

/// Ready messages, consumers and parked messages per queue.
pub async fn queue_depths(context: &JobContext) -> Result<Vec<QueueDepth>, queue::BrokerError> {
    let topology = Topology::from_config(&context.config);
    queue::sample_depths(&context.config.amqp_url, "sampling", &topology).await
}
