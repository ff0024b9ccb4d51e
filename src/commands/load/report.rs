//! What a load run found: latency distributions, counts and the invariant checks, as a table
//! for people and JSON for machines.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{failover_report::DrillReport, limit::MachineLimit};

/// The goal: end-to-end verifications/s at least this share of the machine's commit
/// rate divided by the commits a verification costs.
const GOAL_SHARE_OF_BOUND: f64 = 0.5;

/// A latency distribution in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    /// Nearest-rank percentiles of `samples` (any order).
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        Self {
            count: samples.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or(0.0),
        }
    }

    fn row(&self, name: &str) -> String {
        format!(
            "{name:<34} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8}",
            self.p50, self.p95, self.p99, self.max, self.count
        )
    }
}

/// Numbers assigned per second, two ways.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OrderingRate {
    /// Over the middle 90 % of the numbers: the rate once the run is under way, without its
    /// ramp and its stragglers (the orders caught in a hung provider's calls before its
    /// breaker opened come a whole timeout late).
    pub steady_per_second: f64,
    /// From the first number to the last.
    pub first_to_last_per_second: f64,
}

impl OrderingRate {
    /// From the times the numbers were assigned (any order).
    pub fn of(assigned: &[chrono::DateTime<chrono::Utc>]) -> Self {
        let mut times = assigned.to_vec();
        times.sort();
        let rate = |from: usize, to: usize| {
            let seconds = (times[to] - times[from]).num_microseconds().unwrap_or(0) as f64 / 1e6;
            if seconds > 0.0 {
                (to - from) as f64 / seconds
            } else {
                0.0
            }
        };
        if times.len() < 2 {
            return Self::default();
        }
        let last = times.len() - 1;
        let low = times.len() / 20;
        let high = last - times.len() / 20;
        Self {
            steady_per_second: rate(low, high),
            first_to_last_per_second: rate(0, last),
        }
    }
}

/// One invariant and whether it held.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub held: bool,
    /// Up to ten examples of what broke it.
    pub examples: Vec<String>,
}

impl Check {
    pub fn new(name: &str, broken: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            held: broken.is_empty(),
            examples: broken.into_iter().take(10).collect(),
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Webhooks {
    /// (message, endpoint) pairs the database says were due.
    pub expected: usize,
    /// Of those, how many arrived at least once with a valid signature.
    pub delivered: usize,
    pub duplicates: u64,
    pub bad_signatures: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub mode: String,
    pub target: String,
    pub submitted: usize,
    pub accepted: usize,
    /// Accepted (answered 201) but not in the database afterwards.
    pub lost: usize,
    /// Refused or failed submissions, by `<status> <code>` or transport error.
    pub errors: BTreeMap<String, usize>,
    pub submit_seconds: f64,
    pub submissions_per_second: f64,
    pub completed: usize,
    pub completed_per_second: f64,
    /// Ordering throughput: numbers assigned per second.
    pub ordering: OrderingRate,
    /// Final states: `completed`, `refunded (timed_out)`, …
    pub outcomes: BTreeMap<String, usize>,
    pub cancels_requested: usize,
    /// Submissions sent with an `Idempotency-Key` (`--idempotency-key-ratio`).
    pub submitted_with_idempotency_key: u64,
    pub api_latency_ms: Distribution,
    pub submit_to_number_ms: Distribution,
    pub submit_to_completed_webhook_ms: Distribution,
    pub webhooks: Webhooks,
    /// Verifications the sweeper had to send on again (their message was lost or given up):
    /// nothing is lost with it, but each one is late by up to `SWEEP_ORDERING_AFTER`.
    pub nudged_by_sweeper: i64,
    /// Messages in each queue's `.dead` parking queue at the end, by queue: each waits for
    /// an operator, and its verification for the sweeper.
    pub parked: BTreeMap<String, u32>,
    pub drain_seconds: f64,
    /// Transactions PostgreSQL committed in the run's database (`pg_stat_database`, read-only
    /// ones included) per accepted verification.
    pub commits_per_verification: f64,
    /// Transactions PostgreSQL aborted to break a deadlock in the run's database. The paths
    /// run them again, so nothing is lost, but each one kept its caller waiting for
    /// `deadlock_timeout` (1 s).
    pub deadlocks: i64,
    /// With `--pgbench-seconds`: the run against the machine's limit, measured just before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against_limit: Option<AgainstLimit>,
    /// CPU used from the first submission to the end of the drain, in milliseconds per
    /// accepted verification, by process (roles, this run's own process, PostgreSQL,
    /// RabbitMQ). A role killed during the run loses what it had used.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub cpu_ms_per_verification: BTreeMap<String, f64>,
    /// Runs with a process per role: each role's peak resident memory, MiB.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub peak_rss_mib: BTreeMap<String, f64>,
    /// Chaos runs: what was done to the pipeline while it ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// Runs with a second provider: the numbers each sold before, during and after the
    /// first one's hang (all "before" when it never hung).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sales_by_provider: Vec<Sales>,
    /// Failover drills: the engines' faults, what was lost and how long each took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillReport>,
    pub invariants: Vec<Check>,
}

/// End-to-end throughput put against the machine's commit rate. Commits per verification
/// times verifications per second is about the pipeline's own commit rate, so the share is
/// also the part of pgbench's commit rate the pipeline reaches while doing its real work.
/// The throughput is the run's completed verifications/s, as everywhere in the benchmarks:
/// refunded ones end a whole SMS timeout later and would measure the timeout, not the
/// pipeline; and since commits are counted over every accepted verification, the share errs
/// low.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgainstLimit {
    pub machine: MachineLimit,
    pub commits_per_verification: f64,
    /// pgbench's commits/s ÷ commits per verification: the verifications/s the pipeline
    /// would reach if each of its commits cost what pgbench's one-row insert costs.
    pub bound_per_second: f64,
    pub completed_per_second: f64,
    /// `completed_per_second ÷ bound_per_second`.
    pub share_of_bound: f64,
    pub goal_share: f64,
    pub goal_met: bool,
}

impl AgainstLimit {
    pub fn new(
        machine: MachineLimit,
        commits_per_verification: f64,
        completed_per_second: f64,
    ) -> Self {
        let bound_per_second = machine.commits_per_second / commits_per_verification.max(1e-9);
        let share_of_bound = completed_per_second / bound_per_second.max(1e-9);
        Self {
            machine,
            commits_per_verification,
            bound_per_second,
            completed_per_second,
            share_of_bound,
            goal_share: GOAL_SHARE_OF_BOUND,
            goal_met: share_of_bound >= GOAL_SHARE_OF_BOUND,
        }
    }

