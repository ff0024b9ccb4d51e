//! The record of scheduler runs: one row per job and tick.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::{StoreError, violated_constraint};

/// The advisory lock the leading scheduler holds (any number, the same for every scheduler).
pub const LEADER_LOCK_KEY: i64 = 0x6e61_6d61_736b_6168; // "namaskah"

/// Whether some scheduler holds the lead in this database.
pub async fn leader_present(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
                        WHERE locktype = 'advisory' AND granted
                          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                          AND ((classid::bigint << 32) | objid::bigint) = $1)",
    )
    .bind(LEADER_LOCK_KEY)
    .fetch_one(pool)
    .await?)
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: i64,
    pub job: String,
    pub tick: DateTime<Utc>,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub error: Option<String>,
    pub rows_touched: Option<i64>,
}

/// Starts the run of `job` for `tick`. `None` when the tick has already been run (by this or
/// an earlier leader): a tick runs at most once.
pub async fn start(
    pool: &PgPool,
    job: &str,
    tick: DateTime<Utc>,
    instance: &str,
) -> Result<Option<i64>, StoreError> {
    let inserted = sqlx::query_scalar(
        "INSERT INTO scheduler_runs (job, tick, instance) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(job)
    .bind(tick)
    .bind(instance)
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(id) => Ok(Some(id)),
        Err(e) if violated_constraint(&e) == Some("scheduler_runs_once_per_tick") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Records a tick that was not run because the previous run of the job was still going.
pub async fn skip(
    pool: &PgPool,
    job: &str,
    tick: DateTime<Utc>,
    instance: &str,
    reason: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO scheduler_runs (job, tick, instance, finished_at, outcome, error)
         VALUES ($1, $2, $3, now(), 'skipped', $4)
         ON CONFLICT (job, tick) DO NOTHING",
    )
    .bind(job)
    .bind(tick)
    .bind(instance)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn finish(
    pool: &PgPool,
    id: i64,
    outcome: Result<u64, String>,
) -> Result<(), StoreError> {
    let (status, rows, error) = match outcome {
        Ok(rows) => (
            "succeeded",
            Some(i64::try_from(rows).unwrap_or(i64::MAX)),
            None,
        ),
        Err(error) => ("failed", None, Some(error)),
    };
    sqlx::query(
        "UPDATE scheduler_runs SET finished_at = now(), outcome = $2, rows_touched = $3, error = $4
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(rows)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks runs left `running` by other instances as abandoned (their leader died mid-run).
pub async fn abandon_others(pool: &PgPool, instance: &str) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE scheduler_runs SET outcome = 'abandoned', finished_at = now(),
                error = 'the instance running it lost leadership or died'
         WHERE outcome = 'running' AND instance <> $1",
    )
    .bind(instance)
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<Run>, StoreError> {
    Ok(sqlx::query_as::<_, Run>(
        "SELECT id, job, tick, instance, started_at, finished_at, outcome, error, rows_touched
         FROM scheduler_runs ORDER BY started_at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
