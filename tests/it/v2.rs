//! API v2: problem details, cursor pagination, `expand`, bulk orders and the event stream.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::HashSet, time::Duration};

use crate::support::{TestEnv, never_sms};
use namaskah_core::domain::{Scope, Tier};

#[tokio::test]
async fn every_v2_error_is_a_problem_document() {
    let env = TestEnv::api_only().await;
    let account = env.account(0).await;
    let cases = [
        (
            env.http.get(format!("{}/v2/account", env.api)),
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
        ),
        (
            env.http
                .get(format!("{}/v2/nowhere", env.api))
                .bearer_auth(&account.key),
            StatusCode::NOT_FOUND,
            "no_route",
        ),
        (
            env.http
                .get(format!("{}/v2/verifications?limit=0", env.api))
                .bearer_auth(&account.key),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            env.http
                .post(format!("{}/v2/verifications", env.api))
                .bearer_auth(&account.key)
                .json(&json!({"service": "telegram", "country": "us"})),
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_balance",
        ),
        (
            env.http
                .delete(format!("{}/v2/account", env.api))
                .bearer_auth(&account.key),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["status"], status.as_u16(), "{problem}");
        assert_eq!(problem["code"], code, "{problem}");
        assert_eq!(problem["type"], format!("/docs#error-{code}"));
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }
    // v1 keeps its own format.
    let (status, body) = env
        .request(reqwest::Method::GET, "/v1/account", None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "missing_api_key");
}

#[tokio::test]
async fn cursor_pages_never_skip_or_repeat_while_others_insert() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000_000).await;
    let mut existing = HashSet::new();
    for _ in 0..30 {
        existing.insert(env.create_verification(&account, "telegram", "us").await);
    }
    // Someone keeps creating verifications while the pages are read.
    let writer = {
        let http = env.http.clone();
        let url = format!("{}/v2/verifications", env.api);
        let key = account.key.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let response = http
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"service": "whatsapp", "country": "us"}))
                    .send()
                    .await
                    .expect("insert");
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v2/verifications?limit=7&cursor={cursor}"),
            None => "/v2/verifications?limit=7".to_owned(),
        };
        let (status, page) = env.get(&path, &account.key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|v| v["id"].as_str().expect("id").to_owned()),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    writer.await.expect("writer");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a row was repeated");
    for id in &existing {
        assert!(unique.contains(id), "{id} was skipped");
    }
    let (status, problem) = env
        .get("/v2/verifications?cursor=bm9wZQ", &account.key)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}

#[tokio::test]
async fn expand_events_shows_a_verifications_story() {
    let env = TestEnv::start().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "completed", Duration::from_secs(15))
        .await;
    let (status, body) = env
        .get(
            &format!("/v2/verifications/{id}?expand=events"),
            &account.key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let types: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["verification.number_assigned", "verification.completed"]
    );
    let (_, listed) = env
        .get("/v2/verifications?expand=events", &account.key)
        .await;
    assert_eq!(
        listed["data"][0]["events"].as_array().map(Vec::len),
        Some(2)
    );
    let (status, problem) = env
        .get(
            &format!("/v2/verifications/{id}?expand=account"),
            &account.key,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}

async fn ledger_rows(env: &TestEnv, account: &crate::support::Account) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM ledger_entries WHERE account_id = $1 AND kind = 'charge'",
    )
    .bind(account.id)
    .fetch_one(&env.pool)
    .await
    .expect("ledger")
}

