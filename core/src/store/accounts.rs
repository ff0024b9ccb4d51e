//! Accounts and their balances.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};

use super::{StoreError, violated_constraint};
use crate::domain::{AccountId, Cents, TenantId, Tier};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Account {
    pub id: AccountId,
    pub tenant_id: TenantId,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub tier: Tier,
    pub balance_cents: i64,
    pub referral_code: String,
    pub created_at: DateTime<Utc>,
}

/// Whether `text` can be an account's e-mail address (what the table's check allows, and
/// an `@` without spaces around it).
pub fn is_email(text: &str) -> bool {
    (3..=254).contains(&text.chars().count())
        && text
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !text.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The columns of [`Account`], for every query that reads one.
pub(crate) const COLUMNS: &str =
    "id, tenant_id, email, tier, balance_cents, referral_code, created_at";

/// Creates an account; an opening balance is written to the ledger as a top-up so that the
/// balance equals the ledger from the first moment.
pub async fn create(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    email: &str,
    tier: Tier,
    opening_balance: Cents,
) -> Result<Account, StoreError> {
    let inserted = sqlx::query_as::<_, Account>(
        "INSERT INTO accounts (id, tenant_id, email, tier, balance_cents)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, tenant_id, email, tier, balance_cents, referral_code, created_at",
    )
    .bind(AccountId::new())
    .bind(tenant)
    .bind(email)
    .bind(tier.as_str())
    .bind(opening_balance.get())
    .fetch_one(&mut **tx)
    .await;
    let account = match inserted {
        Ok(account) => account,
        Err(e) if violated_constraint(&e) == Some("accounts_tenant_id_email_key") => {
            return Err(StoreError::AlreadyExists("an account with this e-mail"));
        }
        Err(e) => return Err(e.into()),
    };
    if opening_balance > Cents::ZERO {
        sqlx::query(
            "INSERT INTO ledger_entries (account_id, kind, amount_cents, reference)
             VALUES ($1, 'top_up', $2, 'opening balance')",
        )
        .bind(account.id)
        .bind(opening_balance.get())
        .execute(&mut **tx)
        .await?;
    }
    Ok(account)
}

pub async fn find(pool: &PgPool, id: AccountId) -> Result<Option<Account>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = $1");
    Ok(sqlx::query_as::<_, Account>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Whether any account exists yet (a fresh installation has none).
pub async fn any_exist(pool: &PgPool) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts)")
        .fetch_one(pool)
        .await?)
}

/// Sends `account.low_balance` to every account whose balance has just crossed below its
/// threshold, once per crossing: the notice is remembered until the balance is back above.
/// Returns how many notices were sent.
pub async fn notify_low_balances(pool: &PgPool) -> Result<u64, StoreError> {
    let mut tx = pool.begin().await?;
    let sent: Vec<String> = sqlx::query_scalar(
        "WITH crossed AS (
             UPDATE accounts SET low_balance_notified = true
             WHERE NOT low_balance_notified AND low_balance_threshold_cents > 0
               AND balance_cents < low_balance_threshold_cents
             RETURNING id, balance_cents, low_balance_threshold_cents
         )
         SELECT record_webhook_event(
                    id, 'account.low_balance',
                    jsonb_build_object('account_id', id, 'balance_cents', balance_cents,
                                       'threshold_cents', low_balance_threshold_cents),
                    replace(gen_random_uuid()::text, '-', ''))
         FROM crossed",
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE accounts SET low_balance_notified = false
         WHERE low_balance_notified AND balance_cents >= low_balance_threshold_cents",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(sent.len() as u64)
}
