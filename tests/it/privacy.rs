//! GDPR: the export holds everything of an account; erasure leaves no personal data
//! anywhere, keeps the ledger balanced, and ends the account's keys.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use crate::support::{PAYSTACK_SECRET, Sink, TestEnv, never_sms};
use namaskah_core::{domain::Scope, payments::notices::paystack_signature};

const WAIT: Duration = Duration::from_secs(15);

/// How many rows of `table` mention `needle` anywhere in any column.
async fn mentions(env: &TestEnv, table: &str, needle: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0"
    )))
    .bind(needle)
    .fetch_one(&env.pool)
    .await
    .expect("search")
}

#[tokio::test]
async fn the_export_holds_everything_and_erasure_leaves_no_personal_data() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let sink = Sink::start().await;
    let account = env
        .account_with_scopes(10_000, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    let email: String = sqlx::query_scalar("SELECT email FROM accounts WHERE id = $1")
        .bind(account.id)
        .fetch_one(&env.pool)
        .await
        .expect("email");
    let hook_url = sink.url("/private-hooks");
    let (status, endpoint) = env
        .post(
            "/v1/webhook-endpoints",
            &account.key,
            json!({ "url": hook_url }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");

    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&id).await, "Your code is 731904");
    let completed = env.wait_for_status(&account, &id, "completed", WAIT).await;
    let phone = completed["phone_number"]
        .as_str()
        .expect("number")
        .to_owned();
    eventually_delivered(&sink).await;
    assert_eq!(
        mentions(&env, "verification_numbers", &phone).await,
        1,
        "the dashboard's search finds the number"
    );

    let (_, payment) = env
        .post(
            "/v1/payments",
            &account.key,
            json!({"provider": "paystack", "amount_cents": 1_000, "currency": "USD"}),
        )
        .await;
    let body = json!({"event": "charge.success", "data": {"status": "success",
        "reference": payment["reference"], "amount": 1_000, "currency": "USD"}})
    .to_string();
    let credited = env
        .http
        .post(format!("{}/v1/payments/paystack/webhook", env.api))
        .header(
            "x-paystack-signature",
            paystack_signature(PAYSTACK_SECRET, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(credited.status(), StatusCode::OK);

    // The export: every kind of data, no credentials.
    let response = env
        .http
        .get(format!("{}/v1/account/export", env.api))
        .bearer_auth(&account.key)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .is_ok_and(|v| v.starts_with("attachment"))
    );
    let export: Value = response.json().await.expect("json");
    assert_eq!(export["account"]["email"], email.as_str());
    assert_eq!(export["verifications"][0]["phone_number"], phone.as_str());
    assert_eq!(export["verifications"][0]["code"], "731904");
    assert_eq!(export["webhook_endpoints"][0]["url"], hook_url.as_str());
    assert_eq!(export["payments"][0]["amount_cents"], 1_000);
    let kinds: Vec<&str> = export["ledger_entries"]
        .as_array()
        .expect("ledger")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"charge") && kinds.contains(&"top_up"),
        "{kinds:?}"
    );
    assert!(
        !export["webhook_messages"]
            .as_array()
            .expect("messages")
            .is_empty()
    );
    let text = export.to_string();
    for credential in ["key_hash", "\"secret\"", "\"previous_secret\"", "whsec_"] {
        assert!(!text.contains(credential), "the export holds {credential}");
    }

    // Erasure.
    let balance_before = env.balance(&account).await;
    let (status, answer) = env
        .request(
            reqwest::Method::DELETE,
            "/v1/account",
            Some(&account.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = env.get("/v1/account", &account.key).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the erased account's key is dead"
    );

    let tables = [
        "accounts",
        "api_keys",
        "verifications",
        "ledger_entries",
        "payments",
        "payment_notices",
        "webhook_endpoints",
        "webhook_messages",
        "webhook_attempts",
        "idempotency_keys",
        "outbox",
        "verification_numbers",
    ];
    for needle in [email.as_str(), phone.as_str(), "731904", "private-hooks"] {
        for table in tables {
            assert_eq!(
                mentions(&env, table, needle).await,
                0,
                "{table} still mentions {needle}"
            );
        }
    }
    assert_eq!(
        env.balance(&account).await,
        balance_before,
        "the money stays"
    );
    env.assert_invariants().await;
}

async fn eventually_delivered(sink: &Sink) {
    for _ in 0..150 {
        if sink
            .received()
            .iter()
            .any(|r| r.json["type"] == "verification.completed")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the completed event never arrived");
}

#[tokio::test]
async fn an_account_with_open_verifications_is_not_erased_yet() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env
        .account_with_scopes(10_000, &[Scope::Read, Scope::Write, Scope::Admin])
        .await;
    env.create_verification(&account, "telegram", "us").await;
    let (status, answer) = env
        .request(
            reqwest::Method::DELETE,
            "/v1/account",
            Some(&account.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "open_verifications");
    let writer = env.account(0).await;
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            "/v1/account",
            Some(&writer.key),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "erasure needs the admin scope"
    );
}
