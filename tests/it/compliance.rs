//! `namaskah compliance`: exit 0 when every control is met, 1 naming the control that is not.

use serde_json::Value;

use crate::support::TestEnv;
use namaskah_core::store::admins;
use namaskah_dashboard::security::credentials::generate_totp_secret;

/// Runs `namaskah compliance` against the test's database: its exit code, JSON and summary.
fn compliance(env: &TestEnv) -> (Option<i32>, Value, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .arg("compliance")
        .env("DATABASE_URL", env.database_url())
        .env("DASHBOARD_SECURE_COOKIES", "true")
        .output()
        .expect("namaskah runs");
    let evidence = serde_json::from_slice(&output.stdout).expect("JSON evidence");
    (
        output.status.code(),
        evidence,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn unmet(evidence: &Value) -> Vec<String> {
    evidence["controls"]
        .as_array()
        .expect("controls")
        .iter()
        .filter(|control| control["met"] == false)
        .map(|control| control["control"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn succeeded(env: &TestEnv, job: &str) {
    sqlx::query(
        "INSERT INTO scheduler_runs (job, tick, instance, finished_at, outcome)
         VALUES ($1, now(), 'test', now(), 'succeeded')",
    )
    .bind(job)
    .execute(&env.pool)
    .await
    .expect("run recorded");
}

#[tokio::test]
async fn a_clean_system_passes_and_an_operator_without_2fa_or_a_stale_key_is_named() {
    let env = TestEnv::api_only().await;
    let account = env.account(1_000).await;
    admins::create(
        &env.pool,
        "ops",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        &generate_totp_secret(),
    )
    .await
    .expect("operator");
    succeeded(&env, "backup").await;
    succeeded(&env, "retention").await;

    let (code, evidence, summary) = compliance(&env);
    assert_eq!(unmet(&evidence), Vec::<String>::new(), "{summary}");
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(evidence["operators"][0]["two_factor"], true);
    assert!(
        !evidence.to_string().contains(&account.key),
        "no secret in the evidence"
    );

    // An operator whose second factor cannot work, and a key nobody used for 100 days.
    admins::create(
        &env.pool,
        "intern",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        "",
    )
    .await
    .expect("operator without 2FA");
    sqlx::query(
        "UPDATE api_keys SET created_at = now() - interval '100 days', last_used_at = NULL",
    )
    .execute(&env.pool)
    .await
    .expect("age the keys");
    let (code, evidence, summary) = compliance(&env);
    assert_eq!(code, Some(1));
    assert_eq!(
        unmet(&evidence),
        ["operators_have_2fa", "no_stale_api_keys"],
        "{summary}"
    );
    assert!(summary.contains("NOT MET operators_have_2fa"), "{summary}");
    assert!(summary.contains("intern"), "{summary}");
    assert!(
        !evidence.to_string().contains("totp_secret"),
        "TOTP seeds are never shown"
    );
}
