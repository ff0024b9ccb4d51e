//! Schemas of the answers that handlers build as JSON envelopes around the typed views.
//! The contract tests (`tests/it/contract.rs`: every documented route, and schemathesis
//! checking every answer against these schemas) keep them true.
#![allow(dead_code)] // read by the OpenAPI derive only

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use namaskah_core::views::VerificationView;

use crate::{
    v1::{
        api_keys::KeyView,
        webhook_endpoints::EndpointView,
        webhook_messages::{AttemptView, MessageView},
    },
    v2::verifications::{EventView, ItemError},
};

/// v1's error body.
#[derive(Serialize, ToSchema)]
pub struct V1Error {
    error: V1ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct V1ErrorDetail {
    /// Machine-readable, stable: `rate_limited`, `not_found`, … (see `/docs#errors`).
    code: String,
    /// For people.
    message: String,
}

/// v2's error body: RFC 9457 problem details (`application/problem+json`).
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `/docs#error-<code>`: this error's entry in the API reference.
    #[serde(rename = "type")]
    problem_type: String,
    title: String,
    status: u16,
    detail: String,
    code: String,
    /// `rate_limited` only: seconds until a retry may succeed.
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<u64>,
    /// `batch_rejected` only: why each refused item was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<ItemError>>,
}

#[derive(Serialize, ToSchema)]
pub struct Account {
    id: uuid::Uuid,
    email: String,
    /// `free`, `basic`, `pro` or `enterprise`.
    tier: String,
    balance_cents: i64,
    /// Hand it out: the account is rewarded when a referee first tops up.
    referral_code: String,
    created_at: DateTime<Utc>,
    /// The account's tenant as its customers see it.
    brand: namaskah_core::store::tenants::Brand,
}

#[derive(Serialize, ToSchema)]
pub struct Service {
    service: String,
    country: String,
    /// The catalogue price; the account's tier multiplier applies when charging.
    price_cents: i64,
    sms_timeout_secs: i32,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceList {
    data: Vec<Service>,
}

#[derive(Serialize, ToSchema)]
pub struct VerificationList {
    data: Vec<VerificationView>,
    limit: i64,
    offset: i64,
    has_more: bool,
}

/// A verification, with its events when `expand=events` asked for them.
#[derive(Serialize, ToSchema)]
pub struct ExpandedVerification {
    #[serde(flatten)]
    verification: VerificationView,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventView>>,
}

#[derive(Serialize, ToSchema)]
pub struct VerificationPage {
    data: Vec<ExpandedVerification>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItemResult {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<VerificationView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Problem>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResult {
    results: Vec<BatchItemResult>,
    created: usize,
    failed: usize,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentList {
    data: Vec<crate::v1::payments::PaymentView>,
}

/// The answer to a provider's webhook.
#[derive(Serialize, ToSchema)]
pub struct PaymentReceipt {
    received: bool,
    /// `credited`, or `duplicate` when the payment was credited before.
    outcome: String,
}

/// Every row of every table that belongs to the account (without credentials).
#[derive(Serialize, ToSchema)]
pub struct AccountExport {
    account: serde_json::Value,
    api_keys: Vec<serde_json::Value>,
    verifications: Vec<serde_json::Value>,
    ledger_entries: Vec<serde_json::Value>,
    payments: Vec<serde_json::Value>,
    webhook_endpoints: Vec<serde_json::Value>,
    webhook_messages: Vec<serde_json::Value>,
    referees: Vec<serde_json::Value>,
    exported_at: String,
}

/// The subscription after a change, and what the change did.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionChange {
    tier: String,
    monthly_price_cents: i64,
    renews_at: Option<DateTime<Utc>>,
    pending_tier: Option<String>,
    /// `upgraded`, `downgrade_scheduled`, `downgraded` or `unchanged`.
    change: String,
    charged_cents: i64,
}

#[derive(Serialize, ToSchema)]
pub struct TenantAccountList {
    data: Vec<crate::v1::tenant::TenantAccount>,
    limit: i64,
    offset: i64,
    has_more: bool,
}

/// A tenant's new account and its first key (the key itself only in this answer).
#[derive(Serialize, ToSchema)]
pub struct TenantAccountCreated {
    account: crate::v1::tenant::TenantAccount,
    api_key: KeyView,
}

#[derive(Serialize, ToSchema)]
pub struct TenantPriceList {
    data: Vec<namaskah_core::store::tenants::Price>,
}

#[derive(Serialize, ToSchema)]
pub struct Erased {
    id: uuid::Uuid,
    erased: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    data: Vec<KeyView>,
}

#[derive(Serialize, ToSchema)]
pub struct EndpointList {
    data: Vec<EndpointView>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    data: Vec<MessageView>,
    limit: i64,
    offset: i64,
    has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AttemptList {
    data: Vec<AttemptView>,
}

#[derive(Serialize, ToSchema)]
pub struct TestSent {
    message_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct Recovered {
    recovered: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    replayed: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    status: String,
    checks: ReadinessChecks,
}

#[derive(Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok`, or what went wrong.
    postgres: String,
    rabbitmq: String,
}
