//! `/v1/payments`: wallet top-ups, and the providers' webhooks that confirm them.
//!
//! `POST /v1/payments` stores a pending payment with our reference, opens the provider's
//! checkout and answers with its URL. The money arrives with the provider's signed webhook
//! (`/v1/payments/paystack/webhook`, `/v1/payments/stripe/webhook`): signature, reference,
//! amount and currency are checked, and the payment is credited once however often the
//! webhook comes. Every webhook call is recorded in `payment_notices`, refused ones too.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;
use warp::http::StatusCode;

use namaskah_core::{
    domain::Scope,
    payments::{
        PaymentProvider,
        gateway::CheckoutRequest,
        notices::{self, PaidNotice},
    },
    store::{
        StoreError, accounts,
        payments::{self, Credit, NoticeRecord, Payment},
    },
    views::{timestamp, timestamp_opt},
};

use crate::{
    ApiError, AppState,
    auth::{Caller, authenticate},
    body::{parse_json, parse_query},
    idempotency::{self, Begin},
    respond::{Reply, reply_response},
};

/// The smallest and largest top-up, in cents: providers refuse tiny charges, and a typo
/// should not become a huge one.
const MIN_AMOUNT: i64 = 100;
const MAX_AMOUNT: i64 = 10_000_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreatePaymentRequest {
    #[schema(value_type = PaymentProvider, example = "paystack")]
    provider: String,
    #[schema(minimum = 100, maximum = 10000000)]
    #[serde(deserialize_with = "namaskah_core::domain::deserialize_whole_cents")]
    amount_cents: i64,
    #[schema(example = "USD")]
    currency: String,
}

/// A top-up as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    id: Uuid,
    provider: PaymentProvider,
    /// Ours; the provider's webhook carries it back.
    reference: String,
    amount_cents: i64,
    currency: String,
    /// `pending` until the provider confirms, then `succeeded`; `failed` when the checkout
    /// could not be opened.
    status: String,
    /// Where the payer pays.
    checkout_url: Option<String>,
    failure: Option<String>,
    #[serde(serialize_with = "timestamp")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "timestamp_opt")]
    succeeded_at: Option<DateTime<Utc>>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        Self {
            id: p.id,
            provider: p.provider,
            reference: p.reference.clone(),
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
            status: p.status.clone(),
            checkout_url: p.checkout_url.clone(),
            failure: p.failure.clone(),
            created_at: p.created_at,
            succeeded_at: p.succeeded_at,
        }
    }
}

/// `POST /v1/payments` `{"provider", "amount_cents", "currency"}`.
pub async fn create(
    state: Arc<AppState>,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Write).await?;
    create_as(state, caller, idempotency_key, body, None).await
}

/// [`create`] for a caller already known: the web app's signed-in customer, who comes back
/// from the checkout to `return_to` (its wallet page).
pub(crate) async fn create_as(
    state: Arc<AppState>,
    caller: Caller,
    idempotency_key: Option<String>,
    body: Result<Bytes, ApiError>,
    return_to: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let request: CreatePaymentRequest = parse_json(&body)?;
    let provider: PaymentProvider = request.provider.parse().map_err(ApiError::InvalidRequest)?;
    if !(MIN_AMOUNT..=MAX_AMOUNT).contains(&request.amount_cents) {
        return Err(ApiError::InvalidRequest(format!(
            "`amount_cents` must be from {MIN_AMOUNT} to {MAX_AMOUNT}"
        )));
    }
    let expected = &state.payment_settings.currency;
    if &request.currency != expected {
        return Err(ApiError::UnsupportedCurrency {
            expected: expected.clone(),
        });
    }
    let gateway = state
        .payment_gateways
        .get(provider)
        .cloned()
        .ok_or(ApiError::PaymentProviderDisabled(provider.as_str()))?;
    let guard = match idempotency::start(
        &state,
        caller.account_id,
        idempotency_key.as_deref(),
        "POST",
        "/v1/payments",
        &body,
    )
    .await?
    {
        Begin::Replay(response) => return Ok(response),
        Begin::Proceed(guard) => guard,
    };
    let result = async {
        let account = accounts::find(&state.pool, caller.account_id)
            .await?
            .ok_or(StoreError::Missing("account"))?;
        let payment = payments::create(
            &state.pool,
            caller.account_id,
            provider,
            request.amount_cents,
            expected,
        )
        .await?;
        // The provider is called outside any transaction: the pending payment is already
        // stored, so a webhook that races this answer still finds it.
        let checkout = gateway
            .initialize(&CheckoutRequest {
                reference: &payment.reference,
                amount_cents: payment.amount_cents,
                currency: &payment.currency,
                email: &account.email,
                return_to: return_to.as_deref(),
            })
            .await;
        let payment = match &checkout {
            Ok(checkout) => {
                payments::initialised(&state.pool, payment.id, Ok(&checkout.checkout_url)).await?
            }
            Err(error) => {
                tracing::warn!(%error, payment = %payment.id, "checkout not opened");
                payments::initialised(&state.pool, payment.id, Err(&error.to_string())).await?;
                return Err(ApiError::PaymentProviderUnavailable(error.to_string()));
            }
        };
        let reply = Reply::json(StatusCode::CREATED, &PaymentView::from(&payment))
            .with_location(format!("/v1/payments/{}", payment.id));
        if let Some(guard) = &guard {
            let mut conn = state.pool.acquire().await.map_err(StoreError::from)?;
            guard.store(&mut conn, &reply).await?;
        }
        Ok(reply)
    }
    .await;
    Ok(idempotency::finish(&state, guard, result).await)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
}

