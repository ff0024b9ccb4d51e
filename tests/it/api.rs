//! The API's answers: every status code the foundation promises.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use std::time::Duration;

use crate::support::{TestEnv, eventually};
use namaskah::pipeline::Roles;
use namaskah_core::domain::Scope;

/// The API alone: no worker moves anything, so states stay as the API left them.
fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn a_verification_is_created_charged_once_and_readable() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let (status, created) = env
        .post(
            "/v1/verifications",
            &account.key,
            json!({"service": "telegram", "country": "US"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["service"], "telegram");
    assert_eq!(created["country"], "us");
    let price = created["price_cents"].as_i64().expect("price");
    assert!(price > 0);
    assert_eq!(env.balance(&account).await, 1_000 - price);

    let id = created["id"].as_str().expect("id");
    let read = env.verification(&account, id).await;
    assert_eq!(read["id"], created["id"]);
    let (status, account_view) = env.get("/v1/account", &account.key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account_view["balance_cents"], 1_000 - price);
    assert_eq!(account_view["tier"], "free");
    env.assert_invariants().await;
}

#[tokio::test]
async fn without_a_country_the_cheapest_is_chosen() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let (status, created) = env
        .post(
            "/v1/verifications",
            &account.key,
            json!({"service": "telegram"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, services) = env
        .request(Method::GET, "/v1/services?service=telegram", None, None)
        .await;
    let cheapest = services["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["price_cents"].as_i64().unwrap_or(i64::MAX))
        .min()
        .expect("some");
    assert_eq!(created["price_cents"], cheapest);
}

#[tokio::test]
async fn keys_are_checked() {
    let env = TestEnv::api_only().await;
    let body = json!({"service": "telegram"});
    let (status, answer) = env
        .request(Method::POST, "/v1/verifications", None, Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&answer), "missing_api_key");

    let fake = format!("nmk_{}", "A".repeat(40));
    let (status, answer) = env
        .request(
            Method::POST,
            "/v1/verifications",
            Some(&fake),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&answer), "invalid_api_key");

    let (status, _) = env
        .request(Method::GET, "/v1/account", Some("garbage"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let account = env.account(1_000).await;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE account_id = $1")
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("revoke");
    let (status, answer) = env.get("/v1/account", &account.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&answer), "revoked_api_key");

    let reader = env.account_with_scopes(1_000, &[Scope::Read]).await;
    let (status, answer) = env.post("/v1/verifications", &reader.key, body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&answer), "insufficient_scope");
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let cases = [
        (
            json!({"service": "telegram", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"country": "us"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"service": 42}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"service": "Tele Gram"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"service": "telegram", "country": "USA"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!(["telegram"]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"service": "carrier-pigeon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_service",
        ),
        (
            json!({"service": "telegram", "country": "zz"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_service",
        ),
    ];
    for (body, expected_status, expected_code) in cases {
        let (status, answer) = env
            .post("/v1/verifications", &account.key, body.clone())
            .await;
        assert_eq!(status, expected_status, "{body} → {answer}");
        assert_eq!(error_code(&answer), expected_code, "{body}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    let raw = |body: &'static str| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .body(body)
            .send()
    };
    for body in ["{\"service\":", "not json", ""] {
        let response = raw(body).await.expect("send");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
        let answer: Value = response.json().await.expect("json");
        assert_eq!(error_code(&answer), "invalid_json");
    }

    let huge = format!("{{\"service\":\"{}\"}}", "a".repeat(70_000));
    let response = env
        .http
        .post(format!("{}/v1/verifications", env.api))
        .bearer_auth(&account.key)
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let (status, answer) = env.get("/v1/verifications?status=done", &account.key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&answer), "invalid_query");
    let (status, _) = env.get("/v1/verifications?limit=0", &account.key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = env.get("/v1/verifications?page=2", &account.key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, answer) = env.get("/v1/nothing-here", &account.key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&answer), "no_route");
    let (status, answer) = env
        .request(Method::PUT, "/v1/account", Some(&account.key), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&answer), "method_not_allowed");
    assert_eq!(
        env.balance(&account).await,
        1_000,
        "no bad request moved money"
    );
}

#[tokio::test]
async fn an_uncovered_price_is_refused_with_402() {
    let env = TestEnv::api_only().await;
    let account = env.account(1).await;
    let (status, answer) = env
        .post(
            "/v1/verifications",
            &account.key,
            json!({"service": "whatsapp", "country": "us"}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{answer}");
    assert_eq!(error_code(&answer), "insufficient_balance");
    assert_eq!(env.balance(&account).await, 1);
    env.assert_invariants().await;
}

#[tokio::test]
async fn another_accounts_verification_is_not_found() {
    let env = TestEnv::api_only().await;
    let owner = env.account(1_000).await;
    let stranger = env.account(1_000).await;
    let id = env.create_verification(&owner, "telegram", "us").await;
    for path in [
        format!("/v1/verifications/{id}"),
        "/v1/verifications/not-a-uuid".to_owned(),
    ] {
        let (status, answer) = env.get(&path, &stranger.key).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&answer), "not_found");
    }
    let (status, _) = env
        .post(
            &format!("/v1/verifications/{id}/cancel"),
            &stranger.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = env.get("/v1/verifications", &stranger.key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn lists_are_newest_first_filtered_and_paginated() {
    let env = TestEnv::api_only().await;
    let account = env.account(10_000).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(env.create_verification(&account, "telegram", "us").await);
    }
    let (status, page) = env.get("/v1/verifications?limit=2", &account.key).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(listed, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(page["has_more"], true);

    let (_, last) = env
        .get("/v1/verifications?limit=2&offset=4", &account.key)
        .await;
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["has_more"], false);

    let (_, cancelled) = env
        .post(
            &format!("/v1/verifications/{}/cancel", ids[0]),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let (_, filtered) = env
        .get("/v1/verifications?status=cancelled", &account.key)
        .await;
    let filtered: Vec<&str> = filtered["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert_eq!(filtered, vec![ids[0].as_str()]);
}

#[tokio::test]
async fn cancelling_a_settled_verification_is_a_conflict() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let path = format!("/v1/verifications/{id}/cancel");
    let (status, first) = env.post(&path, &account.key, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["status"], "cancelled");
    let (status, again) = env.post(&path, &account.key, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&again), "not_cancellable");
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_first_response() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let send = |key: &'static str, body: &'static str| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .header("Idempotency-Key", key)
            .body(body)
            .send()
    };
    let first = send("order-1", r#"{"service":"telegram","country":"us"}"#)
        .await
        .expect("send");
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");

    // The same request, formatted differently: still the same request.
    let again = send("order-1", r#"{ "country": "us", "service": "telegram" }"#)
        .await
        .expect("send");
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);

    let other = send("order-1", r#"{"service":"whatsapp","country":"us"}"#)
        .await
        .expect("send");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let other: Value = other.json().await.expect("json");
    assert_eq!(error_code(&other), "idempotency_key_reused");

    let price = first["price_cents"].as_i64().expect("price");
    assert_eq!(env.balance(&account).await, 1_000 - price, "charged once");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM verifications WHERE account_id = $1")
        .bind(account.id)
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_refused_request_is_replayed_as_refused() {
    let env = TestEnv::api_only().await;
    let account = env.account(1).await;
    for _ in 0..2 {
        let response = env
            .http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .header("Idempotency-Key", "poor")
            .json(&json!({"service": "telegram", "country": "us"}))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), StatusCode::PAYMENT_REQUIRED);
    }
}

#[tokio::test]
async fn a_request_still_in_flight_under_the_same_key_is_a_conflict() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    // Another API replica is processing this key right now.
    let body = json!({"service": "telegram", "country": "us"});
    sqlx::query(
        "INSERT INTO idempotency_keys (account_id, key, request_hash, state)
         VALUES ($1, 'busy', sha256(convert_to($2, 'UTF8')), 'in_progress')",
    )
    .bind(account.id)
    .bind(format!(
        "POST /v1/verifications\n{}",
        serde_json::to_string(&body).expect("json")
    ))
    .execute(&env.pool)
    .await
    .expect("claim");
    let response = env
        .http
        .post(format!("{}/v1/verifications", env.api))
        .bearer_auth(&account.key)
        .header("Idempotency-Key", "busy")
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(error_code(&answer), "idempotency_key_in_use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_charge_once() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let requests = (0..10).map(|_| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .header("Idempotency-Key", "burst")
            .json(&json!({"service": "telegram", "country": "us"}))
            .send()
    });
    let responses = futures_util::future::join_all(requests).await;
    let mut created = 0;
    let mut ids = std::collections::HashSet::new();
    for response in responses {
        let response = response.expect("send");
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body: Value = response.json().await.expect("json");
        match status {
            StatusCode::CREATED => {
                if !replayed {
                    created += 1;
                }
                ids.insert(body["id"].as_str().expect("id").to_owned());
            }
            StatusCode::CONFLICT => assert_eq!(error_code(&body), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1, "exactly one request did the work");
    assert_eq!(ids.len(), 1, "every success names the same verification");
    env.assert_invariants().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let env = TestEnv::api_only().await;
    let (status, body) = env.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, body) = env.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["rabbitmq"], "ok");

    sqlx::query("SELECT 1")
        .execute(&env.pool)
        .await
        .expect("db up");
}

#[tokio::test]
async fn readiness_fails_when_rabbitmq_is_unreachable() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            ..Roles::default()
        })
        .amqp_url("amqp://guest:guest@127.0.0.1:1/%2f".to_owned())
        .start()
        .await;
    let (status, body) = env.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["postgres"], "ok");
    // Which engine is down, never why: the error would name the broker's host and port.
    assert_eq!(body["checks"]["rabbitmq"], "unavailable", "{body}");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}

