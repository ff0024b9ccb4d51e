//! PostgreSQL access, one module per table.
//!
//! Queries are plain SQL checked by the tests against the real schema (no compile-time
//! database). State changes that cause messages write their outbox rows in the same
//! statement or transaction.

pub mod accounts;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod crm;
pub mod customers;
pub mod error_groups;
pub mod events;
pub mod housekeeping;
pub mod idempotency;
pub mod invariants;
pub mod ledger;
pub mod outbox;
pub mod payments;
pub mod privacy;
pub mod provider_calls;
pub mod referrals;
pub mod scheduler_runs;
pub mod services;
pub mod subscriptions;
pub mod sweeps;
pub mod tenants;
pub mod tiers;
pub mod usage;
pub mod verifications;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
pub mod webhook_messages;

use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, PgConnection, PgPool,
    migrate::{Migration, MigrationType, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, time::Duration};

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("DATABASE_URL is not a PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} is missing from the database")]
    Missing(&'static str),
}

impl StoreError {
    /// Whether the server refuses us for what no retry changes: its certificate does not
    /// verify against `sslrootcert` and the host name, TLS cannot be had, or `pg_hba.conf`
    /// has no entry for this connection (a TLS-only server asked in plain text, say).
    pub fn is_refusal(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Tls(_) | sqlx::Error::Configuration(_)) => true,
            StoreError::Database(sqlx::Error::Io(io)) => {
                crate::config::tls::is_certificate_refusal(io)
            }
            StoreError::Database(sqlx::Error::Database(error)) => {
                // invalid_authorization_specification: pg_hba.conf's verdict.
                error.code().as_deref() == Some("28000")
            }
            _ => false,
        }
    }

    /// Whether the error comes from the database being unreachable or overloaded rather
    /// than from the query itself; such errors are worth retrying.
    pub fn is_connection_problem(&self) -> bool {
        match self {
            StoreError::Database(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
                // A connection cut off in the middle of an answer.
                | sqlx::Error::Protocol(_),
            ) => true,
            StoreError::Database(sqlx::Error::Database(error)) => {
                error.code().is_some_and(|code| is_unavailable_state(&code))
            }
            _ => false,
        }
    }
}

