//! The JSON bodies of our messages.
//!
//! ```json
//! {"type": "order_number", "verification_id": "0193…", "attempt": 1, "trace_id": "4bf9…"}
//! ```

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::QueueName;
use crate::domain::VerificationId;

/// What a message asks its worker to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Buy a number for a pending verification.
    OrderNumber { verification_id: VerificationId },
    /// Buy numbers for several pending verifications, each at its first attempt. The outbox
    /// relay groups the orders it publishes together (see `queue::grouping`), as it does
    /// webhook deliveries; an order that does not finish goes on as an `OrderNumber` message
    /// of its own.
    OrderNumbers { orders: Vec<GroupedVerification> },
    /// Ask the provider whether the SMS has arrived.
    PollSms { verification_id: VerificationId },
    /// Ask about several verifications whose numbers were recorded together. The outbox
    /// relay groups the first polls it publishes together; the polling worker holds the
    /// group until every member is due, and the members that must look again go on together
    /// (see `polling`); one that fails goes on as a `PollSms` message of its own.
    PollSmsGroup { polls: Vec<GroupedVerification> },
    /// Cancel the provider order of a verification the customer cancelled.
    CancelOrder { verification_id: VerificationId },
    /// Give the price of a timed-out, cancelled or failed verification back.
    Refund { verification_id: VerificationId },
    /// Make the next attempt of one webhook delivery (one message to one endpoint).
    DeliverWebhook {
        delivery_id: Uuid,
        endpoint_id: Uuid,
    },
    /// Make the first attempt of several webhook deliveries. The outbox relay groups the
    /// deliveries it publishes together (see `queue::grouping`), so a burst of events costs
    /// one broker message, not one each; a delivery that does not finish at once goes on
    /// as its own `DeliverWebhook` message.
    DeliverWebhooks { deliveries: Vec<GroupedDelivery> },
}

/// One delivery of a [`Job::DeliverWebhooks`] group, with the trace id of its own event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupedDelivery {
    pub delivery_id: Uuid,
    pub endpoint_id: Uuid,
    pub trace_id: String,
}

impl GroupedDelivery {
    /// The delivery as a message of its own, at its first attempt.
    pub fn alone(&self) -> Envelope {
        Envelope::first(
            Job::DeliverWebhook {
                delivery_id: self.delivery_id,
                endpoint_id: self.endpoint_id,
            },
            self.trace_id.clone(),
        )
    }
}

/// The most deliveries one [`Job::DeliverWebhooks`] message may carry.
pub const MAX_GROUPED_DELIVERIES: usize = 64;

/// One member of a [`Job::OrderNumbers`] or [`Job::PollSmsGroup`] group, with the trace id
/// of its own verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupedVerification {
    pub verification_id: VerificationId,
    pub trace_id: String,
}

impl GroupedVerification {
    /// The order as a message of its own, at its first attempt.
    pub fn order_alone(&self) -> Envelope {
        self.alone(Job::OrderNumber {
            verification_id: self.verification_id,
        })
    }

    /// The poll as a message of its own, at its first attempt.
    pub fn poll_alone(&self) -> Envelope {
        self.alone(Job::PollSms {
            verification_id: self.verification_id,
        })
    }

    fn alone(&self, job: Job) -> Envelope {
        Envelope::first(job, self.trace_id.clone())
    }
}

/// The most orders one [`Job::OrderNumbers`] message may carry. Fewer than a group of
/// deliveries: the ordering worker works on at most `WORKER_PREFETCH` members of groups at
/// once, so a large group would only wait for its turn in one worker while another sat idle.
pub const MAX_GROUPED_ORDERS: usize = 16;

/// The most polls one [`Job::PollSmsGroup`] message may carry. A poll is a short call to the
/// provider, and the members of groups a polling worker asks about at once are bounded by
/// `WORKER_PREFETCH` whatever the size of the groups.
pub const MAX_GROUPED_POLLS: usize = 32;

impl QueueName {
    /// The most jobs one message on this queue carries: a queue's depth counts messages,
    /// and a grouped message holds up to this many orders, polls or deliveries.
    pub fn most_jobs_per_message(self) -> usize {
        match self {
            QueueName::Ordering => MAX_GROUPED_ORDERS,
            QueueName::Polling => MAX_GROUPED_POLLS,
            QueueName::Refund => 1,
            QueueName::Webhooks => MAX_GROUPED_DELIVERIES,
        }
    }
}

