//! The machine's limit a load run is put against (issue 12): single-row INSERT + COMMIT
//! transactions per second, measured by pgbench in a throw-away database beside the run's.
//! It runs before the pipeline starts, so that both figures come from the same machine in
//! the same state — the speed of this kind of machine drifts by half from one session to
//! the next, and only figures from one run compare.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::time::Duration;

use namaskah_core::store;

/// The shape of our hot rows: a uuid key, a timestamp, a little text.
const TABLE: &str = "CREATE TABLE rows (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                       at timestamptz NOT NULL DEFAULT now(),
                                       body text NOT NULL)";
const TRANSACTION: &str = "INSERT INTO rows (body) VALUES ('telegram us');\n";

/// What pgbench measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MachineLimit {
    pub clients: u32,
    pub seconds: u64,
    /// Single-row INSERT + COMMIT transactions per second.
    pub commits_per_second: f64,
}

/// Runs pgbench with `clients` connections for `seconds` against `<database_url>_pgbench`,
/// which is dropped again afterwards.
pub async fn measure(database_url: &str, clients: u32, seconds: u64) -> Result<MachineLimit> {
    let url = namaskah_core::store::sibling_database_url(database_url, "_pgbench");
    store::drop_database(&url).await?;
    store::ensure_database_exists(&url).await?;
    let mut connection = store::connect_one(&url).await?;
    sqlx::query(TABLE).execute(&mut connection).await?;
    drop(connection);

    // One measurement per process: its id makes the file its own.
    let script = std::env::temp_dir().join(format!("namaskah-pgbench-{}.sql", std::process::id()));
    std::fs::write(&script, TRANSACTION)
        .with_context(|| format!("writing {}", script.display()))?;
    let ran = tokio::time::timeout(
        Duration::from_secs(seconds + 60),
        tokio::process::Command::new("pgbench")
            .arg("--no-vacuum")
            .args(["--client", &clients.to_string()])
            .args(["--jobs", &clients.min(cores()).to_string()])
            .args(["--time", &seconds.to_string()])
            .arg("--file")
            .arg(&script)
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let _ = std::fs::remove_file(&script);
    store::drop_database(&url).await?;

    let output = match ran {
        Err(_) => bail!("pgbench did not finish within {} s", seconds + 60),
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::NotFound => bail!(
            "pgbench is missing (it measures the machine's limit). Install it: \
             apt-get install postgresql-contrib (or postgresql-15 beside the server)"
        ),
        Ok(Err(error)) => return Err(error).context("starting pgbench"),
        Ok(Ok(output)) => output,
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let commits_per_second = transactions_per_second(&stdout)
        .with_context(|| format!("pgbench printed no tps line:\n{stdout}"))?;
    Ok(MachineLimit {
        clients,
        seconds,
        commits_per_second,
    })
}

/// pgbench's threads: one per core, as `scripts/bench-pgbench` does on the two-core machine.
fn cores() -> u32 {
    std::thread::available_parallelism()
        .ok()
        .and_then(|cores| u32::try_from(cores.get()).ok())
        .unwrap_or(2)
}

/// The rate out of pgbench's summary: `tps = 11927.028736 (without initial connection time)`.
fn transactions_per_second(summary: &str) -> Option<f64> {
    summary.lines().find_map(|line| {
        line.trim()
            .strip_prefix("tps = ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::transactions_per_second;

    #[test]
    fn the_rate_is_read_from_the_tps_line() {
        let summary = "transaction type: /tmp/s.sql\n\
                       number of transactions actually processed: 238322\n\
                       latency average = 0.671 ms\n\
                       initial connection time = 28.604 ms\n\
                       tps = 11927.028736 (without initial connection time)\n";
        assert_eq!(transactions_per_second(summary), Some(11_927.028_736));
        assert_eq!(transactions_per_second("latency average = 0.671 ms"), None);
        assert_eq!(transactions_per_second("tps = fast"), None);
    }
}
