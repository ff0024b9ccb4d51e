//! Standard Webhooks signatures.
//!
//! Every request carries `webhook-id` (the message id, the same on every attempt),
//! `webhook-timestamp` (unix seconds of the attempt) and `webhook-signature`:
//! `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with the base64-decoded part
//! of the `whsec_` secret. During a secret rotation both secrets sign and the header holds
//! both signatures, space-separated.
//!
//! A receiver checks, with [`verify`] or any Standard Webhooks library:
//! 1. the timestamp is within 5 minutes of its clock (replays of old requests fail);
//! 2. one of the `v1,` signatures equals its own HMAC of `{id}.{timestamp}.{raw body}`,
//!    compared in constant time;
//! 3. it has not processed this `webhook-id` before (deliveries are at least once).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::WebhookSecret;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's timestamp may be from the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

fn mac(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.key())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature: `v1,<base64>`.
pub fn sign(secret: &WebhookSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(digest))
}

/// The `webhook-signature` header: one signature per secret, space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a request was not accepted as ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the webhook-timestamp header is not a unix time")]
    BadTimestamp,
    #[error("the request is older or newer than the tolerance allows")]
    OutsideTolerance,
    #[error("no signature matches")]
    NoMatchingSignature,
}

/// Checks a received request, as a receiver would.
pub fn verify(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now - timestamp).abs() > tolerance_secs {
        return Err(VerifyError::OutsideTolerance);
    }
    let matches = signatures
        .split_whitespace()
        .filter_map(|candidate| candidate.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|candidate| {
            mac(secret, id, timestamp, body)
                .verify_slice(&candidate)
                .is_ok()
        });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference libraries.
    #[test]
    fn matches_the_specification_example() {
        let secret =
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_receiver_accepts_ours_and_refuses_tampering() {
        let secret = WebhookSecret::generate();
        let body = br#"{"type":"verification.completed"}"#;
        let header = signature_header(&[&secret], "msg_1", 1_000, body);
        assert_eq!(
            verify(&secret, "msg_1", "1000", &header, body, 1_100, 300),
            Ok(())
        );
        assert_eq!(
            verify(&secret, "msg_1", "1000", &header, b"{}", 1_100, 300),
            Err(VerifyError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&secret, "msg_1", "1000", &header, body, 2_000, 300),
            Err(VerifyError::OutsideTolerance)
        );
        let other = WebhookSecret::generate();
        assert!(verify(&other, "msg_1", "1000", &header, body, 1_000, 300).is_err());
    }

    #[test]
    fn during_rotation_either_secret_verifies() {
        let (old, new) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = signature_header(&[&new, &old], "msg_2", 5, b"x");
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(verify(&old, "msg_2", "5", &header, b"x", 5, 300), Ok(()));
        assert_eq!(verify(&new, "msg_2", "5", &header, b"x", 5, 300), Ok(()));
    }
}
