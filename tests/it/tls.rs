//! TLS to every engine, against real servers that speak nothing else: the test command
//! (`scripts/tls-engines.sh`) starts a PostgreSQL cluster that refuses plain text, a
//! RabbitMQ node with only a TLS listener and a Redis with only a TLS port, all with
//! certificates from a local CA in `target/tls`, and names them in `TEST_TLS_*`.

use serde_json::{Value, json};
use std::time::Duration;

use crate::support::{Up, eventually, free_address};

/// The TLS engines, as `scripts/test` started them.
struct Engines {
    dir: String,
    database_server: String,
    amqp_url: String,
    redis_url: String,
}

fn engines() -> Engines {
    let variable = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: run the tests with ./scripts/test, which starts the TLS engines (scripts/tls-engines.sh)")
        })
    };
    Engines {
        dir: variable("TEST_TLS_DIR"),
        database_server: variable("TEST_TLS_DATABASE_SERVER"),
        amqp_url: variable("TEST_TLS_AMQP_URL"),
        redis_url: variable("TEST_TLS_REDIS_URL"),
    }
}

/// Every variable a pipeline needs to reach the three engines over TLS, trusting `ca`.
fn environment(engines: &Engines, id: &str, ca: &str) -> Vec<(&'static str, String)> {
    let dir = &engines.dir;
    vec![
        (
            "DATABASE_URL",
            format!(
                "{}/namaskah_test_tls_{id}?sslmode=verify-full&sslrootcert={dir}/{ca}",
                engines.database_server
            ),
        ),
        (
            "AMQP_URL",
            format!(
                "{}?cacertfile={dir}/{ca}&certfile={dir}/client.pem&keyfile={dir}/client.key",
                engines.amqp_url
            ),
        ),
        ("REDIS_URL", engines.redis_url.clone()),
        ("REDIS_CA_FILE", format!("{dir}/{ca}")),
        ("QUEUE_PREFIX", format!("t{id}.")),
        ("API_ADDR", "127.0.0.1:0".to_owned()),
        ("APP_ADDR", "127.0.0.1:0".to_owned()),
        ("DASHBOARD_ADDR", "127.0.0.1:0".to_owned()),
        ("METRICS_ADDR", "127.0.0.1:0".to_owned()),
        // The providers' URL is built from this address, so it needs a real port.
        ("SIMULATOR_ADDR", free_address()),
        ("STARTUP_WAIT", "20s".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_runs_end_to_end_over_tls_to_postgres_rabbitmq_and_redis() {
    namaskah_core::telemetry::install_crypto_provider();
    let engines = engines();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let environment = environment(&engines, id, "ca.pem");
    let database_url = environment[0].1.clone();
    let mut up = Up::start(&environment).await;
    let (api, metrics) = (up.announced("API"), up.announced("metrics"));

    let created = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .args([
            "accounts",
            "create",
            "--email",
            "tls@example.com",
            "--balance-cents",
            "10000",
        ])
        .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("namaskah accounts create");
    assert!(created.status.success(), "{created:?}");
    let created: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let key = created["api_key"].as_str().expect("key").to_owned();

    let http = reqwest::Client::new();
    let accepted: Value = http
        .post(format!("{api}/v1/verifications"))
        .bearer_auth(&key)
        .json(&json!({ "service": "telegram", "country": "us" }))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("JSON");
    let verification = accepted["id"].as_str().expect("id").to_owned();
    let completed = eventually(Duration::from_secs(60), "the code arrives", || {
        let request = http
            .get(format!("{api}/v1/verifications/{verification}"))
            .bearer_auth(&key);
        async move {
            let view: Value = request.send().await.ok()?.json().await.ok()?;
            (view["status"] == "completed").then_some(view)
        }
    })
    .await;
    assert!(completed["code"].is_string(), "{completed}");

    // Every connection to PostgreSQL is encrypted (the server refuses any other), the rate
    // limiter answered from Redis rather than falling back, and the broker carried it all.
    let pool = namaskah_core::store::connect(&database_url, 1)
        .await
        .expect("a pool over TLS");
    let (encrypted, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .expect("pg_stat_ssl");
    assert!(encrypted >= 2, "{encrypted} encrypted connections");
    assert_eq!(plain, 0);
    pool.close().await;
    let scrape = http
        .get(metrics)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let fallbacks = scrape
        .lines()
        .find(|line| line.starts_with("namaskah_rate_limit_fallbacks_total"))
        .and_then(|line| line.split_whitespace().last())
        .unwrap_or("0");
    assert_eq!(fallbacks, "0", "the rate limiter fell back from Redis");

    let _ = up.process.kill().await;
    namaskah_core::store::drop_database(&database_url)
        .await
        .expect("drop the database");
}

/// `namaskah up` with `changes` applied to a working TLS environment: its exit code and
/// what it said on stderr.
async fn start_with(changes: &[(&'static str, String)]) -> (Option<i32>, String) {
    let engines = engines();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let mut environment = environment(&engines, id, "ca.pem");
    for (variable, value) in changes {
        environment.retain(|(name, _)| name != variable);
        environment.push((variable, value.clone()));
    }
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
            .arg("up")
            .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("`namaskah up` gives up at once")
    .expect("namaskah runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn another_ca_another_host_or_plain_text_is_refused_at_start_with_one_line_naming_the_variable()
 {
    let engines = engines();
    let dir = &engines.dir;
    let other = format!("{dir}/other-ca.pem");
    let cases = [
        (
            "DATABASE_URL",
            format!(
                "{}/postgres?sslmode=verify-full&sslrootcert={other}",
                engines.database_server
            ),
        ),
        (
            // The server accepts no plain text: no silent fall back, a refusal.
            "DATABASE_URL",
            format!("{}/postgres?sslmode=disable", engines.database_server),
        ),
        (
            "AMQP_URL",
            format!("{}?cacertfile={other}", engines.amqp_url),
        ),
        ("REDIS_CA_FILE", other.clone()),
        (
            // The right CA, but the certificate names localhost, not the address dialled.
            "AMQP_URL",
            format!(
                "{}?cacertfile={dir}/ca.pem",
                engines.amqp_url.replace("@localhost:", "@127.0.0.1:")
            ),
        ),
        (
            "DATABASE_URL",
            format!(
                "{}/postgres?sslmode=verify-full&sslrootcert={dir}/ca.pem",
                engines
                    .database_server
                    .replace("@localhost:", "@127.0.0.1:")
            ),
        ),
    ];
    for (variable, value) in cases {
        let started = std::time::Instant::now();
        let (code, stderr) = start_with(&[(variable, value.clone())]).await;
        let named = if variable == "REDIS_CA_FILE" {
            "REDIS_URL"
        } else {
            variable
        };
        assert_eq!(code, Some(2), "{variable}={value}: {stderr}");
        let refusal: Vec<&str> = stderr
            .lines()
            .filter(|line| line.contains(&format!("{named}:")))
            .collect();
        assert_eq!(refusal.len(), 1, "{variable}={value}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{variable}: it waited for STARTUP_WAIT instead of refusing at once"
        );
    }

    // A CA file that is not there is a bad variable, named before anything connects.
    let (code, stderr) = start_with(&[("REDIS_CA_FILE", format!("{dir}/nowhere.pem"))]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("REDIS_CA_FILE"), "{stderr}");
}
