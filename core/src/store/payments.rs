//! Payments (wallet top-ups), the audit trail of their webhooks, and crediting them.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::StoreError;
use crate::{
    domain::AccountId,
    payments::{PaymentProvider, notices::PaidNotice},
};

#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct Payment {
    pub id: Uuid,
    #[serde(skip)]
    pub account_id: AccountId,
    #[sqlx(try_from = "String")]
    pub provider: PaymentProvider,
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
    pub status: String,
    pub checkout_url: Option<String>,
    pub failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, account_id, provider, reference, amount_cents, currency, status, \
                       checkout_url, failure, created_at, succeeded_at";

/// A query with `{COLUMNS}` filled in; the columns are a constant, never input.
fn sql(template: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(template.replace("{COLUMNS}", COLUMNS))
}

/// A new pending payment; its reference is ours, unique, and not guessable.
pub async fn create(
    pool: &PgPool,
    account: AccountId,
    provider: PaymentProvider,
    amount_cents: i64,
    currency: &str,
) -> Result<Payment, StoreError> {
    let id = Uuid::now_v7();
    let reference = format!("nsk_{}", Uuid::new_v4().simple());
    Ok(sqlx::query_as::<_, Payment>(sql(
        "INSERT INTO payments (id, account_id, provider, reference, amount_cents, currency)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}",
    ))
    .bind(id)
    .bind(account)
    .bind(provider.as_str())
    .bind(reference)
    .bind(amount_cents)
    .bind(currency)
    .fetch_one(pool)
    .await?)
}

