//! Opaque page cursors: the creation time and id of a page's last row, base64url-encoded so
//! clients treat them as tokens, not as something to build.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use namaskah_core::domain::VerificationId;

use crate::ApiError;

pub fn encode(created_at: DateTime<Utc>, id: VerificationId) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{id}", created_at.timestamp_micros()))
}

pub fn decode(cursor: &str) -> Result<(DateTime<Utc>, VerificationId), ApiError> {
    let invalid = || {
        ApiError::InvalidQuery(
            "`cursor` is not one this API gave out; pass `next_cursor` back unchanged".to_owned(),
        )
    };
    let text = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let created_at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = VerificationId::parse(id).ok_or_else(invalid)?;
    Ok((created_at, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).expect("time");
        let id = VerificationId::new();
        assert_eq!(decode(&encode(at, id)).ok(), Some((at, id)));
        for bad in [
            "",
            "!!!",
            "bm90IGEgY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("12:nope"),
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
