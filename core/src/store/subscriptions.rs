//! Subscription tiers paid from the wallet (migration 0012 explains the rules): upgrades
//! now and prorated, downgrades at the end of the paid period, renewals by the scheduler.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgConnection, PgPool};

use super::StoreError;
use crate::domain::{AccountId, Tier};

/// One paid period.
pub const PERIOD_DAYS: i64 = 30;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Subscription {
    #[schema(value_type = String)]
    pub tier: Tier,
    pub monthly_price_cents: i64,
    /// End of the paid period, when the next one is charged; `null` on an unpaid tier.
    pub renews_at: Option<DateTime<Utc>>,
    /// A downgrade that takes effect at `renews_at`.
    #[schema(value_type = Option<String>)]
    pub pending_tier: Option<Tier>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(try_from = "String")]
    tier: Tier,
    monthly_price_cents: i64,
    tier_renews_at: Option<DateTime<Utc>>,
    pending_tier: Option<String>,
    balance_cents: i64,
}

impl Row {
    fn subscription(&self) -> Subscription {
        Subscription {
            tier: self.tier,
            monthly_price_cents: self.monthly_price_cents,
            renews_at: self.tier_renews_at,
            pending_tier: self
                .pending_tier
                .as_deref()
                .and_then(|t| Tier::parse(t).ok()),
        }
    }
}

async fn load(conn: &mut PgConnection, account: AccountId, lock: bool) -> Result<Row, StoreError> {
    let lock = if lock { "FOR UPDATE OF a" } else { "" };
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(format!(
        "SELECT a.tier, t.monthly_price_cents, a.tier_renews_at, a.pending_tier, a.balance_cents
         FROM accounts a JOIN tiers t ON t.tier = a.tier WHERE a.id = $1 {lock}"
    )))
    .bind(account)
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::Missing("account"))
}

async fn monthly_price(conn: &mut PgConnection, tier: Tier) -> Result<i64, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT monthly_price_cents FROM tiers WHERE tier = $1")
            .bind(tier.as_str())
            .fetch_one(conn)
            .await?,
    )
}

pub async fn current(pool: &PgPool, account: AccountId) -> Result<Subscription, StoreError> {
    let mut conn = pool.acquire().await?;
    Ok(load(&mut conn, account, false).await?.subscription())
}

/// What a change of tier did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Upgraded {
        charged_cents: i64,
    },
    DowngradeScheduled,
    /// The account had no paid period, so the lower tier applies at once.
    Downgraded,
    /// Asking for the current tier again cancels a scheduled downgrade, if any.
    Unchanged,
    InsufficientBalance {
        price_cents: i64,
        balance_cents: i64,
    },
}

/// Writes a `subscription` charge; `false` if this reference was charged before.
async fn charge(
    conn: &mut PgConnection,
    account: AccountId,
    amount_cents: i64,
    reference: &str,
) -> Result<bool, StoreError> {
    let charged = sqlx::query(
        "WITH entry AS (
             INSERT INTO ledger_entries (account_id, kind, amount_cents, reference)
             VALUES ($1, 'subscription', -$2, $3)
             ON CONFLICT (reference) WHERE kind = 'subscription' DO NOTHING
             RETURNING account_id
         )
         UPDATE accounts SET balance_cents = balance_cents - $2
         WHERE id = (SELECT account_id FROM entry)",
    )
    .bind(account)
    .bind(amount_cents)
    .bind(reference)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(charged == 1)
}

