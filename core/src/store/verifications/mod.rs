//! Verifications: every change of status is a conditional update built from a
//! [`Transition`], and the message it causes is written to the outbox in the same statement
//! or transaction.

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool};
use std::time::Duration;
use uuid::Uuid;

mod create;

pub use create::{ChargedOrder, NewVerification, Refusal, insert_charged, insert_charged_many};

use super::StoreError;
use crate::{
    domain::{AccountId, Status, Transition, VerificationId},
    queue::{Envelope, Job, QueueName},
};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Verification {
    pub id: VerificationId,
    pub account_id: AccountId,
    pub service: String,
    pub country: String,
    pub price_cents: i64,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub order_attempts: i32,
    pub ordering_claim: Option<Uuid>,
    pub ordering_claimed_at: Option<DateTime<Utc>>,
    pub provider: Option<String>,
    pub provider_order_id: Option<String>,
    pub phone_number: Option<String>,
    pub code: Option<String>,
    pub sms_text: Option<String>,
    pub failure_reason: Option<String>,
    pub deadline: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub trace_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub number_assigned_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, account_id, service, country, price_cents, status, order_attempts,
    ordering_claim, ordering_claimed_at, provider,
    provider_order_id, phone_number, code, sms_text, failure_reason, deadline, cancel_requested_at,
    trace_id, created_at, updated_at, number_assigned_at, completed_at, refunded_at";

fn sql(template: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(template.replace("{COLUMNS}", COLUMNS))
}

/// The verifications, in one statement; the answers are in the order of `ids`, `None` for
/// an unknown id.
pub async fn find_many(
    pool: &PgPool,
    ids: &[VerificationId],
) -> Result<Vec<Option<Verification>>, StoreError> {
    let wanted: Vec<Uuid> = ids.iter().map(|id| id.0).collect();
    let found: std::collections::HashMap<VerificationId, Verification> =
        sqlx::query_as::<_, Verification>(sql(
            "SELECT {COLUMNS} FROM verifications WHERE id = ANY($1)",
        ))
        .bind(&wanted)
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|verification| (verification.id, verification))
        .collect();
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}