/// `GET /v1/payments?limit=`: newest first.
pub async fn list(
    state: Arc<AppState>,
    authorization: Option<String>,
    query: String,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let query: ListQuery = parse_query(&query)?;
    let limit = crate::body::page_limit(query.limit)?;
    let payments = payments::list_for_account(&state.pool, caller.account_id, limit).await?;
    let data: Vec<PaymentView> = payments.iter().map(PaymentView::from).collect();
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "data": data }),
    )))
}

/// `GET /v1/payments/{id}`.
pub async fn get(
    state: Arc<AppState>,
    id: String,
    authorization: Option<String>,
) -> Result<warp::reply::Response, ApiError> {
    let caller = authenticate(&state, authorization.as_deref(), Scope::Read).await?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("payment"))?;
    let payment = payments::find_for_account(&state.pool, caller.account_id, id)
        .await?
        .ok_or(ApiError::NotFound("payment"))?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &PaymentView::from(&payment),
    )))
}

/// `POST /v1/payments/paystack/webhook` (signed with `x-paystack-signature`).
pub async fn paystack_webhook(
    state: Arc<AppState>,
    signature: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let notice = match &state.payment_settings.paystack_secret_key {
        Some(secret) => {
            notices::paystack(secret.expose(), signature.as_deref(), &body).map_err(ApiError::from)
        }
        None => Err(ApiError::PaymentProviderDisabled("Paystack")),
    };
    settle(&state, PaymentProvider::Paystack, &body, notice).await
}

/// `POST /v1/payments/stripe/webhook` (signed with `Stripe-Signature`).
pub async fn stripe_webhook(
    state: Arc<AppState>,
    signature: Option<String>,
    body: Result<Bytes, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let body = body?;
    let settings = &state.payment_settings;
    let notice = match &settings.stripe_webhook_secret {
        Some(secret) => notices::stripe(
            secret.expose(),
            signature.as_deref(),
            &body,
            Utc::now().timestamp(),
            i64::try_from(settings.stripe_tolerance.as_secs()).unwrap_or(i64::MAX),
        )
        .map_err(ApiError::from),
        None => Err(ApiError::PaymentProviderDisabled("Stripe")),
    };
    settle(&state, PaymentProvider::Stripe, &body, notice).await
}

/// Credits a verified notice and records the call, whatever its outcome.
async fn settle(
    state: &AppState,
    provider: PaymentProvider,
    body: &[u8],
    notice: Result<PaidNotice, ApiError>,
) -> Result<warp::reply::Response, ApiError> {
    let (event_id, event_type, reference) = match &notice {
        Ok(n) => (
            n.event_id.clone(),
            Some(n.event_type.clone()),
            Some(n.reference.clone()),
        ),
        Err(_) => (None, notices::event_type(body), None),
    };
    let outcome: Result<&'static str, ApiError> = match notice {
        Ok(notice) => credit(state, &notice).await?,
        Err(error) => Err(error),
    };
    let reason = outcome.as_ref().err().map(|e| format!("{}: {e}", e.code()));
    payments::record_notice(
        &state.pool,
        &NoticeRecord {
            provider,
            event_id: event_id.as_deref(),
            event_type: event_type.as_deref(),
            reference: reference.as_deref(),
            outcome: outcome.as_ref().map_or("refused", |outcome| outcome),
            reason: reason.as_deref(),
            body_sha256: &Sha256::digest(body),
        },
    )
    .await?;
    let outcome = outcome.inspect_err(|error| {
        tracing::warn!(
            provider = provider.as_str(),
            code = error.code(),
            "payment webhook refused"
        );
        metrics::counter!("namaskah_payment_notices_refused_total",
            "provider" => provider.as_str(), "code" => error.code())
        .increment(1);
    })?;
    Ok(reply_response(Reply::json(
        StatusCode::OK,
        &json!({ "received": true, "outcome": outcome }),
    )))
}

/// `Ok(Ok(outcome))` when the notice was taken, `Ok(Err(refusal))` when it does not fit a
/// payment of ours; the outer error is the database failing (the provider retries).
async fn credit(
    state: &AppState,
    notice: &PaidNotice,
) -> Result<Result<&'static str, ApiError>, ApiError> {
    let provider = notice.provider.as_str();
    Ok(match payments::credit(&state.pool, notice).await? {
        Credit::Credited {
            payment,
            account,
            referral_bonus,
        } => {
            tracing::info!(%payment, %account, amount_cents = notice.amount_cents, "top-up credited");
            metrics::counter!("namaskah_top_ups_total", "provider" => provider).increment(1);
            metrics::counter!("namaskah_topped_up_cents_total", "provider" => provider)
                .increment(u64::try_from(notice.amount_cents).unwrap_or(0));
            if let Some((referrer, reward_cents)) = referral_bonus {
                tracing::info!(%referrer, referee = %account, reward_cents, "referral reward credited");
            }
            Ok("credited")
        }
        Credit::AlreadyCredited => Ok("duplicate"),
        Credit::UnknownReference => Err(ApiError::UnknownPaymentReference),
        Credit::Mismatch { expected, received } => {
            Err(ApiError::PaymentMismatch { expected, received })
        }
    })
}
