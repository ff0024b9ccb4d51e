//! API keys. Only the hash of a key is stored; the key itself is shown once.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AccountId, ApiKey, ApiKeyHash, Scope, TenantId, Tier};

/// Who a presented key belongs to.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub account_id: AccountId,
    pub tenant_id: TenantId,
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    pub scopes: Vec<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key as its owner sees it: never the key itself.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeySummary {
    pub id: Uuid,
    pub prefix: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const SUMMARY_COLUMNS: &str = "id, prefix, name, scopes, created_at, last_used_at, revoked_at";
/// A [`KeyOwner`]'s columns, read from [`KEYS_WITH_ACCOUNTS`].
const OWNER_COLUMNS: &str =
    "k.id AS key_id, k.account_id, a.tenant_id, a.tier, k.scopes, k.revoked_at";
const KEYS_WITH_ACCOUNTS: &str = "api_keys k JOIN accounts a ON a.id = k.account_id";

impl KeyOwner {
    /// Scopes nest: `tenant_admin` ⊇ `admin` ⊇ `write` ⊇ `read`.
    pub fn has_scope(&self, scope: Scope) -> bool {
        let rank = |scope: Scope| match scope {
            Scope::Read => 0,
            Scope::Write => 1,
            Scope::Admin => 2,
            Scope::TenantAdmin => 3,
        };
        self.scopes
            .iter()
            .filter_map(|held| Scope::parse(held))
            .any(|held| rank(held) >= rank(scope))
    }
}

pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    account: AccountId,
    key: &ApiKey,
    scopes: &[Scope],
    name: &str,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO api_keys (id, account_id, prefix, key_hash, scopes, name)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(account)
    .bind(key.prefix())
    .bind(&key.hash().0)
    .bind(&scopes)
    .bind(name)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

pub async fn find_by_hash(
    pool: &PgPool,
    hash: &ApiKeyHash,
) -> Result<Option<KeyOwner>, StoreError> {
    let sql = format!("SELECT {OWNER_COLUMNS} FROM {KEYS_WITH_ACCOUNTS} WHERE k.key_hash = $1");
    Ok(sqlx::query_as::<_, KeyOwner>(sqlx::AssertSqlSafe(sql))
        .bind(&hash.0)
        .fetch_optional(pool)
        .await?)
}

/// A live key and its owner, as the key cache holds it (by the key's hash).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActiveKey {
    pub key_hash: Vec<u8>,
    #[sqlx(flatten)]
    pub owner: KeyOwner,
}

/// The live keys used or created within the last `within`, most recent first, at most
/// `limit`: the keys an API process expects to see first after it starts.
pub async fn recently_active(
    pool: &PgPool,
    within: std::time::Duration,
    limit: i64,
) -> Result<Vec<ActiveKey>, StoreError> {
    let sql = format!(
        "SELECT k.key_hash, {OWNER_COLUMNS} FROM {KEYS_WITH_ACCOUNTS}
         WHERE k.revoked_at IS NULL
           AND greatest(k.created_at, k.last_used_at) > now() - make_interval(secs => $1)
         ORDER BY greatest(k.created_at, k.last_used_at) DESC
         LIMIT $2"
    );
    Ok(sqlx::query_as::<_, ActiveKey>(sqlx::AssertSqlSafe(sql))
        .bind(within.as_secs_f64())
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// Records that a key was used. Callers throttle this; it is bookkeeping, not security.
pub async fn touch(pool: &PgPool, key_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
        .bind(key_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// The account's keys, newest first, revoked ones included (they explain old requests).
pub async fn list_for_account(
    pool: &PgPool,
    account: AccountId,
) -> Result<Vec<KeySummary>, StoreError> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, id DESC"
    );
    Ok(sqlx::query_as::<_, KeySummary>(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .fetch_all(pool)
        .await?)
}

pub async fn find_for_account(
    conn: &mut sqlx::PgConnection,
    account: AccountId,
    id: Uuid,
) -> Result<Option<KeySummary>, StoreError> {
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM api_keys WHERE id = $1 AND account_id = $2");
    Ok(sqlx::query_as::<_, KeySummary>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account)
        .fetch_optional(conn)
        .await?)
}

/// Revokes the account's key; revoking a revoked key changes nothing. `None` when the
/// account has no such key. The `api_key_changed` trigger tells every API process to drop
/// the key from its cache.
pub async fn revoke(
    pool: &PgPool,
    account: AccountId,
    id: Uuid,
) -> Result<Option<(KeySummary, ApiKeyHash)>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Revoked {
        #[sqlx(flatten)]
        summary: KeySummary,
        key_hash: Vec<u8>,
    }
    let sql = format!(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND account_id = $2
         RETURNING {SUMMARY_COLUMNS}, key_hash"
    );
    let revoked = sqlx::query_as::<_, Revoked>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(account)
        .fetch_optional(pool)
        .await?;
    Ok(revoked.map(|r| (r.summary, ApiKeyHash(r.key_hash))))
}
