//! `namaskah scheduler runs`, `namaskah backup`, `namaskah restore`.

use anyhow::Result;
use std::{path::Path, process::ExitCode};

use namaskah::prerequisites;
use namaskah_core::{
    Config,
    store::{self, scheduler_runs},
};
use namaskah_scheduler::backup;

pub async fn runs(config: Config, limit: i64) -> Result<ExitCode> {
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let pool = store::connect(&config.database_url, 1).await?;
    let runs = scheduler_runs::recent(&pool, limit.clamp(1, 1000)).await?;
    println!(
        "{:<20} {:<25} {:<10} {:>8} {:>7}  error",
        "job", "tick", "outcome", "seconds", "rows"
    );
    for run in runs {
        let seconds = run
            .finished_at
            .map(|end| {
                format!(
                    "{:.2}",
                    (end - run.started_at).num_milliseconds() as f64 / 1000.0
                )
            })
            .unwrap_or_else(|| "-".to_owned());
        println!(
            "{:<20} {:<25} {:<10} {:>8} {:>7}  {}",
            run.job,
            run.tick.format("%Y-%m-%d %H:%M:%S UTC"),
            run.outcome,
            seconds,
            run.rows_touched
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            run.error
                .unwrap_or_default()
                .chars()
                .take(80)
                .collect::<String>(),
        );
    }
    pool.close().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn backup(config: Config) -> Result<ExitCode> {
    if let Err(missing) = prerequisites::check_postgres(&config).await {
        return Ok(prerequisites::report(&[missing]));
    }
    let path = backup::run(&config).await?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub async fn restore(file: &Path, database_url: &str) -> Result<ExitCode> {
    backup::restore(file, database_url).await?;
    println!("restored {} into the database", file.display());
    Ok(ExitCode::SUCCESS)
}
