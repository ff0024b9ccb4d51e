//! Money: charged exactly once, never below zero, whatever the concurrency.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestEnv;
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::{VerificationId, new_trace_id},
    store::verifications::{self, ChargedOrder, NewVerification, Refusal},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_submissions_against_a_balance_for_thirty_accept_exactly_thirty() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            ..Roles::default()
        })
        .start()
        .await;
    let (_, services) = env
        .request(
            reqwest::Method::GET,
            "/v1/services?service=telegram&country=us",
            None,
            None,
        )
        .await;
    let price = services["data"][0]["price_cents"].as_i64().expect("price");
    let account = env.account(price * 30).await;

    let requests = (0..50).map(|_| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .json(&json!({"service": "telegram", "country": "us"}))
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut accepted = 0;
    let mut refused = 0;
    for response in responses {
        match response.expect("send").status() {
            StatusCode::CREATED => accepted += 1,
            StatusCode::PAYMENT_REQUIRED => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((accepted, refused), (30, 20));
    assert_eq!(env.balance(&account).await, 0);
    let charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(charges, 30);
    env.assert_invariants().await;
}

/// Orders charged by one batch (as the API's batcher makes them) end as they would one after
/// the other: each account's orders in turn, each refused for its own reason, each accepted
/// one charged, counted and queued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_orders_charges_each_account_in_turn_and_refuses_each_order_for_its_reason() {
    // No relay: the ordering messages stay in the outbox to be counted.
    let env = TestEnv::builder().roles(Roles::default()).start().await;
    let rich = env.account(1_000).await;
    let poor = env.account(250).await;
    let order = |account: &crate::support::Account, price_cents: i64, max_open: i32| ChargedOrder {
        new: NewVerification {
            id: VerificationId::new(),
            account_id: account.id,
            service: "telegram".to_owned(),
            country: "us".to_owned(),
            price_cents,
            trace_id: new_trace_id(),
        },
        max_open,
    };
    let batch = [
        order(&poor, 100, 10),
        order(&rich, 100, 2),
        order(&poor, 100, 10),
        order(&rich, 100, 2),
        order(&poor, 100, 10), // 50 left: not enough
        order(&rich, 100, 2),  // two open already
        order(&poor, 50, 10),  // exactly the 50 left
    ];
    let mut conn = env.pool.acquire().await.expect("connection");
    let answers = verifications::insert_charged_many(&mut conn, &batch)
        .await
        .expect("charged");

    let outcome: Vec<Result<(), Refusal>> = answers
        .into_iter()
        .zip(&batch)
        .map(|(answer, order)| answer.map(|verification| assert_eq!(verification.id, order.new.id)))
        .collect();
    assert_eq!(
        outcome,
        vec![
            Ok(()),
            Ok(()),
            Ok(()),
            Ok(()),
            Err(Refusal::Balance { balance_cents: 50 }),
            Err(Refusal::OpenLimit),
            Ok(()),
        ]
    );
    assert_eq!(env.balance(&poor).await, 0);
    assert_eq!(env.balance(&rich).await, 800);
    let (charges, messages, counted): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM ledger_entries WHERE kind = 'charge'),
                (SELECT count(*) FROM outbox WHERE queue = 'ordering'),
                (SELECT sum(verifications)::bigint FROM usage_by_day)",
    )
    .fetch_one(&env.pool)
    .await
    .expect("counts");
    assert_eq!((charges, messages, counted), (5, 5, 5));
    env.assert_invariants().await;
}
