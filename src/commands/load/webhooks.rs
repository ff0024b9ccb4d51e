//! `namaskah load webhooks`: webhook delivery throughput and latency, measured end to end
//! (event committed → outbox relay → RabbitMQ → delivery worker → signed POST → receiver).
//!
//! It runs against a throw-away database (`<DATABASE_URL>_load`) and queue prefix
//! (`<QUEUE_PREFIX>load.`), with the outbox relay and the webhook worker in this process and a local
//! receiver that checks every signature.
//!
//! Two modes:
//! - `--rate 0` (drain): all events are committed first, then the relay and the worker start;
//!   the figure is how fast the backlog is delivered, with nothing else competing for the
//!   two cores.
//! - `--rate N`: events are committed at N per second while the pipeline runs; the figure
//!   is the commit-to-receipt latency at that rate.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::{
    collections::HashMap,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use namaskah::{
    pipeline::{self, Roles},
    prerequisites,
};
use namaskah_core::{
    Config, Shutdown,
    domain::{Cents, TenantId, Tier},
    queue::QueueName,
    store::{self, accounts, webhook_endpoints},
    webhooks::WebhookSecret,
};
use namaskah_load_tests::webhook_sink::WebhookSink;
use namaskah_workers::WorkerKind;

use super::{report::Distribution, run::parked_messages};

/// Events written per transaction, at most.
const BATCH: u64 = 250;

pub struct WebhookLoad {
    pub events: u64,
    pub endpoints: u32,
    /// Events per second; 0 writes them as fast as the database takes them.
    pub rate: u64,
}

