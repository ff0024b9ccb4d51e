//! Where a load run's CPU went: each role's process, this process (the load driver, the
//! simulator and the webhook receiver, and in-process roles), PostgreSQL and RabbitMQ, read
//! from `/proc` (Linux; elsewhere the figures are simply absent).
//!
//! Samples are kept per process: a process that started during the run (a restarted role,
//! the backends of a restarted PostgreSQL) counts from zero, and one that ended takes what
//! it used with it — so after a chaos run's restarts the figures err low, never negative.

use std::collections::BTreeMap;

/// CPU ticks so far, by who used them and which of their processes.
pub type Sample = BTreeMap<(String, u32), u64>;

/// Clock ticks per second of `/proc/*/stat`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) so far, by who used them.
pub fn sample(roles: &[(String, u32)]) -> Sample {
    let mut ticks = BTreeMap::new();
    for (name, pid) in roles {
        if let Some(used) = process_ticks(&pid.to_string()).map(|(_, used)| used) {
            ticks.insert((name.clone(), *pid), used);
        }
    }
    if let Some((_, used)) = process_ticks("self") {
        ticks.insert(("load run process".to_owned(), std::process::id()), used);
    }
    // Every PostgreSQL backend and every RabbitMQ (Erlang) process on the machine.
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some((pid, number)) = name
                .to_str()
                .and_then(|n| Some((n, n.parse::<u32>().ok()?)))
            else {
                continue;
            };
            let (service, used) = match process_ticks(pid) {
                Some((command, used)) if command == "postgres" => ("postgres", used),
                Some((command, used)) if command == "beam.smp" => ("rabbitmq", used),
                _ => continue,
            };
            ticks.insert((service.to_owned(), number), used);
        }
    }
    ticks
}

/// CPU seconds used between two samples, by who used them.
pub fn used_between(before: &Sample, after: &Sample) -> BTreeMap<String, f64> {
    let mut used = BTreeMap::new();
    for (process, ticks) in after {
        let start = before.get(process).copied().unwrap_or(0);
        *used.entry(process.0.clone()).or_insert(0.0) +=
            ticks.saturating_sub(start) as f64 / TICKS_PER_SECOND;
    }
    used
}

/// `(command, utime + stime)` of a process.
fn process_ticks(pid: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (command) state ppid …`: the command may hold spaces and parentheses.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let command = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from `state` (field 3).
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((command, user + system))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_the_difference_is_in_seconds() {
        let (command, _) = process_ticks("self").expect("/proc/self/stat");
        assert!(!command.is_empty());
        let before = BTreeMap::from([(("api".to_owned(), 7), 100)]);
        let after = BTreeMap::from([
            (("api".to_owned(), 7), 350),
            (("postgres".to_owned(), 8), 50),
        ]);
        let used = used_between(&before, &after);
        assert_eq!(used["api"], 2.5);
        assert_eq!(used["postgres"], 0.5);
    }

    #[test]
    fn a_process_restarted_during_the_run_counts_from_zero() {
        // PostgreSQL restarted: its old backends are gone, the new ones started at zero.
        let before = BTreeMap::from([
            (("postgres".to_owned(), 10), 9_000),
            (("postgres".to_owned(), 11), 1_000),
            (("worker ordering".to_owned(), 20), 400),
        ]);
        let after = BTreeMap::from([
            (("postgres".to_owned(), 11), 1_100),
            (("postgres".to_owned(), 30), 300),
            (("worker ordering".to_owned(), 21), 50),
        ]);
        let used = used_between(&before, &after);
        assert_eq!(used["postgres"], 4.0);
        assert_eq!(used["worker ordering"], 0.5);
    }
}
