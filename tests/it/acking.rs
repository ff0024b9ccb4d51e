//! Acks go out in batches, but a batch never settles a message still being handled: when the
//! consumer dies, exactly the unfinished messages come back.

use async_trait::async_trait;
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};
use uuid::Uuid;

use crate::support::{TestEnv, amqp_url, eventually};
use namaskah_core::{
    Shutdown,
    config::HoldPolicy,
    domain::VerificationId,
    queue::{
        Attempt, ConsumerOptions, Envelope, Handled, Job, JobError, JobHandler, QueueName,
        run_consumer,
    },
};

/// Finishes every message at once except the stuck ones, which never finish.
struct StuckOn {
    stuck: HashSet<Uuid>,
    finished: Mutex<Vec<Uuid>>,
    seen: Mutex<Vec<(Uuid, u32)>>,
}

impl StuckOn {
    fn new(stuck: &[Uuid]) -> Arc<Self> {
        Arc::new(Self {
            stuck: stuck.iter().copied().collect(),
            finished: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    fn finished(&self) -> usize {
        self.finished.lock().expect("lock").len()
    }

    fn seen(&self) -> Vec<(Uuid, u32)> {
        self.seen.lock().expect("lock").clone()
    }
}

#[async_trait]
impl JobHandler for StuckOn {
    async fn handle(&self, envelope: &Envelope, attempt: Attempt) -> Result<Handled, JobError> {
        let subject = envelope.job.subject_id();
        self.seen
            .lock()
            .expect("lock")
            .push((subject, attempt.number));
        if self.stuck.contains(&subject) {
            std::future::pending::<()>().await;
        }
        self.finished.lock().expect("lock").push(subject);
        Ok(Handled::Done)
    }
}

fn refund_of(id: VerificationId) -> Envelope {
    Envelope::first(
        Job::Refund {
            verification_id: id,
        },
        "trace-acking",
    )
}

fn options(env: &TestEnv) -> ConsumerOptions {
    ConsumerOptions {
        amqp_url: amqp_url(),
        topology: env.topology(),
        queue: QueueName::Refund,
        prefetch: 16,
        hold: HoldPolicy::NONE,
        retry: env.config.retry.refund,
    }
}

#[tokio::test]
async fn a_consumer_that_dies_gives_back_exactly_the_messages_it_had_not_finished() {
    // No workers: this test's consumers are the only ones on the queue.
    let env = TestEnv::api_only().await;
    let ids: Vec<VerificationId> = (0..12).map(|_| VerificationId::new()).collect();
    // Two finish below the first stuck one (a batch may settle them with one `multiple`
    // ack); the rest finish above it, with a second stuck one in among them.
    let stuck = [ids[2].0, ids[7].0];
    for id in &ids {
        env.publish_raw(QueueName::Refund, &refund_of(*id).to_bytes())
            .await;
    }

    let first = StuckOn::new(&stuck);
    let consumer = tokio::spawn(run_consumer(
        options(&env),
        Arc::clone(&first) as Arc<dyn JobHandler>,
        Shutdown::new(),
    ));
    eventually(
        Duration::from_secs(10),
        "the first consumer finishes the others",
        || async { (first.finished() == ids.len() - stuck.len()).then_some(()) },
    )
    .await;
    // Long enough for the batcher to have sent every ack it was going to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The consumer dies mid-work: its connection goes, the broker takes back what was not
    // acked.
    consumer.abort();
    let _ = consumer.await;

    let second = StuckOn::new(&[]);
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer(
        options(&env),
        Arc::clone(&second) as Arc<dyn JobHandler>,
        shutdown.clone(),
    ));
    eventually(
        Duration::from_secs(10),
        "the unfinished messages come back",
        || async { (second.finished() >= stuck.len()).then_some(()) },
    )
    .await;
    // Anything acked wrongly would be lost rather than come back; anything not acked would
    // come back too: wait a little for stragglers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shutdown.trigger();
    consumer.await.expect("consumer");

    let mut came_back: Vec<Uuid> = second.seen().into_iter().map(|(id, _)| id).collect();
    came_back.sort();
    let mut expected = stuck.to_vec();
    expected.sort();
    assert_eq!(
        came_back, expected,
        "exactly the two unfinished messages come back, once each"
    );
    let mut first_seen: Vec<Uuid> = first.seen().into_iter().map(|(id, _)| id).collect();
    first_seen.sort();
    let mut all: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    all.sort();
    assert_eq!(first_seen, all, "the first consumer saw every message once");
}

#[tokio::test]
async fn a_stream_of_messages_is_acked_in_full() {
    let env = TestEnv::api_only().await;
    let handler = StuckOn::new(&[]);
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer(
        options(&env),
        Arc::clone(&handler) as Arc<dyn JobHandler>,
        shutdown.clone(),
    ));
    let count = 200;
    for _ in 0..count {
        env.publish_raw(
            QueueName::Refund,
            &refund_of(VerificationId::new()).to_bytes(),
        )
        .await;
    }
    eventually(Duration::from_secs(20), "every message handled", || async {
        (handler.finished() == count).then_some(())
    })
    .await;
    // A clean stop sends the acks still owed before it closes the channel…
    shutdown.trigger();
    consumer.await.expect("consumer");

    // …so a new consumer finds nothing to redeliver.
    let again = StuckOn::new(&[]);
    let shutdown = Shutdown::new();
    let consumer = tokio::spawn(run_consumer(
        options(&env),
        Arc::clone(&again) as Arc<dyn JobHandler>,
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    shutdown.trigger();
    consumer.await.expect("consumer");
    assert_eq!(again.seen(), vec![], "every message was acked");
}
