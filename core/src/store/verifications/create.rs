//! Accepting verifications: the charge, the row, its ledger entry and its ordering message,
//! written by one statement for a whole batch of orders.

use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use uuid::Uuid;

use super::{StoreError, Verification, sql};
use crate::{
    domain::{AccountId, VerificationId},
    queue::{Envelope, Job, QueueName},
    store::CONFLICT_ATTEMPTS,
};

/// A verification about to be accepted.
#[derive(Clone, Debug)]
pub struct NewVerification {
    pub id: VerificationId,
    pub account_id: AccountId,
    pub service: String,
    pub country: String,
    pub price_cents: i64,
    pub trace_id: String,
}

/// An order to charge: the verification and its account's open-verification limit.
#[derive(Clone, Debug)]
pub struct ChargedOrder {
    pub new: NewVerification,
    pub max_open: i32,
}

/// Why an order was not charged.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account already holds `max_open` open verifications.
    OpenLimit,
    /// The balance does not cover the price.
    Balance { balance_cents: i64 },
}

/// Charges the account and inserts the verification, its charge and its ordering message,
/// all in one statement, so it is atomic even outside a transaction.
///
/// `conn` may be in a transaction: a statement that PostgreSQL aborted (a deadlock) aborts it,
/// and the caller runs the whole transaction again.
pub async fn insert_charged(
    conn: &mut PgConnection,
    order: &ChargedOrder,
) -> Result<Result<Verification, Refusal>, StoreError> {
    let order = std::slice::from_ref(order);
    charge_in_rounds(conn, order, rounds(order))
        .await?
        .pop()
        .ok_or(StoreError::Missing("the answer to an order"))
}

/// [`insert_charged`] for many orders, with one answer per order in their order. The batch
/// is charged whole or not at all, and one that PostgreSQL aborted to break a deadlock runs
/// again, up to [`CONFLICT_ATTEMPTS`] times.
///
/// One statement charges every account once, so orders of the same account go into
/// successive statements ("rounds"): each sees the debits of the one before, as orders made
/// one after the other would. Several rounds run in one transaction. Were each to commit on
/// its own, a later round's failure would leave the earlier ones charged while every
/// caller of the batch heard of the failure (and a customer who orders again pays twice).
/// They take no lock the first round has not taken, since an account in a later round has
/// an order in the first, so the transaction keeps the first round's key order.
///
/// An account's row is locked by its debit, which only happens while the account holds
/// fewer than `max_open` open verifications and its balance covers the price; a concurrent
/// order waits for the lock and then sees this one's counter and balance, so two cannot both
/// squeeze under a limit.
pub async fn insert_charged_many(
    pool: &PgPool,
    orders: &[ChargedOrder],
) -> Result<Vec<Result<Verification, Refusal>>, StoreError> {
    let mut attempt = 1;
    loop {
        match charge_whole(pool, orders).await {
            Err(error) if error.is_transient_conflict() && attempt < CONFLICT_ATTEMPTS => {
                tracing::info!(%error, attempt, "a batch of orders aborted by a conflict; running it again");
                attempt += 1;
            }
            charged => return charged,
        }
    }
}

/// Readies one connection for orders: runs the order statement with no orders, so that
/// the connection has it prepared and has read the catalogue entries of every table it
/// writes. A new connection's first order otherwise takes several times as long.
pub async fn prepare_for_orders(conn: &mut PgConnection) -> Result<(), StoreError> {
    charge_round(conn, &[]).await.map(drop)
}

async fn charge_whole(
    pool: &PgPool,
    orders: &[ChargedOrder],
) -> Result<Vec<Result<Verification, Refusal>>, StoreError> {
    let planned = rounds(orders);
    if planned.len() <= 1 {
        // One statement: atomic on its own, without a transaction's two round trips.
        let mut conn = pool.acquire().await?;
        return charge_in_rounds(&mut conn, orders, planned).await;
    }
    let mut tx = pool.begin().await?;
    let answers = charge_in_rounds(&mut tx, orders, planned).await?;
    tx.commit().await?;
    Ok(answers)
}

async fn charge_in_rounds(
    conn: &mut PgConnection,
    orders: &[ChargedOrder],
    rounds: Vec<Vec<usize>>,
) -> Result<Vec<Result<Verification, Refusal>>, StoreError> {
    let mut answers: Vec<Option<Result<Verification, Refusal>>> =
        orders.iter().map(|_| None).collect();
    for round in rounds {
        let batch: Vec<&ChargedOrder> = round.iter().map(|&i| &orders[i]).collect();
        let mut accepted = charge_round(conn, &batch).await?;
        let refused: Vec<Uuid> = batch
            .iter()
            .filter(|order| !accepted.contains_key(&order.new.id))
            .map(|order| order.new.account_id.0)
            .collect();
        let accounts = if refused.is_empty() {
            HashMap::new()
        } else {
            account_limits(conn, &refused).await?
        };
        for (&index, order) in round.iter().zip(&batch) {
            answers[index] = Some(match accepted.remove(&order.new.id) {
                Some(verification) => Ok(verification),
                None => Err(refusal(
                    order,
                    accounts.get(&order.new.account_id.0).copied(),
                )?),
            });
        }
    }
    answers
        .into_iter()
        .map(|answer| answer.ok_or(StoreError::Missing("the answer to an order")))
        .collect()
}

/// The orders' indexes, split into rounds in which no account appears twice; an account's
/// orders keep their order across rounds.
fn rounds(orders: &[ChargedOrder]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut next_round_of: HashMap<AccountId, usize> = HashMap::new();
    for (index, order) in orders.iter().enumerate() {
        let round = next_round_of.entry(order.new.account_id).or_insert(0);
        if *round == rounds.len() {
            rounds.push(Vec::new());
        }
        rounds[*round].push(index);
        *round += 1;
    }
    rounds
}

