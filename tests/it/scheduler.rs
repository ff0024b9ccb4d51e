//! The scheduler: one leader, runs recorded once per tick, and the jobs that keep the
//! pipeline honest.

use serde_json::json;
use std::{collections::BTreeSet, time::Duration};

use crate::support::{Answer, Sink, TestEnv, eventually, never_sms};
use namaskah::pipeline::Roles;
use namaskah_core::{
    queue::QueueName,
    store::{
        self, housekeeping, invariants,
        services::{self, Offer},
        sweeps,
    },
};
use namaskah_scheduler::{JobName, backup, jobs};
use namaskah_workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(30);

/// Every job off except those given, each every second.
fn schedules(
    builder: crate::support::TestEnvBuilder,
    every_second: &[&str],
) -> crate::support::TestEnvBuilder {
    let mut builder = builder.set("SCHEDULER_LEADER_POLL", "200ms");
    for (job, variable, _) in namaskah_core::config::DEFAULT_SCHEDULES {
        let value = if every_second.contains(&job) {
            "* * * * * *"
        } else {
            "off"
        };
        builder = builder.set(variable, value);
    }
    builder
}

async fn runs(env: &TestEnv) -> Vec<(String, String, String, String)> {
    sqlx::query_as("SELECT job, tick::text, instance, outcome FROM scheduler_runs ORDER BY tick")
        .fetch_all(&env.pool)
        .await
        .expect("runs")
}

fn scheduler_only() -> Roles {
    Roles {
        relay: true,
        scheduler: true,
        ..Roles::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_run_each_tick_once_and_the_second_takes_over() {
    let env = schedules(TestEnv::builder(), &["sampling", "invariants"])
        .roles(Roles::default())
        .start()
        .await;
    let mut first = env.start_roles(scheduler_only()).await;
    let leader = eventually(WAIT, "a first run", || async {
        runs(&env)
            .await
            .first()
            .map(|(_, _, instance, _)| instance.clone())
    })
    .await;
    let _second = env.start_roles(scheduler_only()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let during = runs(&env).await;
    let instances: BTreeSet<&str> = during
        .iter()
        .map(|(_, _, instance, _)| instance.as_str())
        .collect();
    assert_eq!(
        instances,
        BTreeSet::from([leader.as_str()]),
        "only the leader runs jobs"
    );
    let ticks: BTreeSet<(&str, &str)> = during
        .iter()
        .map(|(job, tick, _, _)| (job.as_str(), tick.as_str()))
        .collect();
    assert_eq!(ticks.len(), during.len(), "no tick ran twice");
    assert!(during.iter().filter(|(job, ..)| job == "sampling").count() >= 3);

    // The leader dies; the other leads within seconds.
    first.abort();
    drop(first);
    let stopped_at = std::time::Instant::now();
    let successor = eventually(
        Duration::from_secs(10),
        "another instance to lead",
        || async {
            runs(&env)
                .await
                .into_iter()
                .map(|(_, _, instance, _)| instance)
                .find(|instance| *instance != leader)
        },
    )
    .await;
    assert_ne!(successor, leader);
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
    let all = runs(&env).await;
    let ticks: BTreeSet<(&str, &str)> = all
        .iter()
        .map(|(job, tick, _, _)| (job.as_str(), tick.as_str()))
        .collect();
    assert_eq!(
        ticks.len(),
        all.len(),
        "no tick ran twice across the handover"
    );
}

#[tokio::test]
async fn a_failed_invariant_check_is_recorded_as_an_error() {
    let env = schedules(TestEnv::builder(), &["invariants"])
        .roles(Roles::default())
        .start()
        .await;
    let account = env.account(500).await;
    sqlx::query("UPDATE accounts SET balance_cents = 501 WHERE id = $1")
        .bind(account.id)
        .execute(&env.pool)
        .await
        .expect("break the ledger");
    let _scheduler = env.start_roles(scheduler_only()).await;
    let error: String = eventually(WAIT, "a failed invariant run", || async {
        sqlx::query_scalar("SELECT error FROM scheduler_runs WHERE job = 'invariants' AND outcome = 'failed' LIMIT 1")
            .fetch_optional(&env.pool)
            .await
            .ok()?
    })
    .await;
    assert!(error.contains("balance_equals_ledger"), "{error}");
}

async fn add_short_lived_service(env: &TestEnv) {
    let offer = Offer {
        service: "shortlived".into(),
        country: "us".into(),
        provider: "simulator".into(),
        provider_product: "shortlived".into(),
        provider_country: "usa".into(),
        price_cents: 50,
        sms_timeout_secs: 10,
    };
    services::upsert(&env.pool, &offer, true)
        .await
        .expect("service");
}

#[tokio::test]
async fn the_sweeper_finishes_a_verification_whose_poll_message_was_lost() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: vec![WorkerKind::Ordering, WorkerKind::Refund],
            ..Roles::default()
        })
        .set("DEADLINE_GRACE", "1s")
        .behaviour(never_sms())
        .start()
        .await;
    add_short_lived_service(&env).await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "shortlived", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
    // The first poll comes back from its delay tier into an unconsumed queue; then it is lost.
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.purge(QueueName::Polling).await;
    let _poller = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        env.verification(&account, &id).await["status"],
        "waiting_sms",
        "nothing moves it on its own"
    );

    let context = env.job_context();
    let nudged = jobs::run(JobName::Sweeper, &context).await.expect("sweep");
    assert_eq!(nudged, 1);
    assert_eq!(
        jobs::run(JobName::Sweeper, &context).await,
        Ok(0),
        "a second sweep sends nothing more"
    );
    env.wait_for_status(&account, &id, "refunded", WAIT).await;
    assert_eq!(env.balance(&account).await, 1_000);
    env.assert_invariants().await;
}

