//! Which outbox rows the relay publishes together as one message.
//!
//! Every webhook event writes one outbox row per delivery, and every verification one row for
//! its order and one for its first poll, so those were most of the broker's messages. The
//! rows the relay takes in one batch that start a delivery (`deliver_webhook`), an order
//! (`order_number`) or the polls of a number (`poll_sms`), first attempt and no delay, now go
//! out as `deliver_webhooks`, `order_numbers` and `poll_sms_group` messages of up to
//! [`QueueName::most_jobs_per_message`] each; every other row, and a start that has no
//! company, goes out as it was written.

use serde::Deserialize;

use super::{
    Envelope, Job, QueueName,
    message::{GroupedDelivery, GroupedVerification},
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

/// A row that starts work the relay may group with the like.
enum Start {
    Delivery(GroupedDelivery),
    Order(GroupedVerification),
    Poll(GroupedVerification),
}

/// The messages for a batch of outbox rows: the rows in their order, with the starts of
/// webhook deliveries, of orders and of polls gathered into groups placed where each group's
/// first row was.
pub(super) fn outgoing_messages(rows: &[OutboxRow]) -> Vec<Outgoing> {
    let mut messages = Vec::with_capacity(rows.len());
    let mut deliveries: Vec<(&OutboxRow, GroupedDelivery)> = Vec::new();
    let mut orders: Vec<(&OutboxRow, GroupedVerification)> = Vec::new();
    let mut polls: Vec<(&OutboxRow, GroupedVerification)> = Vec::new();
    for row in rows {
        match start(row) {
            Some(Start::Delivery(delivery)) => deliveries.push((row, delivery)),
            Some(Start::Order(order)) => orders.push((row, order)),
            Some(Start::Poll(poll)) => polls.push((row, poll)),
            None => messages.push((row.id, Outgoing::row(row))),
        }
    }
    let most = |queue: QueueName| queue.most_jobs_per_message();
    messages.extend(groups(
        &deliveries,
        most(QueueName::Webhooks),
        |deliveries| Job::DeliverWebhooks { deliveries },
    ));
    messages.extend(groups(&orders, most(QueueName::Ordering), |orders| {
        Job::OrderNumbers { orders }
    }));
    messages.extend(groups(&polls, most(QueueName::Polling), |polls| {
        Job::PollSmsGroup { polls }
    }));
    // Outbox ids grow with time: keep the batch's order, so older work goes out first.
    messages.sort_by_key(|(id, _)| *id);
    messages.into_iter().map(|(_, message)| message).collect()
}

/// A member of a group: it carries the trace id of its own verification.
trait Member: Clone {
    fn trace_id(&self) -> &str;
}

impl Member for GroupedDelivery {
    fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

impl Member for GroupedVerification {
    fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

/// The starts in chunks of at most `max`, each keyed by its first row; a chunk of one goes
/// out as its row was written.
fn groups<'a, M: Member + 'a>(
    starts: &'a [(&'a OutboxRow, M)],
    max: usize,
    job: impl Fn(Vec<M>) -> Job + 'a,
) -> impl Iterator<Item = (i64, Outgoing)> + 'a {
    starts.chunks(max).map(move |group| {
        let (first, first_member) = &group[0];
        let message = if let [(row, _)] = group {
            Outgoing::row(row)
        } else {
            let members: Vec<M> = group.iter().map(|(_, member)| member.clone()).collect();
            let trace_id = first_member.trace_id().to_owned();
            Outgoing {
                first_row: first.id,
                queue: first.queue.clone(),
                payload: Envelope::first(job(members), trace_id).to_json(),
                delay_ms: 0,
            }
        };
        (first.id, message)
    })
}

