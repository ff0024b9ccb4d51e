//! The JSON shape of a verification, as customers see it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use namaskah_core::store::verifications::Verification;

#[derive(Debug, Serialize)]
pub struct VerificationView {
    pub id: String,
    pub status: &'static str,
    pub service: String,
    pub country: String,
    pub price_cents: i64,
    pub phone_number: Option<String>,
    pub code: Option<String>,
    pub sms_text: Option<String>,
    /// When the SMS must have arrived, once a number is assigned.
    pub expires_at: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
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
