//! The verdict of a load run: what happened to every submission, how fast, and whether every
//! invariant held.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use namaskah_core::store::{invariants, sweeps};
use namaskah_load_tests::webhook_sink::WebhookSink;

use super::{
    args::RunArgs,
    drive,
    report::{Check, Distribution, OrderingRate, Report, Webhooks},
};

#[derive(sqlx::FromRow)]
struct Final {
    id: String,
    status: String,
    failure_reason: Option<String>,
    number_assigned_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
}

fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(0) as f64 / 1_000.0
}

/// The report of a run: its figures and its invariants, from the database and the
/// webhook receiver.
pub(super) async fn judge(
    pool: &sqlx::PgPool,
    sink: &WebhookSink,
    driven: drive::Driven,
    args: &RunArgs,
) -> Result<Report> {
    let mut report = Report {
        mode: if args.concurrency.is_some() {
            "concurrency"
        } else {
            "rate"
        }
        .to_owned(),
        target: args.describe(),
        submitted: driven.samples.len(),
        cancels_requested: driven.cancels_requested,
        submitted_with_idempotency_key: driven.submitted_with_idempotency_key,
        ..Report::default()
    };
    let mut submitted_at: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut latencies = Vec::new();
    for sample in &driven.samples {
        match &sample.outcome {
            Ok(id) => {
                submitted_at.insert(id.clone(), sample.submitted_at);
                latencies.push(sample.latency_ms);
            }
            Err(kind) => *report.errors.entry(kind.clone()).or_insert(0) += 1,
        }
    }
    for (kind, count) in &driven.cancel_errors {
        *report.errors.entry(kind.clone()).or_insert(0) += count;
    }
    report.accepted = submitted_at.len();
    report.api_latency_ms = Distribution::of(latencies);
    // From the first submission to the last answer.
    let first = driven.samples.iter().map(|s| s.submitted_at).min();
    let last_answer = driven
        .samples
        .iter()
        .map(|s| s.submitted_at + chrono::Duration::microseconds((s.latency_ms * 1_000.0) as i64))
        .max();
    report.submit_seconds = match (first, last_answer) {
        (Some(first), Some(last)) => millis(first, last) / 1_000.0,
        _ => driven.seconds,
    };
    report.submissions_per_second = report.accepted as f64 / report.submit_seconds.max(1e-9);

    let finals: Vec<Final> = sqlx::query_as(
        "SELECT id::text, status,
                CASE WHEN failure_reason IS NULL AND cancel_requested_at IS NOT NULL
                     THEN 'cancelled by the customer' ELSE failure_reason END AS failure_reason,
                number_assigned_at, completed_at
         FROM verifications",
    )
    .fetch_all(pool)
    .await?;
    let known: HashSet<&str> = finals.iter().map(|f| f.id.as_str()).collect();
    let mut to_number = Vec::new();
    let mut not_final = Vec::new();
    let mut last_completion = None;
    for row in &finals {
        let outcome = match (&row.status[..], &row.failure_reason) {
            ("refunded", Some(reason)) => format!("refunded ({reason})"),
            (status, _) => status.to_owned(),
        };
        *report.outcomes.entry(outcome).or_insert(0) += 1;
        if row.status != "completed" && row.status != "refunded" {
            not_final.push(format!("{}: {}", row.id, row.status));
        }
        if let (Some(at), Some(submitted)) = (row.number_assigned_at, submitted_at.get(&row.id)) {
            to_number.push(millis(*submitted, at));
        }
        if row.status == "completed" {
            report.completed += 1;
            last_completion = last_completion.max(row.completed_at);
        }
    }
    report.submit_to_number_ms = Distribution::of(to_number);
    let assigned: Vec<DateTime<Utc>> = finals
        .iter()
        .filter_map(|row| row.number_assigned_at)
        .collect();
    report.ordering = OrderingRate::of(&assigned);
    if let (Some(first), Some(last)) = (first, last_completion) {
        report.completed_per_second = report.completed as f64 / (millis(first, last) / 1_000.0);
    }

    let deliveries: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.message_id, e.url FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id",
    )
    .fetch_all(pool)
    .await?;
    let (undelivered, completed_webhooks, duplicates, bad_signatures) = sink
        .with_tally(|tally| {
            let undelivered: Vec<String> = deliveries
                .iter()
                .filter(|(message, url)| {
                    let path = url.split_once("/hooks/").map_or("", |(_, n)| n);
                    !tally
                        .first_seen
                        .contains_key(&(format!("/hooks/{path}"), message.clone()))
                })
                .map(|(message, url)| format!("{message} to {url}"))
                .collect();
            let completed: Vec<f64> = tally
                .completions
                .iter()
                .filter_map(|(id, at)| Some(millis(*submitted_at.get(id)?, *at)))
                .collect();
            (
                undelivered,
                completed,
                tally.duplicates,
                tally.bad_signatures,
            )
        })
        .context("reading the webhook receiver")?;
    report.submit_to_completed_webhook_ms = Distribution::of(completed_webhooks);
    report.webhooks = Webhooks {
        expected: deliveries.len(),
        delivered: deliveries.len() - undelivered.len(),
        duplicates,
        bad_signatures,
    };
    report.nudged_by_sweeper = sweeps::nudged_verifications(pool).await?;

    let lost: Vec<String> = submitted_at
        .keys()
        .filter(|id| !known.contains(id.as_str()))
        .map(|id| format!("{id}: accepted, not in the database"))
        .collect();
    report.lost = lost.len();
    report
        .invariants
        .push(Check::new("every_accepted_verification_exists", lost));
    // The other way round: a verification whose order was answered with an error (or not at
    // all) was charged without the customer knowing, who may order again and pay twice.
    // A chaos run or a drill can cut the answer to a committed order (that is what
    // idempotency keys are for), so only runs without faults hold to it.
    if !args.chaos && args.drill.is_none() {
        let unanswered: Vec<String> = finals
            .iter()
            .filter(|row| !submitted_at.contains_key(&row.id))
            .map(|row| format!("{}: charged, its order answered with an error", row.id))
            .collect();
        report
            .invariants
            .push(Check::new("every_charged_order_answered", unanswered));
    }
    if !args.api_only {
        report
            .invariants
            .push(Check::new("every_verification_final", not_final));
    }
    let checked = invariants::check(pool, Duration::from_secs(0)).await?;
    let mut broken: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for violation in &checked.violations {
        broken
            .entry(violation.invariant)
            .or_default()
            .extend(violation.examples.iter().cloned());
    }
    for name in [
        "balance_equals_ledger",
        "exactly_one_charge",
        "charge_matches_price",
        "refund_only_when_refunded",
        "open_count_matches",
        "open_since_matches_status",
        "usage_closed_days_final",
        "webhook_rows_have_their_parents",
        "phone_numbers_listed",
    ] {
        report
            .invariants
            .push(Check::new(name, broken.remove(name).unwrap_or_default()));
    }
    // `every_verification_final` says it with the run's own words; any other is reported.
    broken.remove("overdue_verifications_are_final");
    for (name, examples) in broken {
        report.invariants.push(Check::new(name, examples));
    }
    report.invariants.push(Check::new(
        "every_webhook_delivered_with_a_valid_signature",
        undelivered,
    ));
    report.invariants.push(Check::new(
        "no_badly_signed_webhook",
        (bad_signatures > 0)
            .then(|| format!("{bad_signatures} requests with a bad signature"))
            .into_iter()
            .collect(),
    ));
    Ok(report)
}
