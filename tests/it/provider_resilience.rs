//! A provider that hangs or slows down must not stall ordering: its circuit breaker opens
//! and it is skipped at once, a probe closes the breaker when it answers again, and its
//! bulkhead keeps the calls waiting on it few.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use crate::dashboard::{admin, get, session};
use crate::support::{TestEnv, TestEnvBuilder, eventually, never_sms};
use namaskah::pipeline::Roles;
use namaskah_load_tests::simulator::Behaviour;
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

/// The first provider answers after 3 s, a second past its 1 s timeout; a healthy backup.
fn hung_first_provider(failures: &str, cool_down: &str) -> TestEnvBuilder {
    TestEnv::builder()
        .behaviour(Behaviour {
            latency_ms: 3_000,
            ..never_sms()
        })
        .with_backup_provider()
        .set("PROVIDER_TIMEOUT", "1s")
        .set("PROVIDER_BREAKER_FAILURES", failures)
        .set("PROVIDER_BREAKER_COOL_DOWN", cool_down)
}

/// Submits `count` verifications at once and waits until each has a number; returns
/// which provider sold each.
async fn order_numbers(env: &TestEnv, count: usize) -> Vec<String> {
    let account = env.account(100_000).await;
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(env.create_verification(&account, "telegram", "us").await);
    }
    let mut providers = Vec::new();
    for id in &ids {
        env.wait_for_status(&account, id, "waiting_sms", WAIT).await;
        providers.push(env.column::<String>(id, "provider").await);
    }
    providers
}

#[tokio::test]
async fn once_a_hung_providers_breaker_opens_orders_go_to_the_next_without_asking_it() {
    let env = hung_first_provider("3", "10m")
        .roles(Roles {
            api: true,
            relay: true,
            workers: WorkerKind::ALL.to_vec(),
            dashboard: true,
            ..Roles::default()
        })
        .start()
        .await;
    if let Some(backup) = &env.backup {
        backup.set_behaviour(never_sms());
    }
    // The first orders wait out the hung provider's timeout, then fail over; three
    // failures in a row open its breaker.
    let first_round = order_numbers(&env, 4).await;
    assert!(first_round.iter().all(|p| p == "backup"), "{first_round:?}");
    let asked = env.sim.requests();
    assert!(asked >= 3, "the hung provider was asked {asked} times");

    let second_round = order_numbers(&env, 10).await;
    assert!(
        second_round.iter().all(|p| p == "backup"),
        "{second_round:?}"
    );
    assert_eq!(
        env.sim.requests(),
        asked,
        "while its breaker is open the hung provider is not asked at all"
    );

    // Operators see it on the overview, with the time it opened.
    let ops = admin(&env, "breakers").await;
    let session = session(&env, &ops).await;
    eventually(WAIT, "the overview shows the open breaker", || async {
        let page = get(&env, &session.cookie, "/").await.text().await.ok()?;
        let row = page
            .split("data-live=\"provider.simulator.breaker\">")
            .nth(1)?;
        row.starts_with("open since ").then_some(())
    })
    .await;
}

#[tokio::test]
async fn when_the_provider_answers_again_a_probe_closes_its_breaker() {
    let env = hung_first_provider("2", "1s").start().await;
    if let Some(backup) = &env.backup {
        backup.set_behaviour(never_sms());
    }
    let hung = order_numbers(&env, 3).await;
    assert!(hung.iter().all(|p| p == "backup"), "{hung:?}");
    env.sim.set_behaviour(never_sms());
    // After the cool-down the next order probes the first provider, which sells.
    let account = env.account(100_000).await;
    eventually(WAIT, "an order sold by the recovered provider", || async {
        let id = env.create_verification(&account, "telegram", "us").await;
        env.wait_for_status(&account, &id, "waiting_sms", WAIT)
            .await;
        let provider: String = env.column(&id, "provider").await;
        (provider == "simulator").then_some(())
    })
    .await;
    let after = order_numbers(&env, 3).await;
    assert!(
        after.iter().all(|p| p == "simulator"),
        "closed again, the first provider takes the orders: {after:?}"
    );
}

