//! Acknowledges a channel's deliveries in batches.
//!
//! RabbitMQ settles every `basic.ack` on its own: for a quorum queue, one log entry each. One
//! `basic.ack` with `multiple` set settles every delivery up to its tag at once, so acks that
//! pile up while the previous one is being written go out as one.
//!
//! `multiple` settles *every* unacknowledged delivery up to the tag, finished or not, so a
//! batch only ever reaches to just below the oldest delivery still being handled (or held:
//! the polling worker holds messages for seconds). Finished deliveries above it are acked
//! one by one rather than kept waiting, since each one kept back takes a prefetch slot.
//!
//! The consume loop reports each delivery before it spawns its handler, on the same channel
//! the handler's "finished" report later comes through, so the batcher always knows of a
//! delivery before it can hear that it finished.

use lapin::{Channel, options::BasicAckOptions};
use std::collections::BTreeSet;
use tokio::{sync::mpsc, task::JoinHandle};

use super::QueueName;

/// A delivery's tag on its channel.
pub(super) type DeliveryTag = u64;

#[derive(Debug)]
enum Report {
    /// The broker handed this delivery over; it is being handled.
    Received(DeliveryTag),
    /// Handled: ack it.
    Finished(DeliveryTag),
    /// Settled some other way (nacked back to its queue): forget it.
    SettledElsewhere(DeliveryTag),
}

/// The handle the consume loop and the handlers report through.
#[derive(Clone, Debug)]
pub(super) struct Acks {
    reports: mpsc::UnboundedSender<Report>,
}

impl Acks {
    /// Starts the batcher for `channel`. It runs until every `Acks` clone is dropped, then
    /// sends what is left and ends; await the handle before closing the channel.
    pub(super) fn start(channel: Channel, queue: QueueName) -> (Self, JoinHandle<()>) {
        let (reports, incoming) = mpsc::unbounded_channel();
        let batcher = tokio::spawn(run(channel, queue, incoming));
        (Self { reports }, batcher)
    }

    pub(super) fn received(&self, tag: DeliveryTag) {
        self.report(Report::Received(tag));
    }

    pub(super) fn finished(&self, tag: DeliveryTag) {
        self.report(Report::Finished(tag));
    }

    pub(super) fn settled_elsewhere(&self, tag: DeliveryTag) {
        self.report(Report::SettledElsewhere(tag));
    }

    fn report(&self, report: Report) {
        // The batcher only stops once every sender is gone, so this cannot fail while
        // `self` exists; if it somehow did, the broker redelivers what was not acked.
        let _ = self.reports.send(report);
    }
}

async fn run(channel: Channel, queue: QueueName, mut incoming: mpsc::UnboundedReceiver<Report>) {
    let mut pending = Pending::default();
    let mut reports = Vec::new();
    // `recv_many` waits for one report and takes every other one already queued: those
    // that came in while the last acks were being sent form the next batch.
    while incoming.recv_many(&mut reports, usize::MAX).await > 0 {
        for report in reports.drain(..) {
            pending.apply(report);
        }
        for ack in pending.take_acks() {
            send(&channel, queue, ack).await;
        }
    }
}

async fn send(channel: &Channel, queue: QueueName, ack: Ack) {
    let options = BasicAckOptions {
        multiple: ack.multiple,
    };
    let multiple = if ack.multiple { "true" } else { "false" };
    metrics::counter!("namaskah_acks_sent_total", "queue" => queue.as_str(), "multiple" => multiple)
        .increment(1);
    if let Err(error) = channel.basic_ack(ack.tag, options).await {
        // The broker will redeliver what was not acked; handlers are idempotent.
        tracing::warn!(%error, tag = ack.tag, "ack failed");
    }
}

/// One `basic.ack` to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ack {
    tag: DeliveryTag,
    multiple: bool,
}

