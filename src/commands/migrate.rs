//! `namaskah migrate`.

use anyhow::Result;
use std::process::ExitCode;

use namaskah::prerequisites;
use namaskah_core::{Config, store};

pub async fn run(config: Config) -> Result<ExitCode> {
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 1).await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await?;
    println!(
        "database is at migration {}",
        applied.last().copied().unwrap_or(0)
    );
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}