#[tokio::test]
async fn a_bulk_order_charges_each_valid_item_once_and_reports_the_others() {
    let env = TestEnv::api_only().await;
    let account = env
        .account_on_tier(1_000_000, &[Scope::Read, Scope::Write], Tier::Enterprise)
        .await;
    let items: Vec<Value> = (0..100)
        .map(|n| match n % 10 {
            3 => json!({"service": "no-such-service", "country": "us"}),
            7 => json!({"service": "Telegram!"}),
            9 => json!({"service": "telegram", "colour": "blue"}),
            _ => json!({"service": "telegram", "country": "us"}),
        })
        .collect();
    let send = |body: Value| {
        env.http
            .post(format!("{}/v2/verifications/batch", env.api))
            .bearer_auth(&account.key)
            .header("idempotency-key", "bulk-1")
            .json(&body)
            .send()
    };
    let response = send(json!({ "items": items })).await.expect("batch");
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(
        (answer["created"].as_i64(), answer["failed"].as_i64()),
        (Some(70), Some(30))
    );
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), 100);
    for (n, result) in results.iter().enumerate() {
        assert_eq!(result["index"], n);
        let expected = match n % 10 {
            3 => (422, "unknown_service"),
            7 | 9 => (400, "invalid_request"),
            _ => (201, ""),
        };
        assert_eq!(result["status"], expected.0, "{result}");
        if expected.0 != 201 {
            assert_eq!(result["error"]["code"], expected.1, "{result}");
        }
    }
    assert_eq!(ledger_rows(&env, &account).await, 70);
    let price = results[0]["verification"]["price_cents"]
        .as_i64()
        .expect("price");
    assert_eq!(env.balance(&account).await, 1_000_000 - 70 * price);

    // The same batch again is the same answer, and nothing more is charged.
    let replay = send(json!({ "items": items })).await.expect("replay");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(ledger_rows(&env, &account).await, 70);
}

#[tokio::test]
async fn an_atomic_bulk_order_is_all_or_nothing() {
    let env = TestEnv::api_only().await;
    let account = env
        .account_on_tier(1_000_000, &[Scope::Read, Scope::Write], Tier::Enterprise)
        .await;
    let batch = |items: Value| {
        env.post(
            "/v2/verifications/batch",
            &account.key,
            json!({ "items": items, "atomic": true }),
        )
    };
    let (status, problem) = batch(json!([
        {"service": "telegram", "country": "us"},
        {"service": "no-such-service"},
        {"service": "whatsapp", "country": "us"},
    ]))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "batch_rejected");
    assert_eq!(problem["errors"][0]["index"], 1);
    assert_eq!(ledger_rows(&env, &account).await, 0);
    assert_eq!(env.balance(&account).await, 1_000_000);

    let (status, answer) = batch(json!([
        {"service": "telegram", "country": "us"},
        {"service": "whatsapp", "country": "us"},
    ]))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(ledger_rows(&env, &account).await, 2);

    // More items than the tier allows (free: 10) is refused as a whole.
    let free = env.account(1_000_000).await;
    let items: Vec<Value> = (0..11).map(|_| json!({"service": "telegram"})).collect();
    let (status, problem) = env
        .post(
            "/v2/verifications/batch",
            &free.key,
            json!({ "items": items }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}

/// Reads server-sent events until `count` have arrived: (id, event type).
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(String, String)> {
    let mut response = response;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events in time")
            .expect("stream")
            .expect("stream still open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_owned())
            };
            if let (Some(id), Some(kind)) = (field("id"), field("event")) {
                events.push((id, kind));
            }
        }
    }
    events
}

#[tokio::test]
async fn the_event_stream_resumes_exactly_after_the_last_event_seen() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let first = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &first, "waiting_sms", Duration::from_secs(15))
        .await;

    let open = |last: Option<String>| {
        let mut request = env
            .http
            .get(format!("{}/v2/events?after=0-0", env.api))
            .bearer_auth(&account.key);
        if let Some(last) = last {
            request = env
                .http
                .get(format!("{}/v2/events", env.api))
                .bearer_auth(&account.key)
                .header("last-event-id", last);
        }
        request.send()
    };
    let stream = open(None).await.expect("stream");
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let seen = read_events(stream, 1).await;
    assert_eq!(seen[0].1, "verification.number_assigned");

    // Events after the client went away arrive when it comes back, and only those.
    let (status, _) = env
        .post(
            &format!("/v1/verifications/{first}/cancel"),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    env.wait_for_status(&account, &first, "refunded", Duration::from_secs(15))
        .await;
    let resumed = open(Some(seen[0].0.clone())).await.expect("stream");
    let later = read_events(resumed, 2).await;
    assert_eq!(
        later
            .iter()
            .map(|(_, kind)| kind.as_str())
            .collect::<Vec<_>>(),
        ["verification.cancelled", "verification.refunded"]
    );
    assert!(later.iter().all(|(id, _)| *id != seen[0].0));

    let (status, problem) = env
        .request(
            reqwest::Method::GET,
            "/v2/events?after=yesterday",
            Some(&account.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
}
