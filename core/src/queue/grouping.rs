//! Which outbox rows the relay publishes together as one message.
//!
//! Every webhook event writes one outbox row per delivery, so webhook deliveries were the
//! largest share of the broker's messages (two per verification). The rows the relay takes in
//! one batch that start a delivery (`deliver_webhook`, first attempt, no delay) now go out
//! as `deliver_webhooks` messages of up to [`MAX_GROUPED_DELIVERIES`]; every other row, and a
//! start that has no company, goes out as it was written.

use serde::Deserialize;

use super::{
    Envelope, Job, QueueName,
    message::{GroupedDelivery, MAX_GROUPED_DELIVERIES},
};
use crate::store::outbox::OutboxRow;

/// One message for the relay to publish.
#[derive(Debug, PartialEq)]
pub(super) struct Outgoing {
    /// The outbox row it comes from (the first one, for a group), for log lines.
    pub first_row: i64,
    pub queue: String,
    pub payload: serde_json::Value,
    pub delay_ms: i32,
}

impl Outgoing {
    fn row(row: &OutboxRow) -> Self {
        Self {
            first_row: row.id,
            queue: row.queue.clone(),
            payload: row.payload.clone(),
            delay_ms: row.delay_ms,
        }
    }
}

/// The messages for a batch of outbox rows: the rows in their order, with the starts of
/// webhook deliveries gathered into groups placed where each group's first row was.
pub(super) fn outgoing_messages(rows: &[OutboxRow]) -> Vec<Outgoing> {
    let mut messages = Vec::with_capacity(rows.len());
    let mut starts: Vec<(&OutboxRow, GroupedDelivery)> = Vec::new();
    for row in rows {
        match delivery_start(row) {
            Some(delivery) => starts.push((row, delivery)),
            None => messages.push((row.id, Outgoing::row(row))),
        }
    }
    for group in starts.chunks(MAX_GROUPED_DELIVERIES) {
        let (first, _) = group[0];
        let message = if let [(row, _)] = group {
            Outgoing::row(row)
        } else {
            let deliveries: Vec<GroupedDelivery> =
                group.iter().map(|(_, delivery)| delivery.clone()).collect();
            let trace_id = deliveries[0].trace_id.clone();
            Outgoing {
                first_row: first.id,
                queue: first.queue.clone(),
                payload: Envelope::first(Job::DeliverWebhooks { deliveries }, trace_id).to_json(),
                delay_ms: 0,
            }
        };
        messages.push((first.id, message));
    }
    // Outbox ids grow with time: keep the batch's order, so older work goes out first.
    messages.sort_by_key(|(id, _)| *id);
    messages.into_iter().map(|(_, message)| message).collect()
}

/// The delivery a row starts, when it is the first attempt of one, due at once.
fn delivery_start(row: &OutboxRow) -> Option<GroupedDelivery> {
    if QueueName::parse(&row.queue) != Some(QueueName::Webhooks) || row.delay_ms > 0 {
        return None;
    }
    let envelope = Envelope::deserialize(&row.payload).ok()?;
    match envelope.job {
        Job::DeliverWebhook {
            delivery_id,
            endpoint_id,
        } if envelope.attempt == 1 => Some(GroupedDelivery {
            delivery_id,
            endpoint_id,
            trace_id: envelope.trace_id,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::VerificationId;
    use serde_json::json;
    use uuid::Uuid;

    fn row(id: i64, queue: &str, payload: serde_json::Value, delay_ms: i32) -> OutboxRow {
        OutboxRow {
            id,
            queue: queue.to_owned(),
            payload,
            delay_ms,
        }
    }

    fn start(id: i64) -> OutboxRow {
        // As `deliver_webhook_job` (migration 0004) writes it.
        let payload = json!({"type": "deliver_webhook", "delivery_id": Uuid::new_v4(),
            "endpoint_id": Uuid::new_v4(), "attempt": 1, "trace_id": format!("trace-{id}")});
        row(id, "webhooks", payload, 0)
    }

    fn order(id: i64) -> OutboxRow {
        let job = Job::OrderNumber {
            verification_id: VerificationId::new(),
        };
        row(id, "ordering", Envelope::first(job, "t").to_json(), 0)
    }

    fn grouped(message: &Outgoing) -> Vec<GroupedDelivery> {
        match Envelope::deserialize(&message.payload)
            .expect("an envelope")
            .job
        {
            Job::DeliverWebhooks { deliveries } => deliveries,
            other => panic!("not a group: {other:?}"),
        }
    }

    #[test]
    fn delivery_starts_go_together_and_everything_else_as_written() {
        let later = {
            let mut retry = start(5);
            retry.payload["attempt"] = json!(2);
            retry
        };
        let delayed = row(6, "webhooks", start(6).payload, 1_000);
        let rows = vec![
            order(1),
            start(2),
            start(3),
            order(4),
            later,
            delayed,
            start(7),
        ];
        let messages = outgoing_messages(&rows);

        let firsts: Vec<i64> = messages.iter().map(|m| m.first_row).collect();
        assert_eq!(firsts, [1, 2, 4, 5, 6]);
        let group = grouped(&messages[1]);
        let expected: Vec<GroupedDelivery> = [&rows[1], &rows[2], &rows[6]]
            .iter()
            .map(|row| delivery_start(row).expect("a start"))
            .collect();
        assert_eq!(group, expected);
        assert_eq!(group[2].trace_id, "trace-7");
        assert_eq!(messages[1].payload["trace_id"], "trace-2");
        for (message, row) in [(0, &rows[0]), (2, &rows[3]), (3, &rows[4]), (4, &rows[5])] {
            assert_eq!(messages[message], Outgoing::row(row));
        }
        let parsed = Envelope::parse(&serde_json::to_vec(&messages[1].payload).expect("json"));
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn a_lone_start_is_published_as_written_and_groups_are_bounded() {
        let lone = vec![start(1)];
        assert_eq!(outgoing_messages(&lone), vec![Outgoing::row(&lone[0])]);

        let many: Vec<OutboxRow> = (1..=(MAX_GROUPED_DELIVERIES as i64 * 2 + 1))
            .map(start)
            .collect();
        let messages = outgoing_messages(&many);
        assert_eq!(messages.len(), 3);
        assert_eq!(grouped(&messages[0]).len(), MAX_GROUPED_DELIVERIES);
        assert_eq!(grouped(&messages[1]).len(), MAX_GROUPED_DELIVERIES);
        assert_eq!(messages[2], Outgoing::row(&many[many.len() - 1]));
    }
}