#[tokio::test]
async fn while_a_provider_hangs_the_numbers_another_sold_still_get_their_codes() {
    // Polls of the hung provider must not hold the polling worker: its own bulkhead and
    // then its open breaker keep them few and short.
    let env = TestEnv::builder()
        .behaviour(never_sms())
        .with_backup_provider()
        .set("PROVIDER_TIMEOUT", "1s")
        .set("PROVIDER_BREAKER_FAILURES", "3")
        .set("PROVIDER_BREAKER_COOL_DOWN", "10m")
        .set("PROVIDER_MAX_IN_FLIGHT", "2")
        .set("POLL_CADENCE", "200ms")
        .start()
        .await;
    let before_the_hang = order_numbers(&env, 6).await;
    assert!(
        before_the_hang.iter().filter(|p| *p == "simulator").count() >= 1,
        "{before_the_hang:?}"
    );
    // The first provider now hangs while its numbers are being polled; the backup sells
    // and sends every code half a second after the purchase.
    let asked_before_the_hang = env.sim.requests();
    env.sim.set_behaviour(Behaviour {
        latency_ms: 3_000,
        ..never_sms()
    });
    if let Some(backup) = &env.backup {
        backup.set_behaviour(Behaviour {
            sms_delay_ms: 500,
            ..Behaviour::default()
        });
    }
    let account = env.account(100_000).await;
    let mut on_backup = Vec::new();
    for _ in 0..6 {
        on_backup.push(env.create_verification(&account, "telegram", "us").await);
    }
    for id in &on_backup {
        env.wait_for_status(&account, id, "completed", WAIT).await;
        let provider: String = env.column(id, "provider").await;
        assert_eq!(provider, "backup");
    }
    assert!(
        env.sim.requests() > asked_before_the_hang,
        "the hung provider's numbers were polled meanwhile"
    );
}

#[tokio::test]
async fn a_slow_provider_holds_no_more_calls_than_its_bulkhead_allows() {
    // Slow, not hung: it answers in 1.5 s, within its timeout.
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            latency_ms: 1_500,
            ..never_sms()
        })
        .with_backup_provider()
        .set("PROVIDER_TIMEOUT", "5s")
        .set("PROVIDER_MAX_IN_FLIGHT", "2")
        .start()
        .await;
    if let Some(backup) = &env.backup {
        backup.set_behaviour(never_sms());
    }
    // The most calls the slow provider is answering at once, watched while orders run.
    let most = Arc::new(AtomicU64::new(0));
    let watcher = tokio::spawn({
        let (sim, most) = (Arc::clone(&env.sim), Arc::clone(&most));
        async move {
            loop {
                most.fetch_max(sim.in_flight(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let providers = order_numbers(&env, 12).await;
    watcher.abort();
    let most_in_flight = most.load(Ordering::Relaxed);
    assert!(
        (1..=2).contains(&most_in_flight),
        "at most 2 calls wait on the slow provider, saw {most_in_flight}"
    );
    let on_backup = providers.iter().filter(|p| *p == "backup").count();
    assert!(
        on_backup >= 1,
        "orders over the slow provider's cap go to the next one: {providers:?}"
    );
    assert!(
        providers.iter().all(|p| p == "backup" || p == "simulator"),
        "{providers:?}"
    );
}

#[tokio::test]
async fn an_order_that_finds_every_breaker_open_waits_for_a_probe_instead_of_failing() {
    // One provider, hung; an ordering retry budget so small that spent attempts fail fast.
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            latency_ms: 3_000,
            ..never_sms()
        })
        .set("PROVIDER_TIMEOUT", "1s")
        .set("PROVIDER_BREAKER_FAILURES", "2")
        .set("PROVIDER_BREAKER_COOL_DOWN", "3s")
        .set("ORDERING_RETRY", "2,100ms,100ms")
        // The production lease: an order that found every breaker open must not then wait
        // out its own claim when it looks again.
        .set("ORDERING_LEASE", "60s")
        .start()
        .await;
    let account = env.account(100_000).await;
    // Two orders that ask the hung provider fail and open its breaker.
    let asked = [
        env.create_verification(&account, "telegram", "us").await,
        env.create_verification(&account, "telegram", "us").await,
    ];
    for id in &asked {
        env.wait_for_status(&account, id, "refunded", WAIT).await;
    }
    // It recovers, but its breaker is open for a while yet: the next order is not failed
    // for want of a provider, it waits for the probe and gets its number.
    env.sim.set_behaviour(never_sms());
    let waiting = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &waiting, "waiting_sms", WAIT)
        .await;
    let provider: String = env.column(&waiting, "provider").await;
    assert_eq!(provider, "simulator");
}

#[tokio::test]
async fn with_one_provider_orders_over_its_bulkhead_wait_their_turn_and_spend_no_attempt() {
    // The only provider takes one call at a time, each 300 ms: the other orders in hand
    // cannot go elsewhere, so they queue for its slot instead of being put back.
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            latency_ms: 300,
            ..never_sms()
        })
        .set("PROVIDER_MAX_IN_FLIGHT", "1")
        .set("ORDERING_LEASE", "60s")
        .start()
        .await;
    let providers = order_numbers(&env, 8).await;
    assert!(providers.iter().all(|p| p == "simulator"), "{providers:?}");
    let attempts: Vec<(i32,)> = sqlx::query_as("SELECT order_attempts FROM verifications")
        .fetch_all(&env.pool)
        .await
        .expect("attempts");
    assert_eq!(attempts.len(), 8);
    assert!(
        attempts.iter().all(|(attempts,)| *attempts == 1),
        "waiting for a slot spends no attempt: {attempts:?}"
    );
}

