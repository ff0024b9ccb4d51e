//! The ordering worker: one purchase per verification, failover, retries.

use std::time::Duration;

use crate::support::{TestEnv, generic_plan, never_sms};
use namaskah::pipeline::{Roles, Running};
use namaskah_core::{
    domain::VerificationId,
    queue::{Envelope, GroupedVerification, Job, QueueName},
    store::{
        self,
        verifications::{self, AssignedNumber, OrderingClaim, OrderingClaimRequest},
    },
};
use namaskah_load_tests::simulator::Behaviour;
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_submitted_verification_gets_a_number_within_two_seconds() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let started = std::time::Instant::now();
    let id = env.create_verification(&account, "telegram", "us").await;
    let waiting = env
        .wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(2))
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        waiting["phone_number"]
            .as_str()
            .is_some_and(|p| p.starts_with('+'))
    );
    assert!(waiting["expires_at"].is_string());
    assert_eq!(env.sim.purchases(), 1);
}

#[tokio::test]
async fn the_same_order_message_delivered_twice_buys_one_number() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let trace: String = env.column(&id, "trace_id").await;
    let duplicate = Envelope::first(
        Job::OrderNumber {
            verification_id: VerificationId::parse(&id).expect("id"),
        },
        trace,
    );
    env.publish_raw(QueueName::Ordering, &duplicate.to_bytes())
        .await;
    env.publish_raw(QueueName::Ordering, &duplicate.to_bytes())
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.sim.purchases(), 1);
    let attempts: i32 = env.column(&id, "order_attempts").await;
    assert_eq!(attempts, 1, "one transition into ordering");
    env.assert_invariants().await;
}

#[tokio::test]
async fn duplicates_delivered_at_the_same_moment_buy_one_number() {
    // No worker yet: both copies wait in the queue and arrive together.
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            ..Roles::default()
        })
        .behaviour(Behaviour {
            no_sms_ratio: 1.0,
            latency_ms: 200,
            ..Behaviour::default()
        })
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let duplicate = Envelope::first(
        Job::OrderNumber {
            verification_id: VerificationId::parse(&id).expect("id"),
        },
        "dup",
    );
    let _workers = publish_then_start_an_orderer(&env, &duplicate, 3).await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    // Let the held-back duplicates come back from their delay tier and be dropped.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.sim.purchases(), 1);
}

#[tokio::test]
async fn a_group_of_orders_delivered_twice_buys_one_number_each_and_a_busy_order_goes_on_alone() {
    // No worker yet: the API's own messages and the group's two copies arrive together.
    let env = TestEnv::builder()
        .api_only()
        .set("ORDERING_LEASE", "2s")
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        let id = env.create_verification(&account, "telegram", "us").await;
        orders.push(GroupedVerification {
            verification_id: VerificationId::parse(&id).expect("id"),
            trace_id: env.column(&id, "trace_id").await,
        });
    }
    // The last one is held by an attempt that died mid-purchase: the group finds it busy,
    // and it goes on as a message of its own until the lease runs out.
    let held = verifications::claim_for_ordering(
        &env.pool,
        &[OrderingClaimRequest {
            id: orders[2].verification_id,
            attempt: 1,
        }],
        Duration::from_secs(2),
    )
    .await
    .expect("claimed");
    assert!(
        matches!(held[..], [OrderingClaim::Claimed { .. }]),
        "{held:?}"
    );
    let group = Envelope::first(
        Job::OrderNumbers {
            orders: orders.clone(),
        },
        "group",
    );
    let _workers = publish_then_start_an_orderer(&env, &group, 2).await;
    for order in &orders {
        let id = order.verification_id.to_string();
        env.wait_for_status(&account, &id, "waiting_sms", WAIT)
            .await;
    }
    // Let the duplicates that were sent round a delay tier come back and be dropped.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(env.sim.purchases(), 3, "one number each");
    for order in &orders[..2] {
        let attempts: i32 = env
            .column(&order.verification_id.to_string(), "order_attempts")
            .await;
        assert_eq!(attempts, 1, "one transition into ordering");
    }
    env.assert_invariants().await;
}