#[tokio::test]
async fn the_sweeper_refunds_a_verification_whose_refund_message_was_lost() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            ..Roles::default()
        })
        .set("SWEEP_REFUND_AFTER", "1s")
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.post(
        &format!("/v1/verifications/{id}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.purge(QueueName::Refund).await;
    let _refunds = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Refund],
            ..Roles::default()
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(env.verification(&account, &id).await["status"], "cancelled");

    let context = env.job_context();
    let nudged = || sweeps::nudged_verifications(&env.pool);
    assert_eq!(nudged().await.expect("count"), 0);
    assert_eq!(jobs::run(JobName::Sweeper, &context).await, Ok(1));
    env.wait_for_status(&account, &id, "refunded", WAIT).await;
    assert_eq!(jobs::run(JobName::Sweeper, &context).await, Ok(0));
    assert_eq!(
        nudged().await.expect("count"),
        1,
        "load reports count the verification the sweeper carried on, once"
    );
    assert_eq!(env.balance(&account).await, 1_000);
    env.assert_invariants().await;
}

#[tokio::test]
async fn the_sweeper_publishes_outbox_rows_no_relay_sent() {
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            workers: vec![WorkerKind::Ordering],
            ..Roles::default()
        })
        .set("SWEEP_OUTBOX_AFTER", "500ms")
        .behaviour(never_sms())
        .start()
        .await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.verification(&account, &id).await["status"],
        "pending",
        "no relay runs"
    );
    let touched = jobs::run(JobName::Sweeper, &env.job_context())
        .await
        .expect("sweep");
    assert!(touched >= 1);
    env.wait_for_status(&account, &id, "waiting_sms", WAIT)
        .await;
}