/// The deliveries of one channel not yet acked.
#[derive(Debug, Default)]
struct Pending {
    /// Received and not yet finished (being handled or held).
    handling: BTreeSet<DeliveryTag>,
    /// Finished and not yet acked.
    finished: BTreeSet<DeliveryTag>,
}

impl Pending {
    fn apply(&mut self, report: Report) {
        match report {
            Report::Received(tag) => {
                self.handling.insert(tag);
            }
            Report::Finished(tag) => {
                if self.handling.remove(&tag) {
                    self.finished.insert(tag);
                }
            }
            Report::SettledElsewhere(tag) => {
                self.handling.remove(&tag);
            }
        }
    }

    /// The acks that settle every finished delivery: one `multiple` ack for those below the
    /// oldest delivery still being handled, one each for those above it.
    fn take_acks(&mut self) -> Vec<Ack> {
        let above = match self.handling.first() {
            Some(&oldest_handled) => self.finished.split_off(&oldest_handled),
            None => BTreeSet::new(),
        };
        let below = std::mem::take(&mut self.finished);
        let mut acks = Vec::with_capacity(1 + above.len());
        if let Some(&newest_below) = below.last() {
            // One delivery alone gets a plain ack: it says the same and is easier to read
            // in a packet capture.
            acks.push(Ack {
                tag: newest_below,
                multiple: below.len() > 1,
            });
        }
        acks.extend(above.into_iter().map(|tag| Ack {
            tag,
            multiple: false,
        }));
        acks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(received: &[DeliveryTag], finished: &[DeliveryTag]) -> Pending {
        let mut pending = Pending::default();
        for &tag in received {
            pending.apply(Report::Received(tag));
        }
        for &tag in finished {
            pending.apply(Report::Finished(tag));
        }
        pending
    }

    fn multiple(tag: DeliveryTag) -> Ack {
        Ack {
            tag,
            multiple: true,
        }
    }

    fn single(tag: DeliveryTag) -> Ack {
        Ack {
            tag,
            multiple: false,
        }
    }

    #[test]
    fn all_finished_go_out_as_one_multiple_ack() {
        let mut pending = pending(&[1, 2, 3, 4], &[3, 1, 4, 2]);
        assert_eq!(pending.take_acks(), vec![multiple(4)]);
        assert_eq!(pending.take_acks(), vec![]);
    }

    #[test]
    fn a_batch_stops_below_the_oldest_delivery_still_handled() {
        let mut pending = pending(&[1, 2, 3, 4, 5], &[1, 2, 4, 5]);
        // 3 is still being handled: `multiple` up to 2, and 4 and 5 one by one.
        assert_eq!(pending.take_acks(), vec![multiple(2), single(4), single(5)]);
        pending.apply(Report::Finished(3));
        assert_eq!(pending.take_acks(), vec![single(3)]);
    }

    #[test]
    fn nothing_finished_below_the_oldest_means_single_acks_only() {
        let mut pending = pending(&[7, 8, 9], &[8, 9]);
        assert_eq!(pending.take_acks(), vec![single(8), single(9)]);
    }

    #[test]
    fn a_lone_finished_delivery_gets_a_plain_ack() {
        let mut pending = pending(&[1, 2], &[1]);
        assert_eq!(pending.take_acks(), vec![single(1)]);
    }

    #[test]
    fn a_delivery_settled_elsewhere_no_longer_holds_a_batch_back() {
        let mut pending = pending(&[1, 2, 3], &[2, 3]);
        pending.apply(Report::SettledElsewhere(1));
        assert_eq!(pending.take_acks(), vec![multiple(3)]);
    }

    #[test]
    fn a_finish_reported_twice_or_unknown_is_acked_at_most_once() {
        let mut pending = pending(&[1], &[1, 1, 5]);
        assert_eq!(pending.take_acks(), vec![single(1)]);
        pending.apply(Report::Finished(1));
        assert_eq!(pending.take_acks(), vec![]);
    }
}
