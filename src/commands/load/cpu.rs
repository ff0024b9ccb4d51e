//! Where a load run's CPU went: each role's process, this process (the load driver, the
//! simulator and the webhook receiver, and in-process roles), PostgreSQL and RabbitMQ, read
//! from `/proc` (Linux; elsewhere the figures are simply absent).

use std::collections::BTreeMap;

/// Clock ticks per second of `/proc/*/stat`'s CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) so far, by who used them.
pub fn sample(roles: &[(String, u32)]) -> BTreeMap<String, u64> {
    let mut ticks = BTreeMap::new();
    for (name, pid) in roles {
        if let Some(used) = process_ticks(&pid.to_string()).map(|(_, used)| used) {
            ticks.insert(name.clone(), used);
        }
    }
    if let Some((_, used)) = process_ticks("self") {
        ticks.insert("load run process".to_owned(), used);
    }
    // Every PostgreSQL backend and every RabbitMQ (Erlang) process on the machine.
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let service = match process_ticks(pid) {
                Some((command, used)) if command == "postgres" => ("postgres", used),
                Some((command, used)) if command == "beam.smp" => ("rabbitmq", used),
                _ => continue,
            };
            *ticks.entry(service.0.to_owned()).or_insert(0) += service.1;
        }
    }
    ticks
}

/// CPU seconds used between two samples, by who used them.
pub fn used_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(who, ticks)| {
            let start = before.get(who).copied().unwrap_or(0);
            (
                who.clone(),
                ticks.saturating_sub(start) as f64 / TICKS_PER_SECOND,
            )
        })
        .collect()
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
        let before = BTreeMap::from([("api".to_owned(), 100)]);
        let after = BTreeMap::from([("api".to_owned(), 350), ("postgres".to_owned(), 50)]);
        let used = used_between(&before, &after);
        assert_eq!(used["api"], 2.5);
        assert_eq!(used["postgres"], 0.5);
    }
}
