//! A role started while RabbitMQ is away waits for it (`STARTUP_WAIT`) instead of exiting,
//! and gives up with status 3 and a clear message when the wait runs out.

use std::{process::Stdio, time::Duration};
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStderr, Command},
};

use crate::support::{TestEnv, amqp_url};
use namaskah_load_tests::proxy::TcpProxy;

/// RabbitMQ behind a proxy that starts cut.
async fn rabbitmq_behind_a_cut_proxy() -> (TcpProxy, String) {
    TcpProxy::in_front_of(&amqp_url(), 5672, false)
        .await
        .expect("a proxy in front of TEST_AMQP_URL")
}

fn refund_worker(env: &TestEnv, amqp_url: &str, wait: &str) -> Child {
    let prefix = format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .args(["worker", "refund"])
        .env("DATABASE_URL", env.database_url())
        .env("AMQP_URL", amqp_url)
        .env("QUEUE_PREFIX", prefix)
        .env("METRICS_ADDR", "off")
        .env("STARTUP_WAIT", wait)
        .env_remove("REDIS_URL")
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("namaskah runs")
}

/// Reads the role's stderr into `said` until a line contains `needle` (within 30 s).
async fn until_line(
    lines: &mut Lines<BufReader<ChildStderr>>,
    said: &mut String,
    needle: &str,
) -> bool {
    let reading = async {
        while let Ok(Some(line)) = lines.next_line().await {
            said.push_str(&line);
            said.push('\n');
            if line.contains(needle) {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .unwrap_or(false)
}

#[tokio::test]
async fn a_role_started_during_an_outage_waits_and_comes_up_when_it_ends() {
    let env = TestEnv::api_only().await;
    let (proxy, through) = rabbitmq_behind_a_cut_proxy().await;
    let mut worker = refund_worker(&env, &through, "60s");
    let mut lines = BufReader::new(worker.stderr.take().expect("stderr")).lines();
    let mut said = String::new();
    assert!(
        until_line(&mut lines, &mut said, "waiting up to 60 s").await,
        "{said}"
    );
    assert!(said.contains("RabbitMQ is not reachable"), "{said}");
    assert!(
        worker.try_wait().expect("status").is_none(),
        "it waits rather than exits"
    );

    proxy.restore();
    assert!(
        until_line(&mut lines, &mut said, "every service is reachable now").await,
        "{said}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        worker.try_wait().expect("status").is_none(),
        "the worker runs: {said}"
    );
    worker.kill().await.expect("stop the worker");
}

#[tokio::test]
async fn a_role_gives_up_with_status_3_when_the_wait_runs_out() {
    let env = TestEnv::api_only().await;
    let (_proxy, through) = rabbitmq_behind_a_cut_proxy().await;
    let worker = refund_worker(&env, &through, "2s");
    let output = tokio::time::timeout(Duration::from_secs(30), worker.wait_with_output())
        .await
        .expect("it gives up within the wait and a check")
        .expect("output");
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{said}");
    assert!(said.contains("RabbitMQ is not reachable"), "{said}");
    assert!(
        said.contains("rabbitmq-server -detached"),
        "says how to get it: {said}"
    );
}
