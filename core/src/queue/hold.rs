//! Short waits a worker sits out itself.
//!
//! When a handler answers "again in 3 s", the consumer used to publish the follow-up
//! through a delay tier and ack: a publish, a dead-lettering and a delivery later, the
//! message came back. For a short wait the worker now keeps the message, unacknowledged,
//! and handles the follow-up itself when the time is up. Nothing depends on the process
//! surviving the wait: if it dies, the broker delivers the unacknowledged message again.
//! On shutdown, or when all hold slots are taken, the follow-up goes through its delay tier
//! as before.

use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;

use super::QueueName;
use crate::{Shutdown, config::HoldPolicy};

/// How a hold ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HoldEnded {
    /// The wait is over: handle the follow-up now.
    Waited,
    /// Not held (too long, or no slot free), or cut short by shutdown: send the follow-up
    /// through a delay tier after this much more.
    Send { after: Duration },
}

/// The hold slots of one consumer.
pub(super) struct Holds {
    policy: HoldPolicy,
    slots: Arc<Semaphore>,
    queue: QueueName,
}

impl Holds {
    pub(super) fn new(policy: HoldPolicy, queue: QueueName) -> Self {
        Self {
            policy,
            slots: Arc::new(Semaphore::new(usize::from(policy.max_messages))),
            queue,
        }
    }

    /// Waits `after` with the message held, when the policy covers the wait and a slot is free.
    pub(super) async fn wait(&self, after: Duration, shutdown: &Shutdown) -> HoldEnded {
        if !self.policy.covers(after) || shutdown.is_triggered() {
            return HoldEnded::Send { after };
        }
        let Ok(_slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return HoldEnded::Send { after };
        };
        let gauge = metrics::gauge!("namaskah_held_messages", "queue" => self.queue.as_str());
        gauge.increment(1.0);
        let started = tokio::time::Instant::now();
        let ended = tokio::select! {
            _ = tokio::time::sleep(after) => HoldEnded::Waited,
            _ = shutdown.wait() => HoldEnded::Send { after: after.saturating_sub(started.elapsed()) },
        };
        gauge.decrement(1.0);
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(max_messages: u16) -> Holds {
        let policy = HoldPolicy {
            up_to: Duration::from_secs(5),
            max_messages,
        };
        Holds::new(policy, QueueName::Polling)
    }

    fn spawn_wait(
        holds: &Arc<Holds>,
        after: Duration,
        shutdown: &Shutdown,
    ) -> tokio::task::JoinHandle<HoldEnded> {
        let (holds, shutdown) = (Arc::clone(holds), shutdown.clone());
        tokio::spawn(async move { holds.wait(after, &shutdown).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_wait_is_held_and_a_long_one_sent() {
        let holds = holds(1);
        let shutdown = Shutdown::new();
        assert_eq!(
            holds.wait(Duration::from_secs(3), &shutdown).await,
            HoldEnded::Waited
        );
        let long = Duration::from_secs(6);
        assert_eq!(
            holds.wait(long, &shutdown).await,
            HoldEnded::Send { after: long }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_free_slot_the_wait_is_sent() {
        let holds = Arc::new(holds(1));
        let shutdown = Shutdown::new();
        let first = spawn_wait(&holds, Duration::from_secs(3), &shutdown);
        tokio::task::yield_now().await;
        let second = holds.wait(Duration::from_secs(2), &shutdown).await;
        assert_eq!(
            second,
            HoldEnded::Send {
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(first.await.expect("joined"), HoldEnded::Waited);
    }

    #[tokio::test(start_paused = true)]
    async fn no_slots_hold_nothing() {
        let short = Duration::from_millis(1);
        assert_eq!(
            holds(0).wait(short, &Shutdown::new()).await,
            HoldEnded::Send { after: short }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_a_hold_short_and_keeps_what_remains_of_the_wait() {
        let holds = Arc::new(holds(4));
        let shutdown = Shutdown::new();
        let held = spawn_wait(&holds, Duration::from_secs(5), &shutdown);
        tokio::time::sleep(Duration::from_secs(2)).await;
        shutdown.trigger();
        assert_eq!(
            held.await.expect("joined"),
            HoldEnded::Send {
                after: Duration::from_secs(3)
            }
        );
    }
}
