//! Dashboard administrators and their sessions.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

use super::{StoreError, violated_constraint};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Admin {
    pub id: Uuid,
    pub username: String,
    pub password_hash: String,
    pub totp_secret: String,
    pub totp_last_step: i64,
    pub failed_logins: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "id, username, password_hash, totp_secret, totp_last_step, failed_logins, locked_until";

pub async fn create(
    pool: &PgPool,
    username: &str,
    password_hash: &str,
    totp_secret: &str,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO admins (id, username, password_hash, totp_secret) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(username)
    .bind(password_hash)
    .bind(totp_secret)
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => Ok(id),
        Err(e) if violated_constraint(&e) == Some("admins_username_key") => {
            Err(StoreError::AlreadyExists("an administrator with this name"))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_username(pool: &PgPool, username: &str) -> Result<Option<Admin>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM admins WHERE username = $1");
    Ok(sqlx::query_as::<_, Admin>(sqlx::AssertSqlSafe(sql))
        .bind(username)
        .fetch_optional(pool)
        .await?)
}

/// Counts a failed login; after `max_failures` in a row the account is locked for `lockout`.
pub async fn record_failure(
    pool: &PgPool,
    id: Uuid,
    max_failures: i32,
    lockout: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE admins SET failed_logins = failed_logins + 1,
                locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + make_interval(secs => $3)
                                    ELSE locked_until END
         WHERE id = $1",
    )
    .bind(id)
    .bind(max_failures)
    .bind(lockout.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Accepts a TOTP time step if it is newer than the last accepted one (each code once), and
/// clears the failure count. `false` when the step was already used.
pub async fn accept_login(pool: &PgPool, id: Uuid, totp_step: i64) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE admins SET totp_last_step = $2, failed_logins = 0, locked_until = NULL
         WHERE id = $1 AND totp_last_step < $2",
    )
    .bind(id)
    .bind(totp_step)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// A logged-in administrator, as a request sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Session {
    pub admin_id: Uuid,
    pub username: String,
    pub csrf_token: String,
}

pub async fn create_session(
    pool: &PgPool,
    token_hash: &[u8],
    admin: Uuid,
    csrf_token: &str,
    ip: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO admin_sessions (token_hash, admin_id, csrf_token, ip, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(token_hash)
    .bind(admin)
    .bind(csrf_token)
    .bind(ip)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn find_session(pool: &PgPool, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
    Ok(sqlx::query_as::<_, Session>(
        "SELECT s.admin_id, a.username, s.csrf_token
         FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
         WHERE s.token_hash = $1 AND s.expires_at > now()",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

pub async fn delete_session(pool: &PgPool, token_hash: &[u8]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Whether any administrator exists yet (a fresh installation has none).
pub async fn any_exist(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM admins)")
        .fetch_one(pool)
        .await?)
}