/// The work a row starts, when it is the first attempt of a delivery, an order or a poll,
/// due at once.
fn start(row: &OutboxRow) -> Option<Start> {
    let queue = QueueName::parse(&row.queue)?;
    let groupable = matches!(
        queue,
        QueueName::Webhooks | QueueName::Ordering | QueueName::Polling
    );
    if row.delay_ms > 0 || !groupable {
        return None;
    }
    let envelope = Envelope::deserialize(&row.payload).ok()?;
    if envelope.attempt != 1 || envelope.job.queue() != queue {
        return None;
    }
    match envelope.job {
        Job::DeliverWebhook {
            delivery_id,
            endpoint_id,
        } => Some(Start::Delivery(GroupedDelivery {
            delivery_id,
            endpoint_id,
            trace_id: envelope.trace_id,
        })),
        Job::OrderNumber { verification_id } => Some(Start::Order(GroupedVerification {
            verification_id,
            trace_id: envelope.trace_id,
        })),
        Job::PollSms { verification_id } => Some(Start::Poll(GroupedVerification {
            verification_id,
            trace_id: envelope.trace_id,
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::VerificationId;
    use crate::queue::message::{MAX_GROUPED_DELIVERIES, MAX_GROUPED_ORDERS};
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
        let trace_id = format!("order-{id}");
        row(id, "ordering", Envelope::first(job, trace_id).to_json(), 0)
    }

    fn refund(id: i64) -> OutboxRow {
        let job = Job::Refund {
            verification_id: VerificationId::new(),
        };
        row(id, "refund", Envelope::first(job, "t").to_json(), 0)
    }

    fn poll(id: i64, delay_ms: i32) -> OutboxRow {
        let job = Job::PollSms {
            verification_id: VerificationId::new(),
        };
        let trace_id = format!("poll-{id}");
        row(
            id,
            "polling",
            Envelope::first(job, trace_id).to_json(),
            delay_ms,
        )
    }

    fn job(message: &Outgoing) -> Job {
        Envelope::deserialize(&message.payload)
            .expect("an envelope")
            .job
    }

    fn grouped_deliveries(message: &Outgoing) -> Vec<GroupedDelivery> {
        match job(message) {
            Job::DeliverWebhooks { deliveries } => deliveries,
            other => panic!("not a group of deliveries: {other:?}"),
        }
    }

    fn grouped_orders(message: &Outgoing) -> Vec<GroupedVerification> {
        match job(message) {
            Job::OrderNumbers { orders } => orders,
            other => panic!("not a group of orders: {other:?}"),
        }
    }

    fn delivery_of(row: &OutboxRow) -> GroupedDelivery {
        match super::start(row) {
            Some(Start::Delivery(delivery)) => delivery,
            _ => panic!("not a delivery start: {row:?}"),
        }
    }

    fn order_of(row: &OutboxRow) -> GroupedVerification {
        match super::start(row) {
            Some(Start::Order(order)) => order,
            _ => panic!("not an order start: {row:?}"),
        }
    }

    #[test]
    fn starts_go_together_by_kind_and_everything_else_as_written() {
        let later = {
            let mut retry = start(5);
            retry.payload["attempt"] = json!(2);
            retry
        };
        let delayed = row(6, "webhooks", start(6).payload, 1_000);
        let retried_order = {
            let mut retry = order(9);
            retry.payload["attempt"] = json!(2);
            retry
        };
        let rows = vec![
            order(1),
            start(2),
            start(3),
            order(4),
            later,
            delayed,
            start(7),
            refund(8),
            retried_order,
            order(10),
        ];
        let messages = outgoing_messages(&rows);

        let firsts: Vec<i64> = messages.iter().map(|m| m.first_row).collect();
        assert_eq!(firsts, [1, 2, 5, 6, 8, 9]);
        let orders = grouped_orders(&messages[0]);
        let expected: Vec<GroupedVerification> = [&rows[0], &rows[3], &rows[9]]
            .into_iter()
            .map(order_of)
            .collect();
        assert_eq!(orders, expected);
        assert_eq!(orders[2].trace_id, "order-10");
        assert_eq!(messages[0].payload["trace_id"], "order-1");
        assert_eq!(messages[0].queue, "ordering");
        let deliveries = grouped_deliveries(&messages[1]);
        let expected: Vec<GroupedDelivery> = [&rows[1], &rows[2], &rows[6]]
            .into_iter()
            .map(delivery_of)
            .collect();
        assert_eq!(deliveries, expected);
        assert_eq!(deliveries[2].trace_id, "trace-7");
        assert_eq!(messages[1].payload["trace_id"], "trace-2");
        for (message, row) in [(2, &rows[4]), (3, &rows[5]), (4, &rows[7]), (5, &rows[8])] {
            assert_eq!(messages[message], Outgoing::row(row));
        }
        for message in &messages[..2] {
            let parsed = Envelope::parse(&serde_json::to_vec(&message.payload).expect("json"));
            assert!(parsed.is_ok(), "{parsed:?}");
        }
    }

    #[test]
    fn first_polls_due_at_once_go_together_and_the_rest_as_written() {
        let cancel = {
            let job = Job::CancelOrder {
                verification_id: VerificationId::new(),
            };
            row(3, "polling", Envelope::first(job, "c").to_json(), 0)
        };
        let later = {
            let mut again = poll(5, 0);
            again.payload["attempt"] = json!(2);
            again
        };
        let rows = vec![
            poll(1, 0),
            order(2),
            cancel,
            poll(4, 0),
            later,
            poll(6, 3_000),
            poll(7, 0),
        ];
        let messages = outgoing_messages(&rows);

        let firsts: Vec<i64> = messages.iter().map(|m| m.first_row).collect();
        assert_eq!(firsts, [1, 2, 3, 5, 6]);
        let polls: Vec<VerificationId> = match job(&messages[0]) {
            Job::PollSmsGroup { polls } => polls.iter().map(|p| p.verification_id).collect(),
            other => panic!("not a group of polls: {other:?}"),
        };
        let expected: Vec<VerificationId> = [&rows[0], &rows[3], &rows[6]]
            .into_iter()
            .map(|row| {
                Envelope::deserialize(&row.payload)
                    .expect("an envelope")
                    .job
            })
            .map(|job| match job {
                Job::PollSms { verification_id } => verification_id,
                other => panic!("not a poll: {other:?}"),
            })
            .collect();
        assert_eq!(polls, expected);
        assert_eq!(messages[0].queue, "polling");
        assert_eq!(messages[0].payload["trace_id"], "poll-1");
        for (message, row) in [(1, &rows[1]), (2, &rows[2]), (3, &rows[4]), (4, &rows[5])] {
            assert_eq!(messages[message], Outgoing::row(row));
        }
    }

    #[test]
    fn a_row_on_another_queue_than_its_job_is_published_as_written() {
        let misrouted = row(1, "webhooks", order(1).payload, 0);
        let rows = vec![misrouted, order(2)];
        let messages = outgoing_messages(&rows);
        assert_eq!(
            messages,
            vec![Outgoing::row(&rows[0]), Outgoing::row(&rows[1])]
        );
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
        assert_eq!(
            grouped_deliveries(&messages[0]).len(),
            MAX_GROUPED_DELIVERIES
        );
        assert_eq!(
            grouped_deliveries(&messages[1]).len(),
            MAX_GROUPED_DELIVERIES
        );
        assert_eq!(messages[2], Outgoing::row(&many[many.len() - 1]));

        let orders: Vec<OutboxRow> = (1..=(MAX_GROUPED_ORDERS as i64 + 2)).map(order).collect();
        let messages = outgoing_messages(&orders);
        assert_eq!(messages.len(), 2);
        assert_eq!(grouped_orders(&messages[0]).len(), MAX_GROUPED_ORDERS);
        assert_eq!(grouped_orders(&messages[1]).len(), 2);
    }

    /// How many jobs a message carries.
    fn jobs_in(message: &Outgoing) -> usize {
        match job(message) {
            Job::DeliverWebhooks { deliveries } => deliveries.len(),
            Job::OrderNumbers { orders: members } | Job::PollSmsGroup { polls: members } => {
                members.len()
            }
            _ => 1,
        }
    }

    #[test]
    fn the_largest_message_on_each_queue_carries_what_the_dashboard_says_it_may() {
        type RowOf = fn(i64) -> OutboxRow;
        let kinds: [(QueueName, RowOf); 4] = [
            (QueueName::Webhooks, start),
            (QueueName::Ordering, order),
            (QueueName::Polling, |id| poll(id, 0)),
            (QueueName::Refund, refund),
        ];
        for (queue, make) in kinds {
            let rows: Vec<OutboxRow> = (1..=200).map(make).collect();
            let messages = outgoing_messages(&rows);
            assert!(messages.iter().all(|m| m.queue == queue.as_str()));
            let largest = messages.iter().map(jobs_in).max();
            assert_eq!(largest, Some(queue.most_jobs_per_message()), "{queue}");
            assert_eq!(messages.iter().map(jobs_in).sum::<usize>(), 200, "{queue}");
        }
    }
}