#[tokio::test]
async fn when_the_first_provider_is_out_of_stock_the_second_sells() {
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            out_of_stock_ratio: 1.0,
            ..Behaviour::default()
        })
        .with_backup_provider()
        .start()
        .await;
    let backup = env.backup.clone().expect("backup");
    backup.set_behaviour(never_sms());
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    let provider: String = env.column(&id, "provider").await;
    assert_eq!(provider, "backup");
    assert_eq!((env.sim.purchases(), backup.purchases()), (0, 1));
    let order = env.provider_order_id(&id).await;
    assert!(
        backup.order(order).is_some(),
        "the backup's number is the one recorded"
    );
}

#[tokio::test]
async fn when_the_first_provider_is_down_the_second_sells() {
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            error_ratio: 1.0,
            ..Behaviour::default()
        })
        .with_backup_provider()
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    assert_eq!(env.backup.as_ref().map(|b| b.purchases()), Some(1));
}

#[tokio::test]
async fn a_batch_claims_each_verification_once_and_a_retry_takes_over() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let first = VerificationId::parse(&env.create_verification(&account, "telegram", "us").await)
        .expect("id");
    let second = VerificationId::parse(&env.create_verification(&account, "telegram", "us").await)
        .expect("id");
    let request = |id, attempt| OrderingClaimRequest { id, attempt };
    let lease = Duration::from_secs(60);

    // The same verification twice in one batch (a duplicate message), another, an unknown one.
    let answers = verifications::claim_for_ordering(
        &env.pool,
        &[
            request(first, 1),
            request(first, 1),
            request(second, 1),
            request(VerificationId::new(), 1),
        ],
        lease,
    )
    .await
    .expect("claimed");
    let claim_of = |answer: &OrderingClaim| match answer {
        OrderingClaim::Claimed {
            verification,
            claim,
        } => {
            assert_eq!(verification.ordering_claim, Some(*claim));
            Some((verification.id, *claim))
        }
        _ => None,
    };
    let claimed: Vec<_> = answers.iter().filter_map(claim_of).collect();
    assert_eq!(
        claimed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [first, second],
        "{answers:?}"
    );
    assert_ne!(claimed[0].1, claimed[1].1, "each claim is its own");
    assert!(
        matches!(answers[1], OrderingClaim::Busy { .. }),
        "{answers:?}"
    );
    assert!(
        matches!(answers[3], OrderingClaim::NotNeeded),
        "{answers:?}"
    );

    // A retry (attempt 2) takes the claim over from attempt 1; attempt 1 again does not.
    let retried = verifications::claim_for_ordering(
        &env.pool,
        &[request(first, 2), request(second, 1)],
        lease,
    )
    .await
    .expect("answered");
    let taken_over = claim_of(&retried[0]).expect("attempt 2 claims");
    assert_ne!(taken_over.1, claimed[0].1);
    assert!(
        matches!(retried[1], OrderingClaim::Busy { .. }),
        "{retried:?}"
    );
}

/// The ordering worker's claims and assignments plan no sequential scans (`keyed_pool`). A
/// generic plan of the claim, made while `verifications` is young, would otherwise scan the
/// whole table for each batch, and keep doing so as it grows.
#[tokio::test]
async fn the_ordering_claims_reach_verifications_by_key_even_on_a_young_table() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    // A young table: a thousand verifications, a few dozen pages, no statistics yet.
    sqlx::query(
        "INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id)
         SELECT gen_random_uuid(), $1, 'telegram', 'us', 10, 'young-' || n
         FROM generate_series(1, 1000) n",
    )
    .bind(account.id)
    .execute(&env.pool)
    .await
    .expect("verifications");
    let claim = "UPDATE verifications SET updated_at = now()
                 FROM unnest($1::uuid[]) AS w(wanted_id)
                 WHERE id = w.wanted_id AND status = 'pending'";
    let keyed = store::keyed_pool(env.database_url(), 1).expect("pool");
    let plan = generic_plan(&keyed, claim).await;
    assert!(
        plan.contains("using verifications_pkey") && !plan.contains("Seq Scan on verifications"),
        "the keyed pool's plan:\n{plan}"
    );
    let plan = generic_plan(&env.pool, claim).await;
    assert!(
        plan.contains("Seq Scan on verifications"),
        "what the pool guards against, on an ordinary connection:\n{plan}"
    );

    // The real claim, through the pool, on that table.
    let id = VerificationId::parse(&env.create_verification(&account, "telegram", "us").await)
        .expect("id");
    let request = OrderingClaimRequest { id, attempt: 1 };
    let answers = verifications::claim_for_ordering(&keyed, &[request], Duration::from_secs(60))
        .await
        .expect("claimed");
    assert!(
        matches!(answers[..], [OrderingClaim::Claimed { .. }]),
        "{answers:?}"
    );
}

