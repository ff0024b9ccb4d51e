//! Subscription tiers: an upgrade is charged (prorated) and changes price and rate limits at
//! once; a downgrade waits for the period's end; renewal charges once, and an account that
//! cannot pay falls back to free with a notice.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Account, TestEnv};
use namaskah_core::domain::Scope;
use namaskah_scheduler::{JobName, jobs};

async fn env() -> TestEnv {
    TestEnv::builder()
        .api_only()
        .seeded_tier_limits()
        .start()
        .await
}

async fn change(env: &TestEnv, account: &Account, tier: &str) -> (StatusCode, Value) {
    env.post("/v1/subscription", &account.key, json!({ "tier": tier }))
        .await
}

async fn subscription_charges(env: &TestEnv, account: &Account) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT amount_cents FROM ledger_entries
         WHERE account_id = $1 AND kind = 'subscription' ORDER BY id",
    )
    .bind(account.id)
    .fetch_all(&env.pool)
    .await
    .expect("charges")
}

async fn burst_header(env: &TestEnv, account: &Account) -> String {
    let response = env
        .http
        .get(format!("{}/v1/account", env.api))
        .bearer_auth(&account.key)
        .send()
        .await
        .expect("account");
    response.headers()["ratelimit-limit"]
        .to_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn upgrades_are_prorated_and_take_effect_at_once_downgrades_wait() {
    let env = env().await;
    let account = env
        .account_with_scopes(20_000, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    assert_eq!(burst_header(&env, &account).await, "10", "free: burst 10");

    // Free → basic starts a paid period at the full price; the same request retried under
    // its Idempotency-Key gets the first answer back and pays nothing more.
    let keyed = || {
        env.http
            .post(format!("{}/v1/subscription", env.api))
            .bearer_auth(&account.key)
            .header("idempotency-key", "upgrade-1")
            .json(&json!({ "tier": "basic" }))
    };
    let first = keyed().send().await.expect("change");
    assert_eq!(first.status(), StatusCode::OK);
    let body: Value = first.json().await.expect("json");
    let replay = keyed().send().await.expect("retry");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed: Value = replay.json().await.expect("json");
    assert_eq!(replayed, body);
    assert_eq!(body["change"], "upgraded");
    assert_eq!(body["charged_cents"], 1_900);
    assert!(body["renews_at"].is_string());
    // Asking again changes nothing and charges nothing.
    let (_, again) = change(&env, &account, "basic").await;
    assert_eq!(again["change"], "unchanged");

    // Halfway through the period, basic → pro pays half the difference.
    sqlx::query("UPDATE accounts SET tier_renews_at = now() + interval '15 days' WHERE id = $1")
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("halfway");
    let (_, body) = change(&env, &account, "pro").await;
    assert_eq!(body["change"], "upgraded");
    let charged = body["charged_cents"].as_i64().expect("charged");
    assert!(
        (3_999..=4_001).contains(&charged),
        "{charged}: (9900 − 1900) × ½"
    );
    assert_eq!(
        burst_header(&env, &account).await,
        "200",
        "pro's limits apply at once"
    );
    let (_, services) = env
        .get("/v1/services?service=telegram&country=us", &account.key)
        .await;
    let catalogue = services["data"][0]["price_cents"].as_i64().expect("price");
    let id = env.create_verification(&account, "telegram", "us").await;
    assert_eq!(
        env.verification(&account, &id).await["price_cents"],
        (catalogue * 95 + 50) / 100,
        "pro pays 95 %"
    );

    // Pro → basic waits for the period's end.
    let (_, body) = change(&env, &account, "basic").await;
    assert_eq!(body["change"], "downgrade_scheduled");
    assert_eq!(body["tier"], "pro");
    assert_eq!(body["pending_tier"], "basic");
    assert_eq!(
        subscription_charges(&env, &account).await,
        vec![-1_900, -charged]
    );

    // Too little money for an upgrade: 402, nothing changes.
    let poor = env
        .account_with_scopes(100, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    let (status, body) = change(&env, &poor, "enterprise").await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    let (status, body) = change(&env, &poor, "platinum").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = change(&env, &env.account(10_000).await, "pro").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "changing tier needs admin");
    env.assert_invariants().await;
}

#[tokio::test]
async fn renewal_charges_once_and_without_balance_downgrades_with_a_notice() {
    let env = env().await;
    let context = env.job_context();
    let paying = env
        .account_with_scopes(10_000, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    let broke = env
        .account_with_scopes(1_900, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    for account in [&paying, &broke] {
        let (_, body) = change(&env, account, "basic").await;
        assert_eq!(body["charged_cents"], 1_900);
    }
    assert_eq!(env.balance(&broke).await, 0);
    // A pending downgrade to free for nobody; both periods end now.
    sqlx::query("UPDATE accounts SET tier_renews_at = '2026-01-01T00:00:00Z' WHERE id = ANY($1)")
        .bind(vec![paying.id, broke.id])
        .execute(&env.pool)
        .await
        .expect("period over");

    assert_eq!(jobs::run(JobName::Renewals, &context).await, Ok(2));
    let (_, renewed) = env.get("/v1/subscription", &paying.key).await;
    assert_eq!(renewed["tier"], "basic");
    let renews_at: chrono::DateTime<chrono::Utc> = renewed["renews_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("renews_at");
    assert!(
        renews_at > chrono::Utc::now() + chrono::Duration::days(29),
        "a long-missed period restarts from now: {renews_at}"
    );
    assert_eq!(env.balance(&paying).await, 10_000 - 2 * 1_900);
    let (_, downgraded) = env.get("/v1/subscription", &broke.key).await;
    assert_eq!(downgraded["tier"], "free");
    assert!(downgraded["renews_at"].is_null());
    let notices: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_messages
         WHERE account_id = $1 AND event_type = 'account.subscription_downgraded'",
    )
    .bind(broke.id)
    .fetch_one(&env.pool)
    .await
    .expect("notices");
    assert_eq!(notices, 1);

    // The same period found due again (a run interrupted before its commit, say) is not
    // charged twice: its charge's reference is taken.
    sqlx::query("UPDATE accounts SET tier_renews_at = '2026-01-01T00:00:00Z' WHERE id = $1")
        .bind(paying.id)
        .execute(&env.pool)
        .await
        .expect("again");
    assert_eq!(jobs::run(JobName::Renewals, &context).await, Ok(1));
    assert_eq!(env.balance(&paying).await, 10_000 - 2 * 1_900);
    assert_eq!(
        jobs::run(JobName::Renewals, &context).await,
        Ok(0),
        "nothing due"
    );
    env.assert_invariants().await;
}
