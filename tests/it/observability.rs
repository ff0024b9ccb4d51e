//! Metrics, Prometheus and Grafana files: the real tools accept them, and every metric a
//! dashboard panel or an alert uses is one the code really exports.

use reqwest::StatusCode;
use serde_json::json;
use std::{collections::BTreeSet, io::Write, path::PathBuf, process::Stdio, time::Duration};

use crate::support::{Answer, Sink, TestEnv, eventually, never_sms};
use namaskah::pipeline::Roles;
use namaskah_core::queue::QueueName;
use namaskah_workers::WorkerKind;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(repository())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: apt-get install prometheus (`./scripts/test` does)");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("write to promtool");
    }
    child.wait_with_output().expect("promtool runs")
}

fn assert_success(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn prometheus_config_and_alert_rules_pass_promtool() {
    assert_success(
        &promtool(&["check", "config", "prometheus/prometheus.yml"], None),
        "promtool check config",
    );
    assert_success(
        &promtool(&["check", "rules", "prometheus/alerts.yml"], None),
        "promtool check rules",
    );
    assert_success(
        &promtool(&["test", "rules", "prometheus/alerts.test.yml"], None),
        "promtool test rules",
    );
}

/// Every `namaskah_…` name in the dashboards and alert rules.
fn referenced_metrics() -> BTreeSet<String> {
    let mut sources =
        vec![std::fs::read_to_string(repository().join("prometheus/alerts.yml")).expect("alerts")];
    for entry in std::fs::read_dir(repository().join("grafana/dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                sources.push(target["expr"].as_str().expect("expr").to_owned());
            }
        }
    }
    let mut names = BTreeSet::new();
    for source in sources {
        let mut rest = source.as_str();
        while let Some(start) = rest.find("namaskah_") {
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboards_and_alerts_use_is_exported_and_promtool_accepts_them() {
    let mut builder = TestEnv::builder()
        .roles(Roles {
            api: true,
            relay: true,
            workers: WorkerKind::ALL.to_vec(),
            scheduler: true,
            ..Roles::default()
        })
        .set("SCHEDULER_LEADER_POLL", "200ms")
        .behaviour(never_sms());
    for (job, variable, _) in namaskah_core::config::DEFAULT_SCHEDULES {
        let every_second = ["sampling", "invariants"].contains(&job);
        builder = builder.set(variable, if every_second { "* * * * * *" } else { "off" });
    }
    let env = builder.start().await;
    let sink = Sink::start().await;
    sink.script([Answer::Status(500)]);
    let account = env.account(10_000).await;
    let (status, _) = env
        .post(
            "/v1/webhook-endpoints",
            &account.key,
            json!({"url": sink.url("/hooks"), "event_types": ["verification.completed"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let completed = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &completed, "waiting_sms", Duration::from_secs(15))
        .await;
    env.sim
        .deliver_sms(env.provider_order_id(&completed).await, "code 2468");
    env.wait_for_status(&account, &completed, "completed", Duration::from_secs(15))
        .await;
    let refunded = env.create_verification(&account, "telegram", "us").await;
    env.post(
        &format!("/v1/verifications/{refunded}/cancel"),
        &account.key,
        json!({}),
    )
    .await;
    env.wait_for_status(&account, &refunded, "refunded", Duration::from_secs(15))
        .await;
    env.publish_raw(QueueName::Polling, b"not a message").await;
    // A failed then a successful webhook attempt.
    eventually(Duration::from_secs(15), "two webhook attempts", || async {
        (sink.received().len() >= 2).then_some(())
    })
    .await;

    let referenced = referenced_metrics();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let (scrape, missing) = loop {
        let scrape = env
            .http
            .get(format!("{}/metrics", env.metrics))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("body");
        let exported: BTreeSet<String> = scrape
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .filter_map(|line| line.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        // A histogram's family name stands for its `_bucket`, `_sum` and `_count` series.
        let exported_as =
            |name: &String| exported.contains(name) || exported.contains(&format!("{name}_bucket"));
        let missing: Vec<&String> = referenced
            .iter()
            .filter(|name| !exported_as(name))
            .collect();
        if missing.is_empty() || tokio::time::Instant::now() > deadline {
            break (scrape, format!("{missing:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        missing, "[]",
        "metrics used by dashboards or alerts but not exported"
    );
    assert!(
        referenced.len() >= 20,
        "the dashboards use {} metrics",
        referenced.len()
    );
    assert_success(
        &promtool(&["check", "metrics"], Some(scrape.as_bytes())),
        "promtool check metrics",
    );
}

/// Every metric name in docs/metrics.md's table.
fn documented_metrics() -> BTreeSet<String> {
    let document = std::fs::read_to_string(repository().join("docs/metrics.md")).expect("docs");
    document
        .lines()
        .filter_map(|line| line.strip_prefix("| `namaskah_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("namaskah_{name}"))
        .collect()
}

/// The families a scrape exports (a histogram by its family name).
fn exported_families(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_freshly_started_pipeline_exports_every_family_at_zero() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let database_url = format!("{}/namaskah_test_fresh_{id}", crate::support::server_url());
    let mut up = tokio::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .arg("up")
        .env("DATABASE_URL", &database_url)
        .env("AMQP_URL", crate::support::amqp_url())
        .env("QUEUE_PREFIX", format!("t{id}."))
        .env("API_ADDR", "127.0.0.1:0")
        .env("APP_ADDR", "127.0.0.1:0")
        .env("DASHBOARD_ADDR", "127.0.0.1:0")
        .env("SIMULATOR_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("namaskah runs");
    let mut lines = BufReader::new(up.stdout.take().expect("stdout")).lines();
    let metrics = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.trim().strip_prefix("metrics") {
                return rest.split_whitespace().next().map(str::to_owned);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
    .expect("`namaskah up` announces its metrics listener");

    namaskah_core::telemetry::install_crypto_provider();
    let scrape = reqwest::get(metrics)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let _ = up.kill().await;
    namaskah_core::store::drop_database(&database_url)
        .await
        .expect("drop the database");

    let exported = exported_families(&scrape);
    // A histogram's `_bucket` series belongs to its family.
    let wanted: BTreeSet<String> = documented_metrics()
        .into_iter()
        .chain(referenced_metrics())
        .map(|name| name.trim_end_matches("_bucket").to_owned())
        .collect();
    assert!(wanted.len() >= 30, "{wanted:?}");
    let missing: Vec<&String> = wanted.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "not exported by a freshly started pipeline: {missing:?}"
    );
    assert!(
        scrape.contains("namaskah_queue_messages{queue=\"ordering\",state=\"ready\"} 0"),
        "known labels have their zero series:\n{scrape}"
    );
    assert_success(
        &promtool(&["check", "metrics"], Some(scrape.as_bytes())),
        "promtool check metrics",
    );
}

/// ERROR events from lapin, counted wherever lapin's own tasks run.
#[derive(Clone, Default)]
struct LapinErrors(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LapinErrors {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let metadata = event.metadata();
        if *metadata.level() == tracing::Level::ERROR && metadata.target().starts_with("lapin") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The scheduler samples the queues every minute on a connection of its own, and so does
/// the dashboard on every page: neither may log an error when nothing is wrong. The channel
/// used to be dropped just before its connection closed, and lapin logged the refused
/// close as "Connection error" once a sample.
#[tokio::test]
async fn sampling_the_queues_logs_no_error() {
    use tracing_subscriber::layer::SubscriberExt;

    let env = TestEnv::api_only().await;
    let errors = LapinErrors::default();
    let _logging =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(errors.clone()));
    let topology = namaskah_core::queue::Topology::from_config(&env.config);
    for _ in 0..5 {
        let depths =
            namaskah_core::queue::sample_depths(&env.config.amqp_url, "sampling", &topology)
                .await
                .expect("sampled");
        assert_eq!(depths.len(), QueueName::ALL.len());
    }
    // lapin closes in a task of its own: give it the time to log.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(errors.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}
