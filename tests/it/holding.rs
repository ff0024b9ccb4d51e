//! Short waits sat out in the worker: the next SMS poll waits with its message held,
//! unacknowledged, instead of going round a delay tier; on shutdown it goes round one.

use lapin::options::QueueDeclareOptions;
use std::time::Duration;

use crate::support::{TestEnv, amqp_url, eventually, never_sms};
use namaskah::pipeline::Roles;
use namaskah_core::queue::{self, DelayTier, QueueName};
use namaskah_load_tests::simulator::Behaviour;
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

/// Messages ready in these queues, together.
async fn messages_in(names: impl IntoIterator<Item = String>) -> u32 {
    let connection = queue::connect(&amqp_url(), "test-depth")
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let mut total = 0;
    for name in names {
        let declared = channel
            .queue_declare(name.into(), passive, Default::default())
            .await
            .expect("the queue exists");
        total += declared.message_count();
    }
    let _ = connection.close(200, "counted".into()).await;
    total
}

async fn messages_in_delay_tiers(env: &TestEnv) -> u32 {
    let topology = env.topology();
    messages_in(DelayTier::all().map(|tier| topology.delay_name(tier))).await
}

/// Samples the delay tiers every 100 ms until the verification completes; returns the most
/// messages seen in them at once.
async fn most_in_delay_tiers_until_completed(env: &TestEnv) -> u32 {
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let mut most = 0;
    let started = tokio::time::Instant::now();
    loop {
        most = most.max(messages_in_delay_tiers(env).await);
        if env.verification(&account, &id).await["status"] == "completed" {
            return most;
        }
        assert!(
            started.elapsed() < WAIT,
            "the verification did not complete"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sms_after(millis: u64) -> Behaviour {
    Behaviour {
        sms_delay_ms: millis,
        ..Behaviour::default()
    }
}

#[tokio::test]
async fn polls_wait_in_the_worker_and_not_in_a_delay_tier() {
    // The first poll is due 1 s after the number, the next ones 1 s apart; the SMS comes
    // after 2.5 s, so the worker waits three times before it finds it.
    let env = TestEnv::builder()
        .set("POLL_CADENCE", "1s")
        .behaviour(sms_after(2_500))
        .start()
        .await;
    assert_eq!(most_in_delay_tiers_until_completed(&env).await, 0);
}

#[tokio::test]
async fn without_hold_slots_polls_go_round_a_delay_tier() {
    // The same run with holding off: the probe above does see messages in the tiers.
    let env = TestEnv::builder()
        .set("POLL_CADENCE", "1s")
        .set("WORKER_HOLD_MESSAGES", "0")
        .behaviour(sms_after(2_500))
        .start()
        .await;
    assert!(most_in_delay_tiers_until_completed(&env).await > 0);
}

#[tokio::test]
async fn a_poll_held_at_shutdown_goes_round_a_delay_tier_and_is_not_lost() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .set("POLL_CADENCE", "5s")
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let poller = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    // The first poll is held for its 5 s; stop the worker in the middle of the wait.
    let polling = env.topology().queue(QueueName::Polling);
    eventually(WAIT, "the poll taken by the worker", || async {
        (messages_in([polling.clone()]).await == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        messages_in_delay_tiers(&env).await,
        0,
        "held, not in a tier"
    );
    poller.stop().await;
    assert_eq!(
        messages_in_delay_tiers(&env).await,
        1,
        "sent round a delay tier for the rest of its wait"
    );
    // …and comes back to the polling queue when that is over, for the next worker.
    eventually(WAIT, "the poll back in its queue", || async {
        (messages_in([polling.clone()]).await == 1).then_some(())
    })
    .await;
    assert_eq!(messages_in_delay_tiers(&env).await, 0);
}
