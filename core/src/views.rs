//! The JSON shapes customers see, in API responses and in webhook payloads alike.
//!
//! The database function `verification_json` (migration 0004) builds the same object for the
//! events it records; `tests/it/webhooks.rs` keeps the two identical.

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::store::verifications::Verification;

/// A verification as customers see it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationView {
    #[schema(format = Uuid)]
    pub id: String,
    /// `pending`, `ordering`, `waiting_sms`, `completed`, `timed_out`, `cancelled`,
    /// `failed` or `refunded`.
    #[schema(value_type = String, example = "waiting_sms")]
    pub status: &'static str,
    pub service: String,
    pub country: String,
    pub price_cents: i64,
    pub phone_number: Option<String>,
    pub code: Option<String>,
    pub sms_text: Option<String>,
    /// When the SMS must have arrived, once a number is assigned.
    #[serde(serialize_with = "timestamp_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub failure_reason: Option<String>,
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp")]
    pub updated_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "timestamp_opt")]
    pub refunded_at: Option<DateTime<Utc>>,
}

impl From<&Verification> for VerificationView {
    fn from(v: &Verification) -> Self {
        Self {
            id: v.id.to_string(),
            status: v.status.as_str(),
            service: v.service.clone(),
            country: v.country.clone(),
            price_cents: v.price_cents,
            phone_number: v.phone_number.clone(),
            code: v.code.clone(),
            sms_text: v.sms_text.clone(),
            expires_at: v.deadline,
            cancel_requested: v.cancel_requested_at.is_some(),
            failure_reason: v.failure_reason.clone(),
            created_at: v.created_at,
            updated_at: v.updated_at,
            completed_at: v.completed_at,
            refunded_at: v.refunded_at,
        }
    }
}

/// Every timestamp we publish: UTC, exactly six fractional digits, `Z`.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub fn timestamp<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(at))
}

pub fn timestamp_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => timestamp(at, serializer),
        None => serializer.serialize_none(),
    }
}
