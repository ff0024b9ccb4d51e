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
    /// Ask the provider whether the SMS has arrived.
    PollSms { verification_id: VerificationId },
    /// Cancel the provider order of a verification the customer cancelled.
    CancelOrder { verification_id: VerificationId },
    /// Give the price of a timed-out, cancelled or failed verification back.
    Refund { verification_id: VerificationId },
    /// Make the next attempt of one webhook delivery (one message to one endpoint).
    DeliverWebhook {
        delivery_id: Uuid,
        endpoint_id: Uuid,
    },
}

impl Job {
    /// The queue whose worker does this job.
    pub fn queue(&self) -> QueueName {
        match self {
            Job::OrderNumber { .. } => QueueName::Ordering,
            Job::PollSms { .. } | Job::CancelOrder { .. } => QueueName::Polling,
            Job::Refund { .. } => QueueName::Refund,
            Job::DeliverWebhook { .. } => QueueName::Webhooks,
        }
    }

    /// The id of the row the job is about: a verification, or a webhook delivery.
    pub fn subject_id(&self) -> Uuid {
        match self {
            Job::OrderNumber { verification_id }
            | Job::PollSms { verification_id }
            | Job::CancelOrder { verification_id }
            | Job::Refund { verification_id } => verification_id.0,
            Job::DeliverWebhook { delivery_id, .. } => *delivery_id,
        }
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
        if envelope.trace_id.is_empty() || envelope.trace_id.len() > 128 {
            return Err(MalformedMessage(
                "trace_id must be 1 to 128 characters".to_owned(),
            ));
        }
        Ok(envelope)
    }
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
    fn malformed_bodies_are_refused() {
        for body in [
            &b"not json"[..],
            br#"{"type":"teleport","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","verification_id":"nope","attempt":1,"trace_id":"t"}"#,
            br#"{"type":"refund","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":0,"trace_id":"t"}"#,
        ] {
            assert!(Envelope::parse(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
