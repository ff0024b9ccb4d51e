//! API keys. Only the hash of a key is stored; the key itself is shown once.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::domain::{AccountId, ApiKey, ApiKeyHash, Scope, TenantId};

/// Who a presented key belongs to.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyOwner {
    pub key_id: Uuid,
    pub account_id: AccountId,
    pub tenant_id: TenantId,
    pub scopes: Vec<String>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyOwner {
    pub fn has_scope(&self, scope: Scope) -> bool {
        // `admin` can do everything; `write` implies `read`.
        self.scopes.iter().any(|s| {
            s == scope.as_str()
                || s == Scope::Admin.as_str()
                || (scope == Scope::Read && s == Scope::Write.as_str())
        })
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
    Ok(sqlx::query_as::<_, KeyOwner>(
        "SELECT k.id AS key_id, k.account_id, a.tenant_id, k.scopes, k.revoked_at
         FROM api_keys k JOIN accounts a ON a.id = k.account_id
         WHERE k.key_hash = $1",
    )
    .bind(&hash.0)
    .fetch_optional(pool)
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