/// Records where the payer goes, or why the checkout could not be opened.
pub async fn initialised(
    pool: &PgPool,
    id: Uuid,
    outcome: Result<&str, &str>,
) -> Result<Payment, StoreError> {
    let (url, failure) = match outcome {
        Ok(url) => (Some(url), None),
        Err(why) => (None, Some(why)),
    };
    // Only a pending payment can fail: should the provider's webhook ever beat this update,
    // the payment stays succeeded.
    sqlx::query_as::<_, Payment>(sql("UPDATE payments
         SET checkout_url = coalesce($2, checkout_url),
             failure = CASE WHEN status = 'pending' THEN $3 ELSE failure END,
             status = CASE WHEN $3::text IS NOT NULL AND status = 'pending' THEN 'failed'
                           ELSE status END
         WHERE id = $1 RETURNING {COLUMNS}"))
    .bind(id)
    .bind(url)
    .bind(failure)
    .fetch_optional(pool)
    .await?
    .ok_or(StoreError::Missing("payment"))
}

pub async fn find_for_account(
    pool: &PgPool,
    account: AccountId,
    id: Uuid,
) -> Result<Option<Payment>, StoreError> {
    Ok(sqlx::query_as::<_, Payment>(sql(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 AND account_id = $2",
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(pool)
    .await?)
}

/// The account's payments, newest first.
pub async fn list_for_account(
    pool: &PgPool,
    account: AccountId,
    limit: i64,
) -> Result<Vec<Payment>, StoreError> {
    Ok(
        sqlx::query_as::<_, Payment>(sql("SELECT {COLUMNS} FROM payments WHERE account_id = $1
         ORDER BY created_at DESC, id DESC LIMIT $2"))
        .bind(account)
        .bind(limit)
        .fetch_all(pool)
        .await?,
    )
}

/// What a paid notice did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credit {
    /// The balance grew by the payment; `referral_bonus` is the referrer's reward, if this
    /// was the referee's first paid top-up.
    Credited {
        payment: Uuid,
        account: AccountId,
        referral_bonus: Option<(AccountId, i64)>,
    },
    /// Credited before (a webhook delivered again, or Stripe's second event of one checkout).
    AlreadyCredited,
    /// No payment of ours has this reference.
    UnknownReference,
    /// Amount or currency differ from what was initialised; nothing credited.
    Mismatch { expected: String, received: String },
}

/// Credits a paid notice at most once: the payment, its ledger row, the balance and the
/// referrer's reward move in one transaction, each guarded by a uniqueness constraint.
pub async fn credit(pool: &PgPool, notice: &PaidNotice) -> Result<Credit, StoreError> {
    let mut tx = pool.begin().await?;
    let payment = sqlx::query_as::<_, Payment>(sql(
        "SELECT {COLUMNS} FROM payments WHERE provider = $1 AND reference = $2 FOR UPDATE",
    ))
    .bind(notice.provider.as_str())
    .bind(&notice.reference)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(payment) = payment else {
        return Ok(Credit::UnknownReference);
    };
    if payment.status == "succeeded" {
        return Ok(Credit::AlreadyCredited);
    }
    if payment.amount_cents != notice.amount_cents || payment.currency != notice.currency {
        return Ok(Credit::Mismatch {
            expected: format!("{} {}", payment.amount_cents, payment.currency),
            received: format!("{} {}", notice.amount_cents, notice.currency),
        });
    }
    // A payment whose checkout failed to open may still be paid (the provider took it): the
    // money arrived, so it is credited.
    sqlx::query(
        "WITH paid AS (
             UPDATE payments SET status = 'succeeded', succeeded_at = now(), failure = NULL
             WHERE id = $1
         ), entry AS (
             INSERT INTO ledger_entries (account_id, kind, amount_cents, reference, payment_id)
             VALUES ($2, 'top_up', $3, $4, $1)
         )
         UPDATE accounts SET balance_cents = balance_cents + $3 WHERE id = $2",
    )
    .bind(payment.id)
    .bind(payment.account_id)
    .bind(payment.amount_cents)
    .bind(format!(
        "{}:{}",
        payment.provider.as_str(),
        payment.reference
    ))
    .execute(&mut *tx)
    .await?;
    let referral_bonus = reward_referrer(&mut tx, payment.account_id).await?;
    tx.commit().await?;
    Ok(Credit::Credited {
        payment: payment.id,
        account: payment.account_id,
        referral_bonus,
    })
}

/// On the referee's first paid top-up, the referrer's reward (by the referrer's tier). The
/// partial unique index on `referral:<referee>` makes a second reward impossible.
async fn reward_referrer(
    tx: &mut Transaction<'_, Postgres>,
    referee: AccountId,
) -> Result<Option<(AccountId, i64)>, StoreError> {
    let rewarded: Option<(AccountId, i64)> = sqlx::query_as(
        "WITH referrer AS (
             SELECT r.id, t.referral_reward_cents AS reward
             FROM accounts a
             JOIN accounts r ON r.id = a.referred_by
             JOIN tiers t ON t.tier = r.tier
             WHERE a.id = $1 AND t.referral_reward_cents > 0
               AND (SELECT count(*) FROM payments p
                    WHERE p.account_id = a.id AND p.status = 'succeeded') = 1
         ), entry AS (
             INSERT INTO ledger_entries (account_id, kind, amount_cents, reference)
             SELECT id, 'referral_bonus', reward, 'referral:' || $1::text FROM referrer
             ON CONFLICT (reference) WHERE kind = 'referral_bonus' DO NOTHING
             RETURNING account_id, amount_cents
         ), credit AS (
             UPDATE accounts SET balance_cents = accounts.balance_cents + entry.amount_cents
             FROM entry WHERE accounts.id = entry.account_id
         )
         SELECT account_id, amount_cents FROM entry",
    )
    .bind(referee)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(rewarded)
}

/// One webhook call, as the audit trail keeps it.
pub struct NoticeRecord<'a> {
    pub provider: PaymentProvider,
    pub event_id: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub outcome: &'static str,
    pub reason: Option<&'a str>,
    pub body_sha256: &'a [u8],
}

pub async fn record_notice(pool: &PgPool, record: &NoticeRecord<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO payment_notices
             (provider, event_id, event_type, reference, outcome, reason, body_sha256)
         VALUES ($1, $2, left($3, 200), left($4, 200), $5, left($6, 500), $7)",
    )
    .bind(record.provider.as_str())
    .bind(record.event_id)
    .bind(record.event_type)
    .bind(record.reference)
    .bind(record.outcome)
    .bind(record.reason)
    .bind(record.body_sha256)
    .execute(pool)
    .await?;
    Ok(())
}