/// One statement for orders of distinct accounts: the accepted ones, by verification id.
async fn charge_round(
    conn: &mut PgConnection,
    orders: &[&ChargedOrder],
) -> Result<HashMap<VerificationId, Verification>, StoreError> {
    let new = || orders.iter().map(|order| &order.new);
    let ids: Vec<Uuid> = new().map(|n| n.id.0).collect();
    let accounts: Vec<Uuid> = new().map(|n| n.account_id.0).collect();
    let services: Vec<&str> = new().map(|n| n.service.as_str()).collect();
    let countries: Vec<&str> = new().map(|n| n.country.as_str()).collect();
    let prices: Vec<i64> = new().map(|n| n.price_cents).collect();
    let trace_ids: Vec<&str> = new().map(|n| n.trace_id.as_str()).collect();
    let limits: Vec<i32> = orders.iter().map(|o| o.max_open).collect();
    let messages: Vec<serde_json::Value> = orders
        .iter()
        .map(|o| {
            Envelope::first(
                Job::OrderNumber {
                    verification_id: o.new.id,
                },
                o.new.trace_id.clone(),
            )
            .to_json()
        })
        .collect();
    // Data-modifying CTEs run as one statement: either all of an order's writes happen or
    // none. The conditional debit is what refuses an uncovered price or an order past the
    // open limit; the CHECK on the balance is the backstop. This is the one statement that
    // inserts verifications, and no trigger counts inserts: the debit counts the new open
    // verification (migration 0018); usage is counted from the verifications themselves
    // (migration 0020). Accounts are locked in key order before anything else, the order
    // every writer of accounts follows, so two batches never wait for each other in a
    // circle. FOR UPDATE, not the NO KEY UPDATE an UPDATE takes: the debit locks the row a
    // second time, and a foreign-key check's KEY SHARE (an idempotency claim) that got in
    // between made that second lock queue behind the orders waiting for the first, a
    // deadlock PostgreSQL broke after a second (`money::orders_of_one_account_do_not_deadlock…`).
    // A key share now waits for the statement, which takes well under a millisecond.
    let inserted = sqlx::query_as::<_, Verification>(sql("WITH wanted AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[],
                                  $6::text[], $7::int[], $8::jsonb[])
                 AS w(id, account_id, service, country, price_cents, trace_id, max_open, message)
         ), locked AS (
             SELECT a.id FROM accounts a
             WHERE a.id IN (SELECT account_id FROM wanted)
             ORDER BY a.id FOR UPDATE
         ), debit AS (
             UPDATE accounts a SET balance_cents = a.balance_cents - w.price_cents,
                                   open_verifications = a.open_verifications + 1
             FROM wanted w
             WHERE a.id = w.account_id AND a.id IN (SELECT id FROM locked)
               AND a.balance_cents >= w.price_cents AND a.open_verifications < w.max_open
             RETURNING a.id
         ), inserted AS (
             INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id)
             SELECT w.id, w.account_id, w.service, w.country, w.price_cents, w.trace_id
             FROM wanted w JOIN debit ON debit.id = w.account_id
             RETURNING {COLUMNS}
         ), charge AS (
             INSERT INTO ledger_entries (account_id, verification_id, kind, amount_cents)
             SELECT account_id, id, 'charge', -price_cents FROM inserted
         ), message AS (
             INSERT INTO outbox (queue, payload)
             SELECT $9, w.message FROM inserted JOIN wanted w ON w.id = inserted.id
         )
         SELECT {COLUMNS} FROM inserted"))
    .bind(&ids)
    .bind(&accounts)
    .bind(&services)
    .bind(&countries)
    .bind(&prices)
    .bind(&trace_ids)
    .bind(&limits)
    .bind(&messages)
    .bind(QueueName::Ordering.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(inserted
        .into_iter()
        .map(|verification| (verification.id, verification))
        .collect())
}

/// Balance and open count of the accounts whose orders were refused (the rare path).
async fn account_limits(
    conn: &mut PgConnection,
    accounts: &[Uuid],
) -> Result<HashMap<Uuid, (i64, i32)>, StoreError> {
    let rows: Vec<(Uuid, i64, i32)> = sqlx::query_as(
        "SELECT id, balance_cents, open_verifications FROM accounts WHERE id = ANY($1)",
    )
    .bind(accounts)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, balance, open)| (id, (balance, open)))
        .collect())
}

/// Why `order` was refused, from its account's balance and open count after the attempt.
fn refusal(order: &ChargedOrder, account: Option<(i64, i32)>) -> Result<Refusal, StoreError> {
    let (balance_cents, open) = account.ok_or(StoreError::Missing("the ordering account"))?;
    Ok(if open >= order.max_open {
        Refusal::OpenLimit
    } else {
        Refusal::Balance { balance_cents }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(account: u128) -> ChargedOrder {
        ChargedOrder {
            new: NewVerification {
                id: VerificationId::new(),
                account_id: AccountId(Uuid::from_u128(account)),
                service: "telegram".to_owned(),
                country: "us".to_owned(),
                price_cents: 100,
                trace_id: "0".repeat(32),
            },
            max_open: 10,
        }
    }

    #[test]
    fn an_accounts_orders_go_into_successive_rounds_in_their_order() {
        let orders = [order(1), order(2), order(1), order(3), order(1), order(2)];
        assert_eq!(rounds(&orders), vec![vec![0, 1, 3], vec![2, 5], vec![4]]);
        assert!(rounds(&[]).is_empty());
    }
}
