//! The web app's customers: their password (and TOTP secret), their sessions and their
//! password-reset links. Only hashes of session tokens and reset tokens are stored.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::time::Duration;
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AccountId, TenantId, Tier};

/// What signing in checks, for one account of one tenant.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Credentials {
    pub account_id: AccountId,
    pub email: String,
    pub password_hash: String,
    pub totp_secret: Option<String>,
    pub totp_last_step: i64,
    pub failed_sign_ins: i32,
    pub locked_until: Option<DateTime<Utc>>,
}

/// The account with this e-mail address in this tenant, if it has a password (accounts made
/// for the API alone have none) and was not erased.
pub async fn find_for_sign_in(
    pool: &PgPool,
    tenant: TenantId,
    email: &str,
) -> Result<Option<Credentials>, StoreError> {
    Ok(sqlx::query_as::<_, Credentials>(
        "SELECT a.id AS account_id, a.email, c.password_hash, c.totp_secret, c.totp_last_step,
                c.failed_sign_ins, c.locked_until
         FROM accounts a JOIN customer_credentials c ON c.account_id = a.id
         WHERE a.tenant_id = $1 AND lower(a.email) = lower($2) AND a.erased_at IS NULL",
    )
    .bind(tenant)
    .bind(email)
    .fetch_optional(pool)
    .await?)
}

/// The account's credentials by id (for changing them while signed in).
pub async fn find(pool: &PgPool, account: AccountId) -> Result<Option<Credentials>, StoreError> {
    Ok(sqlx::query_as::<_, Credentials>(
        "SELECT a.id AS account_id, a.email, c.password_hash, c.totp_secret, c.totp_last_step,
                c.failed_sign_ins, c.locked_until
         FROM accounts a JOIN customer_credentials c ON c.account_id = a.id
         WHERE a.id = $1 AND a.erased_at IS NULL",
    )
    .bind(account)
    .fetch_optional(pool)
    .await?)
}

/// Sets the account's password (the first one at sign-up, a new one after a reset); a
/// lockout ends with it.
pub async fn set_password(
    conn: &mut PgConnection,
    account: AccountId,
    password_hash: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_credentials (account_id, password_hash) VALUES ($1, $2)
         ON CONFLICT (account_id) DO UPDATE
         SET password_hash = EXCLUDED.password_hash, failed_sign_ins = 0, locked_until = NULL,
             updated_at = now()",
    )
    .bind(account)
    .bind(password_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Turns two-factor sign-in on (with this secret) or off (`None`).
pub async fn set_totp(
    pool: &PgPool,
    account: AccountId,
    secret: Option<&str>,
    accepted_step: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customer_credentials
         SET totp_secret = $2, totp_last_step = greatest(totp_last_step, $3), updated_at = now()
         WHERE account_id = $1",
    )
    .bind(account)
    .bind(secret)
    .bind(accepted_step)
    .execute(pool)
    .await?;
    Ok(())
}

/// Counts a failed sign-in; after `max_failures` in a row the account is locked for `lockout`.
pub async fn record_failure(
    pool: &PgPool,
    account: AccountId,
    max_failures: i32,
    lockout: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE customer_credentials SET failed_sign_ins = failed_sign_ins + 1,
                locked_until = CASE WHEN failed_sign_ins + 1 >= $2
                                    THEN now() + make_interval(secs => $3)
                                    ELSE locked_until END
         WHERE account_id = $1",
    )
    .bind(account)
    .bind(max_failures)
    .bind(lockout.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Clears the failure count of a successful sign-in. With a TOTP step, the step must be newer
/// than the last accepted one (each code counts once): `false` when it was already used.
pub async fn accept_sign_in(
    pool: &PgPool,
    account: AccountId,
    totp_step: Option<i64>,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "UPDATE customer_credentials
         SET totp_last_step = coalesce($2, totp_last_step), failed_sign_ins = 0, locked_until = NULL
         WHERE account_id = $1 AND ($2::bigint IS NULL OR totp_last_step < $2)",
    )
    .bind(account)
    .bind(totp_step)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// A signed-in customer, as a request sees it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Session {
    /// The session's own id (its rate-limit bucket).
    pub id: Uuid,
    pub account_id: AccountId,
    pub tenant_id: TenantId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    pub csrf_token: String,
    pub has_totp: bool,
}

pub async fn create_session(
    pool: &PgPool,
    token_hash: &[u8],
    account: AccountId,
    csrf_token: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO customer_sessions (token_hash, id, account_id, csrf_token, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
    )
    .bind(token_hash)
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(csrf_token)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The live session with this token hash, of an account that was not erased.
pub async fn find_session(pool: &PgPool, token_hash: &[u8]) -> Result<Option<Session>, StoreError> {
    Ok(sqlx::query_as::<_, Session>(
        "SELECT s.id, s.account_id, a.tenant_id, a.email, a.tier, s.csrf_token,
                c.totp_secret IS NOT NULL AS has_totp
         FROM customer_sessions s
         JOIN accounts a ON a.id = s.account_id
         JOIN customer_credentials c ON c.account_id = s.account_id
         WHERE s.token_hash = $1 AND s.expires_at > now() AND a.erased_at IS NULL",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Whether the session with this id is still live (open event streams ask once a second).
pub async fn session_is_live(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customer_sessions WHERE id = $1 AND expires_at > now())",
    )
    .bind(id)
    .fetch_one(pool)
    .await?)
}

pub async fn delete_session(pool: &PgPool, token_hash: &[u8]) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends every session of the account (its password changed).
pub async fn end_sessions(conn: &mut PgConnection, account: AccountId) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM customer_sessions WHERE account_id = $1")
        .bind(account)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many reset links the account was sent in the last `window`.
pub async fn recent_resets(
    pool: &PgPool,
    account: AccountId,
    window: Duration,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM password_resets
         WHERE account_id = $1 AND created_at > now() - make_interval(secs => $2)",
    )
    .bind(account)
    .bind(window.as_secs_f64())
    .fetch_one(pool)
    .await?)
}

pub async fn create_reset(
    pool: &PgPool,
    token_hash: &[u8],
    account: AccountId,
    ttl: Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO password_resets (token_hash, account_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(token_hash)
    .bind(account)
    .bind(ttl.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// The account whose live reset link this is; the link is spent (a link works once).
pub async fn spend_reset(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<AccountId>, StoreError> {
    Ok(sqlx::query_scalar(
        "UPDATE password_resets SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now()
         RETURNING account_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

/// Whether a reset link is live, without spending it (the form it opens is shown first).
pub async fn reset_is_live(pool: &PgPool, token_hash: &[u8]) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM password_resets
                        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now())",
    )
    .bind(token_hash)
    .fetch_one(pool)
    .await?)
}