#[tokio::test]
async fn a_backup_restores_into_a_fresh_database_with_the_same_rows() {
    let backup_dir =
        std::env::temp_dir().join(format!("namaskah-backup-{}", uuid::Uuid::new_v4().simple()));
    let env = TestEnv::builder()
        .set("BACKUP_DIR", backup_dir.to_str().expect("utf-8 path"))
        .set("BACKUP_KEEP", "1")
        .start()
        .await;
    let account = env.account(10_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "completed", WAIT).await;
    let cancelled = env.create_verification(&account, "whatsapp", "gb").await;
    env.post(
        &format!("/v1/verifications/{cancelled}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    env.wait_for_status(&account, &cancelled, "refunded", WAIT)
        .await;
    // The relay deletes what it publishes: let it finish, so the live outbox stays as the
    // backup saw it while the two are compared.
    env.wait_for_empty_outbox(WAIT).await;
    for n in 0..3 {
        namaskah_core::store::audit::append(
            &env.pool,
            "admin",
            "test.action",
            None,
            &json!({ "n": n }),
            "127.0.0.1",
        )
        .await
        .expect("audit entry");
    }

    backup::run(&env.config).await.expect("first backup");
    let path = backup::run(&env.config).await.expect("second backup");
    let kept: Vec<_> = std::fs::read_dir(&backup_dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(kept.len(), 2, "one backup and its checksum kept: {kept:?}");

    let restored_url = format!("{}_restored", env.database_url());
    store::drop_database(&restored_url)
        .await
        .expect("clean target");
    backup::restore(&path, &restored_url)
        .await
        .expect("restore");
    let restored = store::connect(&restored_url, 2)
        .await
        .expect("restored database");
    for table in [
        "accounts",
        "verifications",
        "ledger_entries",
        "webhook_messages",
        "outbox",
        "api_keys",
        "audit_log",
    ] {
        let count = |pool: sqlx::PgPool| async move {
            let sql = format!("SELECT count(*) FROM {table}");
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .expect("count")
        };
        assert_eq!(
            count(env.pool.clone()).await,
            count(restored.clone()).await,
            "{table}"
        );
    }
    let grace = Duration::from_secs(3600);
    let original = invariants::check(&env.pool, grace).await.expect("check");
    let copy = invariants::check(&restored, grace).await.expect("check");
    assert_eq!(
        (original.accounts, original.verifications),
        (copy.accounts, copy.verifications)
    );
    // The audit chain too: restored as it was, not chained a second time on the way in.
    assert!(copy.is_clean(), "{:?}", copy.violations);
    assert_eq!(
        namaskah_core::store::audit::verify_chain(&env.pool)
            .await
            .expect("verify")
            .head,
        namaskah_core::store::audit::verify_chain(&restored)
            .await
            .expect("verify")
            .head
    );

    assert!(matches!(
        backup::restore(&path, &restored_url).await,
        Err(backup::BackupError::TargetNotEmpty { .. })
    ));
    restored.close().await;
    store::drop_database(&restored_url).await.expect("drop");
    let _ = std::fs::remove_dir_all(&backup_dir);
}

#[tokio::test]
async fn retention_erases_exactly_what_is_older_than_the_window() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let account = env.account(10_000).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = env.create_verification(&account, "telegram", "us").await;
        env.wait_for_status(&account, &id, "waiting_sms", WAIT)
            .await;
        env.sim
            .deliver_sms(env.provider_order_id(&id).await, "code 1111");
        env.wait_for_status(&account, &id, "completed", WAIT).await;
        ids.push(id);
    }
    // Ages: 40 days, 29 days, now; the window is 30 days.
    for (id, days) in [(&ids[0], 40), (&ids[1], 29)] {
        sqlx::query("UPDATE verifications SET created_at = now() - make_interval(days => $2) WHERE id = $1::uuid")
            .bind(id)
            .bind(days)
            .execute(&env.pool)
            .await
            .expect("age");
        sqlx::query(
            "UPDATE webhook_messages SET created_at = now() - make_interval(days => $2)
             WHERE payload #>> '{data,id}' = $1",
        )
        .bind(id)
        .bind(days)
        .execute(&env.pool)
        .await
        .expect("age messages");
    }
    let erased = housekeeping::erase_personal_data(&env.pool, Duration::from_secs(30 * 86_400))
        .await
        .expect("purge");
    assert_eq!(erased, 1);
    let old = env.verification(&account, &ids[0]).await;
    assert!(old["code"].is_null() && old["sms_text"].is_null() && old["phone_number"].is_null());
    assert_eq!(old["status"], "completed", "the row is kept for accounting");
    for id in &ids[1..] {
        let kept = env.verification(&account, id).await;
        assert_eq!(kept["code"], "1111", "{id} is inside the window");
    }
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_messages WHERE payload #>> '{data,id}' = $1
           AND (payload #>> '{data,phone_number}' IS NOT NULL OR payload #>> '{data,code}' IS NOT NULL)",
    )
    .bind(&ids[0])
    .fetch_one(&env.pool)
    .await
    .expect("count");
    assert_eq!(leaked, 0, "webhook payloads are erased too");
    let listed: Vec<String> = sqlx::query_scalar(
        "SELECT verification_id::text FROM verification_numbers ORDER BY verification_id",
    )
    .fetch_all(&env.pool)
    .await
    .expect("numbers");
    let mut kept = ids[1..].to_vec();
    kept.sort();
    assert_eq!(listed, kept, "the erased number leaves the search's list");
    env.assert_invariants().await;
}

#[tokio::test]
async fn retention_deletes_outbox_rows_a_relay_of_the_release_before_marked_sent() {
    // No relay: the order's outbox row stays unsent.
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    env.create_verification(&account, "telegram", "us").await;
    sqlx::query("INSERT INTO outbox (queue, payload, sent_at) VALUES ('polling', '{}', now())")
        .execute(&env.pool)
        .await
        .expect("a row marked sent");
    jobs::run(JobName::Retention, &env.job_context())
        .await
        .expect("retention");
    let left: Vec<(String, bool)> =
        sqlx::query_as("SELECT queue, sent_at IS NULL FROM outbox ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .expect("outbox");
    assert_eq!(
        left,
        [("ordering".to_owned(), true)],
        "the unsent row stays"
    );
}

#[tokio::test]
async fn a_low_balance_is_announced_once_per_crossing() {
    let env = TestEnv::builder().behaviour(never_sms()).start().await;
    let sink = Sink::start().await;
    sink.answer_by_default(Answer::Status(200));
    let account = env.account(150).await;
    let (status, _) = env
        .post(
            "/v1/webhook-endpoints",
            &account.key,
            json!({"url": sink.url("/low"), "event_types": ["account.low_balance"]}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let context = env.job_context();
    assert_eq!(
        jobs::run(JobName::LowBalance, &context).await,
        Ok(0),
        "150 is above the 100 threshold"
    );

    let id = env.create_verification(&account, "whatsapp", "us").await;
    assert!(env.balance(&account).await < 100);
    assert_eq!(jobs::run(JobName::LowBalance, &context).await, Ok(1));
    assert_eq!(
        jobs::run(JobName::LowBalance, &context).await,
        Ok(0),
        "not again while still low"
    );
    let notice = eventually(WAIT, "the low-balance webhook", || async {
        sink.received()
            .into_iter()
            .find(|r| r.event_type() == "account.low_balance")
    })
    .await;
    assert_eq!(notice.json["data"]["threshold_cents"], 100);

    // Back above the threshold (the cancel refunds), then below again: a second notice.
    env.post(
        &format!("/v1/verifications/{id}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    env.wait_for_status(&account, &id, "refunded", WAIT).await;
    assert_eq!(jobs::run(JobName::LowBalance, &context).await, Ok(0));
    env.create_verification(&account, "whatsapp", "us").await;
    assert_eq!(jobs::run(JobName::LowBalance, &context).await, Ok(1));
}
