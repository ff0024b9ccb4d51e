//! `namaskah up` as a process of its own, as an operator starts it: every line it writes
//! kept, and its listeners read from what it announces.

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::eventually;

/// Every line a process wrote, stdout and stderr together.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// Copies every line `output` writes into `lines`.
fn collect(output: impl AsyncRead + Unpin + Send + 'static, lines: &Lines) {
    let lines = Arc::clone(lines);
    tokio::spawn(async move {
        let mut reader = BufReader::new(output).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(mut lines) = lines.lock() {
                lines.push(line);
            }
        }
    });
}

/// A free port on 127.0.0.1, as `host:port` (for addresses other settings are built from).
pub fn free_address() -> String {
    let port = namaskah::ports::unused_local_port().expect("a free port");
    format!("127.0.0.1:{port}")
}

/// The first word after `prefix` on the first line that starts with it (trimmed).
fn line_with<'a>(lines: &'a [String], prefix: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|line| line.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
}

/// A running `namaskah up` and what it has written so far.
pub struct Up {
    pub process: tokio::process::Child,
    pub lines: Lines,
}

impl Up {
    /// Starts `namaskah up` with `environment` (and no `REDIS_URL` unless it sets one), and
    /// returns once it has announced every listener.
    pub async fn start(environment: &[(&'static str, String)]) -> Self {
        let lines = Lines::default();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_namaskah"));
        command.arg("up");
        if !environment.iter().any(|(name, _)| *name == "REDIS_URL") {
            command.env_remove("REDIS_URL");
        }
        let mut process = command
            .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("namaskah runs");
        collect(process.stdout.take().expect("stdout"), &lines);
        collect(process.stderr.take().expect("stderr"), &lines);
        eventually(
            Duration::from_secs(60),
            "`namaskah up` announces itself",
            || {
                let announced = lines
                    .lock()
                    .is_ok_and(|lines| lines.iter().any(|line| line.starts_with("Press Ctrl-C")));
                async move { announced.then_some(()) }
            },
        )
        .await;
        Self { process, lines }
    }

    /// The address announced on the line that starts with `prefix` ("API", "dashboard",
    /// "metrics").
    pub fn announced(&self, prefix: &str) -> String {
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        line_with(&lines, prefix)
            .unwrap_or_else(|| panic!("`namaskah up` announced no {prefix}: {lines:#?}"))
            .to_owned()
    }
}