pub async fn webhooks(config: Config, load: WebhookLoad) -> Result<ExitCode> {
    if let Err(missing) = prerequisites::check_all(&config).await {
        return Ok(prerequisites::report(&missing));
    }
    if load.events == 0 || load.endpoints == 0 {
        bail!("--events and --endpoints must be at least 1");
    }
    let config = Arc::new(super::throwaway::config(config));
    super::throwaway::reset(&config).await?;

    let shutdown = Shutdown::new();
    let secrets: Arc<Mutex<Vec<WebhookSecret>>> = Arc::default();
    let sink = WebhookSink::start(Arc::clone(&secrets), shutdown.clone()).await?;
    let roles = Roles {
        relay: true,
        workers: vec![WorkerKind::Webhooks],
        ..Roles::default()
    };
    let pool = store::connect(&config.database_url, 4).await?;

    let mut tx = pool.begin().await?;
    let account = accounts::create(
        &mut tx,
        TenantId::DEFAULT,
        "load@example.com",
        Tier::Pro,
        Cents::ZERO,
    )
    .await?;
    tx.commit().await?;
    for n in 0..load.endpoints {
        let secret = WebhookSecret::generate();
        let endpoint = webhook_endpoints::NewEndpoint {
            url: format!("http://{}/hooks/{n}", sink.address),
            description: "load".to_owned(),
            event_types: Vec::new(),
            enabled: true,
        };
        webhook_endpoints::create(&pool, account.id, &endpoint, &secret).await?;
        secrets
            .lock()
            .map_err(|_| anyhow::anyhow!("sink lock"))?
            .push(secret);
    }

    let expected = load.events * u64::from(load.endpoints);
    println!(
        "writing {} events for {} endpoint(s) = {expected} deliveries{}",
        load.events,
        load.endpoints,
        if load.rate > 0 {
            format!(" at {} events/s", load.rate)
        } else {
            " as fast as possible".to_owned()
        }
    );
    let mut running = None;
    if load.rate > 0 {
        running =
            Some(pipeline::start(Arc::clone(&config), roles.clone(), shutdown.clone()).await?);
    }
    let started = Instant::now();
    let first_commit = Utc::now();
    let mut written = 0;
    while written < load.events {
        // At a rate, small batches (20 ms worth) so that batching does not add latency.
        let batch_size = if load.rate > 0 {
            (load.rate / 50).clamp(1, BATCH)
        } else {
            BATCH
        };
        let batch = batch_size.min(load.events - written);
        if load.rate > 0 {
            // Keep to the rate: this batch is due when the previous ones have had their time.
            let due = Duration::from_secs_f64(written as f64 / load.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        sqlx::query(
            "SELECT record_webhook_event($1, 'webhook.test', jsonb_build_object('n', n), 'load')
             FROM generate_series($2::bigint, $3::bigint) n",
        )
        .bind(account.id)
        .bind(i64::try_from(written).unwrap_or(i64::MAX))
        .bind(i64::try_from(written + batch - 1).unwrap_or(i64::MAX))
        .execute(&pool)
        .await
        .context("writing events")?;
        if let Some(running) = &running {
            running.outbox.notify();
        }
        written += batch;
    }
    let written_after = started.elapsed();
    // Drain mode: the backlog is complete; now the pipeline starts and the clock restarts.
    let delivery_started = Instant::now();
    let running = match running {
        Some(running) => running,
        None => pipeline::start(Arc::clone(&config), roles, shutdown.clone()).await?,
    };
    let clock = if load.rate > 0 {
        started
    } else {
        delivery_started
    };

    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last_report = Instant::now();
    loop {
        let received = sink.with_tally(|t| t.first_seen.len() as u64).unwrap_or(0);
        if received >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {received} of {expected} deliveries arrived within 10 minutes");
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            println!(
                "  {:>6.1} s  {received} deliveries received",
                clock.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = clock.elapsed();

    let committed: Vec<(String, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, created_at FROM webhook_messages")
            .fetch_all(&pool)
            .await?;
    let committed: HashMap<String, DateTime<Utc>> = committed.into_iter().collect();
    let (latency, requests, duplicates, bad_signatures) = sink
        .with_tally(|tally| {
            let latencies: Vec<f64> = tally
                .first_seen
                .iter()
                .filter_map(|((_, id), seen)| {
                    let committed_at = committed.get(id)?;
                    Some((*seen - *committed_at).num_microseconds().unwrap_or(0) as f64 / 1000.0)
                })
                .collect();
            (
                Distribution::of(latencies),
                tally.requests,
                tally.duplicates,
                tally.bad_signatures,
            )
        })
        .context("reading the sink")?;
    let deliveries_per_second = expected as f64 / drained.as_secs_f64();
    // Messages the webhook worker gave up on during the run (a stale message from another
    // run would land here as "no such delivery").
    let parked_messages = parked_messages(&config)
        .await?
        .get(QueueName::Webhooks.as_str())
        .copied()
        .unwrap_or(0);
    let report = json!({
        "events": load.events,
        "endpoints": load.endpoints,
        "target_rate_events_per_s": load.rate,
        "deliveries": expected,
        "requests_received": requests,
        "duplicates": duplicates,
        "bad_signatures": bad_signatures,
        "parked_messages": parked_messages,
        "mode": if load.rate > 0 { "rate" } else { "drain" },
        "seconds_writing": written_after.as_secs_f64(),
        "events_written_per_second": load.events as f64 / written_after.as_secs_f64(),
        "seconds_delivering": drained.as_secs_f64(),
        "deliveries_per_second": deliveries_per_second,
        "commit_to_receipt_ms": latency,
        "first_commit": first_commit,
    });
    println!("deliveries/s            {deliveries_per_second:>10.0}");
    println!(
        "commit → receipt (ms)   p50 {:.1}  p95 {:.1}  p99 {:.1}  max {:.1}",
        latency.p50, latency.p95, latency.p99, latency.max
    );
    println!(
        "duplicates {duplicates}, bad signatures {bad_signatures}, parked messages {parked_messages}"
    );
    println!("{}", serde_json::to_string_pretty(&report)?);

    running.stop().await;
    shutdown.trigger();
    pool.close().await;
    super::throwaway::clean_up(&config).await?;
    Ok(if bad_signatures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
