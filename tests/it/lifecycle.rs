//! Every verification ends: completed, or refunded exactly once.

use rand::RngExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use crate::support::{Account, TestEnv, eventually, never_sms};
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::{AccountId, VerificationId},
    queue::{Envelope, GroupedVerification, Job, QueueName},
    store::{
        services::{self, Offer},
        verifications::{self, ReceivedSms},
    },
};
use namaskah_load_tests::simulator::{Behaviour, OrderStatus};
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

/// A service whose SMS timeout is the shortest the catalogue allows (10 s).
async fn add_short_lived_service(env: &TestEnv, provider: &str) {
    let offer = Offer {
        service: "shortlived".into(),
        country: "us".into(),
        provider: provider.into(),
        provider_product: "shortlived".into(),
        provider_country: "usa".into(),
        price_cents: 50,
        sms_timeout_secs: 10,
    };
    services::upsert(&env.pool, &offer, true)
        .await
        .expect("service");
}

async fn ledger_of(env: &TestEnv, id: &str) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT kind, amount_cents FROM ledger_entries WHERE verification_id = $1::uuid ORDER BY id")
        .bind(id)
        .fetch_all(&env.pool)
        .await
        .expect("ledger")
}

#[tokio::test]
async fn an_sms_completes_the_verification_with_its_code() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let order = env.provider_order_id(&id).await;
    assert!(
        env.sim
            .deliver_sms(order, "Your Telegram code: 48213. Do not share it.")
    );
    let done = env.wait_for_status(&account, &id, "completed", WAIT).await;
    assert_eq!(done["code"], "48213");
    assert_eq!(
        done["sms_text"],
        "Your Telegram code: 48213. Do not share it."
    );
    assert!(done["completed_at"].is_string());
    eventually(WAIT, "the provider order to be finished", || async {
        (env.sim.order(order)?.status == OrderStatus::Finished).then_some(())
    })
    .await;
    assert_eq!(
        ledger_of(&env, &id).await.len(),
        1,
        "a charge and nothing else"
    );
    env.assert_invariants().await;
}

#[tokio::test]
async fn no_sms_before_the_deadline_times_out_and_refunds() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    add_short_lived_service(&env, "simulator").await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "shortlived", "us").await;
    assert_eq!(env.balance(&account).await, 950);
    let refunded = env
        .wait_for_status(&account, &id, "refunded", Duration::from_secs(30))
        .await;
    assert_eq!(env.balance(&account).await, 1_000);
    assert_eq!(
        refunded["failure_reason"],
        "no SMS arrived before the deadline"
    );
    let order = env.provider_order_id(&id).await;
    assert_eq!(
        env.sim.order(order).map(|o| o.status),
        Some(OrderStatus::Canceled)
    );
    assert_eq!(
        ledger_of(&env, &id).await,
        vec![("charge".into(), -50), ("refund".into(), 50)]
    );
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_customer_cancel_cancels_at_the_provider_and_refunds() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let (status, body) = env
        .post(
            &format!("/v1/verifications/{id}/cancel"),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["cancel_requested"], true);
    env.wait_for_status(&account, &id, "refunded", WAIT).await;
    assert_eq!(env.balance(&account).await, 1_000);
    let order = env.provider_order_id(&id).await;
    assert_eq!(
        env.sim.order(order).map(|o| o.status),
        Some(OrderStatus::Canceled)
    );
    env.assert_invariants().await;
}

#[tokio::test]
async fn out_of_stock_everywhere_fails_and_refunds() {
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            out_of_stock_ratio: 1.0,
            ..Behaviour::default()
        })
        .with_backup_provider()
        .start()
        .await;
    env.backup
        .as_ref()
        .expect("backup")
        .set_behaviour(Behaviour {
            out_of_stock_ratio: 1.0,
            ..Behaviour::default()
        });
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let refunded = env.wait_for_status(&account, &id, "refunded", WAIT).await;
    let reason = refunded["failure_reason"].as_str().expect("reason");
    assert!(
        reason.contains("simulator: no numbers in stock")
            && reason.contains("backup: no numbers in stock"),
        "{reason}"
    );
    assert_eq!(env.balance(&account).await, 1_000);
    env.assert_invariants().await;
}

