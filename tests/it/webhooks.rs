//! Webhooks: every event arrives, signed so that an independent receiver accepts it; failures
//! are retried, logged, replayable; endpoints that keep failing are disabled; private
//! addresses are refused.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use crate::support::{Account, Answer, Sink, TestEnv, eventually, generic_plan, never_sms};
use namaskah::pipeline::{Roles, Running};
use namaskah_core::{
    queue::{Envelope, GroupedDelivery, Job, QueueName},
    store::{
        self,
        services::{self, Offer},
        webhook_deliveries::{self, AttemptClaim, AttemptOutcome, ClaimRequest, DeliveredAttempt},
    },
};
use namaskah_load_tests::simulator::Behaviour;
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

/// Creates an endpoint for `url`; returns (id, secret).
async fn endpoint(
    env: &TestEnv,
    account: &Account,
    url: &str,
    event_types: Value,
) -> (String, String) {
    let (status, body) = env
        .post(
            "/v1/webhook-endpoints",
            &account.key,
            json!({"url": url, "event_types": event_types}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"]
        .as_str()
        .expect("secret shown at creation")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().expect("id").to_owned(), secret)
}

async fn send_test_event(env: &TestEnv, account: &Account, endpoint_id: &str) -> String {
    let (status, body) = env
        .post(
            &format!("/v1/webhook-endpoints/{endpoint_id}/test"),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["message_id"].as_str().expect("message id").to_owned()
}

async fn received_count(sink: &Sink, at_least: usize) -> Vec<crate::support::Received> {
    eventually(WAIT, &format!("{at_least} webhook requests"), || async {
        let received = sink.received();
        (received.len() >= at_least).then_some(received)
    })
    .await
}

/// Every webhook message and delivery id of the account is time-ordered (a version 7 UUID
/// whose time is its row's creation), so new rows land at the right-hand end of their
/// indexes (migration 0023).
async fn assert_ids_are_time_ordered(env: &TestEnv, account: &Account) {
    let ids: Vec<(String, uuid::Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT m.id, d.id, m.created_at
         FROM webhook_messages m JOIN webhook_deliveries d ON d.message_id = m.id
         WHERE m.account_id = $1",
    )
    .bind(account.id)
    .fetch_all(&env.pool)
    .await
    .expect("webhook ids");
    assert!(!ids.is_empty(), "no webhook messages to look at");
    for (message, delivery, created_at) in ids {
        let message_uuid = message
            .strip_prefix("msg_")
            .and_then(|hex| uuid::Uuid::try_parse(hex).ok())
            .unwrap_or_else(|| panic!("{message} is msg_ and 32 hex digits"));
        for id in [message_uuid, delivery] {
            assert_eq!(id.get_version_num(), 7, "{id} of {message}");
            let (seconds, nanos) = id.get_timestamp().expect("a v7 timestamp").to_unix();
            let issued =
                chrono::DateTime::from_timestamp(i64::try_from(seconds).expect("seconds"), nanos)
                    .expect("time");
            let apart = (issued - created_at).num_milliseconds().abs();
            assert!(
                apart < 5_000,
                "{id} was issued {apart} ms from its row's creation"
            );
        }
    }
}

#[tokio::test]
async fn every_event_type_arrives_signed_with_the_verification_as_the_api_shows_it() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    services::upsert(
        &env.pool,
        &Offer {
            service: "shortlived".into(),
            country: "us".into(),
            provider: "simulator".into(),
            provider_product: "shortlived".into(),
            provider_country: "usa".into(),
            price_cents: 50,
            sms_timeout_secs: 10,
        },
        true,
    )
    .await
    .expect("service");
    let sink = Sink::start().await;
    let account = env.account(10_000).await;
    let (_, secret) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;

    // Completed.
    let completed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &completed, "waiting_sms", WAIT)
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&completed).await, "code 4242");
    env.wait_for_status(&account, &completed, "completed", WAIT)
        .await;
    // Cancelled, then refunded.
    let cancelled = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &cancelled, "waiting_sms", WAIT)
        .await;
    env.post(
        &format!("/v1/verifications/{cancelled}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    let cancelled_final = env
        .wait_for_status(&account, &cancelled, "refunded", WAIT)
        .await;
    // Timed out, then refunded.
    let timed_out = env.create_verification(&account, "shortlived", "us").await;
    env.wait_for_status(&account, &timed_out, "refunded", Duration::from_secs(30))
        .await;
    // Failed, then refunded.
    env.sim.set_behaviour(Behaviour {
        out_of_stock_ratio: 1.0,
        ..never_sms()
    });
    let failed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &failed, "refunded", WAIT)
        .await;

    // 2 (completed) + 3 (cancelled) + 3 (timed out) + 2 (failed) events.
    let received = received_count(&sink, 10).await;
    for request in &received {
        assert!(
            request.signed_with(&secret),
            "bad signature on {}",
            request.event_type()
        );
        assert!(request.id.starts_with("msg_"));
        assert!(request.json["timestamp"].is_string());
    }
    let types: std::collections::BTreeSet<&str> = received.iter().map(|r| r.event_type()).collect();
    for expected in [
        "verification.number_assigned",
        "verification.completed",
        "verification.cancelled",
        "verification.timed_out",
        "verification.failed",
        "verification.refunded",
    ] {
        assert!(types.contains(expected), "no {expected} in {types:?}");
    }
    let completed_event = received
        .iter()
        .find(|r| r.event_type() == "verification.completed")
        .expect("completed event");
    assert_eq!(completed_event.json["data"]["code"], "4242");
    // The last event of a verification carries it exactly as GET returns it.
    let refunded_event = received
        .iter()
        .find(|r| {
            r.event_type() == "verification.refunded" && r.json["data"]["id"] == cancelled.as_str()
        })
        .expect("refunded event");
    assert_eq!(refunded_event.json["data"], cancelled_final);
    // One trace id follows the verification into its webhook requests.
    let trace: String = env.column(&cancelled, "trace_id").await;
    assert_eq!(refunded_event.trace_id.as_deref(), Some(trace.as_str()));
    assert_ids_are_time_ordered(&env, &account).await;
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_message_id_and_logged() {
    let env = TestEnv::start().await;
    let sink = Sink::start().await;
    sink.script([Answer::Status(500), Answer::Status(503)]);
    let account = env.account(1_000).await;
    let (id, secret) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let message = send_test_event(&env, &account, &id).await;
    let received = received_count(&sink, 3).await;
    assert!(
        received
            .iter()
            .all(|r| r.id == message && r.signed_with(&secret))
    );

    let attempts = eventually(WAIT, "three logged attempts", || async {
        let (_, body) = env
            .get(
                &format!("/v1/webhook-messages/{message}/attempts"),
                &account.key,
            )
            .await;
        let data = body["data"].as_array()?.clone();
        (data.len() == 3).then_some(data)
    })
    .await;
    let codes: Vec<i64> = attempts
        .iter()
        .filter_map(|a| a["status_code"].as_i64())
        .collect();
    assert_eq!(codes, vec![500, 503, 200]);
    assert_eq!(attempts[2]["succeeded"], true);
    let (_, list) = env
        .get("/v1/webhook-messages?event_type=webhook.test", &account.key)
        .await;
    assert_eq!(list["data"][0]["deliveries"][0]["status"], "succeeded");
}

/// The event tables keep no foreign keys (migration 0026): a delivered event leaves a message,
/// a delivery and an attempt that each find their parent, and `namaskah check` names a row
/// that does not.
#[tokio::test]
async fn event_rows_find_their_parents_and_an_orphan_breaks_an_invariant() {
    let env = TestEnv::start().await;
    let sink = Sink::start().await;
    let account = env.account(1_000).await;
    let (endpoint_id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let message = send_test_event(&env, &account, &endpoint_id).await;
    eventually(WAIT, "the attempt logged", || async {
        let (_, body) = env
            .get(
                &format!("/v1/webhook-messages/{message}/attempts"),
                &account.key,
            )
            .await;
        (body["data"].as_array()?.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        env.violations_of("webhook_rows_have_their_parents").await,
        Vec::<String>::new()
    );

    sqlx::query(
        "INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
         VALUES (gen_random_uuid(), 'msg_gone', $1::uuid)",
    )
    .bind(&endpoint_id)
    .execute(&env.pool)
    .await
    .expect("a delivery of no message");
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, succeeded, latency_ms)
         VALUES (gen_random_uuid(), 1, false, 0)",
    )
    .execute(&env.pool)
    .await
    .expect("an attempt of no delivery");
    let found = env.violations_of("webhook_rows_have_their_parents").await;
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().any(|o| o.ends_with("no message msg_gone")),
        "{found:?}"
    );
    assert!(found.iter().any(|o| o.starts_with("attempt ")), "{found:?}");
}

#[tokio::test]
async fn an_accounts_messages_are_listed_newest_first_page_by_page() {
    let env = TestEnv::start().await;
    let sink = Sink::start().await;
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(send_test_event(&env, &account, &id).await);
    }
    sent.reverse();
    let (_, first) = env.get("/v1/webhook-messages?limit=2", &account.key).await;
    let (_, second) = env
        .get("/v1/webhook-messages?limit=2&offset=2", &account.key)
        .await;
    let listed: Vec<&str> = [&first, &second]
        .iter()
        .flat_map(|page| page["data"].as_array().into_iter().flatten())
        .filter_map(|message| message["id"].as_str())
        .collect();
    assert_eq!(listed, sent);
    assert_eq!(first["has_more"], true);
    assert_eq!(second["has_more"], false);
}

