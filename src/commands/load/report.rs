//! What a load run found: latency distributions, counts and the invariant checks, as a table
//! for people and JSON for machines.

use serde::Serialize;
use std::collections::BTreeMap;

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
    /// Refused or failed submissions, by `<status> <code>` or transport error.
    pub errors: BTreeMap<String, usize>,
    pub submit_seconds: f64,
    pub submissions_per_second: f64,
    pub completed: usize,
    pub completed_per_second: f64,
    /// Final states: `completed`, `refunded (timed_out)`, …
    pub outcomes: BTreeMap<String, usize>,
    pub cancels_requested: usize,
    pub api_latency_ms: Distribution,
    pub submit_to_number_ms: Distribution,
    pub submit_to_completed_webhook_ms: Distribution,
    pub webhooks: Webhooks,
    pub drain_seconds: f64,
    /// Transactions PostgreSQL committed in the run's database (`pg_stat_database`, read-only
    /// ones included) per accepted verification.
    pub commits_per_verification: f64,
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
    pub invariants: Vec<Check>,
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
        if self.cancels_requested > 0 {
            out.push(format!(
                "  cancels requested {:>37}",
                self.cancels_requested
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
            "database: {:.1} commits per verification",
            self.commits_per_verification
        ));
        for (who, ms) in &self.cpu_ms_per_verification {
            out.push(format!("CPU per verification {who:<20} {ms:>7.2} ms"));
        }
        for (role, mib) in &self.peak_rss_mib {
            out.push(format!("peak resident memory {role:<20} {mib:>7.1} MiB"));
        }
        for fault in &self.faults {
            out.push(format!("fault: {fault}"));
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

#[cfg(test)]
mod tests {
    use super::*;

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