    fn rows(&self) -> [String; 2] {
        [
            format!(
                "machine limit: {:.0} single-row commits/s (pgbench, {} clients, {} s)",
                self.machine.commits_per_second, self.machine.clients, self.machine.seconds
            ),
            format!(
                "against it: {:.0} ÷ {:.1} commits per verification = {:.0} verifications/s; \
                 {:.1} completed/s is {:.1} % of that (goal ≥ {:.0} %: {})",
                self.machine.commits_per_second,
                self.commits_per_verification,
                self.bound_per_second,
                self.completed_per_second,
                self.share_of_bound * 100.0,
                self.goal_share * 100.0,
                if self.goal_met { "met" } else { "not met" }
            ),
        ]
    }
}

impl Report {
    pub fn invariants_held(&self) -> bool {
        self.invariants.iter().all(|check| check.held)
    }

    /// The report as a table.
    pub fn table(&self) -> String {
        let mut out = Vec::new();
        out.push(format!("load run: {} ({})", self.mode, self.target));
        out.push(format!(
            "submitted {}  accepted {}  refused {}  in {:.1} s  → {:.1} submissions/s",
            self.submitted,
            self.accepted,
            self.submitted - self.accepted,
            self.submit_seconds,
            self.submissions_per_second
        ));
        for (kind, count) in &self.errors {
            out.push(format!("  error {kind:<40} {count:>8}"));
        }
        out.push(format!(
            "completed {}  → {:.1} completed verifications/s; drained in {:.1} s",
            self.completed, self.completed_per_second, self.drain_seconds
        ));
        for (outcome, count) in &self.outcomes {
            out.push(format!("  {outcome:<46} {count:>8}"));
        }
        if self.submitted_with_idempotency_key > 0 {
            out.push(format!(
                "  submitted with an idempotency key {:>22}",
                self.submitted_with_idempotency_key
            ));
        }
        if self.cancels_requested > 0 {
            out.push(format!(
                "  cancels requested {:>37}",
                self.cancels_requested
            ));
        }
        out.push(format!(
            "ordering: {:.1} numbers/s over the middle 90 % of numbers; {:.1}/s from the first to the last",
            self.ordering.steady_per_second, self.ordering.first_to_last_per_second
        ));
        for sales in &self.sales_by_provider {
            out.push(format!(
                "  numbers sold by {:<12} before the hang {:>6}  during {:>6}  after {:>6}",
                sales.provider, sales.before, sales.during, sales.after
            ));
        }
        out.push(String::new());
        out.push(format!(
            "{:<34} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "latency (ms)", "p50", "p95", "p99", "max", "n"
        ));
        out.push(self.api_latency_ms.row("API POST /v1/verifications"));
        out.push(self.submit_to_number_ms.row("submit → number"));
        out.push(
            self.submit_to_completed_webhook_ms
                .row("submit → completed webhook"),
        );
        out.push(String::new());
        out.push(format!(
            "webhooks: {} due, {} delivered, {} duplicates, {} bad signatures",
            self.webhooks.expected,
            self.webhooks.delivered,
            self.webhooks.duplicates,
            self.webhooks.bad_signatures
        ));
        out.push(format!(
            "sweeper: {} verifications sent on again after their message was lost or given up",
            self.nudged_by_sweeper
        ));
        let parked: Vec<String> = self
            .parked
            .iter()
            .map(|(queue, count)| format!("{queue} {count}"))
            .collect();
        out.push(format!("parked: {}", parked.join(", ")));
        out.push(format!(
            "database: {:.1} commits per verification, {} deadlocks",
            self.commits_per_verification, self.deadlocks
        ));
        if let Some(against) = &self.against_limit {
            out.extend(against.rows());
        }
        for (who, ms) in &self.cpu_ms_per_verification {
            out.push(format!("CPU per verification {who:<20} {ms:>7.2} ms"));
        }
        for (role, mib) in &self.peak_rss_mib {
            out.push(format!("peak resident memory {role:<20} {mib:>7.1} MiB"));
        }
        for fault in &self.faults {
            out.push(format!("fault: {fault}"));
        }
        if let Some(drill) = &self.drill {
            out.extend(drill.rows());
        }
        out.push(String::new());
        for check in &self.invariants {
            out.push(format!(
                "{} {}",
                if check.held { "ok    " } else { "BROKEN" },
                check.name
            ));
            for example in &check.examples {
                out.push(format!("         {example}"));
            }
        }
        out.join("\n")
    }
}

/// Who sold the numbers, before, during and after the hang.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sales {
    pub provider: String,
    pub before: u64,
    pub during: u64,
    pub after: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_ordering_rate_leaves_out_the_stragglers() {
        let start = chrono::Utc::now();
        // 100 numbers, one every 10 ms, and two that came 10 s late.
        let mut assigned: Vec<_> = (0..100)
            .map(|n| start + chrono::Duration::milliseconds(n * 10))
            .collect();
        assigned.push(start + chrono::Duration::seconds(10));
        assigned.push(start + chrono::Duration::seconds(10));
        let rate = OrderingRate::of(&assigned);
        assert!((rate.steady_per_second - 100.0).abs() < 1.0, "{rate:?}");
        assert!(
            (rate.first_to_last_per_second - 10.1).abs() < 0.1,
            "{rate:?}"
        );
        assert_eq!(OrderingRate::of(&assigned[..1]), OrderingRate::default());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let distribution = Distribution::of((1..=100).rev().map(f64::from).collect());
        assert_eq!(distribution.count, 100);
        assert_eq!(distribution.p50, 50.0);
        assert_eq!(distribution.p95, 95.0);
        assert_eq!(distribution.p99, 99.0);
        assert_eq!(distribution.max, 100.0);
        assert_eq!(Distribution::of(Vec::new()), Distribution::default());
        assert_eq!(Distribution::of(vec![7.0]).p99, 7.0);
    }