/// The kinds of the outbox messages about a verification, oldest first.
async fn outbox_messages_about(env: &crate::support::TestEnv, id: VerificationId) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT payload->>'type' FROM outbox WHERE payload->>'verification_id' = $1 ORDER BY id",
    )
    .bind(id.to_string())
    .fetch_all(&env.pool)
    .await
    .expect("outbox")
}

#[tokio::test]
async fn a_batch_records_each_number_once_and_only_for_the_claim_holder() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = env.create_verification(&account, "telegram", "us").await;
        ids.push(VerificationId::parse(&id).expect("id"));
    }
    let [waits, stale, cancelled] = [ids[0], ids[1], ids[2]];
    let requests: Vec<_> = ids
        .iter()
        .map(|&id| OrderingClaimRequest { id, attempt: 1 })
        .collect();
    let claims: Vec<_> =
        verifications::claim_for_ordering(&env.pool, &requests, Duration::from_secs(60))
            .await
            .expect("claimed")
            .into_iter()
            .map(|answer| match answer {
                OrderingClaim::Claimed { claim, .. } => claim,
                other => panic!("not claimed: {other:?}"),
            })
            .collect();
    // The customer cancels while the third number is being bought.
    verifications::cancel_by_customer(&env.pool, account.id, cancelled)
        .await
        .expect("cancel requested");

    let number = |id, claim, order: &str| AssignedNumber {
        id,
        claim,
        provider: "sim".to_owned(),
        provider_order_id: order.to_owned(),
        phone_number: format!("+1555000{order}"),
        sms_timeout_secs: 120,
        trace_id: "batch".to_owned(),
    };
    let answers = verifications::assign_numbers(
        &env.pool,
        &[
            number(waits, claims[0], "1"),
            // A duplicate in the same batch finds the row recorded.
            number(waits, claims[0], "1"),
            // A claim that was taken over records nothing.
            number(stale, uuid::Uuid::new_v4(), "2"),
            number(cancelled, claims[2], "3"),
        ],
        0,
    )
    .await
    .expect("recorded");
    let recorded: Vec<Option<&str>> = answers
        .iter()
        .map(|answer| answer.as_ref().and_then(|v| v.provider_order_id.as_deref()))
        .collect();
    assert_eq!(recorded, [Some("1"), None, None, Some("3")]);

    let status = |id: VerificationId| {
        let env = &env;
        async move { env.column::<String>(&id.to_string(), "status").await }
    };
    assert_eq!(status(waits).await, "waiting_sms");
    assert_eq!(status(stale).await, "ordering");
    assert_eq!(status(cancelled).await, "waiting_sms");
    assert_eq!(
        outbox_messages_about(&env, waits).await,
        ["order_number", "poll_sms"]
    );
    assert_eq!(outbox_messages_about(&env, stale).await, ["order_number"]);
    assert_eq!(
        outbox_messages_about(&env, cancelled).await,
        ["order_number", "cancel_order"],
        "a number bought after the customer cancelled is given back"
    );
    let listed: Vec<(String, uuid::Uuid)> = sqlx::query_as(
        "SELECT phone_number, verification_id FROM verification_numbers ORDER BY phone_number",
    )
    .fetch_all(&env.pool)
    .await
    .expect("numbers");
    assert_eq!(
        listed,
        [
            ("+15550001".to_owned(), waits.0),
            ("+15550003".to_owned(), cancelled.0)
        ],
        "each recorded number is listed once, for the dashboard's search"
    );
    env.assert_invariants().await;
}

/// Publishes `envelope` `times` times (as a broker may deliver it), then starts an ordering
/// worker to take them all at once.
async fn publish_then_start_an_orderer(
    env: &TestEnv,
    envelope: &Envelope,
    times: usize,
) -> Running {
    for _ in 0..times {
        env.publish_raw(QueueName::Ordering, &envelope.to_bytes())
            .await;
    }
    env.start_roles(Roles {
        workers: vec![WorkerKind::Ordering],
        ..Roles::default()
    })
    .await
}
