//! Every metric family is exported from the start, at zero, with the series whose labels are
//! known before anything happens: alerts and Grafana panels over a quiet role then show 0,
//! not "no data", and `absent()`-style rules do not misfire. Labels that only events reveal
//! (an HTTP route's status, an error's kind) get the series the process is most likely to
//! see first; the rest appear with their first event.

use metrics::{counter, gauge, histogram};

use crate::{
    domain::{Status, Tier},
    payments::PaymentProvider,
    queue::QueueName,
};

/// Labels a process knows at start.
pub struct KnownLabels<'a> {
    /// The SMS providers configured, in failover order.
    pub providers: &'a [String],
    /// The scheduler's jobs (empty where no scheduler runs).
    pub scheduler_jobs: &'a [&'static str],
    /// The roles that record failures here: `api`, `worker`, `scheduler`.
    pub failing_roles: &'a [&'static str],
    /// A scheduler runs here: the gauges its `sampling` and `invariants` jobs set (queue
    /// depth, verifications by status, outbox backlog, leadership) start at zero here and
    /// nowhere else, so that no other process claims a depth of 0 it never measured.
    pub samples: bool,
}

const PROVIDER_OPERATIONS: [&str; 4] = ["buy", "check", "cancel", "finish"];
const PROVIDER_OUTCOMES: [&str; 4] = ["success", "out_of_stock", "unavailable", "rejected"];
const JOB_OUTCOMES: [&str; 5] = ["done", "again", "retryable", "permanent", "unavailable"];
/// How a customer's sign-in to the web app ended (`api/src/app/pages/account.rs`).
pub const APP_SIGN_IN_OUTCOMES: [&str; 4] = ["succeeded", "refused", "locked", "throttled"];
const API_CACHES: [&str; 3] = ["api_keys", "tiers", "catalogue"];
/// The batchers of the workers (`namaskah_workers::batch`), by name.
const BATCHES: [&str; 6] = [
    "ordering_claims",
    "ordering_assignments",
    "polling_loads",
    "polling_completions",
    "webhook_claims",
    "webhook_successes",
];
const PAYMENT_PROVIDERS: [PaymentProvider; 2] =
    [PaymentProvider::Paystack, PaymentProvider::Stripe];

/// Registers every family with its known series at zero. Call once, right after the
/// recorder is installed; a series that already has a value keeps it. (A histogram's
/// handle is dropped at once: registering it is what exports its empty buckets.)
pub fn register(known: &KnownLabels<'_>) {
    for queue in QueueName::ALL {
        let queue = queue.as_str();
        for outcome in JOB_OUTCOMES {
            counter!("namaskah_jobs_total", "queue" => queue, "outcome" => outcome).increment(0);
        }
        let _ = histogram!("namaskah_job_duration_seconds", "queue" => queue);
        counter!("namaskah_messages_redelivered_total", "queue" => queue).increment(0);
        counter!("namaskah_messages_published_total", "queue" => queue).increment(0);
        gauge!("namaskah_held_messages", "queue" => queue).increment(0.0);
        if known.samples {
            for state in ["ready", "parked"] {
                gauge!("namaskah_queue_messages", "queue" => queue, "state" => state)
                    .increment(0.0);
            }
            gauge!("namaskah_queue_consumers", "queue" => queue).increment(0.0);
        }
    }
    for batch in BATCHES {
        let _ = histogram!("namaskah_db_batch_size", "batch" => batch);
    }
    for provider in known.providers {
        for operation in PROVIDER_OPERATIONS {
            for outcome in PROVIDER_OUTCOMES {
                counter!("namaskah_provider_requests_total",
                    "provider" => provider.clone(), "operation" => operation, "outcome" => outcome)
                .increment(0);
            }
            let _ = histogram!("namaskah_provider_request_duration_seconds",
                "provider" => provider.clone(), "operation" => operation);
        }
    }
    for outcome in ["delivered", "failed"] {
        counter!("namaskah_webhook_attempts_total", "outcome" => outcome).increment(0);
    }
    let _ = histogram!("namaskah_webhook_attempt_duration_seconds");
    let _ = histogram!("namaskah_webhook_delivery_seconds");
    for status in ["completed", "refunded"] {
        counter!("namaskah_verifications_finished_total", "status" => status).increment(0);
    }
    let _ = histogram!("namaskah_verification_completion_seconds");
    if known.samples {
        for status in Status::ALL {
            gauge!("namaskah_verifications", "status" => status.as_str()).increment(0.0);
        }
        gauge!("namaskah_outbox_unsent").increment(0.0);
        gauge!("namaskah_outbox_lag_seconds").increment(0.0);
        gauge!("namaskah_invariant_violations").increment(0.0);
        gauge!("namaskah_scheduler_leader").increment(0.0);
    }
    for money in [
        "namaskah_charges_total",
        "namaskah_charged_cents_total",
        "namaskah_refunds_total",
        "namaskah_refunded_cents_total",
        "namaskah_outbox_published_total",
        "namaskah_rate_limit_fallbacks_total",
    ] {
        counter!(money).increment(0);
    }
    for job in known.scheduler_jobs {
        for outcome in ["succeeded", "failed"] {
            counter!("namaskah_scheduler_runs_total", "job" => *job, "outcome" => outcome)
                .increment(0);
        }
        let _ = histogram!("namaskah_scheduler_job_duration_seconds", "job" => *job);
    }
    for role in known.failing_roles {
        counter!("namaskah_errors_total", "role" => *role, "kind" => first_error_kind(role))
            .increment(0);
    }
    for cache in API_CACHES {
        for result in ["hit", "miss"] {
            counter!("namaskah_cache_requests_total", "cache" => cache, "result" => result)
                .increment(0);
        }
    }
    for provider in PAYMENT_PROVIDERS {
        let provider = provider.as_str();
        counter!("namaskah_top_ups_total", "provider" => provider).increment(0);
        counter!("namaskah_topped_up_cents_total", "provider" => provider).increment(0);
        counter!("namaskah_payment_notices_refused_total",
            "provider" => provider, "code" => "invalid_signature")
        .increment(0);
    }
    for tier in Tier::ALL {
        counter!("namaskah_rate_limited_total", "tier" => tier.as_str()).increment(0);
    }
    for outcome in APP_SIGN_IN_OUTCOMES {
        counter!("namaskah_app_sign_ins_total", "outcome" => outcome).increment(0);
    }
    counter!("namaskah_app_sign_ups_total").increment(0);
    for outcome in ["sent", "failed"] {
        counter!("namaskah_app_password_reset_mails_total", "outcome" => outcome).increment(0);
    }
    // An HTTP route's series appear with its first request (`route` and `status` are only
    // known then); the health check's is there from the start.
    counter!("namaskah_http_requests_total",
        "route" => "/healthz", "method" => "GET", "status" => "200")
    .increment(0);
    let _ = histogram!("namaskah_http_request_duration_seconds", "route" => "/healthz", "method" => "GET");
}

/// The kind of failure a role records most often, for its zero series.
fn first_error_kind(role: &str) -> &'static str {
    match role {
        "api" => "database_unavailable",
        "scheduler" => "job_sampling",
        _ => "retryable",
    }
}
