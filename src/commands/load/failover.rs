//! The failover drill (`namaskah load --drill HOOK`, which `scripts/drill` runs against a
//! three-node RabbitMQ cluster and a PostgreSQL primary with a synchronous standby).
//!
//! The roles run as processes, two (`--replicas`) of each. They reach RabbitMQ through
//! every node's URL in `AMQP_URL` (a client that loses its node connects to another) and
//! PostgreSQL through a stable address: a TCP proxy in this process that follows the
//! primary, as a Kubernetes Service (CloudNativePG's `-rw`) or Patroni's virtual IP does in
//! production. While the submissions run, the hook the script gives does the faults:
//!
//! 1. `HOOK kill-rabbitmq-leader`: SIGKILL the node that leads the busiest queue;
//! 2. [`RABBITMQ_DOWN`] later, `HOOK restart-rabbitmq`: that node starts again and rejoins;
//! 3. `HOOK fail-over-postgres`: the primary stops at once (`pg_ctl stop -m immediate`, a
//!    crash to its clients), the standby is promoted, and the last line the hook prints is
//!    the new primary's `host:port`, where the stable address then points;
//! 4. `HOOK rebuild-old-primary`: the old primary, cloned afresh, becomes the new one's
//!    synchronous standby.
//!
//! The run's checks are those of every load run; the drill adds how long each fault took
//! to recover from ([`recovery_seconds`]) and the messages the brokers delivered again.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use std::{
    collections::BTreeMap,
    net::SocketAddr,
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::process::Command;

use namaskah_core::Config;

use super::{
    failover_report::{BEFORE, DrillReport, EngineFault},
    report::Report,
};
use namaskah_load_tests::proxy::TcpProxy;

const KILLED: &str = "rabbitmq node killed";
const RESTARTED: &str = "rabbitmq node restarted";
const FAILED_OVER: &str = "postgres primary failed over";
const REBUILT: &str = "postgres standby rebuilt";
/// Steps that bring redundancy back rather than take something away: no RTO of their own.
const RESTORING: [&str; 2] = [RESTARTED, REBUILT];

/// How long the killed RabbitMQ node stays down.
const RABBITMQ_DOWN: Duration = Duration::from_secs(10);
/// Submissions go on at least this long after the last fault.
const TAIL: Duration = Duration::from_secs(10);
/// How long a hook may take (a RabbitMQ node's start is the slowest).
const HOOK_LIMIT: Duration = Duration::from_secs(180);
/// Recovery is judged in windows this long…
const WINDOW: Duration = Duration::from_secs(1);
/// …a fall that begins this soon after the fault is the fault's…
const ONSET: Duration = Duration::from_secs(10);
/// …and recovery is looked for this long after it.
const HORIZON: Duration = Duration::from_secs(120);

/// How far after a fault its completions are shown.
const AFTER: Duration = Duration::from_secs(40);

/// Puts the stable address in front of `config`'s PostgreSQL and points `config` at it.
pub async fn stable_address(config: &mut Config) -> Result<Arc<TcpProxy>> {
    let (proxy, through) = TcpProxy::in_front_of(&config.database_url, 5432, true)
        .await
        .context("the stable PostgreSQL address")?;
    config.database_url = through;
    Ok(Arc::new(proxy))
}

