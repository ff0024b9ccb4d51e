//! The outbox: a committed change is published even if RabbitMQ was away at the time.

use std::time::Duration;

use crate::support::{TcpProxy, TestEnv, never_sms};
use namaskah::pipeline::Roles;
use namaskah_load_tests::simulator::Behaviour;
use namaskah_workers::WorkerKind;

#[tokio::test]
async fn a_change_committed_while_rabbitmq_is_unreachable_is_published_when_it_returns() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().expect("addr"), false)
        .await
        .expect("proxy");
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            ..Roles::default()
        })
        .amqp_url(format!("amqp://guest:guest@{}/%2f", proxy.address))
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;

    tokio::time::sleep(Duration::from_secs(1)).await;
    let unsent: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(
        unsent, 1,
        "the message waits in the outbox while the broker is away"
    );

    proxy.restore();
    env.wait_for_empty_outbox(Duration::from_secs(15)).await;

    // And it really is in the queue: an ordering worker (talking to the broker directly)
    // picks it up.
    let _worker = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .await;
    env.wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(15))
        .await;
}

#[tokio::test]
async fn a_broker_outage_mid_run_loses_nothing() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().expect("addr"), true)
        .await
        .expect("proxy");
    let env = TestEnv::builder()
        .amqp_url(format!("amqp://guest:guest@{}/%2f", proxy.address))
        .behaviour(Behaviour {
            sms_delay_ms: 300,
            ..Behaviour::default()
        })
        .start()
        .await;
    let account = env.account(10_000).await;
    let first = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &first, "completed", Duration::from_secs(15))
        .await;

    proxy.cut().await;
    let second = env.create_verification(&account, "telegram", "us").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    env.wait_for_status(&account, &second, "completed", Duration::from_secs(30))
        .await;
    env.assert_invariants().await;
}
