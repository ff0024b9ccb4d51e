//! Referrals: linking a referee to the account whose code it used, and what each earned.
//! The reward itself is paid with the referee's first top-up (`payments::credit`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::domain::AccountId;

/// What linking an account to a referral code did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Linked {
        referrer: AccountId,
    },
    UnknownCode,
    /// The account's own code.
    OwnCode,
    /// The code's owner was (directly or further up) referred by this account.
    Loop,
    AlreadyReferred,
    /// Rewards are for bringing in new paying customers; this one has paid already.
    AlreadyPaid,
}

/// Links `account` to the owner of `code`, unless that is itself, a loop, or too late.
/// Takes the account's row lock, so two claims cannot both succeed.
pub async fn link(
    conn: &mut PgConnection,
    account: AccountId,
    code: &str,
) -> Result<Link, StoreError> {
    let code = code.trim().to_ascii_uppercase();
    let current: Option<(Option<AccountId>, bool)> = sqlx::query_as(
        "SELECT referred_by,
                EXISTS (SELECT 1 FROM payments WHERE account_id = a.id AND status = 'succeeded')
         FROM accounts a WHERE id = $1 FOR UPDATE",
    )
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((referred_by, paid)) = current else {
        return Err(StoreError::Missing("account"));
    };
    if referred_by.is_some() {
        return Ok(Link::AlreadyReferred);
    }
    if paid {
        return Ok(Link::AlreadyPaid);
    }
    // A code is only good within the account's own tenant: brands do not share customers.
    let referrer: Option<AccountId> = sqlx::query_scalar(
        "SELECT id FROM accounts
         WHERE referral_code = $1
           AND tenant_id = (SELECT tenant_id FROM accounts WHERE id = $2)",
    )
    .bind(&code)
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(referrer) = referrer else {
        return Ok(Link::UnknownCode);
    };
    if referrer == account {
        return Ok(Link::OwnCode);
    }
    // Walk up from the referrer; meeting this account would close a circle.
    let in_chain: bool = sqlx::query_scalar(
        "WITH RECURSIVE chain(id, depth) AS (
             SELECT referred_by, 1 FROM accounts WHERE id = $1
             UNION ALL
             SELECT a.referred_by, chain.depth + 1
             FROM chain JOIN accounts a ON a.id = chain.id
             WHERE chain.id IS NOT NULL AND chain.depth < 1000
         )
         SELECT EXISTS (SELECT 1 FROM chain WHERE id = $2)",
    )
    .bind(referrer)
    .bind(account)
    .fetch_one(&mut *conn)
    .await?;
    if in_chain {
        return Ok(Link::Loop);
    }
    sqlx::query("UPDATE accounts SET referred_by = $2, referred_at = now() WHERE id = $1")
        .bind(account)
        .bind(referrer)
        .execute(&mut *conn)
        .await?;
    Ok(Link::Linked { referrer })
}

/// One account this account brought in.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Referee {
    #[schema(value_type = String, format = Uuid)]
    pub account_id: AccountId,
    pub referred_at: Option<DateTime<Utc>>,
    /// When its first top-up was paid, which is when the reward was credited.
    pub first_top_up_at: Option<DateTime<Utc>>,
    pub reward_cents: i64,
}

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ReferralSummary)]
pub struct Summary {
    /// The code to hand out.
    pub code: String,
    /// The code of the account that referred this one, if any.
    pub referred_by: Option<String>,
    pub referees: Vec<Referee>,
    pub earnings_cents: i64,
}

pub async fn summary(pool: &PgPool, account: AccountId) -> Result<Summary, StoreError> {
    let mut conn = pool.acquire().await?;
    summary_in(&mut conn, account).await
}

/// [`summary`] on a given connection (inside the transaction that just linked, say).
pub async fn summary_in(
    conn: &mut PgConnection,
    account: AccountId,
) -> Result<Summary, StoreError> {
    let (code, referred_by): (String, Option<String>) = sqlx::query_as(
        "SELECT a.referral_code, r.referral_code
         FROM accounts a LEFT JOIN accounts r ON r.id = a.referred_by WHERE a.id = $1",
    )
    .bind(account)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::Missing("account"))?;
    let referees = sqlx::query_as::<_, Referee>(
        "SELECT a.id AS account_id, a.referred_at,
                (SELECT min(succeeded_at) FROM payments p WHERE p.account_id = a.id) AS first_top_up_at,
                coalesce((SELECT amount_cents FROM ledger_entries l
                          WHERE l.kind = 'referral_bonus' AND l.reference = 'referral:' || a.id::text), 0)
                    AS reward_cents
         FROM accounts a WHERE a.referred_by = $1
         ORDER BY a.referred_at DESC NULLS LAST, a.id",
    )
    .bind(account)
    .fetch_all(&mut *conn)
    .await?;
    let earnings_cents = referees.iter().map(|r| r.reward_cents).sum();
    Ok(Summary {
        code,
        referred_by,
        referees,
        earnings_cents,
    })
}