/// The hook's answer to `action`: its output's lines.
async fn hook(hook: &str, action: &str) -> Result<Vec<String>> {
    let command = format!("{hook} {action}");
    let run = Command::new("sh")
        .args(["-c", &command])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        // A hook past its limit must not go on changing the engines behind the run's back.
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(HOOK_LIMIT, run)
        .await
        .with_context(|| format!("`{command}` took over {} s", HOOK_LIMIT.as_secs()))?
        .with_context(|| format!("running `{command}`"))?;
    if !output.status.success() {
        bail!("`{command}` failed: {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The cluster's nodes, as the hook names them.
pub async fn rabbitmq_nodes(drill: &str) -> Result<Vec<String>> {
    hook(drill, "rabbitmq-nodes").await
}

/// Does the drill's faults in order, spread over `window` (about how long the submissions
/// last), and clears `pending` [`TAIL`] after the last, so that submissions go on until the
/// recovery from it can be seen.
pub async fn disturb(
    drill: String,
    stable: Arc<TcpProxy>,
    window: Duration,
    pending: Arc<AtomicBool>,
) -> Vec<EngineFault> {
    // Cleared however this ends, so that the submissions always stop.
    let _clear = ClearOnDrop(pending);
    let mut faults = Vec::new();
    let started = tokio::time::Instant::now();
    // Late enough that completions have a rate to compare the recovery with.
    tokio::time::sleep((window / 5).max(BEFORE + Duration::from_secs(2))).await;
    let killed = hook(&drill, "kill-rabbitmq-leader").await;
    faults.push(fault(KILLED, joined(killed)));
    tokio::time::sleep(RABBITMQ_DOWN).await;
    let restarted = hook(&drill, "restart-rabbitmq").await;
    faults.push(fault(RESTARTED, joined(restarted)));
    // The failover after the cluster is whole again, so the two recoveries do not overlap.
    let failover_at = (window * 3 / 5).max(started.elapsed() + Duration::from_secs(3));
    tokio::time::sleep_until(started + failover_at).await;
    let at = Utc::now();
    let failover = async {
        let lines = hook(&drill, "fail-over-postgres").await?;
        let primary: SocketAddr = lines
            .last()
            .and_then(|line| line.parse().ok())
            .context("the hook did not end with the new primary's host:port")?;
        let before = stable.target();
        stable.repoint(primary).await;
        let mut said = lines[..lines.len() - 1].join("; ");
        if let Some(before) = before {
            said.push_str(&format!(
                "; stable address moved from {before} to {primary}"
            ));
        }
        Ok(said)
    };
    faults.push(EngineFault {
        at,
        ..fault(FAILED_OVER, failover.await)
    });
    let rebuilt = hook(&drill, "rebuild-old-primary").await;
    faults.push(fault(REBUILT, joined(rebuilt)));
    let tail = (started + window).saturating_duration_since(tokio::time::Instant::now());
    tokio::time::sleep(tail.max(TAIL)).await;
    faults
}

/// Clears its flag when dropped.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn fault(name: &'static str, said: Result<String>) -> EngineFault {
    EngineFault {
        fault: name,
        at: Utc::now(),
        what: said.unwrap_or_else(|error| format!("could not: {error:#}")),
        completions_per_second: Vec::new(),
    }
}

/// A hook's output as one line.
fn joined(lines: Result<Vec<String>>) -> Result<String> {
    lines.map(|lines| lines.join("; "))
}

/// The drill's part of the report, once the run is judged.
pub async fn report(
    pool: &sqlx::PgPool,
    judged: &Report,
    rabbitmq_nodes: Vec<String>,
    mut faults: Vec<EngineFault>,
    messages_redelivered: BTreeMap<String, u64>,
) -> Result<DrillReport> {
    let completions: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT completed_at FROM verifications
         WHERE status = 'completed' AND completed_at IS NOT NULL ORDER BY completed_at",
    )
    .fetch_all(pool)
    .await?;
    let duplicate_charges: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (
             SELECT v.id FROM verifications v
             LEFT JOIN ledger_entries l ON l.verification_id = v.id AND l.kind = 'charge'
             GROUP BY v.id HAVING count(l.id) <> 1) AS other_than_once",
    )
    .fetch_one(pool)
    .await?;
    for fault in faults.iter_mut().filter(|f| !RESTORING.contains(&f.fault)) {
        fault.completions_per_second = per_second(fault.at, &completions);
    }
    let rto_seconds = faults
        .iter()
        .filter(|fault| !RESTORING.contains(&fault.fault))
        .map(|fault| {
            (
                fault.fault.to_owned(),
                recovery_seconds(fault.at, &completions),
            )
        })
        .collect();
    let final_count: usize = judged
        .outcomes
        .iter()
        .filter(|(outcome, _)| outcome.starts_with("completed") || outcome.starts_with("refunded"))
        .map(|(_, count)| count)
        .sum();
    let postgres_failover = faults
        .iter()
        .find(|fault| fault.fault == FAILED_OVER)
        .map(|fault| fault.what.clone())
        .unwrap_or_default();
    Ok(DrillReport {
        rabbitmq_nodes,
        postgres_failover,
        accepted: judged.accepted,
        final_count: judged
            .outcomes
            .iter()
            .filter(|(outcome, _)| {
                outcome.starts_with("completed") || outcome.starts_with("refunded")
            })
            .map(|(_, count)| count)
            .sum(),
        lost: judged.lost,
        created_unacknowledged: (final_count + judged.lost).saturating_sub(judged.accepted),
        duplicate_charges: usize::try_from(duplicate_charges).unwrap_or(usize::MAX),
        duplicate_webhooks: judged.webhooks.duplicates,
        client_errors: judged.errors.clone(),
        rto_seconds,
        messages_redelivered,
        faults,
    })
}

