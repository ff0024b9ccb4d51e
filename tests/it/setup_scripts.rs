//! The README's two commands, `scripts/test` and `scripts/up`, set up what they can; a
//! service they cannot start gets one line naming it and the command to fix it, and exit 2.

use std::{path::PathBuf, process::Command};

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port on this machine that nothing listens on.
fn closed_port() -> u16 {
    namaskah::ports::unused_local_port().expect("a free port")
}

/// Runs a script with one variable changed; returns its exit code and the lines it wrote to
/// standard error.
fn run_script(script: &str, variable: &str, value: &str) -> (Option<i32>, Vec<String>) {
    let output = Command::new("bash")
        .arg(script)
        .current_dir(repository())
        .env(variable, value)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines = stderr.lines().map(str::to_owned).collect();
    (output.status.code(), lines)
}

#[test]
fn the_test_command_names_an_unreachable_broker_in_one_line_and_exits_2() {
    let port = closed_port();
    let (code, lines) = run_script(
        "scripts/test",
        "AMQP_URL",
        &format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
    );
    assert_eq!(code, Some(2), "stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "one line, got {lines:?}");
    let line = &lines[0];
    assert!(
        line.contains("RabbitMQ")
            && line.contains(&format!("127.0.0.1:{port}"))
            && line.contains("AMQP_URL"),
        "{line}"
    );
}

#[test]
fn the_pipeline_command_names_an_unreachable_database_in_one_line_and_exits_2() {
    let port = closed_port();
    let (code, lines) = run_script(
        "scripts/up",
        "DATABASE_URL",
        &format!("postgres://postgres@127.0.0.1:{port}/namaskah"),
    );
    assert_eq!(code, Some(2), "stderr: {lines:?}");
    assert_eq!(lines.len(), 1, "one line, got {lines:?}");
    assert!(
        lines[0].contains("PostgreSQL") && lines[0].contains("DATABASE_URL"),
        "{}",
        lines[0]
    );
}