impl StoreError {
    /// Whether PostgreSQL aborted the statement (and its transaction) to break a deadlock or
    /// a serialization conflict with another one: nothing was written, and running it again
    /// is safe and most likely succeeds.
    pub fn is_transient_conflict(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(error)) => {
                matches!(error.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

/// How many times a statement or transaction aborted by a transient conflict is run.
pub const CONFLICT_ATTEMPTS: u32 = 3;

/// SQLSTATEs of a server that is going away, coming up or full, rather than of a query:
/// class 08 (connection exception), 57P01–57P03 (terminated by an administrator, crash
/// shutdown, cannot connect now — a restart), 53300 (too many connections).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// The embedded migrations, so a binary carries its schema with it.
pub fn migrator() -> Migrator {
    migrator_until(i64::MAX)
}

/// The embedded migrations up to and including `last_version`: a database as an earlier
/// release left it, to test the path from there.
pub fn migrator_until(last_version: i64) -> Migrator {
    let migrations = [
        (
            1,
            "accounts",
            include_str!("../../../migrations/0001_accounts.sql"),
        ),
        (
            2,
            "services",
            include_str!("../../../migrations/0002_services.sql"),
        ),
        (
            3,
            "verifications",
            include_str!("../../../migrations/0003_verifications.sql"),
        ),
        (
            4,
            "webhooks",
            include_str!("../../../migrations/0004_webhooks.sql"),
        ),
        (
            5,
            "scheduler",
            include_str!("../../../migrations/0005_scheduler.sql"),
        ),
        (
            6,
            "operations",
            include_str!("../../../migrations/0006_operations.sql"),
        ),
        (
            7,
            "tiers and caching",
            include_str!("../../../migrations/0007_tiers_and_caching.sql"),
        ),
        (
            8,
            "event stream",
            include_str!("../../../migrations/0008_event_stream.sql"),
        ),
        (
            9,
            "open verification count",
            include_str!("../../../migrations/0009_open_verification_count.sql"),
        ),
        (
            10,
            "payments and referrals",
            include_str!("../../../migrations/0010_payments_and_referrals.sql"),
        ),
        (
            11,
            "erasure",
            include_str!("../../../migrations/0011_erasure.sql"),
        ),
        (
            12,
            "subscriptions",
            include_str!("../../../migrations/0012_subscriptions.sql"),
        ),
        (
            13,
            "usage analytics",
            include_str!("../../../migrations/0013_usage_daily.sql"),
        ),
        (
            14,
            "crm exports",
            include_str!("../../../migrations/0014_crm_exports.sql"),
        ),
        (
            15,
            "white-label tenants",
            include_str!("../../../migrations/0015_tenants.sql"),
        ),
        (
            16,
            "lighter triggers",
            include_str!("../../../migrations/0016_lighter_triggers.sql"),
        ),
        (
            17,
            "outbox rows deleted when sent",
            include_str!("../../../migrations/0017_outbox_rows_deleted_when_sent.sql"),
        ),
        (
            18,
            "open count with the balance",
            include_str!("../../../migrations/0018_open_count_with_the_balance.sql"),
        ),
        (
            19,
            "lean data path",
            include_str!("../../../migrations/0019_lean_data_path.sql"),
        ),
        (
            20,
            "usage rolled up",
            include_str!("../../../migrations/0020_usage_rolled_up.sql"),
        ),
        (
            21,
            "audit chain",
            include_str!("../../../migrations/0021_audit_chain.sql"),
        ),
        (
            22,
            "customer app",
            include_str!("../../../migrations/0022_customer_app.sql"),
        ),
        (
            23,
            "time-ordered webhook ids",
            include_str!("../../../migrations/0023_time_ordered_webhook_ids.sql"),
        ),
        (
            24,
            "fewer event indexes",
            include_str!("../../../migrations/0024_fewer_event_indexes.sql"),
        ),
        (
            25,
            "attempts keyed by delivery",
            include_str!("../../../migrations/0025_attempts_keyed_by_delivery.sql"),
        ),
        (
            26,
            "event tables without foreign keys",
            include_str!("../../../migrations/0026_event_tables_without_foreign_keys.sql"),
        ),
        (
            27,
            "numbers off the hot row",
            include_str!("../../../migrations/0027_numbers_off_the_hot_row.sql"),
        ),
        (
            28,
            "failed attempts indexed",
            include_str!("../../../migrations/0028_failed_attempts_indexed.sql"),
        ),
        (
            29,
            "accounts locked in one mode",
            include_str!("../../../migrations/0029_accounts_locked_in_one_mode.sql"),
        ),
    ];
    Migrator::with_migrations(
        migrations
            .into_iter()
            .filter(|(version, _, _)| *version <= last_version)
            .map(|(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn ensure_database_exists(url: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    let database = options
        .get_database()
        .map(str::to_owned)
        .unwrap_or_else(|| options.get_username().to_owned());
    let mut maintenance = options.database("postgres").connect().await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_optional(&mut maintenance)
        .await?;
    if exists.is_none() {
        let create = format!("CREATE DATABASE {}", quote_identifier(&database));
        match sqlx::query(AssertSqlSafe(create))
            .execute(&mut maintenance)
            .await
        {
            Ok(_) => tracing::info!(%database, "created database"),
            // Another process created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    maintenance.close().await?;
    Ok(())
}

/// Drops a database (tests use it to clean up after themselves).
/// The URL of a throw-away database beside the one `url` names: `<name><suffix>`, with the
/// same server, credentials and parameters (`?sslmode=…` stays a parameter).
pub fn sibling_database_url(url: &str, suffix: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut sibling = format!("{}{suffix}", base.trim_end_matches('/'));
    if let Some(query) = query {
        sibling.push('?');
        sibling.push_str(query);
    }
    sibling
}

pub async fn drop_database(url: &str) -> Result<(), StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    let Some(database) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut maintenance = options.database("postgres").connect().await?;
    let drop = format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_identifier(&database)
    );
    sqlx::query(AssertSqlSafe(drop))
        .execute(&mut maintenance)
        .await?;
    maintenance.close().await?;
    Ok(())
}

/// Creates the database if needed, opens a pool and applies pending migrations.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    ensure_database_exists(url).await?;
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// A lazily connecting pool for statements that reach their rows by key and may run on a
/// young table: it plans no sequential scans (`enable_seqscan = off`).
///
/// A prepared statement gets a generic plan after five runs, and keeps it until the table's
/// statistics change. On a young table (a new installation's first minute, every load run)
/// that plan scans: a batch's `WHERE id = ANY ($1)` then reads every row for each batch, as
/// the table grows, and runs several times as long (docs/benchmarks.md). Where the tables
/// have statistics the plans use the keys anyway, so this changes nothing there.
pub fn keyed_pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    lazy_pool(keyed_options(url)?, max_connections)
}

/// A [`keyed_pool`] for the webhook delivery worker's bookkeeping (claims, the attempt log,
/// delivery states), whose commits do not wait for the disk (`synchronous_commit = off`):
/// at-least-once delivery makes losing the last few in a crash safe (a delivery is at worst
/// repeated). Never for money or verification state.
pub fn bookkeeping_pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = keyed_options(url)?.options([("synchronous_commit", "off")]);
    lazy_pool(options, max_connections)
}

fn keyed_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::BadUrl(e.to_string()))?
        .options([("enable_seqscan", "off")]))
}

fn lazy_pool(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, StoreError> {
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Checks that PostgreSQL answers.
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("SELECT 1").execute(pool).await?;
    Ok(())
}

/// A single connection, for tools that do one thing and exit.
pub async fn connect_one(url: &str) -> Result<PgConnection, StoreError> {
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    Ok(options.connect().await?)
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The name of the unique constraint a database error violated, if that is what it is.
pub(crate) fn violated_constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(e) if e.code().as_deref() == Some("23505") => e.constraint(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_embedded() {
        let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        let mut files: Vec<String> = std::fs::read_dir(directory)
            .expect("migrations directory")
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<i64> = super::migrator().iter().map(|m| m.version).collect();
        let numbered: Vec<i64> = files
            .iter()
            .filter_map(|name| name.split('_').next()?.parse().ok())
            .collect();
        assert_eq!(embedded, numbered, "migrations/ holds {files:?}");
    }

    #[test]
    fn a_restarting_server_is_unavailable_and_a_bad_query_is_not() {
        for code in ["08006", "08001", "57P01", "57P03", "53300"] {
            assert!(super::is_unavailable_state(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "22P02"] {
            assert!(!super::is_unavailable_state(code), "{code}");
        }
    }

    #[test]
    fn a_sibling_database_keeps_the_server_and_the_parameters() {
        assert_eq!(
            super::sibling_database_url("postgres://u@h:5432/app", "_load"),
            "postgres://u@h:5432/app_load"
        );
        assert_eq!(
            super::sibling_database_url("postgres://u@h/app/?sslmode=require", "_load"),
            "postgres://u@h/app_load?sslmode=require"
        );
    }
}