#[tokio::test]
async fn a_timeout_counts_as_a_failure() {
    let env = TestEnv::builder()
        .set("WEBHOOK_TIMEOUT", "500ms")
        .start()
        .await;
    let sink = Sink::start().await;
    sink.script([Answer::SlowOk(Duration::from_secs(2))]);
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let message = send_test_event(&env, &account, &id).await;
    let attempts = eventually(WAIT, "a timeout then a success", || async {
        let (_, body) = env
            .get(
                &format!("/v1/webhook-messages/{message}/attempts"),
                &account.key,
            )
            .await;
        let data = body["data"].as_array()?.clone();
        (data.len() == 2).then_some(data)
    })
    .await;
    assert_eq!(attempts[0]["succeeded"], false);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{}",
        attempts[0]
    );
    assert_eq!(attempts[1]["succeeded"], true);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let env = TestEnv::builder()
        .set("WEBHOOK_RETRY_SCHEDULE", "100ms")
        .start()
        .await;
    let sink = Sink::start().await;
    sink.answer_by_default(Answer::Redirect);
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let message = send_test_event(&env, &account, &id).await;
    eventually(WAIT, "the delivery to fail", || async {
        let (_, list) = env.get("/v1/webhook-messages", &account.key).await;
        let delivery = &list["data"][0]["deliveries"][0];
        (list["data"][0]["id"] == message.as_str() && delivery["status"] == "failed").then_some(())
    })
    .await;
    assert_eq!(sink.received_at("/hooks").len(), 2);
    assert!(
        sink.received_at("/elsewhere").is_empty(),
        "a redirect was followed"
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled_and_its_owner_told() {
    let env = TestEnv::builder()
        .set(
            "WEBHOOK_RETRY_SCHEDULE",
            "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
        )
        .set("WEBHOOK_DISABLE_AFTER", "1s")
        .start()
        .await;
    let broken = Sink::start().await;
    broken.answer_by_default(Answer::Status(500));
    let healthy = Sink::start().await;
    let account = env.account(1_000).await;
    let (broken_id, _) = endpoint(
        &env,
        &account,
        &broken.url("/hooks"),
        json!(["webhook.test"]),
    )
    .await;
    let (_, healthy_secret) = endpoint(
        &env,
        &account,
        &healthy.url("/hooks"),
        json!(["endpoint.disabled"]),
    )
    .await;
    send_test_event(&env, &account, &broken_id).await;

    let notice = eventually(WAIT, "the endpoint.disabled notice", || async {
        healthy
            .received()
            .into_iter()
            .find(|r| r.event_type() == "endpoint.disabled")
    })
    .await;
    assert!(notice.signed_with(&healthy_secret));
    assert_eq!(notice.json["data"]["endpoint_id"], broken_id.as_str());
    let (_, view) = env
        .get(&format!("/v1/webhook-endpoints/{broken_id}"), &account.key)
        .await;
    assert_eq!(view["enabled"], false);
    assert!(
        view["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed"))
    );
    assert!(
        view.get("secret").is_none(),
        "the secret is never shown again"
    );

    // Re-enabled by its owner, it is delivered to again.
    let (status, view) = env
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{broken_id}"),
            Some(&account.key),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(view["disabled_reason"].is_null());
    // The test event (`send_test`) and the notice (`record_webhook_event`).
    assert_ids_are_time_ordered(&env, &account).await;
}