impl Job {
    /// The queue whose worker does this job.
    pub fn queue(&self) -> QueueName {
        match self {
            Job::OrderNumber { .. } | Job::OrderNumbers { .. } => QueueName::Ordering,
            Job::PollSms { .. } | Job::PollSmsGroup { .. } | Job::CancelOrder { .. } => {
                QueueName::Polling
            }
            Job::Refund { .. } => QueueName::Refund,
            Job::DeliverWebhook { .. } | Job::DeliverWebhooks { .. } => QueueName::Webhooks,
        }
    }

    /// The id of the row the job is about: a verification, or a webhook delivery (the
    /// first of a group, for a group).
    pub fn subject_id(&self) -> Uuid {
        match self {
            Job::OrderNumber { verification_id }
            | Job::PollSms { verification_id }
            | Job::CancelOrder { verification_id }
            | Job::Refund { verification_id } => verification_id.0,
            Job::OrderNumbers { orders: members } | Job::PollSmsGroup { polls: members } => members
                .first()
                .map_or_else(Uuid::nil, |member| member.verification_id.0),
            Job::DeliverWebhook { delivery_id, .. } => *delivery_id,
            Job::DeliverWebhooks { deliveries } => deliveries
                .first()
                .map_or_else(Uuid::nil, |delivery| delivery.delivery_id),
        }
    }

    /// Whether the job is about a verification (rather than a webhook delivery).
    pub fn is_about_a_verification(&self) -> bool {
        !matches!(
            self,
            Job::DeliverWebhook { .. } | Job::DeliverWebhooks { .. }
        )
    }
}

/// The AMQP header that repeats the envelope's trace id, so the broker's tools (management
/// UI, shovels, parked-message listings) show which verification a message belongs to.
pub const TRACE_ID_HEADER: &str = "trace-id";

/// A job with its delivery bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(flatten)]
    pub job: Job,
    /// 1 for the first delivery; each retry through a delay tier adds one.
    pub attempt: u32,
    /// Follows a verification from the API request through every worker.
    pub trace_id: String,
}

/// A body that is not one of our messages.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct MalformedMessage(String);

impl Envelope {
    pub fn first(job: Job, trace_id: impl Into<String>) -> Self {
        Self {
            job,
            attempt: 1,
            trace_id: trace_id.into(),
        }
    }

    /// The same job, one attempt later.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self.clone()
        }
    }

    /// The same verification, another job, counted from the first attempt.
    pub fn follow_up(&self, job: Job) -> Self {
        Self::first(job, self.trace_id.clone())
    }

    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these plain structs cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(body: &[u8]) -> Result<Self, MalformedMessage> {
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|error| MalformedMessage(error.to_string()))?;
        if envelope.attempt == 0 {
            return Err(MalformedMessage("attempt must be 1 or more".to_owned()));
        }
        check_trace_id(&envelope.trace_id)?;
        match &envelope.job {
            Job::DeliverWebhooks { deliveries } => check_group(
                "deliveries",
                MAX_GROUPED_DELIVERIES,
                deliveries.iter().map(|delivery| delivery.trace_id.as_str()),
            )?,
            Job::OrderNumbers { orders } => check_group(
                "orders",
                MAX_GROUPED_ORDERS,
                orders.iter().map(|order| order.trace_id.as_str()),
            )?,
            Job::PollSmsGroup { polls } => check_group(
                "polls",
                MAX_GROUPED_POLLS,
                polls.iter().map(|poll| poll.trace_id.as_str()),
            )?,
            _ => {}
        }
        Ok(envelope)
    }
}

/// A group holds 1 to `max` members, each with a trace id of its own.
fn check_group<'a>(
    field: &str,
    max: usize,
    trace_ids: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), MalformedMessage> {
    if trace_ids.len() == 0 || trace_ids.len() > max {
        return Err(MalformedMessage(format!(
            "{field} must hold 1 to {max} entries"
        )));
    }
    for trace_id in trace_ids {
        check_trace_id(trace_id)?;
    }
    Ok(())
}

