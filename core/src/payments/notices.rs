//! Reading the providers' webhooks: signature first, then the event.
//!
//! - Paystack: `x-paystack-signature` is the hex HMAC-SHA512 of the raw body, keyed with the
//!   secret key. Event `charge.success` with `data.reference`, `data.amount`, `data.currency`.
//! - Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, each `v1` the HMAC-SHA256 of
//!   `"{t}.{raw body}"` keyed with the webhook secret; `t` must be within the tolerance.
//!   Events `checkout.session.completed` (paid) and `payment_intent.succeeded`, our reference
//!   in `client_reference_id` or `metadata.reference`.
//!
//! Signatures are compared in constant time (`Mac::verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Sha256, Sha512};

use super::PaymentProvider;

/// A verified event that says money arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaidNotice {
    pub provider: PaymentProvider,
    pub event_id: Option<String>,
    pub event_type: String,
    pub reference: String,
    pub amount_cents: i64,
    pub currency: String,
}

/// Why a webhook call was refused; each becomes a `400` with this code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoticeError {
    #[error("the request carries no signature header")]
    MissingSignature,
    #[error("the signature does not match the body")]
    BadSignature,
    #[error("the signature's timestamp is outside the tolerance (a replay or a wrong clock)")]
    StaleSignature,
    #[error("the body is not a {0} event: {1}")]
    Malformed(&'static str, String),
    #[error("event type {0:?} is not one that pays; subscribe only to the documented ones")]
    UnhandledEvent(String),
}

impl NoticeError {
    /// The notice cannot be shown to come from the provider (as opposed to a genuine
    /// notice that cannot be used).
    pub fn is_signature_problem(&self) -> bool {
        matches!(
            self,
            NoticeError::MissingSignature | NoticeError::BadSignature | NoticeError::StaleSignature
        )
    }

    pub fn code(&self) -> &'static str {
        match self {
            NoticeError::MissingSignature => "missing_signature",
            NoticeError::BadSignature => "invalid_signature",
            NoticeError::StaleSignature => "stale_signature",
            NoticeError::Malformed(..) => "malformed_event",
            NoticeError::UnhandledEvent(_) => "unhandled_event",
        }
    }
}

