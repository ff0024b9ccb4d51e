//! `namaskah check`: the invariants, as JSON; exit 1 when any is broken.

use anyhow::Result;
use std::process::ExitCode;

use namaskah::prerequisites;
use namaskah_core::{Config, store};

pub async fn run(config: Config) -> Result<ExitCode> {
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 2).await?;
    let report = store::invariants::check(&pool, config.deadline_grace).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    pool.close().await;
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