fn check_trace_id(trace_id: &str) -> Result<(), MalformedMessage> {
    if trace_id.is_empty() || trace_id.len() > 128 {
        return Err(MalformedMessage(
            "trace_id must be 1 to 128 characters".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_json() {
        let envelope = Envelope::first(
            Job::PollSms {
                verification_id: VerificationId::new(),
            },
            "abc",
        );
        let parsed = Envelope::parse(&envelope.to_bytes()).expect("parses");
        assert_eq!(parsed, envelope);
        assert_eq!(parsed.next_attempt().attempt, 2);
    }

    #[test]
    fn the_database_built_delivery_message_parses() {
        // As `deliver_webhook_job` in migration 0004 writes it.
        let body = br#"{"type": "deliver_webhook", "attempt": 1, "trace_id": "t",
            "delivery_id": "0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00",
            "endpoint_id": "0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a01"}"#;
        let envelope = Envelope::parse(body).expect("parses");
        assert_eq!(envelope.job.queue(), QueueName::Webhooks);
    }

    #[test]
    fn a_group_of_deliveries_round_trips_and_splits_into_single_deliveries() {
        let delivery = GroupedDelivery {
            delivery_id: Uuid::new_v4(),
            endpoint_id: Uuid::new_v4(),
            trace_id: "t2".to_owned(),
        };
        let group = Envelope::first(
            Job::DeliverWebhooks {
                deliveries: vec![delivery.clone()],
            },
            "t1",
        );
        let parsed = Envelope::parse(&group.to_bytes()).expect("parses");
        assert_eq!(parsed, group);
        assert_eq!(parsed.job.queue(), QueueName::Webhooks);
        assert_eq!(parsed.job.subject_id(), delivery.delivery_id);
        let alone = delivery.alone();
        assert_eq!(alone.trace_id, "t2");
        assert_eq!(alone.attempt, 1);
        assert_eq!(
            alone.job,
            Job::DeliverWebhook {
                delivery_id: delivery.delivery_id,
                endpoint_id: delivery.endpoint_id
            }
        );
    }

    #[test]
    fn a_group_of_orders_round_trips_and_splits_into_single_orders() {
        let order = GroupedVerification {
            verification_id: VerificationId::new(),
            trace_id: "t2".to_owned(),
        };
        let group = Envelope::first(
            Job::OrderNumbers {
                orders: vec![order.clone()],
            },
            "t1",
        );
        let parsed = Envelope::parse(&group.to_bytes()).expect("parses");
        assert_eq!(parsed, group);
        assert_eq!(parsed.job.queue(), QueueName::Ordering);
        assert_eq!(parsed.job.subject_id(), order.verification_id.0);
        assert!(parsed.job.is_about_a_verification());
        let alone = order.order_alone();
        assert_eq!(alone.trace_id, "t2");
        assert_eq!(alone.attempt, 1);
        assert_eq!(
            alone.job,
            Job::OrderNumber {
                verification_id: order.verification_id
            }
        );
    }

    #[test]
    fn a_group_of_polls_round_trips_and_splits_into_single_polls() {
        let poll = GroupedVerification {
            verification_id: VerificationId::new(),
            trace_id: "t2".to_owned(),
        };
        let group = Envelope::first(
            Job::PollSmsGroup {
                polls: vec![poll.clone()],
            },
            "t1",
        );
        let parsed = Envelope::parse(&group.to_bytes()).expect("parses");
        assert_eq!(parsed, group);
        assert_eq!(parsed.job.queue(), QueueName::Polling);
        assert_eq!(parsed.job.subject_id(), poll.verification_id.0);
        assert!(parsed.job.is_about_a_verification());
        let alone = poll.poll_alone();
        assert_eq!(alone.trace_id, "t2");
        assert_eq!(
            alone.job,
            Job::PollSms {
                verification_id: poll.verification_id
            }
        );
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for body in [
            &b"not json"[..],
            br#"{"type":"teleport","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","verification_id":"nope","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":0,"trace_id":"t"}"#,
            br#"{"type":"deliver_webhooks","deliveries":[],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"deliver_webhooks","deliveries":[{"delivery_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","endpoint_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a01","trace_id":""}],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"order_numbers","orders":[],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"order_numbers","orders":[{"verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00"}],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"order_numbers","orders":[{"verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","trace_id":""}],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"poll_sms_group","polls":[],"attempt":1,"trace_id":"t"}"#,
            br#"{"type":"poll_sms_group","polls":[{"verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","trace_id":""}],"attempt":1,"trace_id":"t"}"#,
        ] {
            assert!(Envelope::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
