//! The overview's numbers, gathered for the page and for every WebSocket update.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

use namaskah_core::{
    queue::QueueName,
    store::{self, error_groups, outbox, provider_calls, scheduler_runs},
};

use crate::{DashboardState, rabbit};

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProviderHealth {
    pub name: String,
    pub calls: i64,
    pub error_rate_pct: f64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    /// Its circuit breaker, as our processes' metrics tell (`closed`, `open since …`).
    pub breaker: Option<String>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct LastRun {
    pub job: String,
    pub outcome: String,
    pub started_at: DateTime<Utc>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub generated_at: DateTime<Utc>,
    pub postgres: Check,
    pub rabbitmq: Check,
    pub providers: Vec<ProviderHealth>,
    pub scheduler_leader: bool,
    pub scheduler_runs: Vec<LastRun>,
    pub outbox_unsent: i64,
    pub outbox_lag_seconds: f64,
    pub queues: Vec<rabbit::QueueStats>,
    pub queue_source: &'static str,
    pub verifications_last_hour: Vec<(String, i64)>,
    pub refunds_last_hour: i64,
    pub refunded_cents_last_hour: i64,
    pub webhook_attempts_last_hour: i64,
    pub webhook_success_pct: Option<f64>,
    pub open_errors: i64,
}

const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn gather(state: &DashboardState) -> Snapshot {
    let pool = &state.pool;
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, store::ping(pool)).await {
        Ok(Ok(())) => Check {
            ok: true,
            detail: "reachable".to_owned(),
        },
        Ok(Err(error)) => Check {
            ok: false,
            detail: error.to_string(),
        },
        Err(_) => Check {
            ok: false,
            detail: "no answer within 3 s".to_owned(),
        },
    };
    let (queues, queue_source, rabbitmq) = match tokio::time::timeout(
        CHECK_TIMEOUT,
        rabbit::queue_stats(&state.config, &state.http),
    )
    .await
    {
        Ok(Ok((queues, source))) => (
            queues,
            source,
            Check {
                ok: true,
                detail: "reachable".to_owned(),
            },
        ),
        Ok(Err(error)) => (
            Vec::new(),
            "unavailable",
            Check {
                ok: false,
                detail: error.to_string(),
            },
        ),
        Err(_) => (
            Vec::new(),
            "unavailable",
            Check {
                ok: false,
                detail: "no answer within 3 s".to_owned(),
            },
        ),
    };
    let mut snapshot = Snapshot {
        generated_at: Utc::now(),
        postgres,
        rabbitmq,
        providers: Vec::new(),
        scheduler_leader: false,
        scheduler_runs: Vec::new(),
        outbox_unsent: 0,
        outbox_lag_seconds: 0.0,
        queues,
        queue_source,
        verifications_last_hour: Vec::new(),
        refunds_last_hour: 0,
        refunded_cents_last_hour: 0,
        webhook_attempts_last_hour: 0,
        webhook_success_pct: None,
        open_errors: 0,
    };
    if snapshot.postgres.ok
        && let Err(error) = fill_from_database(state, &mut snapshot).await
    {
        snapshot.postgres = Check {
            ok: false,
            detail: error.to_string(),
        };
    }
    snapshot
}

async fn fill_from_database(
    state: &DashboardState,
    snapshot: &mut Snapshot,
) -> Result<(), store::StoreError> {
    let pool = &state.pool;
    snapshot.providers = provider_calls::last_hour(pool)
        .await?
        .into_iter()
        .map(|h| {
            let calls = h.successes + h.failures;
            ProviderHealth {
                error_rate_pct: if calls > 0 {
                    100.0 * h.failures as f64 / calls as f64
                } else {
                    0.0
                },
                name: h.provider,
                calls,
                last_success_at: h.last_success_at,
                last_failure: h.last_failure,
                breaker: None,
            }
        })
        .collect();
    snapshot.scheduler_leader = scheduler_runs::leader_present(pool).await?;
    snapshot.scheduler_runs = sqlx::query_as::<_, LastRun>(
        "SELECT DISTINCT ON (job) job, outcome, started_at, error
         FROM scheduler_runs ORDER BY job, started_at DESC",
    )
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let (unsent, lag) = outbox::backlog(&mut conn).await?;
    drop(conn);
    snapshot.outbox_unsent = unsent;
    snapshot.outbox_lag_seconds = lag;
    snapshot.verifications_last_hour = sqlx::query_as(
        "SELECT status, count(*) FROM verifications WHERE created_at > now() - interval '1 hour'
         GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    let (refunds, cents): (i64, Option<i64>) = sqlx::query_as(
        "SELECT count(*), sum(amount_cents)::bigint FROM ledger_entries
         WHERE kind = 'refund' AND created_at > now() - interval '1 hour'",
    )
    .fetch_one(pool)
    .await?;
    snapshot.refunds_last_hour = refunds;
    snapshot.refunded_cents_last_hour = cents.unwrap_or(0);
    let (attempts, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE succeeded) FROM webhook_attempts
         WHERE attempted_at > now() - interval '1 hour'",
    )
    .fetch_one(pool)
    .await?;
    snapshot.webhook_attempts_last_hour = attempts;
    snapshot.webhook_success_pct =
        (attempts > 0).then(|| 100.0 * succeeded as f64 / attempts as f64);
    snapshot.open_errors = error_groups::open_summary(pool).await?.0;
    Ok(())
}