#[tokio::test]
async fn provider_errors_are_retried_until_the_provider_answers() {
    let env = TestEnv::builder()
        .set("ORDERING_RETRY", "6,250ms,1s")
        .behaviour(Behaviour {
            error_ratio: 1.0,
            sms_delay_ms: 300,
            ..Behaviour::default()
        })
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    // At least one attempt meets the failing provider before it recovers (a fixed sleep
    // here was too short on a loaded machine).
    eventually(
        WAIT,
        "an order attempt while the provider fails",
        || async {
            let attempts: i32 = env.column(&id, "order_attempts").await;
            (attempts >= 1).then_some(())
        },
    )
    .await;
    env.sim.set_behaviour(Behaviour {
        sms_delay_ms: 300,
        ..Behaviour::default()
    });
    env.wait_for_status(&account, &id, "completed", WAIT).await;
    assert_eq!(env.sim.purchases(), 1);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_provider_that_stays_down_fails_the_verification_after_the_last_retry() {
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            error_ratio: 1.0,
            ..Behaviour::default()
        })
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let refunded = env.wait_for_status(&account, &id, "refunded", WAIT).await;
    assert!(
        refunded["failure_reason"]
            .as_str()
            .is_some_and(|r| r.contains("unavailable"))
    );
    let attempts: i32 = env.column(&id, "order_attempts").await;
    assert_eq!(attempts, 3, "ORDERING_RETRY allows three attempts");
}

/// Every message type for `id`, as a duplicate would arrive.
async fn publish_every_message_type(env: &TestEnv, id: &str) {
    let verification_id = VerificationId::parse(id).expect("id");
    let jobs = [
        (QueueName::Ordering, Job::OrderNumber { verification_id }),
        (QueueName::Polling, Job::PollSms { verification_id }),
        (QueueName::Polling, Job::CancelOrder { verification_id }),
        (QueueName::Refund, Job::Refund { verification_id }),
    ];
    let as_a_group = vec![GroupedVerification {
        verification_id,
        trace_id: "duplicate".to_owned(),
    }];
    let groups = [
        (
            QueueName::Ordering,
            Job::OrderNumbers {
                orders: as_a_group.clone(),
            },
        ),
        (QueueName::Polling, Job::PollSmsGroup { polls: as_a_group }),
    ];
    let jobs = jobs.into_iter().chain(groups);
    for (queue, job) in jobs {
        let envelope = Envelope::first(job, "duplicate");
        env.publish_raw(queue, &envelope.to_bytes()).await;
        env.publish_raw(queue, &envelope.to_bytes()).await;
    }
}

async fn snapshot(env: &TestEnv, account: &Account, id: &str) -> (Value, Vec<(String, i64)>, i64) {
    let mut view = env.verification(account, id).await;
    // Ignore only the bookkeeping timestamp; everything the customer sees must not move.
    view["updated_at"] = Value::Null;
    (view, ledger_of(env, id).await, env.balance(account).await)
}

