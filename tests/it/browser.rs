//! The dashboard in a real browser: headless Chromium driven by playwright-core
//! (`tests/browser/dashboard.mjs`). `./scripts/test` installs Chromium and the npm package.

use std::{path::PathBuf, process::Stdio, time::Duration};

use crate::{
    dashboard::{admin, code_now, insert_verification},
    support::{TestEnv, eventually},
};
use namaskah::pipeline::Roles;
use namaskah_core::queue::QueueName;
use namaskah_workers::WorkerKind;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The browser scripts' folder and Chromium, both checked to be there.
fn browser() -> (PathBuf, String) {
    let browser_dir = repository().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/browser (`./scripts/test` does)"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        PathBuf::from(&chromium).exists(),
        "Chromium is missing at {chromium}: apt-get install chromium (`./scripts/test` installs it)"
    );
    (browser_dir, chromium)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_watches_live_numbers_and_requeues_a_parked_message() {
    let (browser_dir, chromium) = browser();

    let env = TestEnv::builder()
        .roles(Roles {
            dashboard: true,
            relay: true,
            ..Roles::default()
        })
        .start()
        .await;
    let ops = admin(&env, "browser").await;

    // Three refunds waiting, with no refund worker to take them.
    let refund = br#"{"type":"refund","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#;
    for _ in 0..3 {
        env.publish_raw(QueueName::Refund, refund).await;
    }
    // Two parked messages; the worker that parked them stops, so a requeued one stays out.
    let mut poller = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    env.publish_raw(QueueName::Polling, b"unreadable one").await;
    env.publish_raw(QueueName::Polling, b"unreadable two").await;
    eventually(Duration::from_secs(10), "two parked messages", || async {
        let parked: i64 = sqlx::query_scalar("SELECT coalesce(sum(occurrences), 0)::bigint FROM error_groups WHERE kind = 'malformed'")
            .fetch_one(&env.pool)
            .await
            .ok()?;
        (parked >= 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    poller.abort();
    drop(poller);

    // A verification with its story: accepted, a number, the SMS (as their events record).
    let account = env.account(1_000).await;
    let verification = insert_verification(&env, &account).await;
    for (event, seconds) in [
        ("verification.waiting_sms", 2),
        ("verification.completed", 9),
    ] {
        sqlx::query(
            "INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id, created_at)
             SELECT $1, $2, $3, jsonb_build_object('data', jsonb_build_object('id', $4::text)),
                    'trace-1', v.created_at + make_interval(secs => $5)
             FROM verifications v WHERE v.id = $6",
        )
        .bind(format!("evt_{event}"))
        .bind(account.id)
        .bind(event)
        .bind(verification.to_string())
        .bind(f64::from(seconds))
        .bind(verification)
        .execute(&env.pool)
        .await
        .expect("event");
    }

    let screenshots = repository().join("target/screenshots");
    let output = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", &env.dashboard)
        .env("ADMIN_USER", &ops.username)
        .env("ADMIN_PASSWORD", &ops.password)
        .env("ADMIN_CODE", code_now(&ops))
        .env("EXPECTED_REFUND_READY", "3")
        .env("EXPECTED_PARKED", "2")
        .env("VERIFICATION_ID", verification.to_string())
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in [
        "overview.png",
        "overview-toggled.png",
        "overview-375.png",
        "parked.png",
        "usage.png",
        "usage-375.png",
        "verification.png",
    ] {
        assert!(screenshots.join(shot).exists(), "{shot} was not saved");
    }
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = 'browser' ORDER BY id")
            .fetch_all(&env.pool)
            .await
            .expect("audit");
    assert_eq!(actions, vec!["login", "parked_requeue"]);
}

/// The customer web app in Chromium (`tests/browser/customer.mjs`): two tenants on their
/// own host names (mapped to 127.0.0.1 inside the browser), the whole pipeline running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_up_under_a_tenant_tops_up_and_watches_the_code_arrive() {
    let (browser_dir, chromium) = browser();
    let env = TestEnv::start().await;
    env.tenant("alpha", Some("verify.alpha.test")).await;
    env.tenant("beta", Some("verify.beta.test")).await;
    let simulator = env
        .config
        .providers
        .first()
        .map(|p| p.base_url.trim_end_matches("/v1").to_owned())
        .expect("the simulator");
    let app_port = env.app.rsplit(':').next().unwrap_or_default().to_owned();
    let screenshots = repository().join("target/screenshots");
    let output = tokio::process::Command::new("node")
        .arg("customer.mjs")
        .current_dir(&browser_dir)
        .env("APP_PORT", &app_port)
        .env("ALPHA_DOMAIN", "verify.alpha.test")
        .env("ALPHA_NAME", "alpha brand")
        .env("ALPHA_COLOUR", "#0b5fff")
        .env("BETA_DOMAIN", "verify.beta.test")
        .env("BETA_NAME", "beta brand")
        .env("API_URL", &env.api)
        .env("SIMULATOR_URL", &simulator)
        .env("PAYSTACK_SECRET", crate::support::PAYSTACK_SECRET)
        .env("CUSTOMER_EMAIL", "dana@example.com")
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("node runs");
    assert!(
        output.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for shot in [
        "app-sign-in.png",
        "app-wallet.png",
        "app-rent.png",
        "app-code.png",
        "app-refund.png",
        "app-code-dark.png",
        "app-code-375.png",
    ] {
        assert!(screenshots.join(shot).exists(), "{shot} was not saved");
    }
    let customers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE email = 'dana@example.com'")
            .fetch_one(&env.pool)
            .await
            .expect("customers");
    assert_eq!(customers, 2, "one customer under each tenant");
    env.assert_invariants().await;
}
