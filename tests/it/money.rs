//! Money: charged exactly once, never below zero, whatever the concurrency.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestEnv;
use namaskah::pipeline::Roles;

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
