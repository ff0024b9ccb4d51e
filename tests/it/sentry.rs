//! With `SENTRY_DSN` set, recorded failures reach Sentry, tagged with the role. A local
//! HTTP server stands in for Sentry's ingestion endpoint.

use std::time::Duration;

use crate::support::{TestEnv, eventually};
use namaskah_core::{queue::QueueName, telemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_failures_go_to_sentry_with_the_role() {
    let (address, received) = crate::secrets_in_logs::fake_sentry().await;

    telemetry::install_crypto_provider();
    let _sentry = telemetry::init_sentry(&format!("http://public@{address}/42"), "worker-polling");
    let env = TestEnv::start().await;
    env.publish_raw(QueueName::Polling, b"this is not a message")
        .await;

    let envelope = eventually(
        Duration::from_secs(15),
        "an event at the fake Sentry",
        || async {
            let received = received.lock().ok()?;
            received
                .iter()
                .find(|body| body.contains("malformed"))
                .cloned()
        },
    )
    .await;
    assert!(envelope.contains("\"role\":\"worker\""), "{envelope}");
    assert!(envelope.contains("\"queue\":\"polling\""), "{envelope}");
    assert!(envelope.contains("release"), "{envelope}");
}