/// The event type of a body, if it has one (for the audit trail of refused calls).
pub fn event_type(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("event")
        .or_else(|| value.get("type"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub fn paystack_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn paystack(
    secret: &str,
    signature: Option<&str>,
    body: &[u8],
) -> Result<PaidNotice, NoticeError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(NoticeError::MissingSignature)?;
    let expected = hex::decode(signature).map_err(|_| NoticeError::BadSignature)?;
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| NoticeError::BadSignature)?;

    let malformed = |why: &str| NoticeError::Malformed("Paystack", why.to_owned());
    let event: Value = serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
    let event_type = event
        .get("event")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `event`"))?;
    if event_type != "charge.success" {
        return Err(NoticeError::UnhandledEvent(event_type.to_owned()));
    }
    let data = event.get("data").ok_or_else(|| malformed("no `data`"))?;
    if data.get("status").and_then(Value::as_str) != Some("success") {
        return Err(malformed("`data.status` is not success"));
    }
    Ok(PaidNotice {
        provider: PaymentProvider::Paystack,
        event_id: data.get("id").map(|id| match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        event_type: event_type.to_owned(),
        reference: string(data, "reference").ok_or_else(|| malformed("no `data.reference`"))?,
        amount_cents: data
            .get("amount")
            .and_then(Value::as_i64)
            .ok_or_else(|| malformed("no integer `data.amount`"))?,
        currency: string(data, "currency")
            .ok_or_else(|| malformed("no `data.currency`"))?
            .to_ascii_uppercase(),
    })
}

/// The `Stripe-Signature` header for a body, as Stripe computes it.
pub fn stripe_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(stripe_mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn stripe_mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

pub fn stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<PaidNotice, NoticeError> {
    let header = header
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(NoticeError::MissingSignature)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(NoticeError::BadSignature)?;
    if !signatures.iter().any(|candidate| {
        stripe_mac(secret, timestamp, body)
            .verify_slice(candidate)
            .is_ok()
    }) {
        return Err(NoticeError::BadSignature);
    }
    // Checked after the signature, so that a forged timestamp cannot tell us anything.
    if (now - timestamp).abs() > tolerance_secs {
        return Err(NoticeError::StaleSignature);
    }

    let malformed = |why: &str| NoticeError::Malformed("Stripe", why.to_owned());
    let event: Value = serde_json::from_slice(body).map_err(|e| malformed(&e.to_string()))?;
    let event_type = event
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no `type`"))?;
    let object = event
        .pointer("/data/object")
        .ok_or_else(|| malformed("no `data.object`"))?;
    let reference = || {
        string(object, "client_reference_id")
            .or_else(|| {
                object
                    .pointer("/metadata/reference")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .ok_or_else(|| malformed("no `client_reference_id` or `metadata.reference`"))
    };
    let amount = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_i64)
            .ok_or_else(|| malformed(&format!("no integer `{field}`")))
    };
    let (reference, amount_cents) = match event_type {
        "checkout.session.completed" => {
            if object.get("payment_status").and_then(Value::as_str) != Some("paid") {
                return Err(malformed("the session is not paid yet"));
            }
            (reference()?, amount("amount_total")?)
        }
        "payment_intent.succeeded" => (reference()?, amount("amount_received")?),
        other => return Err(NoticeError::UnhandledEvent(other.to_owned())),
    };
    Ok(PaidNotice {
        provider: PaymentProvider::Stripe,
        event_id: string(&event, "id"),
        event_type: event_type.to_owned(),
        reference,
        amount_cents,
        currency: string(object, "currency")
            .ok_or_else(|| malformed("no `currency`"))?
            .to_ascii_uppercase(),
    })
}

fn string(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_paystack_charge_is_read_only_with_the_right_signature() {
        let body = json!({"event": "charge.success", "data": {"id": 302961, "status": "success",
            "reference": "pay_1", "amount": 5000, "currency": "NGN"}})
        .to_string();
        let signature = paystack_signature("sk_test", body.as_bytes());
        let notice = paystack("sk_test", Some(&signature), body.as_bytes()).expect("valid");
        assert_eq!(notice.reference, "pay_1");
        assert_eq!(notice.amount_cents, 5000);
        assert_eq!(notice.currency, "NGN");
        assert_eq!(notice.event_id.as_deref(), Some("302961"));
        assert_eq!(
            paystack("other", Some(&signature), body.as_bytes()),
            Err(NoticeError::BadSignature)
        );
        assert_eq!(
            paystack("sk_test", None, body.as_bytes()),
            Err(NoticeError::MissingSignature)
        );
        assert_eq!(
            paystack("sk_test", Some("zz"), body.as_bytes()),
            Err(NoticeError::BadSignature)
        );
        let transfer = json!({"event": "transfer.success", "data": {}}).to_string();
        let signed = paystack_signature("sk_test", transfer.as_bytes());
        assert_eq!(
            paystack("sk_test", Some(&signed), transfer.as_bytes()),
            Err(NoticeError::UnhandledEvent("transfer.success".to_owned()))
        );
    }

    #[test]
    fn a_stripe_signature_is_checked_with_its_timestamp() {
        let body = json!({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {
            "client_reference_id": "pay_2", "payment_status": "paid", "amount_total": 1500,
            "currency": "usd"}}})
        .to_string();
        let header = stripe_signature("whsec_x", 1_000, body.as_bytes());
        let notice = stripe("whsec_x", Some(&header), body.as_bytes(), 1_100, 300).expect("valid");
        assert_eq!(
            (notice.reference.as_str(), notice.amount_cents),
            ("pay_2", 1500)
        );
        assert_eq!(notice.currency, "USD");
        assert_eq!(
            stripe("whsec_x", Some(&header), body.as_bytes(), 2_000, 300),
            Err(NoticeError::StaleSignature)
        );
        assert_eq!(
            stripe("whsec_y", Some(&header), body.as_bytes(), 1_100, 300),
            Err(NoticeError::BadSignature)
        );
        // A second v1 (Stripe rolls secrets this way) may be the one that matches.
        let rolled = format!("t=1000,v1={},{}", "00".repeat(32), &header[7..]);
        assert!(stripe("whsec_x", Some(&rolled), body.as_bytes(), 1_000, 300).is_ok());
    }
}
