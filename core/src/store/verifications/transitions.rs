//! Changes of status after the order: a number recorded, an SMS received, a refund owed, a
//! cancel by the customer — each a conditional update that writes its message in the same
//! statement.

use sqlx::PgPool;
use uuid::Uuid;

use super::{StoreError, Verification, answer_each_once, column, first_of_each, sql};
use crate::{
    domain::{AccountId, Status, Transition, VerificationId},
    queue::{Envelope, Job, QueueName},
};

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
         ), numbered AS (
             -- The dashboard finds a verification by its number through this list, so that
             -- no index covers `phone_number` and this update stays HOT (migration 0027).
             INSERT INTO verification_numbers (phone_number, verification_id)
             SELECT phone_number, id FROM assigned
             ON CONFLICT DO NOTHING
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
            crate::store::outbox::insert(&mut tx, &refund, 0).await?;
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
                crate::store::outbox::insert(&mut tx, &cancel, 0).await?;
            }
            CancelOutcome::Requested(requested)
        }
        _ => CancelOutcome::NotCancellable(current),
    };
    tx.commit().await?;
    Ok(outcome)
}
