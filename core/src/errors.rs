//! Error tracking: every role records its failures, grouped by fingerprint, for the dashboard
//! (and Sentry, when `SENTRY_DSN` is set).
//!
//! The tracker is process-wide, like the logger: roles call [`record`] wherever something
//! fails, and the process installs one [`ErrorTracker`] at start. Recording never blocks the
//! caller: the row is written by a spawned task.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::OnceLock;

use crate::store::error_groups;
pub use crate::store::error_groups::Failure;

/// Where failures go.
#[derive(Clone)]
pub struct ErrorTracker {
    pool: PgPool,
    sentry: bool,
}

static TRACKER: OnceLock<ErrorTracker> = OnceLock::new();

/// Installs the process's tracker; the first call wins.
pub fn install(pool: PgPool, sentry: bool) {
    let _ = TRACKER.set(ErrorTracker { pool, sentry });
}

/// Records a failure (a no-op before [`install`]).
pub fn record(failure: Failure) {
    metrics::counter!("namaskah_errors_total", "role" => failure.role, "kind" => failure.kind.clone()).increment(1);
    let Some(tracker) = TRACKER.get() else {
        return;
    };
    if tracker.sentry {
        sentry_report(&failure);
    }
    let pool = tracker.pool.clone();
    let fingerprint = fingerprint(&failure);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(error) = error_groups::record(&pool, &fingerprint, &failure).await {
                tracing::debug!(%error, "could not record a failure for the dashboard");
            }
        });
    }
}

fn sentry_report(failure: &Failure) {
    sentry::with_scope(
        |scope| {
            scope.set_tag("role", failure.role);
            scope.set_tag("kind", &failure.kind);
            if let Some(queue) = &failure.queue {
                scope.set_tag("queue", queue);
            }
            if let Some(trace) = &failure.trace_id {
                scope.set_tag("trace_id", trace);
            }
            if let Some(id) = failure.verification_id {
                scope.set_extra("verification_id", id.to_string().into());
            }
        },
        || sentry::capture_message(&failure.message, sentry::Level::Error),
    );
}

/// The group of a failure: the same role, queue, kind and message shape, whatever the ids
/// and numbers in the message.
pub fn fingerprint(failure: &Failure) -> String {
    let shape = message_shape(&failure.message);
    let mut hasher = Sha256::new();
    for part in [
        failure.role,
        failure.queue.as_deref().unwrap_or(""),
        &failure.kind,
        &shape,
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// The message with every run of digits and every hex-looking word masked.
fn message_shape(message: &str) -> String {
    message
        .split_inclusive(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .map(|word| {
            let token: String = word
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let rest = &word[token.len().min(word.len())..];
            let hexish =
                token.len() >= 8 && token.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            if hexish || token.chars().any(|c| c.is_ascii_digit()) {
                format!("#{rest}")
            } else {
                word.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(message: &str) -> Failure {
        Failure {
            role: "worker",
            queue: Some("polling".into()),
            kind: "retryable".into(),
            message: message.into(),
            ..Failure::default()
        }
    }

    #[test]
    fn ids_and_numbers_do_not_split_groups() {
        let a = fingerprint(&failure(
            "order 100123 of 0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00 failed: HTTP 503",
        ));
        let b = fingerprint(&failure(
            "order 100999 of 0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1aff failed: HTTP 502",
        ));
        assert_eq!(a, b);
        assert_ne!(a, fingerprint(&failure("the provider refused the request")));
    }
}
