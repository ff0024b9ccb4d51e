//! A database that is briefly away is not an internal error: the API and the dashboard
//! answer `503` with `Retry-After` while PostgreSQL cannot be reached, the workers wait for
//! it, and all work again as soon as it can.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use crate::{
    parking::take_parked,
    support::{TcpProxy, TestEnv},
};
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::VerificationId,
    queue::{Envelope, Job, QueueName},
};
use namaskah_workers::WorkerKind;

#[tokio::test]
async fn requests_during_a_database_outage_get_503_with_retry_after_then_succeed() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("addr"), true)
        .await
        .expect("proxy");
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            dashboard: true,
            ..Roles::default()
        })
        .database_through(proxy.address)
        .start()
        .await;
    let account = env.account(10_000).await;
    let order = |key: &'static str| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .header("Idempotency-Key", key)
            .json(&json!({ "service": "telegram", "country": "us" }))
            .send()
    };
    assert_eq!(
        order("before").await.expect("send").status(),
        StatusCode::CREATED
    );

    proxy.cut().await;
    for version in ["v1", "v2"] {
        let response = env
            .http
            .get(format!("{}/{version}/verifications", env.api))
            .bearer_auth(&account.key)
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{version}"
        );
        assert_eq!(
            response.headers()["retry-after"],
            "2",
            "{version}: Retry-After"
        );
        let body: Value = response.json().await.expect("json");
        let code = body["error"]["code"].as_str().or(body["code"].as_str());
        assert_eq!(code, Some("service_unavailable"), "{version}: {body}");
    }
    let during = order("during").await.expect("send");
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(during.headers().contains_key("retry-after"));
    let page = env
        .http
        .get(format!("{}/", env.dashboard))
        .header("cookie", "namaskah_session=some-session")
        .send()
        .await
        .expect("dashboard");
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()["retry-after"], "2");

    proxy.restore();
    // The same key again: the 503 was not stored against it, so the retry is accepted.
    crate::support::eventually(
        Duration::from_secs(15),
        "the API to accept orders again",
        || async {
            let response = order("during").await.ok()?;
            (response.status() == StatusCode::CREATED).then_some(())
        },
    )
    .await;
}

/// A worker waits out the database without spending the message's attempts: with one
/// ordering attempt allowed, an order whose message arrives while PostgreSQL is away used to
/// be parked as `retries_exhausted` (and carried on only by the sweeper much later); now it
/// is ordered as soon as the database is back, on its first attempt.
#[tokio::test]
async fn an_order_that_arrives_during_a_database_outage_waits_for_it_without_spending_attempts() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("addr"), true)
        .await
        .expect("proxy");
    // No relay: the order's message is published by hand, once the database is away.
    let env = TestEnv::builder()
        .behaviour(crate::support::never_sms())
        .roles(Roles {
            api: true,
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .set("ORDERING_RETRY", "1,100ms,100ms")
        .database_through(proxy.address)
        .start()
        .await;
    let account = env.account(10_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;

    proxy.cut().await;
    let order = Envelope::first(
        Job::OrderNumber {
            verification_id: VerificationId::parse(&id).expect("id"),
        },
        "outage",
    );
    env.publish_raw(QueueName::Ordering, &order.to_bytes())
        .await;
    // Longer than the pool's 5 s wait for a connection: the attempt has failed at least once.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let status: String = env.column(&id, "status").await;
    assert_eq!(
        status, "pending",
        "nothing could be claimed without the database"
    );
    assert!(
        take_parked(&env, QueueName::Ordering).await.is_empty(),
        "an outage parks nothing"
    );

    proxy.restore();
    env.wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(20))
        .await;
    let attempts: i32 = env.column(&id, "order_attempts").await;
    assert_eq!(attempts, 1, "the outage spent no attempt");
    assert!(take_parked(&env, QueueName::Ordering).await.is_empty());
}
