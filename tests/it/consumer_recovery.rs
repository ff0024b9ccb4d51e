//! A consumer cut off from RabbitMQ, again and again and at any moment of its work (in a
//! handler, holding a message, waiting for a publish's confirm or an ack, subscribing),
//! consumes again once the broker is back: no message is left in its queue, and a handler
//! stuck on a provider does not hold the others up.

use async_trait::async_trait;
use rand::RngExt;
use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use uuid::Uuid;

use crate::support::{TcpProxy, amqp_url};
use lapin::{BasicProperties, options::BasicPublishOptions};
use namaskah_core::{
    Shutdown,
    config::{HoldPolicy, RetryPolicy},
    domain::VerificationId,
    queue::{
        self, Attempt, ConsumerOptions, Envelope, Handled, Job, JobError, JobHandler, QueueName,
        Topology,
    },
};

/// Handles every message once, after a little work; some wait first, held in the worker or
/// sent round a delay tier, so that cuts find messages at every step. The first delivery of
/// `stuck` hangs, as a handler waiting on a provider that does not answer.
struct Recording {
    handled: Mutex<HashSet<Uuid>>,
    stuck: Option<Uuid>,
    stuck_once: AtomicBool,
}

impl Recording {
    fn new(stuck: Option<Uuid>) -> Arc<Self> {
        Arc::new(Self {
            handled: Mutex::new(HashSet::new()),
            stuck,
            stuck_once: AtomicBool::new(false),
        })
    }

    fn handled(&self) -> HashSet<Uuid> {
        self.handled
            .lock()
            .map(|handled| handled.clone())
            .unwrap_or_default()
    }