#[tokio::test]
async fn when_every_provider_is_busy_an_order_waits_for_whichever_frees_first() {
    // The first provider answers in 3 s, the second in 300 ms; each takes one call at a
    // time. Once both are busy, orders wait for the second's slot, which frees ten times as
    // often, rather than queueing behind the slow first one.
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            latency_ms: 3_000,
            ..never_sms()
        })
        .with_backup_provider()
        .set("PROVIDER_MAX_IN_FLIGHT", "1")
        .set("ORDERING_LEASE", "60s")
        .start()
        .await;
    if let Some(backup) = &env.backup {
        backup.set_behaviour(Behaviour {
            latency_ms: 300,
            ..never_sms()
        });
    }
    let providers = order_numbers(&env, 6).await;
    let on_first = providers.iter().filter(|p| *p == "simulator").count();
    assert!(
        on_first <= 2,
        "orders queued behind the slow provider instead of taking the free one: {providers:?}"
    );
}

#[tokio::test]
async fn a_provider_answering_429_is_slowed_down_and_every_verification_still_ends() {
    // A fifth of its answers are "429 Too Many Requests, Retry-After: 1".
    let env = TestEnv::builder()
        .behaviour(Behaviour {
            throttle_ratio: 0.2,
            sms_delay_ms: 200,
            ..Behaviour::default()
        })
        .start()
        .await;
    let account = env.account(100_000).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(env.create_verification(&account, "telegram", "us").await);
    }
    // Each 429 pauses the provider for everyone, so this takes a while on a busy machine;
    // what matters is that every verification ends, none is parked.
    for id in &ids {
        eventually(Duration::from_secs(150), "a final status", || async {
            let status = env.verification(&account, id).await["status"].clone();
            (status == "completed" || status == "refunded").then_some(())
        })
        .await;
    }
    let parked: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(occurrences), 0)::bigint FROM error_groups
         WHERE kind IN ('malformed', 'retries_exhausted', 'permanent')",
    )
    .fetch_one(&env.pool)
    .await
    .expect("parked");
    assert_eq!(parked, 0, "nothing is parked for being told to slow down");
    env.assert_invariants().await;
}