#[tokio::test]
async fn replay_and_recover_send_failed_messages_again() {
    let env = TestEnv::builder()
        .set("WEBHOOK_RETRY_SCHEDULE", "100ms")
        .start()
        .await;
    let sink = Sink::start().await;
    sink.answer_by_default(Answer::Status(500));
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let first = send_test_event(&env, &account, &id).await;
    let second = send_test_event(&env, &account, &id).await;
    received_count(&sink, 4).await;
    let failed = |message: String| {
        let env = &env;
        let account = &account;
        async move {
            eventually(WAIT, "the delivery to fail", || async {
                let (_, body) = env
                    .get(
                        &format!("/v1/webhook-messages/{message}/attempts"),
                        &account.key,
                    )
                    .await;
                (body["data"].as_array()?.len() == 2).then_some(())
            })
            .await;
        }
    };
    failed(first.clone()).await;
    failed(second.clone()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    sink.answer_by_default(Answer::Status(200));
    let (status, body) = env
        .post(
            &format!("/v1/webhook-messages/{first}/replay"),
            &account.key,
            json!({"endpoint_id": id}),
        )
        .await;
    assert_eq!(
        (status, body["replayed"].as_i64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    eventually(WAIT, "the replayed message", || async {
        sink.received()
            .iter()
            .any(|r| r.id == first && r.path == "/hooks")
            .then_some(())?;
        (sink.received().iter().filter(|r| r.id == first).count() == 3).then_some(())
    })
    .await;

    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = env
        .post(
            &format!("/v1/webhook-endpoints/{id}/recover"),
            &account.key,
            json!({"since": since}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["recovered"], 1, "only the message still failed");
    eventually(WAIT, "the recovered message", || async {
        (sink.received().iter().filter(|r| r.id == second).count() == 3).then_some(())
    })
    .await;
}

#[tokio::test]
async fn after_a_rotation_both_secrets_sign() {
    let env = TestEnv::start().await;
    let sink = Sink::start().await;
    let account = env.account(1_000).await;
    let (id, old_secret) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let (status, rotated) = env
        .post(
            &format!("/v1/webhook-endpoints/{id}/rotate-secret"),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, old_secret);
    send_test_event(&env, &account, &id).await;
    let request = received_count(&sink, 1).await.remove(0);
    assert_eq!(request.signatures.len(), 2);
    assert!(request.signed_with(&old_secret) && request.signed_with(&new_secret));
}

#[tokio::test]
async fn private_addresses_are_refused_when_not_allowed() {
    let env = TestEnv::builder()
        .set("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false")
        .set("WEBHOOK_RETRY_SCHEDULE", "100ms")
        .start()
        .await;
    let account = env.account(1_000).await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9000/hook",
        "http://[::ffff:127.0.0.1]:9000/hook",
        "http://localhost:9000/hook",
    ] {
        let (status, body) = env
            .post("/v1/webhook-endpoints", &account.key, json!({"url": url}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_webhook_url");
    }
    let (status, _) = env
        .post(
            "/v1/webhook-endpoints",
            &account.key,
            json!({"url": "ftp://example.com/"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A name that resolved to a public address when saved and to loopback at delivery time
    // (DNS rebinding) is refused at delivery: stored directly, as if it had changed since.
    let sink = Sink::start().await;
    let endpoint_id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, account_id, url, secret)
         VALUES ($1, $2, $3, 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')",
    )
    .bind(endpoint_id)
    .bind(account.id)
    .bind(format!("http://localhost:{}/hooks", sink.address.port()))
    .execute(&env.pool)
    .await
    .expect("endpoint");
    let message = send_test_event(&env, &account, &endpoint_id.to_string()).await;
    let attempts = eventually(WAIT, "refused attempts", || async {
        let (_, body) = env
            .get(
                &format!("/v1/webhook-messages/{message}/attempts"),
                &account.key,
            )
            .await;
        let data = body["data"].as_array()?.clone();
        (data.len() == 2).then_some(data)
    })
    .await;
    for attempt in &attempts {
        let error = attempt["error"].as_str().unwrap_or_default();
        assert!(error.contains("private, loopback or reserved"), "{error}");
    }
    assert!(
        sink.received().is_empty(),
        "the request reached a loopback address"
    );
}

#[tokio::test]
async fn a_duplicate_delivery_message_does_not_deliver_twice() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            ..Roles::default()
        })
        .start()
        .await;
    let sink = Sink::start().await;
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
    let message = send_test_event(&env, &account, &id).await;
    let (delivery_id, endpoint_id): (uuid::Uuid, uuid::Uuid) =
        sqlx::query_as("SELECT id, endpoint_id FROM webhook_deliveries WHERE message_id = $1")
            .bind(&message)
            .fetch_one(&env.pool)
            .await
            .expect("delivery");
    let job = Job::DeliverWebhook {
        delivery_id,
        endpoint_id,
    };
    let duplicate = Envelope::first(job, "dup");
    let _worker = publish_then_start_a_worker(&env, &duplicate, 3).await;
    received_count(&sink, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(sink.received().len(), 1);
    // And once more after delivery.
    env.publish_raw(QueueName::Webhooks, &duplicate.to_bytes())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_group_delivers_each_once_and_a_failed_delivery_goes_on_alone() {
    let env = TestEnv::api_only().await;
    let healthy = Sink::start().await;
    let failing = Sink::start().await;
    failing.script([Answer::Status(500)]);
    let account = env.account(1_000).await;
    let mut deliveries = Vec::new();
    for sink in [&healthy, &failing] {
        let (id, _) = endpoint(&env, &account, &sink.url("/hooks"), json!([])).await;
        let message = send_test_event(&env, &account, &id).await;
        deliveries.push(GroupedDelivery {
            delivery_id: delivery_of(&env, &message).await,
            endpoint_id: id.parse().expect("endpoint id"),
            trace_id: format!("trace-{message}"),
        });
    }
    let group = Envelope::first(Job::DeliverWebhooks { deliveries }, "group");
    // The relay publishes the group; the broker delivers it twice.
    let _worker = publish_then_start_a_worker(&env, &group, 2).await;

    // The failing endpoint's delivery was retried on its own and got through.
    received_count(&failing, 2).await;
    received_count(&healthy, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(healthy.received().len(), 1, "delivered twice");
    assert_eq!(failing.received().len(), 2);
    let attempts: Vec<(bool, i32)> = sqlx::query_as(
        "SELECT a.succeeded, a.attempt FROM webhook_attempts a
         JOIN webhook_deliveries d ON d.id = a.delivery_id
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE e.url = $1 ORDER BY a.id",
    )
    .bind(failing.url("/hooks"))
    .fetch_all(&env.pool)
    .await
    .expect("attempts");
    assert_eq!(attempts, [(false, 1), (true, 2)]);
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT status FROM webhook_deliveries ORDER BY status")
            .fetch_all(&env.pool)
            .await
            .expect("deliveries");
    assert_eq!(statuses, ["succeeded", "succeeded"]);
}

/// Publishes `envelope` `times` times (as a broker may deliver it), then starts a webhook
/// worker to take them.
async fn publish_then_start_a_worker(env: &TestEnv, envelope: &Envelope, times: usize) -> Running {
    for _ in 0..times {
        env.publish_raw(QueueName::Webhooks, &envelope.to_bytes())
            .await;
    }
    env.start_roles(Roles {
        workers: vec![WorkerKind::Webhooks],
        ..Roles::default()
    })
    .await
}

/// The delivery row of a message.
async fn delivery_of(env: &TestEnv, message: &str) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE message_id = $1")
        .bind(message)
        .fetch_one(&env.pool)
        .await
        .expect("delivery")
}

#[tokio::test]
async fn a_batch_claims_each_delivery_once_and_records_its_successes_together() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let (id, _) = endpoint(&env, &account, "https://example.com/hooks", json!([])).await;
    let first = delivery_of(&env, &send_test_event(&env, &account, &id).await).await;
    let second = delivery_of(&env, &send_test_event(&env, &account, &id).await).await;
    let request = |delivery_id| ClaimRequest {
        delivery_id,
        attempt: 1,
    };
    let lease = Duration::from_secs(30);

    // The same delivery twice in one batch (a duplicate message), another, and one unknown.
    let answers = webhook_deliveries::claim_attempts(
        &env.pool,
        &[
            request(first),
            request(first),
            request(second),
            request(uuid::Uuid::new_v4()),
        ],
        lease,
    )
    .await
    .expect("claimed");
    let jobs: Vec<_> = answers
        .iter()
        .filter_map(|answer| match answer {
            AttemptClaim::Claimed(job) => Some(job.delivery_id),
            _ => None,
        })
        .collect();
    assert_eq!(jobs, [first, second], "{answers:?}");
    assert!(
        matches!(answers[1], AttemptClaim::Busy { .. }),
        "{answers:?}"
    );
    assert!(matches!(answers[3], AttemptClaim::Missing), "{answers:?}");

    let delivered = |delivery_id| DeliveredAttempt {
        delivery_id,
        endpoint_id: id.parse().expect("endpoint id"),
        outcome: AttemptOutcome {
            attempt: 1,
            succeeded: true,
            status_code: Some(204),
            latency: Duration::from_millis(7),
            response_excerpt: None,
            error: None,
        },
    };
    webhook_deliveries::record_successes(&env.pool, &[delivered(first), delivered(second)])
        .await
        .expect("recorded");
    let states: Vec<(String, i64)> = sqlx::query_as(
        "SELECT d.status, (SELECT count(*) FROM webhook_attempts a WHERE a.delivery_id = d.id)
         FROM webhook_deliveries d WHERE d.id = ANY($1) ORDER BY d.id",
    )
    .bind(vec![first, second])
    .fetch_all(&env.pool)
    .await
    .expect("states");
    assert_eq!(states, vec![("succeeded".to_owned(), 1); 2]);

    // Delivered: a late duplicate is not needed any more.
    let late = webhook_deliveries::claim_attempts(&env.pool, &[request(first)], lease)
        .await
        .expect("answered");
    assert!(matches!(late[..], [AttemptClaim::NotNeeded]), "{late:?}");
}

#[tokio::test]
async fn endpoints_are_managed_and_scoped_to_their_account() {
    let env = TestEnv::start().await;
    let owner = env.account(1_000).await;
    let stranger = env.account(1_000).await;
    let (id, _) = endpoint(
        &env,
        &owner,
        "http://127.0.0.1:9/hook",
        json!(["verification.completed"]),
    )
    .await;

    let (_, list) = env.get("/v1/webhook-endpoints", &owner.key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    assert!(list["data"][0].get("secret").is_none());
    let (_, list) = env.get("/v1/webhook-endpoints", &stranger.key).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(0));
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/webhook-endpoints/{id}")),
        (
            reqwest::Method::DELETE,
            format!("/v1/webhook-endpoints/{id}"),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/webhook-endpoints/{id}/test"),
        ),
        (
            reqwest::Method::POST,
            format!("/v1/webhook-endpoints/{id}/rotate-secret"),
        ),
    ] {
        let (status, _) = env
            .request(method.clone(), &path, Some(&stranger.key), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }

    let (status, body) = env
        .post(
            "/v1/webhook-endpoints",
            &owner.key,
            json!({"url": "http://127.0.0.1:9/", "event_types": ["nope"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let (status, patched) = env
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&owner.key),
            Some(json!({"description": "orders", "event_types": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched["description"], "orders");
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&owner.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = env
        .get(&format!("/v1/webhook-endpoints/{id}"), &owner.key)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The delivery worker's bookkeeping pool plans no sequential scans. A generic plan of the
/// successes' statement, made while the deliveries table is young, would otherwise scan the
/// whole table for each batch, and keep doing so as it grows.
#[tokio::test]
async fn the_bookkeeping_pool_reaches_deliveries_by_key_even_on_a_young_table() {
    let env = TestEnv::api_only().await;
    // A young table: a thousand deliveries, a dozen pages, no statistics yet.
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, message_id, endpoint_id)
         SELECT gen_random_uuid(), 'msg_' || n, gen_random_uuid() FROM generate_series(1, 1000) n",
    )
    .execute(&env.pool)
    .await
    .expect("deliveries");
    let successes = "UPDATE webhook_deliveries SET status = 'succeeded'
                     WHERE id = ANY ($1) AND status = 'pending'";
    let bookkeeping = store::bookkeeping_pool(env.database_url(), 1).expect("pool");
    let plan = generic_plan(&bookkeeping, successes).await;
    assert!(
        plan.contains("on webhook_deliveries_pkey") && !plan.contains("Seq Scan"),
        "the bookkeeping pool's plan:\n{plan}"
    );
    let commits: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&bookkeeping)
        .await
        .expect("setting");
    assert_eq!(
        commits, "off",
        "the bookkeeping pool's commits do not wait for the disk"
    );
    let plan = generic_plan(&env.pool, successes).await;
    assert!(
        plan.contains("Seq Scan on webhook_deliveries"),
        "what the pool guards against, on an ordinary connection:\n{plan}"
    );
}