/// The counters hold charges, refunds and top-ups in cents: they are served on the internal
/// METRICS_ADDR only, never on the API's or the dashboard's public listener.
#[tokio::test]
async fn metrics_are_served_on_the_internal_listener_only() {
    let env = crate::dashboard::api_and_dashboard_env().start().await;
    assert!(!env.dashboard.is_empty() && !env.metrics.is_empty());
    // Redirects not followed: the dashboard sends strangers to its login page.
    let client = crate::dashboard::client();
    for public in [&env.api, &env.dashboard] {
        let response = client
            .get(format!("{public}/metrics"))
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body = response.text().await.expect("body");
        assert_ne!(status, StatusCode::OK, "{public}/metrics answered");
        assert!(!body.contains("namaskah_"), "{public}/metrics: {body}");
    }
    let scrape = env
        .http
        .get(format!("{}/metrics", env.metrics))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), StatusCode::OK);
    assert!(
        scrape
            .text()
            .await
            .expect("body")
            .contains("namaskah_jobs_total")
    );
}

#[tokio::test]
async fn the_catalogue_answers_304_to_its_etag_until_a_price_changes() {
    let env = TestEnv::start().await;
    let url = format!("{}/v1/services?service=telegram&country=us", env.api);
    let first = env.http.get(&url).send().await.expect("request");
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().expect("etag").to_owned();
    let revalidate = |etag: String| {
        let http = env.http.clone();
        let url = url.clone();
        async move {
            http.get(&url)
                .header("if-none-match", etag)
                .send()
                .await
                .expect("request")
        }
    };
    let unchanged = revalidate(etag.clone()).await;
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.headers()["etag"], etag.as_str());

    // A new price reaches the cached catalogue through PostgreSQL's notification.
    sqlx::query(
        "UPDATE services SET price_cents = 777 WHERE service = 'telegram' AND country = 'us'",
    )
    .execute(&env.pool)
    .await
    .expect("new price");
    let changed = eventually(Duration::from_secs(2), "the new price to be served", || {
        let answer = revalidate(etag.clone());
        async move {
            let answer = answer.await;
            (answer.status() == StatusCode::OK).then_some(answer)
        }
    })
    .await;
    let body: Value = changed.json().await.expect("json");
    assert_eq!(body["data"][0]["price_cents"], 777);
}
