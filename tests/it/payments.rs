//! Top-ups through Paystack and Stripe, and referral rewards: a payment is credited exactly
//! once however often its webhook arrives; forged, stale, mismatched and unknown notices are
//! refused (401 for a signature that is missing, wrong or stale, 400 for the rest) and
//! recorded; the ledger invariant holds throughout.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Account, PAYSTACK_SECRET, STRIPE_WEBHOOK_SECRET, TestEnv};
use namaskah_core::payments::notices::{paystack_signature, stripe_signature};

async fn top_up(env: &TestEnv, account: &Account, provider: &str, amount_cents: i64) -> Value {
    let (status, payment) = env
        .post(
            "/v1/payments",
            &account.key,
            json!({ "provider": provider, "amount_cents": amount_cents, "currency": "USD" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["status"], "pending");
    assert!(
        payment["checkout_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://")),
        "{payment}"
    );
    payment
}

fn paystack_event(reference: &str, amount: i64, currency: &str) -> String {
    json!({"event": "charge.success", "data": {"id": 4099260516_i64, "status": "success",
        "reference": reference, "amount": amount, "currency": currency,
        "customer": {"email": "payer@example.com"}}})
    .to_string()
}

async fn paystack_webhook(
    env: &TestEnv,
    body: &str,
    signature: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = env
        .http
        .post(format!("{}/v1/payments/paystack/webhook", env.api))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-paystack-signature", signature);
    }
    let response = request.send().await.expect("webhook");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn stripe_event(event_type: &str, reference: &str, amount: i64) -> String {
    let object = match event_type {
        "checkout.session.completed" => json!({"object": "checkout.session",
            "client_reference_id": reference, "payment_status": "paid",
            "amount_total": amount, "currency": "usd"}),
        _ => json!({"object": "payment_intent", "metadata": {"reference": reference},
            "amount_received": amount, "currency": "usd"}),
    };
    json!({"id": format!("evt_{}", uuid::Uuid::new_v4().simple()), "type": event_type,
        "data": {"object": object}})
    .to_string()
}

async fn stripe_webhook(env: &TestEnv, body: &str, signature: &str) -> (StatusCode, Value) {
    let response = env
        .http
        .post(format!("{}/v1/payments/stripe/webhook", env.api))
        .header("stripe-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .expect("webhook");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn notices(env: &TestEnv) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT outcome, reason FROM payment_notices ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .expect("notices")
}

#[tokio::test]
async fn a_paystack_top_up_is_credited_once_however_often_its_webhook_arrives() {
    let env = TestEnv::api_only().await;
    let account = env.account(0).await;
    let payment = top_up(&env, &account, "paystack", 5_000).await;
    let reference = payment["reference"].as_str().expect("reference");

    let body = paystack_event(reference, 5_000, "USD");
    let signature = paystack_signature(PAYSTACK_SECRET, body.as_bytes());
    // Three deliveries at once, as a provider retrying a slow answer would send them.
    let answers = futures_util::future::join_all(
        (0..3).map(|_| paystack_webhook(&env, &body, Some(&signature))),
    )
    .await;
    let mut outcomes: Vec<String> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, StatusCode::OK, "{answer}");
            answer["outcome"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["credited", "duplicate", "duplicate"]);
    assert_eq!(env.balance(&account).await, 5_000);
    let (_, shown) = env
        .get(
            &format!("/v1/payments/{}", payment["id"].as_str().expect("id")),
            &account.key,
        )
        .await;
    assert_eq!(shown["status"], "succeeded");
    let top_ups: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'top_up'",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("ledger");
    assert_eq!(top_ups, 1);
    assert_eq!(notices(&env).await.len(), 3, "every call is recorded");
    env.assert_invariants().await;
}

#[tokio::test]
async fn forged_mismatched_and_unknown_paystack_notices_are_refused_and_recorded() {
    let env = TestEnv::api_only().await;
    let account = env.account(0).await;
    let payment = top_up(&env, &account, "paystack", 5_000).await;
    let reference = payment["reference"].as_str().expect("reference");
    let sign = |body: &str| paystack_signature(PAYSTACK_SECRET, body.as_bytes());

    let genuine = paystack_event(reference, 5_000, "USD");
    let cases = [
        (
            genuine.clone(),
            Some(paystack_signature("sk_wrong", genuine.as_bytes())),
            "invalid_signature",
        ),
        (genuine.clone(), None, "missing_signature"),
        (
            paystack_event(reference, 500, "USD"),
            Some(sign(&paystack_event(reference, 500, "USD"))),
            "payment_mismatch",
        ),
        (
            paystack_event(reference, 5_000, "NGN"),
            Some(sign(&paystack_event(reference, 5_000, "NGN"))),
            "payment_mismatch",
        ),
        (
            paystack_event("nsk_nobody", 5_000, "USD"),
            Some(sign(&paystack_event("nsk_nobody", 5_000, "USD"))),
            "unknown_reference",
        ),
        (
            json!({"event": "transfer.success", "data": {}}).to_string(),
            Some(sign(
                &json!({"event": "transfer.success", "data": {}}).to_string(),
            )),
            "unhandled_event",
        ),
        (
            "not json".to_owned(),
            Some(sign("not json")),
            "malformed_event",
        ),
    ];
    for (body, signature, code) in &cases {
        let (status, answer) = paystack_webhook(&env, body, signature.as_deref()).await;
        let expected = if code.ends_with("_signature") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(status, expected, "{code}: {answer}");
        assert_eq!(answer["error"]["code"], *code, "{answer}");
    }
    assert_eq!(env.balance(&account).await, 0, "nothing credited");
    let recorded = notices(&env).await;
    assert_eq!(recorded.len(), cases.len());
    assert!(
        recorded
            .iter()
            .all(|(outcome, reason)| outcome == "refused" && reason.is_some())
    );

    // The genuine notice still credits afterwards.
    let (status, _) = paystack_webhook(&env, &genuine, Some(&sign(&genuine))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(env.balance(&account).await, 5_000);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_stripe_checkout_is_credited_once_across_its_two_events_and_stale_signatures_fail() {
    let env = TestEnv::api_only().await;
    let account = env.account(0).await;
    let payment = top_up(&env, &account, "stripe", 2_500).await;
    let reference = payment["reference"].as_str().expect("reference");
    let now = chrono::Utc::now().timestamp();

    let completed = stripe_event("checkout.session.completed", reference, 2_500);
    let stale = stripe_signature(STRIPE_WEBHOOK_SECRET, now - 3_600, completed.as_bytes());
    let (status, answer) = stripe_webhook(&env, &completed, &stale).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"]["code"], "stale_signature");
    let forged = stripe_signature("whsec_wrong", now, completed.as_bytes());
    let (status, answer) = stripe_webhook(&env, &completed, &forged).await;
    assert_eq!(answer["error"]["code"], "invalid_signature", "{status}");

    let signed = stripe_signature(STRIPE_WEBHOOK_SECRET, now, completed.as_bytes());
    let (status, answer) = stripe_webhook(&env, &completed, &signed).await;
    assert_eq!(
        (status, answer["outcome"].clone()),
        (StatusCode::OK, json!("credited"))
    );
    // The same delivery replayed, and the payment intent's own event for the same checkout.
    let (_, answer) = stripe_webhook(&env, &completed, &signed).await;
    assert_eq!(answer["outcome"], "duplicate");
    let succeeded = stripe_event("payment_intent.succeeded", reference, 2_500);
    let signature = stripe_signature(STRIPE_WEBHOOK_SECRET, now, succeeded.as_bytes());
    let (_, answer) = stripe_webhook(&env, &succeeded, &signature).await;
    assert_eq!(answer["outcome"], "duplicate");
    assert_eq!(env.balance(&account).await, 2_500);
    env.assert_invariants().await;
}

#[tokio::test]
async fn payment_requests_are_checked() {
    let env = TestEnv::api_only().await;
    let account = env.account(0).await;
    for (body, status, code) in [
        (
            json!({"provider": "paypal", "amount_cents": 1000, "currency": "USD"}),
            400,
            "invalid_request",
        ),
        (
            json!({"provider": "stripe", "amount_cents": 5, "currency": "USD"}),
            400,
            "invalid_request",
        ),
        (
            json!({"provider": "stripe", "amount_cents": 1000, "currency": "EUR"}),
            422,
            "unsupported_currency",
        ),
        (
            json!({"provider": "stripe", "amount_cents": "1000", "currency": "USD"}),
            400,
            "invalid_request",
        ),
        (
            json!({"provider": "stripe", "amount_cents": 1000}),
            400,
            "invalid_request",
        ),
    ] {
        let (got, answer) = env.post("/v1/payments", &account.key, body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
    }
    let (_, list) = env.get("/v1/payments", &account.key).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn the_referrer_is_rewarded_once_when_the_referee_first_pays() {
    let env = TestEnv::api_only().await;
    let referrer = env.account(0).await;
    let referee = env.account(0).await;
    let (_, mine) = env.get("/v1/referrals", &referrer.key).await;
    let code = mine["code"].as_str().expect("code").to_owned();

    // Own code and unknown codes are refused.
    let (status, answer) = env
        .post(
            "/v1/referrals/claim",
            &referrer.key,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("self_referral"))
    );
    let (_, answer) = env
        .post(
            "/v1/referrals/claim",
            &referee.key,
            json!({ "code": "NOSUCHCODE" }),
        )
        .await;
    assert_eq!(answer["error"]["code"], "unknown_referral_code");

    let (status, answer) = env
        .post(
            "/v1/referrals/claim",
            &referee.key,
            json!({ "code": code.to_lowercase() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["referred_by"], code.as_str());
    // The referrer cannot now claim the referee's code: that would be a circle.
    let (_, theirs) = env.get("/v1/referrals", &referee.key).await;
    let (status, answer) = env
        .post(
            "/v1/referrals/claim",
            &referrer.key,
            json!({ "code": theirs["code"] }),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("referral_loop"))
    );

    // The referee's first top-up arrives three times; the reward (free tier: 100) once.
    let payment = top_up(&env, &referee, "paystack", 1_000).await;
    let body = paystack_event(
        payment["reference"].as_str().expect("reference"),
        1_000,
        "USD",
    );
    let signature = paystack_signature(PAYSTACK_SECRET, body.as_bytes());
    for _ in 0..3 {
        let (status, _) = paystack_webhook(&env, &body, Some(&signature)).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(env.balance(&referrer).await, 100);
    assert_eq!(env.balance(&referee).await, 1_000);
    // A second top-up pays the referee, not the referrer again.
    let second = top_up(&env, &referee, "paystack", 2_000).await;
    let body = paystack_event(
        second["reference"].as_str().expect("reference"),
        2_000,
        "USD",
    );
    let (status, _) = paystack_webhook(
        &env,
        &body,
        Some(&paystack_signature(PAYSTACK_SECRET, body.as_bytes())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(env.balance(&referrer).await, 100);

    let (_, summary) = env.get("/v1/referrals", &referrer.key).await;
    assert_eq!(summary["earnings_cents"], 100);
    assert_eq!(summary["referees"][0]["account_id"], referee.id.to_string());
    assert_eq!(summary["referees"][0]["reward_cents"], 100);
    // Having paid, the referee can no longer be re-linked.
    let (status, answer) = env
        .post("/v1/referrals/claim", &referee.key, json!({ "code": code }))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("already_referred"))
    );
    env.assert_invariants().await;
}
