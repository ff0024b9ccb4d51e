//! Prometheus metrics: one recorder per process, rendered at `/metrics`.
//!
//! Every role serves `/metrics` on `METRICS_ADDR`, an internal listener: the counters hold
//! business figures (charges, refunds, top-ups), so the API's and the dashboard's public
//! listeners never serve them. Every metric is listed in `docs/metrics.md`.

mod zero_series;

pub use zero_series::{KnownLabels, register as register_zero_series};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{net::SocketAddr, sync::OnceLock, time::Duration};
use tokio::net::TcpListener;

use crate::Shutdown;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets for every `_seconds` histogram: 1 ms to 60 s.
const SECONDS_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0,
];

/// Buckets for `namaskah_db_batch_size`: requests sharing one statement.
const BATCH_SIZE_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Installs the process's recorder (once; later calls return the same handle).
pub fn install() -> Option<&'static PrometheusHandle> {
    if HANDLE.get().is_none() {
        let built = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("namaskah_db_batch_size".to_owned()),
                    &BATCH_SIZE_BUCKETS,
                )
            })
            .and_then(|builder| builder.install_recorder());
        match built {
            Ok(handle) => {
                let _ = HANDLE.set(handle);
                describe();
            }
            // Another recorder is installed (a test harness, say): metrics go there.
            Err(error) => tracing::debug!(%error, "no Prometheus recorder installed"),
        }
    }
    HANDLE.get()
}

/// The text exposition of every metric.
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Serves `/metrics` and `/healthz` on `address` until shutdown.
pub async fn serve(address: SocketAddr, shutdown: Shutdown) -> std::io::Result<SocketAddr> {
    use plain_http::serve_metrics;
    let listener = TcpListener::bind(address).await.map_err(|error| {
        std::io::Error::new(
            error.kind(),
            format!("cannot listen on {address} (METRICS_ADDR): {error}"),
        )
    })?;
    let bound = listener.local_addr()?;
    tokio::spawn(serve_metrics(listener, shutdown));
    Ok(bound)
}

/// Histograms keep their buckets only with periodic upkeep.
pub async fn upkeep(shutdown: Shutdown) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                if let Some(handle) = HANDLE.get() {
                    handle.run_upkeep();
                }
            }
        }
    }
}

/// A minimal HTTP/1.1 responder for `/metrics`, so workers need no web framework.
mod plain_http {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use crate::Shutdown;

