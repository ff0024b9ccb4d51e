//! Backups with `pg_dump` (custom format) into `BACKUP_DIR`, a `.sha256` beside each, the
//! last `BACKUP_KEEP` kept; and `namaskah restore`, into an empty database.

use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::process::Command;

use namaskah_core::{Config, store};

/// How long a backup may run before it counts as failed.
pub const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("cannot write the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("{tool} failed: {stderr}")]
    Tool { tool: &'static str, stderr: String },
    #[error("{tool} did not finish within {} s", BACKUP_TIMEOUT.as_secs())]
    Timeout { tool: &'static str },
    #[error("{0} is not installed (it comes with PostgreSQL's client tools)")]
    ToolMissing(&'static str),
    #[error("the checksum of {file} does not match its .sha256 file")]
    ChecksumMismatch { file: String },
    #[error(
        "the target database is not empty ({tables} tables); restore only into an empty database"
    )]
    TargetNotEmpty { tables: i64 },
    #[error("DATABASE_URL cannot be parsed")]
    BadUrl,
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Writes a new backup; returns its path.
pub async fn run(config: &Config) -> Result<PathBuf, BackupError> {
    let dir = &config.scheduler.backup_dir;
    tokio::fs::create_dir_all(dir).await?;
    let name = format!(
        "namaskah-{}.dump",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    );
    let path = dir.join(&name);
    let partial = dir.join(format!("{name}.partial"));
    let (url, password) = split_password(&config.database_url)?;
    let mut command = Command::new("pg_dump");
    command
        .arg("--format=custom")
        .arg("--file")
        .arg(&partial)
        .arg("--dbname")
        .arg(&url);
    run_tool("pg_dump", command, password.as_deref()).await?;
    tokio::fs::rename(&partial, &path).await?;
    let digest = sha256_of(&path).await?;
    tokio::fs::write(checksum_path(&path), format!("{digest}  {name}\n")).await?;
    prune(dir, config.scheduler.backup_keep).await?;
    tracing::info!(path = %path.display(), "backup written");
    Ok(path)
}

/// Restores `file` into the (empty, or not yet existing) database at `database_url`.
pub async fn restore(file: &Path, database_url: &str) -> Result<(), BackupError> {
    let checksum = checksum_path(file);
    if tokio::fs::try_exists(&checksum).await? {
        let expected = tokio::fs::read_to_string(&checksum).await?;
        let expected = expected
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if expected != sha256_of(file).await? {
            return Err(BackupError::ChecksumMismatch {
                file: file.display().to_string(),
            });
        }
    }
    store::ensure_database_exists(database_url).await?;
    let mut conn = store::connect_one(database_url).await?;
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            .fetch_one(&mut conn)
            .await
            .map_err(store::StoreError::from)?;
    drop(conn);
    if tables > 0 {
        return Err(BackupError::TargetNotEmpty { tables });
    }
    let (url, password) = split_password(database_url)?;
    let mut command = Command::new("pg_restore");
    command
        .arg("--no-owner")
        .arg("--exit-on-error")
        .arg("--dbname")
        .arg(&url)
        .arg(file);
    run_tool("pg_restore", command, password.as_deref()).await
}

/// The URL without its password, and the password: tools get it through `PGPASSWORD` so it
/// does not show in the process list.
fn split_password(database_url: &str) -> Result<(String, Option<String>), BackupError> {
    let mut url = reqwest::Url::parse(database_url).map_err(|_| BackupError::BadUrl)?;
    let password = url.password().map(str::to_owned);
    if password.is_some() {
        url.set_password(None).map_err(|()| BackupError::BadUrl)?;
    }
    Ok((url.to_string(), password))
}

async fn run_tool(
    tool: &'static str,
    mut command: Command,
    password: Option<&str>,
) -> Result<(), BackupError> {
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => BackupError::ToolMissing(tool),
        _ => BackupError::Io(error),
    })?;
    let output = tokio::time::timeout(BACKUP_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| BackupError::Timeout { tool })??;
    if output.status.success() {
        Ok(())
    } else {
        Err(BackupError::Tool {
            tool,
            stderr: String::from_utf8_lossy(&output.stderr)
                .trim()
                .chars()
                .take(2000)
                .collect(),
        })
    }
}

fn checksum_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

async fn sha256_of(path: &Path) -> Result<String, BackupError> {
    let bytes = tokio::fs::read(path).await?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Keeps the newest `keep` backups (their names sort by time).
async fn prune(dir: &Path, keep: usize) -> Result<(), BackupError> {
    let mut backups = Vec::new();
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("namaskah-") && name.ends_with(".dump") {
            backups.push(entry.path());
        }
    }
    backups.sort();
    let excess = backups.len().saturating_sub(keep);
    for old in backups.into_iter().take(excess) {
        tokio::fs::remove_file(&old).await?;
        let _ = tokio::fs::remove_file(checksum_path(&old)).await;
    }
    Ok(())
}