#[tokio::test]
async fn duplicate_messages_of_every_type_change_nothing() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;

    let completed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &completed, "waiting_sms", WAIT)
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&completed).await, "code 1234");
    env.wait_for_status(&account, &completed, "completed", WAIT)
        .await;

    let refunded = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &refunded, "waiting_sms", WAIT)
        .await;
    env.post(
        &format!("/v1/verifications/{refunded}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    env.wait_for_status(&account, &refunded, "refunded", WAIT)
        .await;

    let purchases = env.sim.purchases();
    let before = (
        snapshot(&env, &account, &completed).await,
        snapshot(&env, &account, &refunded).await,
    );
    publish_every_message_type(&env, &completed).await;
    publish_every_message_type(&env, &refunded).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = (
        snapshot(&env, &account, &completed).await,
        snapshot(&env, &account, &refunded).await,
    );
    assert_eq!(before, after);
    assert_eq!(env.sim.purchases(), purchases);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_refund_message_delivered_five_times_refunds_once() {
    // No refund worker at first, so all six copies (the outbox's and five more) wait.
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            ..Roles::default()
        })
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let (status, _) = env
        .post(
            &format!("/v1/verifications/{id}/cancel"),
            &account.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let refund = Envelope::first(
        Job::Refund {
            verification_id: VerificationId::parse(&id).expect("id"),
        },
        "again",
    );
    for _ in 0..5 {
        env.publish_raw(QueueName::Refund, &refund.to_bytes()).await;
    }
    let _refunds = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Refund],
            ..Roles::default()
        })
        .await;
    env.wait_for_status(&account, &id, "refunded", WAIT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.balance(&account).await, 1_000);
    let refunds = ledger_of(&env, &id)
        .await
        .into_iter()
        .filter(|(kind, _)| kind == "refund")
        .count();
    assert_eq!(refunds, 1);
    env.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_an_sms_ends_in_exactly_one_outcome() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(100_000).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(env.create_verification(&account, "telegram", "us").await);
    }
    for id in &ids {
        env.wait_for_status(&account, id, "waiting_sms", WAIT).await;
    }
    let races = ids.iter().map(|id| {
        let env = &env;
        let account = &account;
        async move {
            let order = env.provider_order_id(id).await;
            let path = format!("/v1/verifications/{id}/cancel");
            let cancel = env.post(&path, &account.key, json!({}));
            let sms = async { env.sim.deliver_sms(order, "Your code is 777777") };
            let ((status, _), _) = tokio::join!(cancel, sms);
            assert!(
                status == StatusCode::ACCEPTED || status == StatusCode::CONFLICT,
                "{status}"
            );
        }
    });
    futures_util::future::join_all(races).await;

    let mut outcomes = (0, 0);
    for id in &ids {
        let final_state = eventually(WAIT, "a final state", || async {
            let v = env.verification(&account, id).await;
            (v["status"] == "completed" || v["status"] == "refunded").then_some(v)
        })
        .await;
        let refunds = ledger_of(&env, id)
            .await
            .iter()
            .filter(|(kind, _)| kind == "refund")
            .count();
        if final_state["status"] == "completed" {
            assert_eq!(final_state["code"], "777777");
            assert_eq!(refunds, 0, "completed and refunded: {id}");
            outcomes.0 += 1;
        } else {
            assert_eq!(refunds, 1);
            outcomes.1 += 1;
        }
    }
    assert_eq!(outcomes.0 + outcomes.1, ids.len());
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_poller_killed_mid_message_leaves_the_same_outcome() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Ordering, WorkerKind::Refund],
            ..Roles::default()
        })
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let order = env.provider_order_id(&id).await;
    env.sim.deliver_sms(order, "code 9090");
    // Every provider call now hangs long enough for the poller to be killed inside one.
    env.sim.set_behaviour(Behaviour {
        latency_ms: 1_500,
        ..never_sms()
    });
    let mut doomed = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    eventually(WAIT, "the poller to be inside a provider call", || async {
        (env.sim.in_flight() > 0).then_some(())
    })
    .await;
    doomed.abort();
    drop(doomed);
    assert_eq!(
        env.verification(&account, &id).await["status"],
        "waiting_sms"
    );

    env.sim.set_behaviour(never_sms());
    let _survivor = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    let done = env.wait_for_status(&account, &id, "completed", WAIT).await;
    assert_eq!(done["code"], "9090");
    env.assert_invariants().await;
}