/// The snapshot as `key → text` for the page's live elements (`data-live="key"`).
pub fn live_values(snapshot: &Snapshot) -> Map<String, Value> {
    let mut values = Map::new();
    let mut put = |key: String, value: String| {
        values.insert(key, Value::String(value));
    };
    put(
        "postgres".into(),
        if snapshot.postgres.ok { "up" } else { "down" }.into(),
    );
    put(
        "rabbitmq".into(),
        if snapshot.rabbitmq.ok { "up" } else { "down" }.into(),
    );
    put(
        "scheduler_leader".into(),
        if snapshot.scheduler_leader {
            "leading"
        } else {
            "no leader"
        }
        .into(),
    );
    put("outbox_unsent".into(), snapshot.outbox_unsent.to_string());
    put(
        "outbox_lag".into(),
        format!("{:.1} s", snapshot.outbox_lag_seconds),
    );
    put("open_errors".into(), snapshot.open_errors.to_string());
    put("refunds".into(), snapshot.refunds_last_hour.to_string());
    put(
        "webhook_success".into(),
        percent(snapshot.webhook_success_pct),
    );
    put(
        "generated_at".into(),
        snapshot.generated_at.format("%H:%M:%S UTC").to_string(),
    );
    for queue in &snapshot.queues {
        let name = &queue.name;
        put(format!("queue.{name}.ready"), queue.ready.to_string());
        put(format!("queue.{name}.unacked"), optional(queue.unacked));
        put(
            format!("queue.{name}.consumers"),
            queue.consumers.to_string(),
        );
        put(
            format!("queue.{name}.publish_rate"),
            rate(queue.publish_rate),
        );
        put(format!("queue.{name}.ack_rate"), rate(queue.ack_rate));
        put(format!("queue.{name}.parked"), queue.parked.to_string());
    }
    for provider in &snapshot.providers {
        put(
            format!("provider.{}.breaker", provider.name),
            provider.breaker.clone().unwrap_or_else(|| "–".to_owned()),
        );
    }
    for (status, count) in &snapshot.verifications_last_hour {
        put(format!("verifications.{status}"), count.to_string());
    }
    values
}

/// A breaker for people: `closed`, `half-open since 14:05:09 UTC`, `open since …`.
pub fn describe_breaker(state: f64, changed_at: f64) -> String {
    let name = match state {
        s if s >= 2.0 => "open",
        s if s >= 1.0 => "half-open",
        _ => return "closed".to_owned(),
    };
    match DateTime::from_timestamp(changed_at as i64, 0) {
        Some(at) => format!("{name} since {}", at.format("%H:%M:%S UTC")),
        None => name.to_owned(),
    }
}

pub fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} %"))
}

pub fn rate(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}/s"))
}

pub fn optional(value: Option<u64>) -> String {
    value.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

/// The snapshot as the template's context.
pub fn context(snapshot: &Snapshot) -> Value {
    json!({
        "snapshot": snapshot,
        "queues": snapshot.queues.iter().map(|q| json!({
            "name": q.name,
            "ready": q.ready,
            "unacked": optional(q.unacked),
            "consumers": q.consumers,
            "publish_rate": rate(q.publish_rate),
            "ack_rate": rate(q.ack_rate),
            "parked": q.parked,
            "jobs_per_message": QueueName::parse(&q.name).map_or(1, QueueName::most_jobs_per_message),
        })).collect::<Vec<_>>(),
        "providers": snapshot.providers.iter().map(|p| json!({
            "name": p.name,
            "calls": p.calls,
            "error_rate": format!("{:.1} %", p.error_rate_pct),
            "last_success_at": p.last_success_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            "last_failure": p.last_failure,
            "healthy": p.error_rate_pct < 20.0 && !p.breaker.as_deref().unwrap_or_default().starts_with("open"),
            "breaker": p.breaker.clone().unwrap_or_else(|| "–".to_owned()),
        })).collect::<Vec<_>>(),
        "webhook_success": percent(snapshot.webhook_success_pct),
        "outbox_lag": format!("{:.1} s", snapshot.outbox_lag_seconds),
    })
}
