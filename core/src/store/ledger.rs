//! The append-only ledger. A balance moves only together with its ledger row.

use sqlx::PgPool;

use super::{StoreError, violated_constraint};
use crate::domain::{AccountId, Transition, VerificationId};

/// A refund that was written.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Refund {
    pub verification_id: VerificationId,
    pub account_id: AccountId,
    pub amount_cents: i64,
}

/// Refunds a timed-out, cancelled or failed verification: the `refunded` status, the refund
/// ledger row and the credit are one statement. The credit also uncounts the verification
/// from the account's open ones (no trigger counts a refund, migration 0018). `None` when
/// there is nothing to refund (already refunded, or not in a refundable status).
pub async fn refund(pool: &PgPool, id: VerificationId) -> Result<Option<Refund>, StoreError> {
    let transition = Transition::Refund;
    let refunded = sqlx::query_as::<_, Refund>(
        "WITH settled AS (
             UPDATE verifications SET status = $3, refunded_at = now(), updated_at = now(),
                                      open_since = NULL
             WHERE id = $1 AND status = ANY($2)
             RETURNING id, account_id, price_cents
         ), entry AS (
             INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
             SELECT account_id, id, 'refund', price_cents FROM settled
         ), credit AS (
             UPDATE accounts SET balance_cents = accounts.balance_cents + settled.price_cents,
                                 open_verifications = accounts.open_verifications - 1
             FROM settled WHERE accounts.id = settled.account_id
         )
         SELECT id AS verification_id, account_id, price_cents AS amount_cents FROM settled",
    )
    .bind(id)
    .bind(transition.from_names())
    .bind(transition.to().as_str())
    .fetch_optional(pool)
    .await;
    match refunded {
        Ok(refund) => Ok(refund),
        // The status guard already makes a second refund impossible; should a row ever have
        // been moved back by hand, the unique constraint still refuses to pay twice.
        Err(e)
            if violated_constraint(&e) == Some("ledger_entries_one_per_kind_and_verification") =>
        {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The account's balance according to the ledger.
pub async fn ledger_balance(pool: &PgPool, account: AccountId) -> Result<i64, StoreError> {
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT sum(amount_cents)::bigint FROM ledger_entries WHERE account_id = $1",
    )
    .bind(account)
    .fetch_one(pool)
    .await?;
    Ok(sum.unwrap_or(0))
}

/// The ledger rows of one verification, as `(kind, amount_cents)`, oldest first.
pub async fn entries_for_verification(
    pool: &PgPool,
    id: VerificationId,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT kind, amount_cents FROM ledger_entries WHERE verification_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await?)
}

/// One line of an account's ledger.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Entry {
    pub kind: String,
    pub amount_cents: i64,
    pub reference: Option<String>,
    pub verification_id: Option<VerificationId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The account's latest ledger lines, newest first.
pub async fn entries_for_account(
    pool: &PgPool,
    account: AccountId,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    Ok(sqlx::query_as::<_, Entry>(
        "SELECT kind, amount_cents, reference, verification_id, created_at FROM ledger_entries
         WHERE account_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(account)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}
