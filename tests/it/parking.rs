//! Messages that cannot be processed are parked with their reasons, never redelivered
//! forever.

use lapin::{options::BasicGetOptions, types::AMQPValue};
use serde_json::json;
use std::{collections::HashMap, time::Duration};

use crate::support::{TestEnv, eventually, never_sms};
use namaskah_core::queue::{self, QueueName};
use namaskah_load_tests::simulator::Behaviour;

/// Takes every message parked for `queue`: (body, headers as text).
pub(crate) async fn take_parked(
    env: &TestEnv,
    queue_name: QueueName,
) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let url = std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let connection = queue::connect(&url, "test-parked").await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let mut parked = Vec::new();
    while let Some(message) = channel
        .basic_get(
            env.topology().parking_queue(queue_name).into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .expect("get")
    {
        let headers = message
            .delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(key, value)| {
                        let text = match value {
                            AMQPValue::LongString(s) => s.to_string(),
                            AMQPValue::LongLongInt(n) => n.to_string(),
                            other => format!("{other:?}"),
                        };
                        (key.to_string(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        parked.push((message.delivery.data.clone(), headers));
    }
    let _ = connection.close(200, "done".into()).await;
    parked
}

#[tokio::test]
async fn malformed_messages_are_parked_at_once_with_the_reason() {
    let env = TestEnv::start().await;
    let bodies: [&[u8]; 4] = [
        b"not json at all",
        br#"{"type":"teleport","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#,
        br#"{"type":"poll_sms","attempt":1,"trace_id":"t"}"#,
        br#"{"type":"poll_sms","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#,
    ];
    for body in bodies {
        env.publish_raw(QueueName::Polling, body).await;
    }
    let mut parked = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while parked.len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 4 messages parked",
            parked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        parked.extend(take_parked(&env, QueueName::Polling).await);
    }
    let reasons: Vec<&str> = parked
        .iter()
        .map(|(_, h)| h["x-park-reason"].as_str())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "malformed").count(),
        3,
        "{reasons:?}"
    );
    // A well-formed message for a verification that does not exist is a permanent error.
    assert_eq!(
        reasons.iter().filter(|r| **r == "permanent_error").count(),
        1,
        "{reasons:?}"
    );
    for (body, headers) in &parked {
        assert_eq!(headers["x-original-queue"], "polling");
        assert!(headers.contains_key("x-error") && headers.contains_key("x-first-seen"));
        assert!(
            bodies.contains(&body.as_slice()),
            "the body is parked unchanged"
        );
    }
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_parked_after_its_last_attempt() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(15))
        .await;
    // The provider goes down; the customer's cancel cannot reach it.
    env.sim.set_behaviour(Behaviour {
        no_sms_ratio: 1.0,
        error_ratio: 1.0,
        ..Behaviour::default()
    });
    env.post(
        &format!("/v1/verifications/{id}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    let parked = eventually(
        Duration::from_secs(15),
        "the cancel message to be parked",
        || async {
            let parked = take_parked(&env, QueueName::Polling).await;
            (!parked.is_empty()).then_some(parked)
        },
    )
    .await;
    let (body, headers) = &parked[0];
    assert_eq!(headers["x-park-reason"], "retries_exhausted");
    let envelope = queue::Envelope::parse(body).expect("an envelope");
    assert_eq!(
        headers.get(queue::TRACE_ID_HEADER),
        Some(&envelope.trace_id),
        "the trace id travels in the headers through the relay and every retry"
    );
    assert_eq!(
        headers["x-attempts"], "3",
        "POLLING_RETRY allows three attempts"
    );
    assert!(String::from_utf8_lossy(body).contains("cancel_order"));
    // The money is still safe: the verification keeps waiting and will time out.
    assert_eq!(
        env.verification(&account, &id).await["status"],
        "waiting_sms"
    );
}
