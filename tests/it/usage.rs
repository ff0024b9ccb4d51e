//! Usage analytics: the daily aggregates agree with the verifications they count, and an
//! account sees only its own.

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

use crate::support::{TestEnv, never_sms};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn usage_counts_orders_completions_refunds_and_the_time_to_sms() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(10_000).await;
    let other = env.account(10_000).await;

    let completed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &completed, "waiting_sms", WAIT)
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&completed).await, "code 5555");
    env.wait_for_status(&account, &completed, "completed", WAIT)
        .await;
    let cancelled = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &cancelled, "waiting_sms", WAIT)
        .await;
    env.post(
        &format!("/v1/verifications/{cancelled}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    let refunded = env
        .wait_for_status(&account, &cancelled, "refunded", WAIT)
        .await;
    env.create_verification(&other, "whatsapp", "us").await;

    let (status, report) = env.get("/v1/usage", &account.key).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let price = refunded["price_cents"].as_i64().expect("price");
    let total = &report["totals"][0];
    assert_eq!(
        report["totals"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(total["service"], "telegram");
    assert_eq!(total["verifications"], 2);
    assert_eq!(total["completed"], 1);
    assert_eq!(total["success_rate"], 0.5);
    assert_eq!(total["refunded"], 1);
    assert_eq!(total["refunded_cents"], price);
    assert_eq!(total["spend_cents"], 2 * price);
    assert_eq!(
        total["median_seconds_to_sms"], 5,
        "completed within seconds"
    );
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(report["days"][0]["day"], today.as_str());

    // The aggregates equal a count over the verifications themselves.
    let (count, spend): (i64, i64) = sqlx::query_as(
        "SELECT count(*), sum(price_cents)::bigint FROM verifications WHERE account_id = $1",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(
        (json!(count), json!(spend)),
        (total["verifications"].clone(), total["spend_cents"].clone())
    );

    let (_, filtered) = env.get("/v1/usage?service=whatsapp", &account.key).await;
    assert_eq!(
        filtered["totals"],
        json!([]),
        "another account's usage is not shown"
    );
    for bad in [
        "/v1/usage?from=yesterday",
        "/v1/usage?from=2026-02-01&to=2026-01-01",
        "/v1/usage?from=2020-01-01&to=2026-01-01",
        "/v1/usage?colour=red",
    ] {
        let (status, body) = env.get(bad, &account.key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn a_time_to_sms_falls_in_the_bucket_below_its_bound_and_never_past_the_last() {
    let env = TestEnv::builder().start().await;
    let (buckets, bounds): (Vec<i32>, Vec<i32>) = sqlx::query_as(
        "SELECT array_agg(usage_bucket(s) ORDER BY s), usage_bucket_bounds()
         FROM unnest(ARRAY[0, 4.99, 5, 9.5, 1799, 1800, 1e12]::float8[]) AS s",
    )
    .fetch_one(&env.pool)
    .await
    .expect("buckets");
    let last = i32::try_from(bounds.len()).expect("a few bounds");
    assert_eq!(buckets, vec![1, 1, 2, 2, 17, last, last]);
}