/// Moves the account to `target` under its row lock. Upgrades pay the price difference for
/// what is left of the period (rounded up to the cent); the first paid tier starts a period.
pub async fn change(
    pool: &PgPool,
    account: AccountId,
    target: Tier,
    now: DateTime<Utc>,
) -> Result<(Change, Subscription), StoreError> {
    let mut tx = pool.begin().await?;
    let row = load(&mut tx, account, true).await?;
    let target_price = monthly_price(&mut tx, target).await?;
    let paid_until = row.tier_renews_at.filter(|end| *end > now);
    let change = if target == row.tier {
        sqlx::query("UPDATE accounts SET pending_tier = NULL WHERE id = $1")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        Change::Unchanged
    } else if target_price > row.monthly_price_cents {
        let (price, renews_at) = match paid_until {
            Some(end) => {
                let left = (end - now).num_seconds() as f64;
                let period = Duration::days(PERIOD_DAYS).num_seconds() as f64;
                let difference = (target_price - row.monthly_price_cents) as f64;
                ((difference * (left / period).min(1.0)).ceil() as i64, end)
            }
            None => (target_price, now + Duration::days(PERIOD_DAYS)),
        };
        if row.balance_cents < price {
            return Ok((
                Change::InsufficientBalance {
                    price_cents: price,
                    balance_cents: row.balance_cents,
                },
                row.subscription(),
            ));
        }
        if price > 0 {
            let reference = format!(
                "subscription:{account}:{}:{}",
                target.as_str(),
                now.timestamp_micros()
            );
            charge(&mut tx, account, price, &reference).await?;
        }
        sqlx::query(
            "UPDATE accounts SET tier = $2, tier_renews_at = $3, pending_tier = NULL WHERE id = $1",
        )
        .bind(account)
        .bind(target.as_str())
        .bind(renews_at)
        .execute(&mut *tx)
        .await?;
        Change::Upgraded {
            charged_cents: price,
        }
    } else if paid_until.is_some() {
        sqlx::query("UPDATE accounts SET pending_tier = $2 WHERE id = $1")
            .bind(account)
            .bind(target.as_str())
            .execute(&mut *tx)
            .await?;
        Change::DowngradeScheduled
    } else {
        sqlx::query(
            "UPDATE accounts SET tier = $2, tier_renews_at = NULL, pending_tier = NULL WHERE id = $1",
        )
        .bind(account)
        .bind(target.as_str())
        .execute(&mut *tx)
        .await?;
        Change::Downgraded
    };
    let after = load(&mut tx, account, false).await?.subscription();
    tx.commit().await?;
    Ok((change, after))
}

/// What a renewal run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Renewals {
    pub renewed: u64,
    pub downgraded: u64,
}

/// Charges every period that has ended: the next period of the tier (or of the pending
/// downgrade); an account that cannot pay goes to `free`, with an
/// `account.subscription_downgraded` event. Each account in its own transaction; a
/// period's charge has a unique reference, so a second run charges nothing.
pub async fn renew_due(pool: &PgPool, now: DateTime<Utc>) -> Result<Renewals, StoreError> {
    let mut done = Renewals::default();
    loop {
        let mut tx = pool.begin().await?;
        let due: Option<AccountId> = sqlx::query_scalar(
            "SELECT id FROM accounts WHERE tier_renews_at <= $1
             ORDER BY tier_renews_at LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(account) = due else { break };
        let row = load(&mut tx, account, true).await?;
        let Some(period_end) = row.tier_renews_at else {
            break;
        };
        let target = row
            .pending_tier
            .as_deref()
            .and_then(|t| Tier::parse(t).ok())
            .unwrap_or(row.tier);
        let price = monthly_price(&mut tx, target).await?;
        if price == 0 {
            set_tier(&mut tx, account, target, None).await?;
            done.renewed += 1;
        } else if row.balance_cents >= price {
            let reference = format!("subscription:{account}:renewal:{}", period_end.timestamp());
            charge(&mut tx, account, price, &reference).await?;
            // A period missed entirely (the scheduler was down for a month) is not charged
            // for: the new period starts now.
            let next = period_end + Duration::days(PERIOD_DAYS);
            let next = if next <= now {
                now + Duration::days(PERIOD_DAYS)
            } else {
                next
            };
            set_tier(&mut tx, account, target, Some(next)).await?;
            done.renewed += 1;
        } else {
            set_tier(&mut tx, account, Tier::Free, None).await?;
            sqlx::query(
                "SELECT record_webhook_event($1, 'account.subscription_downgraded',
                     jsonb_build_object('account_id', $1, 'from_tier', $2::text, 'to_tier', 'free',
                                        'reason', 'insufficient_balance', 'price_cents', $3,
                                        'balance_cents', $4),
                     replace(gen_random_uuid()::text, '-', ''))",
            )
            .bind(account)
            .bind(target.as_str())
            .bind(price)
            .bind(row.balance_cents)
            .execute(&mut *tx)
            .await?;
            done.downgraded += 1;
        }
        tx.commit().await?;
    }
    Ok(done)
}

async fn set_tier(
    conn: &mut PgConnection,
    account: AccountId,
    tier: Tier,
    renews_at: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE accounts SET tier = $2, tier_renews_at = $3, pending_tier = NULL WHERE id = $1",
    )
    .bind(account)
    .bind(tier.as_str())
    .bind(renews_at)
    .execute(conn)
    .await?;
    Ok(())
}
