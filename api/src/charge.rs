//! Accepting a verification: validate the order, price it for the caller's tier, charge it.
//! Shared by `POST /v1/verifications` and the bulk `POST /v2/verifications/batch`.

use serde::Deserialize;
use sqlx::PgConnection;
use std::sync::Arc;

use namaskah_core::{
    domain::{CountryCode, ServiceCode, VerificationId, new_trace_id},
    pricing,
    store::{
        services::Offer,
        verifications::{self, ChargedOrder, NewVerification, Refusal, Verification},
    },
};

use crate::{ApiError, AppState, auth::Caller, cache::TenantProfile, respond::version};

/// One verification to rent, as a request names it.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// A service code from `GET /v1/services`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$", example = "telegram")]
    pub service: String,
    /// ISO 3166 alpha-2, lowercase; without it, the cheapest country.
    #[serde(default)]
    #[schema(pattern = "^[a-zA-Z]{2}$", example = "us")]
    pub country: Option<String>,
}

/// A validated order.
#[derive(Clone, Debug)]
pub struct Order {
    service: ServiceCode,
    country: Option<CountryCode>,
}

impl OrderRequest {
    pub fn validate(&self) -> Result<Order, ApiError> {
        let service = ServiceCode::parse(&self.service)
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        let country = self
            .country
            .as_deref()
            .map(CountryCode::parse)
            .transpose()
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        Ok(Order { service, country })
    }
}

/// What a caller pays: the catalogue, with its tenant's own prices where it has set them.
pub struct PriceSheet {
    offers: Arc<Vec<Offer>>,
    tenant: Arc<TenantProfile>,
}

impl PriceSheet {
    pub async fn for_caller(state: &AppState, caller: &Caller) -> Result<Self, ApiError> {
        Ok(Self {
            offers: state
                .caches
                .offers(&state.pool, &state.provider_order)
                .await?,
            tenant: state.caches.tenant(&state.pool, caller.tenant_id).await?,
        })
    }
}

/// Prices `order` for the caller's tenant and tier and charges it: one statement debits the
/// balance and inserts the verification, its ledger entry and its ordering message, unless
/// the account is at its tier's open-verification limit or the balance does not cover the
/// price. One statement is atomic on its own: `conn` need not be in a transaction.
pub async fn charge(
    conn: &mut PgConnection,
    caller: &Caller,
    sheet: &PriceSheet,
    provider_order: &[String],
    order: &Order,
) -> Result<Verification, ApiError> {
    let order = price(caller, sheet, provider_order, order)?;
    let charged = verifications::insert_charged(conn, &order).await?;
    answer(order.max_open, order.new.price_cents, charged)
}

/// [`charge`] through the API's order batcher: the orders that arrive together share one
/// statement and one commit (each is still atomic, and refused on its own).
pub async fn charge_batched(
    state: &AppState,
    caller: &Caller,
    sheet: &PriceSheet,
    order: &Order,
) -> Result<Verification, ApiError> {
    let order = price(caller, sheet, &state.provider_order, order)?;
    let (max_open, price_cents) = (order.max_open, order.new.price_cents);
    let charged = state.orders.call(order).await?;
    answer(max_open, price_cents, charged)
}

/// What the caller pays for `order`, as an order to charge.
fn price(
    caller: &Caller,
    sheet: &PriceSheet,
    provider_order: &[String],
    order: &Order,
) -> Result<ChargedOrder, ApiError> {
    let Order { service, country } = order;
    let quote = pricing::quote(
        &sheet.offers,
        provider_order,
        &sheet.tenant.prices,
        service.as_str(),
        country.as_ref().map(CountryCode::as_str),
    )
    .ok_or_else(|| {
        let catalogue = format!("GET /{}/services", version().prefix());
        ApiError::UnknownService(match country {
            Some(country) => {
                format!("no provider sells `{service}` in `{country}`; see {catalogue}")
            }
            None => format!("no provider sells `{service}`; see {catalogue}"),
        })
    })?;
    Ok(ChargedOrder {
        new: NewVerification {
            id: VerificationId::new(),
            account_id: caller.account_id,
            service: quote.service,
            country: quote.country,
            price_cents: caller.plan.price_cents(quote.price_cents),
            trace_id: new_trace_id(),
        },
        max_open: caller.plan.max_open_verifications,
    })
}

/// The charge's outcome as the API answers it.
fn answer(
    max_open: i32,
    price_cents: i64,
    charged: Result<Verification, Refusal>,
) -> Result<Verification, ApiError> {
    match charged {
        Ok(verification) => Ok(verification),
        Err(Refusal::OpenLimit) => Err(ApiError::OpenVerificationLimit { limit: max_open }),
        Err(Refusal::Balance { balance_cents }) => Err(ApiError::InsufficientBalance {
            price_cents,
            balance_cents,
        }),
    }
}

/// Metrics and the log line of an accepted verification, once its transaction committed.
pub fn record_accepted(verification: &Verification) {
    metrics::counter!("namaskah_charges_total").increment(1);
    metrics::counter!("namaskah_charged_cents_total")
        .increment(u64::try_from(verification.price_cents).unwrap_or(0));
    let span = tracing::info_span!("accept_verification", trace_id = %verification.trace_id);
    namaskah_core::telemetry::adopt_trace_id(&span, &verification.trace_id);
    span.in_scope(|| {
        tracing::info!(
            verification_id = %verification.id,
            service = %verification.service,
            country = %verification.country,
            price_cents = verification.price_cents,
            "verification accepted"
        );
    });
}