/// The verification, if it belongs to the account; another account's id is "not found".
pub async fn find_for_account(
    pool: &PgPool,
    account: AccountId,
    id: VerificationId,
) -> Result<Option<Verification>, StoreError> {
    Ok(sqlx::query_as::<_, Verification>(sql(
        "SELECT {COLUMNS} FROM verifications WHERE id = $1 AND account_id = $2",
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(pool)
    .await?)
}

/// A page of an account's verifications, newest first.
pub async fn list_for_account(
    pool: &PgPool,
    account: AccountId,
    status: Option<Status>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Verification>, StoreError> {
    Ok(
        sqlx::query_as::<_, Verification>(sql("SELECT {COLUMNS} FROM verifications
         WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC, id DESC
         LIMIT $3 OFFSET $4"))
        .bind(account)
        .bind(status.map(Status::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?,
    )
}

/// A page of an account's verifications, newest first, strictly after `cursor` (the
/// creation time and id of the last row of the previous page). Keyset pagination: a row
/// that existed when the first page was read appears on exactly one page, whatever is
/// inserted meanwhile (offsets would shift and skip or repeat rows).
pub async fn page_for_account(
    pool: &PgPool,
    account: AccountId,
    status: Option<Status>,
    cursor: Option<(DateTime<Utc>, VerificationId)>,
    limit: i64,
) -> Result<Vec<Verification>, StoreError> {
    let (created_at, id) = cursor.unzip();
    Ok(
        sqlx::query_as::<_, Verification>(sql("SELECT {COLUMNS} FROM verifications
         WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
           AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
         ORDER BY created_at DESC, id DESC
         LIMIT $5"))
        .bind(account)
        .bind(status.map(Status::as_str))
        .bind(created_at)
        .bind(id)
        .bind(limit)
        .fetch_all(pool)
        .await?,
    )
}

/// The outcome of trying to claim a verification for ordering.
#[derive(Debug)]
pub enum OrderingClaim {
    /// This attempt holds the row; only the holder of `claim` may record the result.
    Claimed {
        verification: Box<Verification>,
        claim: Uuid,
    },
    /// Another delivery holds a live claim (a duplicate message, or a worker that may have
    /// died mid-purchase): look again once the claim has had time to finish or expire.
    Busy { retry_after: Duration },
    /// Nothing to order: the verification is past ordering, or gone.
    NotNeeded,
}

/// One verification to claim for ordering attempt `attempt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderingClaimRequest {
    pub id: VerificationId,
    pub attempt: u32,
}

/// Claims the verifications for ordering, in one statement for the whole batch; the answers
/// are in the order of `requests`. A newer attempt (a retry) takes over from an older one;
/// the same attempt (a duplicate, or a redelivery after a crash) only once the previous
/// claim is older than `lease`. A verification asked for twice in one batch is claimed once;
/// the second request finds it held, as if it came just after the first.
pub async fn claim_for_ordering(
    pool: &PgPool,
    requests: &[OrderingClaimRequest],
    lease: Duration,
) -> Result<Vec<OrderingClaim>, StoreError> {
    let transition = Transition::StartOrdering;
    let unique = first_of_each(requests, |request| request.id);
    let ids = column(&unique, |request| request.id.0);
    let attempts = column(&unique, |request| {
        i32::try_from(request.attempt).unwrap_or(i32::MAX)
    });
    let claims = column(&unique, |_| Uuid::new_v4());
    let claimed = sqlx::query_as::<_, Verification>(sql(
        "UPDATE verifications SET status = $5, order_attempts = w.wanted_attempt,
                                  ordering_claim = w.wanted_claim,
                                  ordering_claimed_at = now(), updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::uuid[]) AS w(wanted_id, wanted_attempt, wanted_claim)
         WHERE id = w.wanted_id AND status = ANY($4)
           AND (order_attempts < w.wanted_attempt
                OR ordering_claimed_at IS NULL
                OR ordering_claimed_at < now() - make_interval(secs => $6))
         RETURNING {COLUMNS}",
    ))
    .bind(&ids)
    .bind(&attempts)
    .bind(&claims)
    .bind(transition.from_names())
    .bind(transition.to().as_str())
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let claim_of: std::collections::HashMap<VerificationId, Uuid> = ids
        .iter()
        .zip(&claims)
        .map(|(&id, &claim)| (VerificationId(id), claim))
        .collect();
    let mut claimed: std::collections::HashMap<VerificationId, Verification> = claimed
        .into_iter()
        .map(|verification| (verification.id, verification))
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        // `remove`: a second request for the same verification finds it held by the first.
        let answer = match claimed.remove(&request.id).zip(claim_of.get(&request.id)) {
            Some((verification, &claim)) => OrderingClaim::Claimed {
                verification: Box::new(verification),
                claim,
            },
            None => why_not_claimed_for_ordering(pool, request.id, lease).await?,
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// Why a verification was not claimed for ordering (the rare path).
async fn why_not_claimed_for_ordering(
    pool: &PgPool,
    id: VerificationId,
    lease: Duration,
) -> Result<OrderingClaim, StoreError> {
    let held: Option<(String, Option<f64>)> = sqlx::query_as(
        "SELECT status, extract(epoch FROM ordering_claimed_at + make_interval(secs => $2) - now())::float8
         FROM verifications WHERE id = $1",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(match held {
        Some((status, remaining)) if status == Status::Ordering.as_str() => OrderingClaim::Busy {
            retry_after: Duration::from_secs_f64(remaining.unwrap_or(0.0).max(0.0))
                + Duration::from_secs(1),
        },
        _ => OrderingClaim::NotNeeded,
    })
}

/// Lets go of an ordering claim without spending its attempt: the same attempt, delivered
/// again, claims the verification at once instead of waiting out the lease. Used when every
/// provider was skipped (breaker open, bulkhead full), which taught nothing.
pub async fn release_ordering_claim(
    pool: &PgPool,
    id: VerificationId,
    claim: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE verifications SET ordering_claimed_at = NULL
         WHERE id = $1 AND status = 'ordering' AND ordering_claim = $2",
    )
    .bind(id)
    .bind(claim)
    .execute(pool)
    .await?;
    Ok(())
}

/// The number a provider sold, to record for the verification that holds `claim`.
#[derive(Clone, Debug)]
pub struct AssignedNumber {
    pub id: VerificationId,
    pub claim: Uuid,
    pub provider: String,
    pub provider_order_id: String,
    pub phone_number: String,
    pub sms_timeout_secs: i32,
    pub trace_id: String,
}

/// Records the numbers and schedules each first poll (after `first_poll_delay_ms`), or,
/// when the customer asked to cancel while the number was being bought, the cancellation of
/// the order — in one statement for the whole batch. The answers are in the order of
/// `numbers`: `None` when the attempt no longer owns the row (its claim was taken over), or
/// for a second number for the same claim in one batch, which finds the row recorded.
pub async fn assign_numbers(
    pool: &PgPool,
    numbers: &[AssignedNumber],
    first_poll_delay_ms: i32,
) -> Result<Vec<Option<Verification>>, StoreError> {
    let transition = Transition::AssignNumber;
    let unique = first_of_each(numbers, |number| number.id);
    let first_message = |job: Job, number: &AssignedNumber| {
        Envelope::first(job, number.trace_id.as_str()).to_json()
    };
    let polls = column(&unique, |number| {
        let verification_id = number.id;
        first_message(Job::PollSms { verification_id }, number)
    });
    let cancels = column(&unique, |number| {
        let verification_id = number.id;
        first_message(Job::CancelOrder { verification_id }, number)
    });
    let assigned = sqlx::query_as::<_, Verification>(sql("WITH assigned AS (
             UPDATE verifications SET
                 status = $9, provider = w.wanted_provider, provider_order_id = w.wanted_order,
                 phone_number = w.wanted_phone,
                 deadline = now() + make_interval(secs => w.wanted_timeout),
                 number_assigned_at = now(), updated_at = now()
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::jsonb[], $8::jsonb[])
                  AS w(wanted_id, wanted_claim, wanted_provider, wanted_order, wanted_phone,
                       wanted_timeout, wanted_poll, wanted_cancel)
             WHERE id = w.wanted_id AND status = ANY($10) AND ordering_claim = w.wanted_claim
             RETURNING {COLUMNS}, w.wanted_poll, w.wanted_cancel
         ), message AS (
             INSERT INTO outbox (queue, payload, delay_ms)
             SELECT $11,
                    CASE WHEN cancel_requested_at IS NULL THEN wanted_poll ELSE wanted_cancel END,
                    CASE WHEN cancel_requested_at IS NULL THEN $12 ELSE 0 END
             FROM assigned
         )
         SELECT {COLUMNS} FROM assigned"))
    .bind(column(&unique, |number| number.id.0))
    .bind(column(&unique, |number| number.claim))
    .bind(column(&unique, |number| number.provider.as_str()))
    .bind(column(&unique, |number| number.provider_order_id.as_str()))
    .bind(column(&unique, |number| number.phone_number.as_str()))
    .bind(column(&unique, |number| f64::from(number.sms_timeout_secs)))
    .bind(&polls)
    .bind(&cancels)
    .bind(transition.to().as_str())
    .bind(transition.from_names())
    .bind(QueueName::Polling.as_str())
    .bind(first_poll_delay_ms)
    .fetch_all(pool)
    .await?;
    Ok(answer_each_once(
        numbers.iter().map(|number| number.id),
        assigned,
    ))
}

/// The requests of a batch without repeats, each at its first place: a statement updates a
/// row once, however often the batch names it.
fn first_of_each<Request>(
    requests: &[Request],
    id: impl Fn(&Request) -> VerificationId,
) -> Vec<&Request> {
    let mut seen = std::collections::HashSet::with_capacity(requests.len());
    requests
        .iter()
        .filter(|request| seen.insert(id(request)))
        .collect()
}

/// One array parameter of a batch statement (for `unnest`): `field` of every request.
fn column<'a, Request, Value>(
    requests: &[&'a Request],
    field: impl Fn(&'a Request) -> Value,
) -> Vec<Value> {
    requests.iter().map(|request| field(request)).collect()
}

/// The updated rows as answers to requests in order: a request gets its row the first time
/// it is asked for and `None` after (a duplicate in one batch finds the row already changed,
/// as if it came a moment later), or for a row the update did not touch.
fn answer_each_once(
    requests: impl Iterator<Item = VerificationId>,
    updated: Vec<Verification>,
) -> Vec<Option<Verification>> {
    let mut updated: std::collections::HashMap<VerificationId, Verification> = updated
        .into_iter()
        .map(|verification| (verification.id, verification))
        .collect();
    requests.map(|id| updated.remove(&id)).collect()
}

/// Which row a settling update may touch.
#[derive(Clone, Copy, Debug)]
pub enum Guard {
    /// Any row in one of the transition's `from` statuses.
    Status,
    /// Only while this ordering claim holds the row, so a stale attempt cannot fail a
    /// verification a newer attempt is working on.
    OrderingClaim(Uuid),
}

/// Moves the verification into a status that is owed a refund (timed out, cancelled,
/// failed) and writes the refund message in the same statement. `None` when another worker
/// moved it first.
pub async fn settle_owing_refund(
    pool: &PgPool,
    id: VerificationId,
    transition: Transition,
    guard: Guard,
    reason: Option<&str>,
    trace_id: &str,
) -> Result<Option<Verification>, StoreError> {
    debug_assert!(transition.owes_refund(), "{transition:?} owes no refund");
    let refund = Envelope::first(
        Job::Refund {
            verification_id: id,
        },
        trace_id,
    );
    let claim = match guard {
        Guard::Status => None,
        Guard::OrderingClaim(claim) => Some(claim),
    };
    Ok(sqlx::query_as::<_, Verification>(sql("WITH settled AS (
             UPDATE verifications SET status = $3, failure_reason = coalesce($5, failure_reason),
                                      updated_at = now()
             WHERE id = $1 AND status = ANY($2) AND ($4::uuid IS NULL OR ordering_claim = $4)
             RETURNING {COLUMNS}
         ), message AS (
             INSERT INTO outbox (queue, payload) SELECT $6, $7 FROM settled
         )
         SELECT {COLUMNS} FROM settled"))
    .bind(id)
    .bind(transition.from_names())
    .bind(transition.to().as_str())
    .bind(claim)
    .bind(reason)
    .bind(refund.job.queue().as_str())
    .bind(refund.to_json())
    .fetch_optional(pool)
    .await?)
}

/// An SMS to store.
#[derive(Clone, Debug)]
pub struct ReceivedSms {
    pub id: VerificationId,
    /// Orders the batch's updates: see [`complete_many`].
    pub account_id: AccountId,
    pub code: String,
    pub text: String,
}

/// Stores the SMS and completes the verifications, in one statement for the whole batch.
/// The answers are in the order of `received`: `None` when the verification is no longer
/// waiting (it was cancelled or timed out first, or an earlier request of the batch
/// completed it).
///
/// The statement's trigger (migrations 0019, 0020) updates the rows many completions share,
/// the accounts' open counters, once per batch and in key order: two batches running at once
/// (two polling replicas) take those locks in the same order.
pub async fn complete_many(
    pool: &PgPool,
    received: &[ReceivedSms],
) -> Result<Vec<Option<Verification>>, StoreError> {
    let transition = Transition::Complete;
    let mut unique = first_of_each(received, |sms| sms.id);
    unique.sort_by_key(|sms| (sms.account_id.0, sms.id.0));
    let completed = sqlx::query_as::<_, Verification>(sql(
        "UPDATE verifications SET status = $4, code = w.wanted_code, sms_text = w.wanted_text,
                                  completed_at = now(), updated_at = now(), open_since = NULL
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS w(wanted_id, wanted_code, wanted_text)
         WHERE id = w.wanted_id AND status = ANY($5)
         RETURNING {COLUMNS}",
    ))
    .bind(column(&unique, |sms| sms.id.0))
    .bind(column(&unique, |sms| sms.code.as_str()))
    .bind(column(&unique, |sms| sms.text.as_str()))
    .bind(transition.to().as_str())
    .bind(transition.from_names())
    .fetch_all(pool)
    .await?;
    Ok(answer_each_once(
        received.iter().map(|sms| sms.id),
        completed,
    ))
}

/// What a customer's cancel request did.
#[derive(Debug)]
pub enum CancelOutcome {
    /// No number had been bought yet: cancelled at once, refund on its way.
    Cancelled(Verification),
    /// A number is being bought or is assigned: the workers cancel the provider order and
    /// then the verification.
    Requested(Verification),
    /// Already completed, refunded or otherwise settled.
    NotCancellable(Verification),
    NotFound,
}

pub async fn cancel_by_customer(
    pool: &PgPool,
    account: AccountId,
    id: VerificationId,
) -> Result<CancelOutcome, StoreError> {
    let mut tx = pool.begin().await?;
    // The row lock orders this against the ordering worker's assignment: whichever comes
    // second sees the other's change.
    let current = sqlx::query_as::<_, Verification>(sql(
        "SELECT {COLUMNS} FROM verifications WHERE id = $1 AND account_id = $2 FOR UPDATE",
    ))
    .bind(id)
    .bind(account)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(current) = current else {
        return Ok(CancelOutcome::NotFound);
    };
    let outcome = match current.status {
        Status::Pending => {
            let transition = Transition::CancelBeforeNumber;
            let cancelled = sqlx::query_as::<_, Verification>(sql(
                "UPDATE verifications SET status = $2, cancel_requested_at = now(), updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}",
            ))
            .bind(id)
            .bind(transition.to().as_str())
            .fetch_one(&mut *tx)
            .await?;
            let refund = Envelope::first(
                Job::Refund {
                    verification_id: id,
                },
                &current.trace_id,
            );
            super::outbox::insert(&mut tx, &refund, 0).await?;
            CancelOutcome::Cancelled(cancelled)
        }
        Status::Ordering | Status::WaitingSms => {
            let requested = sqlx::query_as::<_, Verification>(sql(
                "UPDATE verifications SET cancel_requested_at = coalesce(cancel_requested_at, now()),
                                          updated_at = now()
                 WHERE id = $1 RETURNING {COLUMNS}",
            ))
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            // While ordering, the ordering worker sees the request when it assigns the number.
            if current.status == Status::WaitingSms && current.cancel_requested_at.is_none() {
                let cancel = Envelope::first(
                    Job::CancelOrder {
                        verification_id: id,
                    },
                    &current.trace_id,
                );
                super::outbox::insert(&mut tx, &cancel, 0).await?;
            }
            CancelOutcome::Requested(requested)
        }
        _ => CancelOutcome::NotCancellable(current),
    };
    tx.commit().await?;
    Ok(outcome)
}