#[tokio::test]
async fn an_orderer_killed_mid_purchase_still_gets_a_number() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Polling, WorkerKind::Refund],
            ..Roles::default()
        })
        .behaviour(Behaviour {
            latency_ms: 1_000,
            ..never_sms()
        })
        .start()
        .await;
    let account = env.account(1_000).await;
    let mut doomed = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .await;
    let id = env.create_verification(&account, "telegram", "us").await;
    eventually(WAIT, "the orderer to be inside the purchase", || async {
        (env.sim.in_flight() > 0).then_some(())
    })
    .await;
    doomed.abort();
    drop(doomed);
    env.sim.set_behaviour(never_sms());
    let _survivor = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    env.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_mix_of_a_few_hundred_verifications_ends_clean() {
    let env = TestEnv::builder()
        .set("POLLING_RETRY", "10,100ms,1s")
        .set("ORDERING_RETRY", "5,100ms,1s")
        .behaviour(Behaviour {
            sms_delay_ms: 1_500,
            no_sms_ratio: 0.25,
            out_of_stock_ratio: 0.1,
            error_ratio: 0.1,
            latency_ms: 5,
            ..Behaviour::default()
        })
        .with_backup_provider()
        .start()
        .await;
    add_short_lived_service(&env, "simulator").await;
    add_short_lived_service(&env, "backup").await;
    env.backup
        .as_ref()
        .expect("backup")
        .set_behaviour(Behaviour {
            sms_delay_ms: 2_000,
            no_sms_ratio: 0.3,
            error_ratio: 0.05,
            ..Behaviour::default()
        });
    let mut accounts = Vec::new();
    for _ in 0..5 {
        accounts.push(env.account(100_000).await);
    }
    let mut submitted = Vec::new();
    for n in 0..250 {
        let account = &accounts[n % accounts.len()];
        let service = if n % 3 == 0 { "telegram" } else { "shortlived" };
        let (status, body) = env
            .post(
                "/v1/verifications",
                &account.key,
                json!({"service": service, "country": "us"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        submitted.push((account.clone(), body["id"].as_str().expect("id").to_owned()));
    }
    // Some customers change their minds.
    for (account, id) in submitted.iter().filter(|_| rand::rng().random_bool(0.15)) {
        env.post(
            &format!("/v1/verifications/{id}/cancel"),
            &account.key,
            json!({}),
        )
        .await;
    }
    // Deliver the SMS of some telegram orders by hand (their 300 s timeout is too long to wait).
    eventually(
        Duration::from_secs(60),
        "every verification to end",
        || async {
            let open: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT service, provider, provider_order_id FROM verifications
             WHERE status NOT IN ('completed', 'refunded')",
            )
            .fetch_all(&env.pool)
            .await
            .ok()?;
            for (service, provider, order) in &open {
                if service == "telegram" {
                    let sim = if provider.as_deref() == Some("backup") {
                        env.backup.as_ref()?
                    } else {
                        &env.sim
                    };
                    if let Some(order) = order.as_deref().and_then(|o| o.parse().ok()) {
                        sim.deliver_sms(order, "code 5555");
                    }
                }
            }
            open.is_empty().then_some(())
        },
    )
    .await;
    env.assert_invariants().await;
    let (completed, refunded): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'refunded')
         FROM verifications",
    )
    .fetch_one(&env.pool)
    .await
    .expect("counts");
    assert_eq!(completed + refunded, 250);
    assert!(
        completed > 0 && refunded > 0,
        "{completed} completed, {refunded} refunded"
    );
}

