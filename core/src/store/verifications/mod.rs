//! Verifications: every change of status is a conditional update built from a
//! [`Transition`], and the message it causes is written to the outbox in the same statement
//! or transaction.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

mod claims;
mod create;
mod queries;
mod transitions;

pub use claims::{OrderingClaim, OrderingClaimRequest, claim_for_ordering, release_ordering_claim};
pub use create::{
    ChargedOrder, NewVerification, Refusal, insert_charged, insert_charged_many, prepare_for_orders,
};
pub use queries::{find_for_account, find_many, list_for_account, page_for_account};
pub use transitions::{
    AssignedNumber, CancelOutcome, Guard, ReceivedSms, assign_numbers, cancel_by_customer,
    complete_many, settle_owing_refund,
};

use super::StoreError;
use crate::domain::{AccountId, Status, VerificationId};

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
