//! Polls that go together: the first polls of numbers recorded together come as one
//! `poll_sms_group` message, and its members are each asked about as if they had come alone.

use std::time::Duration;

use crate::{
    parking::take_parked,
    support::{TestEnv, never_sms},
};
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::VerificationId,
    queue::{Envelope, GroupedVerification, Job, QueueName},
};
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_group_of_polls_delivered_twice_completes_each_once_and_a_missing_member_is_parked_alone()
{
    // No polling worker yet: the relay's own first polls and the group's two copies wait in
    // the queue together.
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .set("POLL_CADENCE", "1s")
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let mut ids = Vec::new();
    let mut members = Vec::new();
    for _ in 0..3 {
        let id = env.create_verification(&account, "telegram", "us").await;
        env.wait_for_status(&account, &id, "waiting_sms", WAIT)
            .await;
        members.push(GroupedVerification {
            verification_id: VerificationId::parse(&id).expect("id"),
            trace_id: env.column(&id, "trace_id").await,
        });
        ids.push(id);
    }
    let missing = VerificationId::new();
    members.push(GroupedVerification {
        verification_id: missing,
        trace_id: "missing".to_owned(),
    });
    // The first SMS is there before the group is polled; the others come while it polls
    // again.
    let first_order = env.provider_order_id(&ids[0]).await;
    assert!(env.sim.deliver_sms(first_order, "Your code is 11111"));
    let group = Envelope::first(Job::PollSmsGroup { polls: members }, "group");
    for _ in 0..2 {
        env.publish_raw(QueueName::Polling, &group.to_bytes()).await;
    }
    let _poller = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;

    let first = env
        .wait_for_status(&account, &ids[0], "completed", WAIT)
        .await;
    assert_eq!(first["code"], "11111");
    for id in &ids[1..] {
        let order = env.provider_order_id(id).await;
        assert!(env.sim.deliver_sms(order, "Your code is 22222"));
    }
    for id in &ids[1..] {
        let done = env.wait_for_status(&account, id, "completed", WAIT).await;
        assert_eq!(done["code"], "22222");
    }

    // Each copy's missing member went on alone and was parked with its own reason.
    let mut parked = Vec::new();
    let started = tokio::time::Instant::now();
    while parked.len() < 2 {
        assert!(
            started.elapsed() < WAIT,
            "only {} of 2 missing members parked",
            parked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        parked.extend(take_parked(&env, QueueName::Polling).await);
    }
    assert_eq!(parked.len(), 2);
    for (body, headers) in &parked {
        let envelope = Envelope::parse(body).expect("a message of ours");
        assert_eq!(
            envelope.job,
            Job::PollSms {
                verification_id: missing
            }
        );
        assert_eq!(envelope.trace_id, "missing");
        assert_eq!(headers["x-park-reason"], "permanent_error");
    }
    env.assert_invariants().await;
}
