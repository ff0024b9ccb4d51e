//! With `SENTRY_DSN` set, recorded failures reach Sentry, tagged with the role. A local
//! HTTP server stands in for Sentry's ingestion endpoint.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use warp::Filter;

use crate::support::{TestEnv, eventually};
use namaskah_core::{queue::QueueName, telemetry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_failures_go_to_sentry_with_the_role() {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = Arc::clone(&received);
    let ingest = warp::post()
        .and(warp::path!("api" / u64 / "envelope"))
        .and(warp::body::bytes())
        .map(move |_project: u64, body: bytes::Bytes| {
            if let Ok(mut received) = store.lock() {
                received.push(String::from_utf8_lossy(&body).into_owned());
            }
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(ingest).incoming(listener).run());

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