/// Completions in each second from [`BEFORE`] before `fault` to [`AFTER`] after it.
fn per_second(fault: DateTime<Utc>, completions: &[DateTime<Utc>]) -> Vec<usize> {
    let from = fault - chrono::Duration::from_std(BEFORE).unwrap_or_default();
    let seconds = (BEFORE + AFTER).as_secs() as usize;
    let mut counts = vec![0; seconds];
    for at in completions {
        let offset = (*at - from).num_milliseconds();
        if offset >= 0 && (offset as usize) < seconds * 1_000 {
            counts[offset as usize / 1_000] += 1;
        }
    }
    counts
}

/// Seconds from `fault` until the pipeline recovered: if within [`ONSET`] of it completions
/// fell below half their rate of the [`BEFORE`] window before it (counted over a sliding
/// [`WINDOW`]), until a window holds that half again. Zero when they did not fall (the fault
/// did not stop the work); `None` when they did not recover within [`HORIZON`], or there
/// was no rate before to compare with.
pub fn recovery_seconds(fault: DateTime<Utc>, completions: &[DateTime<Utc>]) -> Option<f64> {
    let span = |from: DateTime<Utc>, length: Duration| {
        let to = from + chrono::Duration::from_std(length).unwrap_or_default();
        completions
            .iter()
            .filter(|at| **at >= from && **at < to)
            .count() as f64
    };
    let before = fault - chrono::Duration::from_std(BEFORE).unwrap_or_default();
    let half = span(before, BEFORE) / BEFORE.as_secs_f64() * WINDOW.as_secs_f64() / 2.0;
    if half <= 0.0 {
        return None;
    }
    let step = chrono::Duration::milliseconds(100);
    let at_step = |n: i32| fault + step * n;
    let onset_steps = (ONSET.as_millis() / 100) as i32;
    let Some(fell) = (0..onset_steps).find(|&n| span(at_step(n), WINDOW) < half) else {
        return Some(0.0);
    };
    let horizon_steps = (HORIZON.as_millis() / 100) as i32;
    (fell..horizon_steps)
        .find(|&n| span(at_step(n), WINDOW) >= half)
        .map(|n| (step * n).num_milliseconds() as f64 / 1_000.0)
}

/// Why `window` (how long the submissions last) is too short for the drill's faults to
/// happen under load, if it is.
pub fn window_too_short(window: Duration) -> Option<String> {
    (window < MINIMUM_WINDOW).then(|| {
        format!(
            "a drill needs at least {} s of submissions (--count ÷ --rate), so that completions \
             have a rate before the first fault; this one has {:.0} s",
            MINIMUM_WINDOW.as_secs(),
            window.as_secs_f64()
        )
    })
}

/// The first fault comes after [`BEFORE`] of load, so that there is a rate to recover to;
/// the submissions then go on by themselves until the last fault is recovered from.
const MINIMUM_WINDOW: Duration = Duration::from_secs(15);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_are_counted_by_second_around_the_fault() {
        let counts = per_second(at(20.0), &steady(0.0, 80.0));
        assert_eq!(counts.len(), 50);
        assert!(
            counts.iter().all(|&count| (9..=11).contains(&count)),
            "{counts:?}"
        );
        assert!(window_too_short(Duration::from_secs(10)).is_some());
        assert!(window_too_short(Duration::from_secs(60)).is_none());
    }

    fn at(seconds: f64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis((1_800_000_000.0 * 1_000.0 + seconds * 1_000.0) as i64)
            .expect("a time")
    }

    /// Ten completions a second from `from` to `to`.
    fn steady(from: f64, to: f64) -> Vec<DateTime<Utc>> {
        let mut times = Vec::new();
        let mut t = from;
        while t < to {
            times.push(at(t));
            t += 0.1;
        }
        times
    }

    #[test]
    fn recovery_is_when_completions_come_back_after_a_stop() {
        let mut completions = steady(0.0, 20.0);
        completions.extend(steady(27.0, 60.0));
        let rto = recovery_seconds(at(20.0), &completions).expect("recovered");
        // The first one-second window holding half the rate starts a little before 27 s.
        assert!((6.0..=7.0).contains(&rto), "{rto}");
    }

    #[test]
    fn a_fault_that_stopped_nothing_recovers_in_zero() {
        let completions = steady(0.0, 80.0);
        assert_eq!(recovery_seconds(at(20.0), &completions), Some(0.0));
    }

    #[test]
    fn a_fall_that_begins_long_after_the_fault_is_not_its_own() {
        let mut completions = steady(0.0, 40.0);
        completions.extend(steady(45.0, 80.0));
        assert_eq!(recovery_seconds(at(20.0), &completions), Some(0.0));
    }

    #[test]
    fn no_recovery_or_no_rate_before_is_none() {
        assert_eq!(recovery_seconds(at(20.0), &steady(0.0, 20.0)), None);
        assert_eq!(recovery_seconds(at(20.0), &steady(25.0, 60.0)), None);
    }
}