/// The polling worker's load of a batch: every id answered in its place (repeats, unknown
/// ids, more than one statement's worth), and PostgreSQL settles on a generic plan instead
/// of planning every call (issue 23: re-planning was as long as running it).
#[tokio::test]
async fn a_batch_load_answers_each_id_in_its_place_and_is_planned_once() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let mut known = Vec::new();
    for _ in 0..3 {
        let id = env.create_verification(&account, "telegram", "us").await;
        known.push(VerificationId::parse(&id).expect("id"));
    }
    // One connection, so that its prepared statements are the ones the loads used.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(env.database_url())
        .await
        .expect("pool");
    let found = |answers: Vec<Option<verifications::Verification>>| -> Vec<Option<VerificationId>> {
        answers.into_iter().map(|v| v.map(|v| v.id)).collect()
    };

    assert!(
        verifications::find_many(&pool, &[])
            .await
            .expect("none")
            .is_empty()
    );
    let unknown = VerificationId::new();
    let batch = [known[2], unknown, known[0], known[2], known[1]];
    for _ in 0..8 {
        let answers = verifications::find_many(&pool, &batch)
            .await
            .expect("loaded");
        assert_eq!(
            found(answers),
            [
                Some(known[2]),
                None,
                Some(known[0]),
                Some(known[2]),
                Some(known[1])
            ]
        );
    }
    let (generic, custom): (i64, i64) = sqlx::query_as(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements
         WHERE statement LIKE '%FROM verifications WHERE id IN (%'
           AND statement NOT LIKE '%pg_prepared_statements%'",
    )
    .fetch_one(&pool)
    .await
    .expect("the load's prepared statement");
    assert!(
        generic >= 3 && custom <= 5,
        "generic plans {generic}, custom plans {custom}"
    );

    // Past one statement's worth: the known ids at both ends and in the second statement.
    let mut many: Vec<VerificationId> = (0..1_500).map(|_| VerificationId::new()).collect();
    many[0] = known[0];
    many[1_100] = known[1];
    many[1_499] = known[2];
    let answers = found(
        verifications::find_many(&pool, &many)
            .await
            .expect("loaded"),
    );
    assert_eq!(answers.len(), 1_500);
    assert_eq!(answers.iter().flatten().count(), 3);
    assert_eq!(
        (answers[0], answers[1_100], answers[1_499]),
        (Some(known[0]), Some(known[1]), Some(known[2]))
    );
}

#[tokio::test]
async fn a_batch_completes_each_verification_once() {
    // No polling worker: the verifications wait for the batch below.
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .behaviour(never_sms())
        .start()
        .await;
    let accounts = [env.account(1_000).await, env.account(1_000).await];
    let mut waiting = Vec::new();
    for account in accounts.iter().chain(&accounts) {
        let id = env.create_verification(account, "telegram", "us").await;
        env.wait_for_status(account, &id, "waiting_sms", WAIT).await;
        waiting.push((account.id, VerificationId::parse(&id).expect("id")));
    }
    let sms = |(account_id, id): (AccountId, VerificationId), code: &str| ReceivedSms {
        id,
        account_id,
        code: code.to_owned(),
        text: format!("Your code: {code}"),
    };
    let mut batch: Vec<ReceivedSms> = waiting
        .iter()
        .enumerate()
        .map(|(n, &verification)| sms(verification, &format!("1000{n}")))
        .collect();
    // The same SMS twice (a duplicate poll message), and an unknown verification.
    batch.insert(1, sms(waiting[0], "10000"));
    batch.push(sms((accounts[0].id, VerificationId::new()), "9"));

    let answers = verifications::complete_many(&env.pool, &batch)
        .await
        .expect("completed");
    let codes: Vec<Option<&str>> = answers
        .iter()
        .map(|answer| answer.as_ref().and_then(|v| v.code.as_deref()))
        .collect();
    assert_eq!(
        codes,
        [
            Some("10000"),
            None,
            Some("10001"),
            Some("10002"),
            Some("10003"),
            None
        ]
    );
    // Again, as a redelivered batch would be: nothing changes.
    let again = verifications::complete_many(&env.pool, &batch)
        .await
        .expect("answered");
    assert!(again.iter().all(Option::is_none), "{again:?}");

    for (n, (_, id)) in waiting.iter().enumerate() {
        let completed_events: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_messages
             WHERE event_type = 'verification.completed' AND payload #>> '{data,id}' = $1",
        )
        .bind(id.to_string())
        .fetch_one(&env.pool)
        .await
        .expect("events");
        assert_eq!(completed_events, 1, "verification {n}");
    }
    let open: Vec<i32> = sqlx::query_scalar(
        "SELECT open_verifications FROM accounts WHERE id = ANY($1) ORDER BY id",
    )
    .bind(
        accounts
            .iter()
            .map(|account| account.id.0)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&env.pool)
    .await
    .expect("counters");
    assert_eq!(open, [0, 0]);
    env.assert_invariants().await;
}
