//! What a failover drill reports ([`super::failover`]): each fault with the completions
//! around it, what was lost, and how long each fault took to recover from.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::{collections::BTreeMap, time::Duration};

/// The completion rate before a fault is measured over this long.
pub const BEFORE: Duration = Duration::from_secs(10);

/// One fault the drill did, when it began (the database's clock is this machine's).
#[derive(Clone, Debug, Serialize)]
pub struct EngineFault {
    pub fault: &'static str,
    pub at: DateTime<Utc>,
    /// What the hook says it did.
    pub what: String,
    /// Verifications completed in each second from [`BEFORE`] before the fault to 40 s
    /// after it: the picture behind its RTO.
    pub completions_per_second: Vec<usize>,
}

/// What the drill adds to a load run's report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DrillReport {
    pub rabbitmq_nodes: Vec<String>,
    pub postgres_failover: String,
    pub accepted: usize,
    #[serde(rename = "final")]
    pub final_count: usize,
    /// Accepted (the API answered 201) but missing afterwards.
    pub lost: usize,
    /// In the database but never acknowledged to the client: its 201 went down with the
    /// primary (or its connection). Charged and carried through like any other; a retry
    /// with the same `Idempotency-Key` would have returned it.
    pub created_unacknowledged: usize,
    /// Verifications charged other than exactly once.
    pub duplicate_charges: usize,
    /// Webhook deliveries that arrived more than once (at-least-once delivery; harmless to
    /// a receiver that keys on the message id).
    pub duplicate_webhooks: u64,
    /// Refused or failed submissions and cancels, by status or transport error.
    pub client_errors: BTreeMap<String, usize>,
    /// From each fault until completions run at half their rate before it again.
    pub rto_seconds: BTreeMap<String, Option<f64>>,
    /// Messages delivered again, by queue, as the roles' processes counted them.
    pub messages_redelivered: BTreeMap<String, u64>,
    pub faults: Vec<EngineFault>,
}

impl DrillReport {
    /// The drill's lines of the report's table.
    pub fn rows(&self) -> Vec<String> {
        let mut out = vec![
            String::new(),
            format!("drill: RabbitMQ nodes {}", self.rabbitmq_nodes.join(", ")),
            format!(
                "drill: accepted {}, final {}, lost {}, created but not acknowledged {}, \
                 charged other than once {}, webhooks delivered twice {}",
                self.accepted,
                self.final_count,
                self.lost,
                self.created_unacknowledged,
                self.duplicate_charges,
                self.duplicate_webhooks
            ),
        ];
        for fault in &self.faults {
            let counts: Vec<String> = fault
                .completions_per_second
                .iter()
                .map(usize::to_string)
                .collect();
            let rto = match self.rto_seconds.get(fault.fault) {
                Some(Some(seconds)) => format!("recovered in {seconds:.1} s"),
                Some(None) => "no recovery measured".to_owned(),
                None => String::new(),
            };
            out.push(format!(
                "drill: {} at {} {rto}: {}",
                fault.fault,
                fault.at.format("%H:%M:%S%.3f"),
                fault.what
            ));
            if !counts.is_empty() {
                out.push(format!(
                    "       completions per second from {} s before: {}",
                    BEFORE.as_secs(),
                    counts.join(" ")
                ));
            }
        }
        let redelivered: Vec<String> = self
            .messages_redelivered
            .iter()
            .map(|(queue, count)| format!("{queue} {count}"))
            .collect();
        out.push(format!(
            "drill: messages redelivered: {}",
            redelivered.join(", ")
        ));
        out
    }
}
