//! What an account's tier allows: its request rate (per API key, shared by every API
//! replica through Redis), its price and how many verifications it may have open.

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

use crate::support::{TestEnv, never_sms};
use namaskah::pipeline::Roles;
use namaskah_core::domain::{Scope, Tier};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn api_only() -> Roles {
    Roles {
        api: true,
        ..Roles::default()
    }
}

/// GETs `/v1/account` at `api` with `key`; the status and the rate-limit headers.
async fn account_request(
    http: &reqwest::Client,
    api: &str,
    key: &str,
) -> (StatusCode, Option<u64>, Option<u64>, Option<u64>) {
    let response = http
        .get(format!("{api}/v1/account"))
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    let number = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    (
        response.status(),
        number("ratelimit-limit"),
        number("ratelimit-remaining"),
        number("retry-after"),
    )
}

#[tokio::test]
async fn a_free_key_is_refused_past_its_burst_with_the_headers_that_say_when_to_retry() {
    let env = TestEnv::builder().seeded_tier_limits().start().await;
    let account = env.account(0).await; // free: 5/s, burst 10
    let mut answers = Vec::new();
    for _ in 0..14 {
        answers.push(account_request(&env.http, &env.api, &account.key).await);
    }
    let allowed = answers
        .iter()
        .filter(|(status, ..)| *status == StatusCode::OK)
        .count();
    // Ten at once, plus whatever the sustained rate refilled while they ran.
    assert!((10..=12).contains(&allowed), "{answers:?}");
    let (_, limit, remaining, _) = answers[0];
    assert_eq!((limit, remaining), (Some(10), Some(9)));
    // The refusals say when to retry. (A token may refill between two refusals on a slow
    // machine, so it is not the position of a refusal that is checked.)
    let (_, limit, remaining, retry_after) = *answers
        .iter()
        .find(|(status, ..)| *status == StatusCode::TOO_MANY_REQUESTS)
        .expect("a refusal");
    assert_eq!((limit, remaining), (Some(10), Some(0)));
    assert!(retry_after.is_some_and(|s| s >= 1), "{answers:?}");

    // The error body names the code, in whichever request finds the bucket empty.
    let mut refused = None;
    for _ in 0..10 {
        let (status, body) = env.get("/v1/account", &account.key).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(body);
            break;
        }
    }
    let body = refused.expect("refused again while the bucket is empty");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another key of a richer tier is not affected.
    let pro = env.account_on_tier(0, &[Scope::Read], Tier::Pro).await;
    let (status, ..) = account_request(&env.http, &env.api, &pro.key).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn two_api_replicas_sharing_redis_enforce_one_limit_together() {
    let env = TestEnv::builder()
        .seeded_tier_limits()
        .set("REDIS_URL", &redis_url())
        .start()
        .await;
    let second = env.start_roles(api_only()).await;
    let second_api = format!("http://{}", second.api_addr.expect("second API"));
    let account = env.account(0).await;
    let mut allowed = 0;
    for round in 0..20 {
        let api = if round % 2 == 0 {
            &env.api
        } else {
            &second_api
        };
        let (status, ..) = account_request(&env.http, api, &account.key).await;
        if status == StatusCode::OK {
            allowed += 1;
        }
    }
    // Alone, each replica would have let its ten through: twenty in all.
    assert!((10..=12).contains(&allowed), "{allowed} of 20 allowed");
}

#[tokio::test]
async fn each_tier_pays_its_price_and_may_hold_only_so_many_open_verifications() {
    let env = TestEnv::builder()
        .seeded_tier_limits()
        .behaviour(never_sms())
        .start()
        .await;
    // Only the open-verification cap is under test here, not the request rate.
    sqlx::query("UPDATE tiers SET requests_per_second = 1000, burst = 1000")
        .execute(&env.pool)
        .await
        .expect("lift rates");
    let (_, services) = env
        .request(
            reqwest::Method::GET,
            "/v1/services?service=telegram&country=us",
            None,
            None,
        )
        .await;
    let catalogue_price = services["data"][0]["price_cents"].as_i64().expect("price");

    let pro = env
        .account_on_tier(10_000, &[Scope::Read, Scope::Write], Tier::Pro)
        .await;
    let id = env.create_verification(&pro, "telegram", "us").await;
    let pro_price = env.verification(&pro, &id).await["price_cents"]
        .as_i64()
        .expect("price");
    assert_eq!(
        pro_price,
        (catalogue_price * 95 + 50) / 100,
        "pro pays 95 %"
    );

    let free = env.account(10_000).await; // at most 5 open
    let mut open = Vec::new();
    for _ in 0..5 {
        let id = env.create_verification(&free, "telegram", "us").await;
        assert_eq!(
            env.verification(&free, &id).await["price_cents"],
            catalogue_price
        );
        open.push(id);
    }
    let order = json!({ "service": "telegram", "country": "us" });
    let (status, body) = env
        .post("/v1/verifications", &free.key, order.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "open_verification_limit");
    assert_eq!(env.balance(&free).await, 10_000 - 5 * catalogue_price);

    // A cancelled verification stays open until its refund; then the slot is free again.
    let cancelled = &open[0];
    env.wait_for_status(&free, cancelled, "waiting_sms", Duration::from_secs(10))
        .await;
    let (status, body) = env
        .post(
            &format!("/v1/verifications/{cancelled}/cancel"),
            &free.key,
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    env.wait_for_status(&free, cancelled, "refunded", Duration::from_secs(10))
        .await;
    let (status, body) = env
        .post("/v1/verifications", &free.key, order.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = env.post("/v1/verifications", &free.key, order).await;
    assert_eq!(status, StatusCode::CONFLICT);
    env.assert_invariants().await;
}