    #[test]
    fn the_goal_is_half_the_commit_rate_divided_by_the_commits_per_verification() {
        let machine = MachineLimit {
            clients: 8,
            seconds: 20,
            commits_per_second: 12_000.0,
        };
        // 12,000 ÷ 4 = 3,000 verifications/s would be the bound; the goal is 1,500/s.
        let short = AgainstLimit::new(machine.clone(), 4.0, 300.0);
        assert!((short.bound_per_second - 3_000.0).abs() < 1e-9);
        assert!((short.share_of_bound - 0.1).abs() < 1e-9);
        assert!(!short.goal_met);
        let met = AgainstLimit::new(machine, 4.0, 1_500.0);
        assert!(met.goal_met);
        let report = Report {
            against_limit: Some(short),
            ..Report::default()
        };
        let table = report.table();
        assert!(
            table.contains("machine limit: 12000 single-row commits/s"),
            "{table}"
        );
        assert!(
            table.contains("10.0 % of that (goal ≥ 50 %: not met)"),
            "{table}"
        );
    }

    #[test]
    fn a_broken_invariant_fails_the_report() {
        let mut report = Report {
            invariants: vec![Check::new("all_terminal", Vec::new())],
            ..Report::default()
        };
        assert!(report.invariants_held());
        report.invariants.push(Check::new(
            "every_event_delivered",
            vec!["msg_1 at /hooks/0".to_owned()],
        ));
        assert!(!report.invariants_held());
        assert!(report.table().contains("BROKEN every_event_delivered"));
    }
}