    pub async fn serve_metrics(listener: TcpListener, shutdown: Shutdown) {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.wait() => break,
                accepted = listener.accept() => accepted,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let Ok(read) = stream.read(&mut request).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&request[..read]);
                let (status, body) = if head.starts_with("GET /metrics ") {
                    ("200 OK", super::render())
                } else if head.starts_with("GET /healthz ") {
                    ("200 OK", "ok\n".to_owned())
                } else {
                    ("404 Not Found", "not found\n".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }
}

/// Help texts, so `/metrics` explains itself.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "namaskah_http_requests_total",
        "HTTP requests answered, by route, method and status."
    );
    describe_histogram!(
        "namaskah_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request."
    );
    describe_counter!(
        "namaskah_app_sign_ins_total",
        "Sign-ins to the customer web app, by outcome (succeeded, refused, locked, throttled)."
    );
    describe_counter!(
        "namaskah_app_sign_ups_total",
        "Accounts opened by customers in the web app."
    );
    describe_counter!(
        "namaskah_app_password_reset_mails_total",
        "Password-reset links mailed by the web app, by outcome (sent, failed)."
    );
    describe_counter!(
        "namaskah_cache_requests_total",
        "Look-ups in in-process caches, by cache and result (hit or miss)."
    );
    describe_counter!(
        "namaskah_top_ups_total",
        "Wallet top-ups credited, by payment provider."
    );
    describe_counter!(
        "namaskah_topped_up_cents_total",
        "Cents credited by wallet top-ups, by payment provider."
    );
    describe_counter!(
        "namaskah_payment_notices_refused_total",
        "Payment provider webhooks refused, by provider and error code."
    );
    describe_counter!(
        "namaskah_rate_limited_total",
        "API requests refused with 429 by the per-key rate limit, by the account's tier."
    );
    describe_counter!(
        "namaskah_rate_limit_fallbacks_total",
        "Rate-limit decisions taken in memory because Redis did not answer."
    );
    describe_counter!(
        "namaskah_jobs_total",
        "Messages handled by workers, by queue and outcome."
    );
    describe_counter!(
        "namaskah_messages_redelivered_total",
        "Messages the broker delivered again (after a consumer, a connection or a node was lost), by queue."
    );
    describe_histogram!(
        "namaskah_job_duration_seconds",
        Unit::Seconds,
        "Time a worker spent on one message."
    );
    describe_histogram!(
        "namaskah_db_batch_size",
        "Requests that shared one database statement, by batch (a worker's natural batching)."
    );
    describe_gauge!(
        "namaskah_queue_messages",
        "Messages in a queue, by queue and state (ready, parked)."
    );
    describe_gauge!("namaskah_queue_consumers", "Consumers attached to a queue.");
    describe_gauge!(
        "namaskah_held_messages",
        "Messages a worker holds through a short wait instead of a delay tier, by queue."
    );
    describe_counter!(
        "namaskah_provider_requests_total",
        "Calls to SMS providers, by provider, operation and outcome."
    );
    describe_gauge!(
        "namaskah_provider_breaker_state",
        "Each provider's circuit breaker in this process: 0 closed, 1 half-open, 2 open."
    );
    describe_gauge!(
        "namaskah_provider_breaker_changed_at_seconds",
        "When each provider's circuit breaker last changed state (Unix time)."
    );
    describe_counter!(
        "namaskah_provider_breaker_transitions_total",
        "Circuit breaker state changes, by provider and the state entered."
    );
    describe_histogram!(
        "namaskah_provider_request_duration_seconds",
        Unit::Seconds,
        "Latency of provider calls."
    );
    describe_counter!(
        "namaskah_webhook_attempts_total",
        "Webhook delivery attempts, by outcome."
    );
    describe_histogram!(
        "namaskah_webhook_attempt_duration_seconds",
        Unit::Seconds,
        "Time of one webhook attempt."
    );
    describe_histogram!(
        "namaskah_webhook_delivery_seconds",
        Unit::Seconds,
        "From an event's commit to its successful delivery."
    );
    describe_counter!(
        "namaskah_verifications_finished_total",
        "Verifications reaching a final status, by status."
    );
    describe_gauge!(
        "namaskah_verifications",
        "Verifications by current status (sampled)."
    );
    describe_counter!("namaskah_charges_total", "Verifications charged.");
    describe_counter!(
        "namaskah_charged_cents_total",
        "Cents charged for verifications."
    );
    describe_counter!("namaskah_refunds_total", "Refunds written.");
    describe_counter!("namaskah_refunded_cents_total", "Cents refunded.");
    describe_histogram!(
        "namaskah_verification_completion_seconds",
        Unit::Seconds,
        "From acceptance to the SMS code."
    );
    describe_gauge!(
        "namaskah_outbox_unsent",
        "Outbox rows not yet published (sampled)."
    );
    describe_gauge!(
        "namaskah_outbox_lag_seconds",
        Unit::Seconds,
        "Age of the oldest unsent outbox row (sampled)."
    );
    describe_counter!(
        "namaskah_messages_published_total",
        "Messages published for a queue (directly or through a delay tier), by queue."
    );
    describe_counter!(
        "namaskah_outbox_published_total",
        "Outbox rows published by the relay."
    );
    describe_gauge!(
        "namaskah_invariant_violations",
        "Broken invariants found by the last check (0 is healthy)."
    );
    describe_gauge!(
        "namaskah_scheduler_leader",
        "1 while this process's scheduler leads."
    );
    describe_counter!(
        "namaskah_scheduler_runs_total",
        "Scheduler job runs, by job and outcome."
    );
    describe_histogram!(
        "namaskah_scheduler_job_duration_seconds",
        Unit::Seconds,
        "Time a scheduler job ran."
    );
    describe_counter!(
        "namaskah_errors_total",
        "Failures recorded for error tracking, by role and kind."
    );
}
