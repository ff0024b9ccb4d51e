//! Every error the API returns, each with one status and one machine-readable code.
//!
//! Bodies are `{"error": {"code": "snake_case_code", "message": "human text"}}`.

use serde_json::json;
use warp::http::StatusCode;

use namaskah_core::{
    batch::BatchFailed,
    domain::Scope,
    errors::{self, Failure},
    store::StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("send your API key as `Authorization: Bearer <key>`")]
    MissingApiKey,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the API key has been revoked")]
    RevokedApiKey,
    #[error("the API key lacks the `{}` scope", .0.as_str())]
    InsufficientScope(Scope),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidQuery(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error("no {0} with this id")]
    NotFound(&'static str),
    #[error("no route matches {0}")]
    NoRoute(String),
    #[error("this path does not accept that method")]
    MethodNotAllowed,
    #[error("the balance ({balance_cents} cents) does not cover the price ({price_cents} cents)")]
    InsufficientBalance {
        price_cents: i64,
        balance_cents: i64,
    },
    #[error("{0}")]
    UnknownService(String),
    #[error("the webhook URL is not accepted: {0}")]
    InvalidWebhookUrl(String),
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    IdempotencyKeyInUse,
    #[error("the verification is already {0} and can no longer be cancelled")]
    NotCancellable(String),
    #[error("too many requests for this API key's tier; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(
        "the account already has {limit} open verifications, the most its tier allows; wait for one to finish"
    )]
    OpenVerificationLimit { limit: i32 },
    #[error("{} of the batch's items cannot be accepted, so none was (`atomic: true`)", .0.len())]
    BatchRejected(Vec<crate::v2::verifications::ItemError>),
    #[error("payments through {0} are not enabled on this installation")]
    PaymentProviderDisabled(&'static str),
    #[error("top-ups are in {expected}, the wallet's currency")]
    UnsupportedCurrency { expected: String },
    #[error("the payment provider could not open a checkout: {0}")]
    PaymentProviderUnavailable(String),
    #[error("{0}")]
    PaymentNotice(#[from] namaskah_core::payments::notices::NoticeError),
    #[error("no payment has this reference")]
    UnknownPaymentReference,
    #[error("the event does not match the payment: expected {expected}, received {received}")]
    PaymentMismatch { expected: String, received: String },
    #[error("{message}")]
    ReferralRefused {
        code: &'static str,
        message: &'static str,
        status: StatusCode,
    },
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    #[error("{0} verifications are still open; erase the account once they have finished")]
    OpenVerificationsBlockErasure(i64),
    #[error("a dependency is unavailable; retry shortly")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

/// `Retry-After` on a `503`: long enough for a database restart or a fail-over to begin,
/// short enough that a client does not give up.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    /// One of each error, for the reference page's table of codes.
    pub fn examples() -> Vec<ApiError> {
        use ApiError::*;
        vec![
            MissingApiKey,
            InvalidApiKey,
            RevokedApiKey,
            InsufficientScope(Scope::Write),
            InvalidJson("expected value at line 1 column 1".to_owned()),
            InvalidRequest("unknown field `colour`".to_owned()),
            InvalidQuery("`limit` must be from 1 to 100".to_owned()),
            PayloadTooLarge {
                limit: crate::body::BODY_LIMIT,
            },
            InvalidIdempotencyKey(
                "the Idempotency-Key must be 1 to 255 visible characters".to_owned(),
            ),
            NotFound("verification"),
            NoRoute("this method and path".to_owned()),
            MethodNotAllowed,
            InsufficientBalance {
                price_cents: 90,
                balance_cents: 40,
            },
            UnknownService("no provider sells `telegram` in `zz`".to_owned()),
            InvalidWebhookUrl("the address is private".to_owned()),
            IdempotencyKeyReused,
            IdempotencyKeyInUse,
            NotCancellable("completed".to_owned()),
            RateLimited {
                retry_after_secs: 1,
            },
            OpenVerificationLimit { limit: 5 },
            BatchRejected(Vec::new()),
            PaymentProviderDisabled("Stripe"),
            UnsupportedCurrency {
                expected: "USD".to_owned(),
            },
            PaymentProviderUnavailable("Paystack did not answer".to_owned()),
            PaymentNotice(namaskah_core::payments::notices::NoticeError::BadSignature),
            UnknownPaymentReference,
            PaymentMismatch {
                expected: "5000 USD".to_owned(),
                received: "500 USD".to_owned(),
            },
            ReferralRefused {
                code: "self_referral",
                message: "an account cannot use its own referral code",
                status: StatusCode::UNPROCESSABLE_ENTITY,
            },
            AlreadyExists("a tenant with this custom domain"),
            OpenVerificationsBlockErasure(2),
            Unavailable,
            Internal,
        ]
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingApiKey | InvalidApiKey | RevokedApiKey => StatusCode::UNAUTHORIZED,
            InsufficientScope(_) => StatusCode::FORBIDDEN,
            InvalidJson(_) | InvalidRequest(_) | InvalidQuery(_) | InvalidIdempotencyKey(_) => {
                StatusCode::BAD_REQUEST
            }
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            NotFound(_) | NoRoute(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            InsufficientBalance { .. } => StatusCode::PAYMENT_REQUIRED,
            UnknownService(_) | InvalidWebhookUrl(_) | IdempotencyKeyReused | BatchRejected(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            IdempotencyKeyInUse | NotCancellable(_) | OpenVerificationLimit { .. } => {
                StatusCode::CONFLICT
            }
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            PaymentProviderDisabled(_) | UnsupportedCurrency { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            // A payment webhook whose signature is missing, wrong or stale does not come
            // from the provider: it is not authenticated.
            PaymentNotice(notice) if notice.is_signature_problem() => StatusCode::UNAUTHORIZED,
            PaymentNotice(_) | UnknownPaymentReference | PaymentMismatch { .. } => {
                StatusCode::BAD_REQUEST
            }
            ReferralRefused { status, .. } => *status,
            OpenVerificationsBlockErasure(_) | AlreadyExists(_) => StatusCode::CONFLICT,
            PaymentProviderUnavailable(_) | Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingApiKey => "missing_api_key",
            InvalidApiKey => "invalid_api_key",
            RevokedApiKey => "revoked_api_key",
            InsufficientScope(_) => "insufficient_scope",
            InvalidJson(_) => "invalid_json",
            InvalidRequest(_) => "invalid_request",
            InvalidQuery(_) => "invalid_query",
            PayloadTooLarge { .. } => "payload_too_large",
            InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            NotFound(_) => "not_found",
            NoRoute(_) => "no_route",
            MethodNotAllowed => "method_not_allowed",
            InsufficientBalance { .. } => "insufficient_balance",
            UnknownService(_) => "unknown_service",
            InvalidWebhookUrl(_) => "invalid_webhook_url",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyKeyInUse => "idempotency_key_in_use",
            NotCancellable(_) => "not_cancellable",
            RateLimited { .. } => "rate_limited",
            BatchRejected(_) => "batch_rejected",
            OpenVerificationLimit { .. } => "open_verification_limit",
            PaymentProviderDisabled(_) => "payment_provider_disabled",
            UnsupportedCurrency { .. } => "unsupported_currency",
            PaymentProviderUnavailable(_) => "payment_provider_unavailable",
            PaymentNotice(error) => error.code(),
            UnknownPaymentReference => "unknown_reference",
            PaymentMismatch { .. } => "payment_mismatch",
            ReferralRefused { code, .. } => code,
            OpenVerificationsBlockErasure(_) => "open_verifications",
            AlreadyExists(_) => "already_exists",
            Unavailable => "service_unavailable",
            Internal => "internal_error",
        }
    }

    /// When the client may try again, for `Retry-After`: a rate limit says exactly; a
    /// dependency that is away (the database restarting, a payment provider not answering)
    /// is usually back within seconds.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Unavailable | ApiError::PaymentProviderUnavailable(_) => {
                Some(UNAVAILABLE_RETRY_AFTER_SECS)
            }
            _ => None,
        }
    }

    /// Client errors describe the request and are safe to store under an idempotency key;
    /// server errors are not: the client should be able to retry them.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }

    /// RFC 9457 problem details: `type` points at this error's entry in the API reference.
    pub fn problem_body(&self) -> Vec<u8> {
        let status = self.status();
        let mut problem = json!({
            "type": format!("/docs#error-{}", self.code()),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": self.code(),
        });
        if let Some(seconds) = self.retry_after_secs() {
            problem["retry_after"] = json!(seconds);
        }
        if let ApiError::BatchRejected(errors) = self {
            problem["errors"] = json!(errors);
        }
        serde_json::to_vec(&problem).unwrap_or_default()
    }

    pub fn body(&self) -> Vec<u8> {
        let body = json!({ "error": { "code": self.code(), "message": self.to_string() } });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::from(&error)
    }
}

impl From<&StoreError> for ApiError {
    fn from(error: &StoreError) -> Self {
        if error.is_transient_conflict() {
            // A transaction aborted to break a deadlock: the order paths run it again, and
            // a client told 503 may retry too. Contention, not a fault to track.
            tracing::info!(%error, "transaction aborted by a conflict");
            return ApiError::Unavailable;
        }
        database_failure(&error.to_string(), error.is_connection_problem())
    }
}

/// An order's batch failed as a whole (its statement failed, or the database was away).
impl From<BatchFailed> for ApiError {
    fn from(failed: BatchFailed) -> Self {
        database_failure(&failed.reason, failed.unavailable)
    }
}

/// Logs and records a database failure; 503 when the database was away, else 500.
fn database_failure(error: &str, unavailable: bool) -> ApiError {
    if unavailable {
        tracing::warn!(%error, "database unavailable");
    } else {
        tracing::error!(%error, "store error");
    }
    errors::record(Failure {
        role: "api",
        kind: if unavailable {
            "database_unavailable"
        } else {
            "internal_error"
        }
        .to_owned(),
        message: error.to_owned(),
        ..Failure::default()
    });
    if unavailable {
        ApiError::Unavailable
    } else {
        ApiError::Internal
    }
}