    fn is_stuck(&self) -> bool {
        self.stuck_once.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl JobHandler for Recording {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        let Job::OrderNumber { verification_id } = envelope.job else {
            return Err(JobError::Permanent("not an order".to_owned()));
        };
        let id = verification_id.0;
        if self.stuck == Some(id) && !self.stuck_once.swap(true, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let wait = match (id.as_u128() % 4, attempt.number) {
            (0, 1) => Some(Duration::from_millis(300)),
            (1, 1) => Some(Duration::from_secs(2)),
            _ => None,
        };
        if let Some(after) = wait {
            return Ok(Handled::Again {
                after,
                next: envelope.next_attempt(),
            });
        }
        if let Ok(mut handled) = self.handled.lock() {
            handled.insert(id);
        }
        Ok(Handled::Done)
    }
}

/// One consumer of the ordering queue of a topology of its own, reaching RabbitMQ through a
/// proxy that can be cut.
struct Consuming {
    proxy: TcpProxy,
    topology: Topology,
    handler: Arc<Recording>,
    shutdown: Shutdown,
    consumer: tokio::task::JoinHandle<()>,
}

impl Consuming {
    async fn start(handler: Arc<Recording>) -> Self {
        let proxy = TcpProxy::start("127.0.0.1:5672".parse().expect("addr"), true)
            .await
            .expect("proxy");
        // A high delivery limit: messages come back after every cut, and none should be
        // parked.
        let prefix = format!("t{}.", &Uuid::new_v4().simple().to_string()[..12]);
        let topology = Topology::new(prefix, 1_000);
        let options = ConsumerOptions {
            amqp_url: format!("amqp://guest:guest@{}/%2f", proxy.address),
            topology: topology.clone(),
            queue: QueueName::Ordering,
            prefetch: 8,
            hold: HoldPolicy {
                up_to: Duration::from_secs(1),
                max_messages: 16,
            },
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(2),
                jitter: 0.0,
            },
        };
        let shutdown = Shutdown::new();
        let consumer = tokio::spawn(queue::run_consumer(
            options,
            Arc::clone(&handler) as Arc<dyn JobHandler>,
            shutdown.clone(),
        ));
        Self {
            proxy,
            topology,
            handler,
            shutdown,
            consumer,
        }
    }

    /// Publishes an order for each of `ids`, straight to the broker.
    async fn publish(&self, ids: &[Uuid]) {
        let connection = queue::connect(&amqp_url(), "test-publisher")
            .await
            .expect("connect");
        let channel = connection.create_channel().await.expect("channel");
        self.topology.declare(&channel).await.expect("topology");
        channel
            .confirm_select(Default::default())
            .await
            .expect("confirms");
        for id in ids {
            let job = Job::OrderNumber {
                verification_id: VerificationId(*id),
            };
            channel
                .basic_publish(
                    self.topology.exchange().into(),
                    QueueName::Ordering.as_str().into(),
                    BasicPublishOptions::default(),
                    &Envelope::first(job, id.to_string()).to_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
        }
        let _ = connection.close(200, "published".into()).await;
    }

    /// Whether every one of `ids` is handled within `timeout`.
    async fn handled_within(&self, ids: &[Uuid], timeout: Duration) -> bool {
        let expected: HashSet<Uuid> = ids.iter().copied().collect();
        tokio::time::timeout(timeout, async {
            while !self.handler.handled().is_superset(&expected) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .is_ok()
    }

    /// Waits up to `timeout` for every one of `ids` to be handled; stops the consumer and
    /// deletes the topology either way; then says which were not.
    async fn finish(self, ids: &[Uuid], timeout: Duration) -> usize {
        let expected: HashSet<Uuid> = ids.iter().copied().collect();
        self.handled_within(ids, timeout).await;
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.consumer).await;
        if let Ok(connection) = queue::connect(&amqp_url(), "test-cleanup").await
            && let Ok(channel) = connection.create_channel().await
        {
            let _ = self.topology.delete(&channel).await;
            let _ = connection.close(200, "bye".into()).await;
        }
        expected.difference(&self.handler.handled()).count()
    }
}

fn new_ids(count: usize) -> Vec<Uuid> {
    (0..count).map(|_| Uuid::new_v4()).collect()
}

#[tokio::test]
async fn a_consumer_cut_off_many_times_handles_every_message_once_the_broker_is_back() {
    let consuming = Consuming::start(Recording::new(None)).await;
    let ids = new_ids(300);
    consuming.publish(&ids).await;

    for _ in 0..25 {
        let (up, down) = {
            let mut rng = rand::rng();
            (rng.random_range(20..400), rng.random_range(10..300))
        };
        tokio::time::sleep(Duration::from_millis(up)).await;
        consuming.proxy.cut().await;
        tokio::time::sleep(Duration::from_millis(down)).await;
        consuming.proxy.restore();
    }

    let missing = consuming.finish(&ids, Duration::from_secs(60)).await;
    assert_eq!(
        missing, 0,
        "messages not handled within 60 s of the last cut"
    );
}

#[tokio::test]
async fn a_handler_stuck_on_a_provider_does_not_keep_its_worker_from_reconnecting() {
    let stuck = Uuid::new_v4();
    let consuming = Consuming::start(Recording::new(Some(stuck))).await;
    consuming.publish(&[stuck]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !consuming.handler.is_stuck() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stuck message never came"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    consuming.proxy.cut().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    consuming.proxy.restore();
    // The stuck handler sleeps for ten minutes; the message comes again on the new
    // connection and is handled there, with the ones published after the cut.
    let mut ids = new_ids(20);
    consuming.publish(&ids).await;
    ids.push(stuck);
    let missing = consuming.finish(&ids, Duration::from_secs(30)).await;
    assert_eq!(missing, 0, "messages not handled within 30 s of the cut");
}

#[tokio::test]
async fn a_consumer_whose_connection_goes_silent_consumes_again_on_a_new_one() {
    let consuming = Consuming::start(Recording::new(None)).await;
    let before = new_ids(5);
    consuming.publish(&before).await;
    assert!(
        consuming
            .handled_within(&before, Duration::from_secs(15))
            .await,
        "the consumer did not start"
    );

    // A partition: the consumer's connection carries nothing any more and is not closed.
    // Only the heartbeat can tell; the default one gives it up after 20 s, the broker's
    // own default (60 s) after two minutes.
    consuming.proxy.freeze();
    let after = new_ids(20);
    consuming.publish(&after).await;
    let missing = consuming.finish(&after, Duration::from_secs(60)).await;
    assert_eq!(
        missing, 0,
        "messages not handled within 60 s of the partition"
    );
}
