//! The OpenAPI 3.1 document (`GET /openapi.json`) and the reference page (`GET /docs`).
//!
//! Request and response bodies are the handlers' own types (`ToSchema` derives), so their
//! schemas follow the code. The operations are listed here, in one table per version;
//! `tests/it/contract.rs` calls every one of them and checks each answer against this
//! document, and schemathesis fuzzes them, so the list cannot quietly drift from the router.

mod operation;
mod page;
mod parameters;
pub mod schemas;

use std::sync::LazyLock;
use utoipa::{
    ToSchema,
    openapi::{
        ComponentsBuilder, HttpMethod, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
        PathItem, PathsBuilder, Schema, Tag, Type,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

pub use page::reference_page;

use crate::{
    charge::OrderRequest,
    v1::{
        api_keys::{CreateRequest as CreateApiKeyRequest, KeyView},
        payments::{CreatePaymentRequest, PaymentView},
        referrals::ClaimRequest,
        subscription::ChangeRequest,
        tenant::{BrandPatch, CreateAccountRequest, PricesRequest, TenantAccount},
        webhook_endpoints::{CreateRequest, EndpointView, PatchRequest, RecoverRequest},
        webhook_messages::{AttemptView, DeliveryView, MessageView, ReplayRequest},
    },
    v2::verifications::{BatchRequest, EventView, ItemError},
};
use namaskah_core::{
    domain::Scope,
    store::{
        referrals::{Referee, Summary},
        subscriptions::Subscription,
        tenants::{Brand, Price, Tenant},
        usage::{Report, Usage},
    },
    views::VerificationView,
};

/// How an operation is reached and what it answers.
struct Operation {
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// Needs `Authorization: Bearer <key>` holding this scope or a higher one (`None`: open).
    scope: Option<Scope>,
    /// The JSON body schema, if the operation takes one.
    body: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    headers: &'static [(&'static str, &'static str)],
    /// Successful answers: status, what it means, body schema (None: no body).
    answers: &'static [(u16, &'static str, Option<&'static str>)],
    /// Error statuses besides those every authenticated operation can answer.
    errors: &'static [u16],
}

const IDEMPOTENCY: (&str, &str) = (
    "Idempotency-Key",
    "1–255 visible ASCII characters; the same key and request within 24 h replays the first answer. Send one with every request you may retry: an answer lost on the way can hide a charge, and only a retry with the same key never charges twice",
);
const IF_NONE_MATCH: (&str, &str) = (
    "If-None-Match",
    "an ETag from an earlier answer: `304` if unchanged",
);
const BEARER_OPTIONAL: (&str, &str) = (
    "Authorization",
    "optional `Bearer <key>`: prices of the key's tenant",
);
const EXPAND: (&str, &str) = ("expand", "`events`: include the verification's events");

// The scope an operation needs, for the table below; a key's higher scopes include the lower.
const OPEN: Option<Scope> = None;
const READ: Option<Scope> = Some(Scope::Read);
const WRITE: Option<Scope> = Some(Scope::Write);
const ADMIN: Option<Scope> = Some(Scope::Admin);
const TENANT_ADMIN: Option<Scope> = Some(Scope::TenantAdmin);

#[rustfmt::skip]
const OPERATIONS: &[Operation] = &[
    op(HttpMethod::Get, "/healthz", "health", "The process is alive", OPEN, None, &[], &[], &[(200, "alive", Some("Health"))], &[]),
    op(HttpMethod::Get, "/readyz", "health", "PostgreSQL and RabbitMQ answer", OPEN, None, &[], &[], &[(200, "ready", Some("Readiness"))], &[503]),

    op(HttpMethod::Post, "/v1/verifications", "verifications", "Rent a number: the price is charged now", WRITE, Some("OrderRequest"), &[], &[IDEMPOTENCY], &[(201, "accepted and charged", Some("VerificationView"))], &[400, 402, 409, 413, 422]),
    op(HttpMethod::Get, "/v1/verifications", "verifications", "The account's verifications, newest first (offset pages)", READ, None, &[("status", "only this status"), ("limit", "1–100, default 20"), ("offset", "rows to skip")], &[], &[(200, "a page", Some("VerificationList"))], &[400]),
    op(HttpMethod::Get, "/v1/verifications/{id}", "verifications", "One verification", READ, None, &[], &[], &[(200, "the verification", Some("VerificationView"))], &[404]),
    op(HttpMethod::Post, "/v1/verifications/{id}/cancel", "verifications", "Cancel: refunded once the provider order is cancelled", WRITE, None, &[], &[IDEMPOTENCY], &[(200, "cancelled at once", Some("VerificationView")), (202, "cancellation under way", Some("VerificationView"))], &[404, 409, 413]),
    op(HttpMethod::Get, "/v1/account", "account", "Balance and tier", READ, None, &[], &[], &[(200, "the account", Some("Account"))], &[]),
    op(HttpMethod::Get, "/v1/account/export", "account", "Everything the account holds, as one JSON document (GDPR); needs `admin`", ADMIN, None, &[], &[], &[(200, "the document", Some("AccountExport"))], &[]),
    op(HttpMethod::Delete, "/v1/account", "account", "Erase the account's personal data (GDPR); revokes every key; needs `admin`", ADMIN, None, &[], &[], &[(200, "erased", Some("Erased"))], &[409]),
    op(HttpMethod::Get, "/v1/services", "services", "What can be bought, where, at what price: the key's tenant's, else the tenant of the custom domain asked, else the catalogue's", OPEN, None, &[("service", "one service"), ("country", "one country (ISO 3166 alpha-2, lowercase)")], &[IF_NONE_MATCH, BEARER_OPTIONAL], &[(200, "the catalogue", Some("ServiceList")), (304, "unchanged since the ETag sent", None)], &[400, 401, 429]),
    op(HttpMethod::Post, "/v1/api-keys", "api-keys", "Create a key (shown only in this answer); needs `admin`", ADMIN, Some("CreateApiKeyRequest"), &[], &[IDEMPOTENCY], &[(201, "the key", Some("ApiKey"))], &[400, 413]),
    op(HttpMethod::Get, "/v1/api-keys", "api-keys", "The account's keys; needs `admin`", ADMIN, None, &[], &[], &[(200, "the keys", Some("ApiKeyList"))], &[]),
    op(HttpMethod::Delete, "/v1/api-keys/{id}", "api-keys", "Revoke a key, at once on every replica; needs `admin`", ADMIN, None, &[], &[], &[(200, "the revoked key", Some("ApiKey"))], &[404]),
    op(HttpMethod::Post, "/v1/webhook-endpoints", "webhooks", "Add an endpoint (its secret is shown only here)", WRITE, Some("CreateEndpointRequest"), &[], &[IDEMPOTENCY], &[(201, "the endpoint", Some("EndpointView"))], &[400, 413, 422]),
    op(HttpMethod::Get, "/v1/webhook-endpoints", "webhooks", "The account's endpoints", READ, None, &[], &[], &[(200, "the endpoints", Some("EndpointList"))], &[]),
    op(HttpMethod::Get, "/v1/webhook-endpoints/{id}", "webhooks", "One endpoint", READ, None, &[], &[], &[(200, "the endpoint", Some("EndpointView"))], &[404]),
    op(HttpMethod::Patch, "/v1/webhook-endpoints/{id}", "webhooks", "Change an endpoint; `enabled: true` re-enables it", WRITE, Some("PatchEndpointRequest"), &[], &[], &[(200, "the endpoint", Some("EndpointView"))], &[400, 404, 413, 422]),
    op(HttpMethod::Delete, "/v1/webhook-endpoints/{id}", "webhooks", "Delete an endpoint", WRITE, None, &[], &[], &[(204, "deleted", None)], &[404]),
    op(HttpMethod::Post, "/v1/webhook-endpoints/{id}/rotate-secret", "webhooks", "A new secret; the old one keeps signing for a while", WRITE, None, &[], &[IDEMPOTENCY], &[(200, "the endpoint with its new secret", Some("EndpointView"))], &[404, 413]),
    op(HttpMethod::Post, "/v1/webhook-endpoints/{id}/test", "webhooks", "Send a `webhook.test` event to this endpoint", WRITE, None, &[], &[IDEMPOTENCY], &[(202, "queued", Some("TestSent"))], &[404, 413]),
    op(HttpMethod::Post, "/v1/webhook-endpoints/{id}/recover", "webhooks", "Re-send every message that failed for it since a time", WRITE, Some("RecoverRequest"), &[], &[IDEMPOTENCY], &[(202, "queued", Some("Recovered"))], &[400, 404, 413]),
    op(HttpMethod::Get, "/v1/webhook-messages", "webhooks", "Events, newest first, with their deliveries", READ, None, &[("event_type", "only this type"), ("limit", "1–100, default 20"), ("offset", "rows to skip")], &[], &[(200, "a page", Some("MessageList"))], &[400]),
    op(HttpMethod::Get, "/v1/webhook-messages/{id}/attempts", "webhooks", "Every delivery attempt of a message", READ, None, &[], &[], &[(200, "the attempts", Some("AttemptList"))], &[404]),
    op(HttpMethod::Post, "/v1/webhook-messages/{id}/replay", "webhooks", "Send a message again, with the same id", WRITE, Some("ReplayRequest"), &[], &[IDEMPOTENCY], &[(202, "queued", Some("Replayed"))], &[400, 404, 413]),

    op(HttpMethod::Post, "/v1/payments", "payments", "Top up the wallet: opens the provider's checkout; credited when the provider confirms", WRITE, Some("CreatePaymentRequest"), &[], &[IDEMPOTENCY], &[(201, "pending, with the checkout URL", Some("Payment"))], &[400, 413, 422]),
    op(HttpMethod::Get, "/v1/payments", "payments", "The account's top-ups, newest first", READ, None, &[("limit", "1–100, default 20")], &[], &[(200, "the payments", Some("PaymentList"))], &[400]),
    op(HttpMethod::Get, "/v1/payments/{id}", "payments", "One top-up", READ, None, &[], &[], &[(200, "the payment", Some("Payment"))], &[404]),
    op(HttpMethod::Post, "/v1/payments/paystack/webhook", "payments", "Paystack's webhook (`charge.success`), signed with `x-paystack-signature`", OPEN, None, &[], &[("x-paystack-signature", "hex HMAC-SHA512 of the raw body with the secret key")], &[(200, "credited, or credited before", Some("PaymentReceipt"))], &[400, 401, 413]),
    op(HttpMethod::Post, "/v1/payments/stripe/webhook", "payments", "Stripe's webhook (`checkout.session.completed`, `payment_intent.succeeded`), signed with `Stripe-Signature`", OPEN, None, &[], &[("Stripe-Signature", "`t=<unix>,v1=<hex HMAC-SHA256 of \"{t}.{body}\">`")], &[(200, "credited, or credited before", Some("PaymentReceipt"))], &[400, 401, 413]),
    op(HttpMethod::Get, "/v1/subscription", "subscription", "The account's tier, its monthly price and when it renews", READ, None, &[], &[], &[(200, "the subscription", Some("Subscription"))], &[]),
    op(HttpMethod::Post, "/v1/subscription", "subscription", "Change tier: upgrades now (prorated), downgrades at the period's end; needs `admin`", ADMIN, Some("ChangeRequest"), &[], &[IDEMPOTENCY], &[(200, "the subscription after the change", Some("SubscriptionChange"))], &[400, 402, 413]),
    op(HttpMethod::Get, "/v1/usage", "account", "Usage per service and day: verifications, success rate, median time to SMS, spend, refunds", READ, None, &[("from", "first day, YYYY-MM-DD (default: 29 days before `to`)"), ("to", "last day, YYYY-MM-DD (default: today, UTC)"), ("service", "one service")], &[], &[(200, "the report", Some("UsageReport"))], &[400]),
    op(HttpMethod::Get, "/v1/referrals", "referrals", "The account's referral code, its referees and its earnings", READ, None, &[], &[], &[(200, "the referrals", Some("ReferralSummary"))], &[]),
    op(HttpMethod::Get, "/v1/brand", "tenant", "The brand of the tenant whose custom domain was asked (the default tenant's elsewhere)", OPEN, None, &[], &[], &[(200, "the brand", Some("Brand"))], &[]),
    op(HttpMethod::Get, "/v1/tenant", "tenant", "The key's tenant and its brand; needs `tenant_admin`", TENANT_ADMIN, None, &[], &[], &[(200, "the tenant", Some("Tenant"))], &[]),
    op(HttpMethod::Patch, "/v1/tenant", "tenant", "Change the brand: fields present change, `null` clears; needs `tenant_admin`", TENANT_ADMIN, Some("BrandPatch"), &[], &[], &[(200, "the tenant", Some("Tenant"))], &[400, 409, 413]),
    op(HttpMethod::Get, "/v1/tenant/accounts", "tenant", "The tenant's accounts, newest first; needs `tenant_admin`", TENANT_ADMIN, None, &[("limit", "1–100, default 20"), ("offset", "rows to skip")], &[], &[(200, "a page", Some("TenantAccountList"))], &[400]),
    op(HttpMethod::Post, "/v1/tenant/accounts", "tenant", "A new account of the tenant (free tier, empty wallet) and its first key, shown only here; needs `tenant_admin`", TENANT_ADMIN, Some("CreateAccountRequest"), &[], &[IDEMPOTENCY], &[(201, "the account and its key", Some("TenantAccountCreated"))], &[400, 409, 413, 422]),
    op(HttpMethod::Get, "/v1/tenant/accounts/{id}", "tenant", "One of the tenant's accounts; needs `tenant_admin`", TENANT_ADMIN, None, &[], &[], &[(200, "the account", Some("TenantAccount"))], &[404]),
    op(HttpMethod::Get, "/v1/tenant/prices", "tenant", "The tenant's own prices; needs `tenant_admin`", TENANT_ADMIN, None, &[], &[], &[(200, "the prices", Some("TenantPriceList"))], &[]),
    op(HttpMethod::Put, "/v1/tenant/prices", "tenant", "Replace the tenant's price list (the tier's percentage still applies); needs `tenant_admin`", TENANT_ADMIN, Some("PricesRequest"), &[], &[], &[(200, "the prices now", Some("TenantPriceList"))], &[400, 413, 422]),
    op(HttpMethod::Post, "/v1/referrals/claim", "referrals", "This account was referred by the owner of a code (before its first top-up)", WRITE, Some("ClaimRequest"), &[], &[IDEMPOTENCY], &[(200, "linked", Some("ReferralSummary"))], &[400, 409, 413, 422]),

    op(HttpMethod::Post, "/v2/verifications", "verifications", "Rent a number: the price is charged now", WRITE, Some("OrderRequest"), &[], &[IDEMPOTENCY], &[(201, "accepted and charged", Some("VerificationView"))], &[400, 402, 409, 413, 422]),
    op(HttpMethod::Post, "/v2/verifications/batch", "verifications", "Rent up to 100 numbers; each item succeeds or fails on its own, or all together with `atomic`", WRITE, Some("BatchRequest"), &[], &[IDEMPOTENCY], &[(201, "every item accepted", Some("BatchResult")), (200, "some items refused (see each result)", Some("BatchResult"))], &[400, 413, 422]),
    op(HttpMethod::Get, "/v2/verifications", "verifications", "The account's verifications, newest first (cursor pages)", READ, None, &[("status", "only this status"), ("limit", "1–100, default 20"), ("cursor", "`next_cursor` of the previous page"), EXPAND], &[], &[(200, "a page", Some("VerificationPage"))], &[400]),
    op(HttpMethod::Get, "/v2/verifications/{id}", "verifications", "One verification", READ, None, &[EXPAND], &[], &[(200, "the verification", Some("ExpandedVerification"))], &[400, 404]),
    op(HttpMethod::Post, "/v2/verifications/{id}/cancel", "verifications", "Cancel: refunded once the provider order is cancelled", WRITE, None, &[], &[IDEMPOTENCY], &[(200, "cancelled at once", Some("VerificationView")), (202, "cancellation under way", Some("VerificationView"))], &[404, 409, 413]),
    op(HttpMethod::Get, "/v2/account", "account", "Balance and tier", READ, None, &[], &[], &[(200, "the account", Some("Account"))], &[]),
    op(HttpMethod::Get, "/v2/services", "services", "What can be bought, where, at what price: the key's tenant's, else the tenant of the custom domain asked, else the catalogue's", OPEN, None, &[("service", "one service"), ("country", "one country (ISO 3166 alpha-2, lowercase)")], &[IF_NONE_MATCH, BEARER_OPTIONAL], &[(200, "the catalogue", Some("ServiceList")), (304, "unchanged since the ETag sent", None)], &[400, 401, 429]),
    op(HttpMethod::Post, "/v2/api-keys", "api-keys", "Create a key (shown only in this answer); needs `admin`", ADMIN, Some("CreateApiKeyRequest"), &[], &[IDEMPOTENCY], &[(201, "the key", Some("ApiKey"))], &[400, 413]),
    op(HttpMethod::Get, "/v2/api-keys", "api-keys", "The account's keys; needs `admin`", ADMIN, None, &[], &[], &[(200, "the keys", Some("ApiKeyList"))], &[]),
    op(HttpMethod::Delete, "/v2/api-keys/{id}", "api-keys", "Revoke a key, at once on every replica; needs `admin`", ADMIN, None, &[], &[], &[(200, "the revoked key", Some("ApiKey"))], &[404]),
    op(HttpMethod::Get, "/v2/events", "events", "The account's events as server-sent events, resumable with `Last-Event-ID`", READ, None, &[("after", "an event id: start after it (`0-0`: from the beginning)")], &[("Last-Event-ID", "the id of the last event received: resume after it")], &[(200, "an endless `text/event-stream`", None)], &[400]),
];

#[allow(clippy::too_many_arguments)]
const fn op(
    method: HttpMethod,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    scope: Option<Scope>,
    body: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    headers: &'static [(&'static str, &'static str)],
    answers: &'static [(u16, &'static str, Option<&'static str>)],
    errors: &'static [u16],
) -> Operation {
    Operation {
        method,
        path,
        tag,
        summary,
        scope,
        body,
        query,
        headers,
        answers,
        errors,
    }
}

/// The methods a request path answers to, for the `Allow` header of a `405`: those of every
/// documented operation whose path template (`{id}` standing for any one segment) matches.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let matches = |template: &str| {
        let pattern: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
        pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(expected, actual)| *expected == "{id}" || expected == actual)
    };
    // `/v2/verifications/batch` is its own resource, not `/v2/verifications/{id}`: the
    // templates with the most literal segments that match are the path's.
    let literals = |template: &str| template.split('/').filter(|s| *s != "{id}").count();
    let best = OPERATIONS
        .iter()
        .filter(|operation| matches(operation.path))
        .map(|operation| literals(operation.path))
        .max();
    let mut methods: Vec<&'static str> = OPERATIONS
        .iter()
        .filter(|operation| matches(operation.path) && Some(literals(operation.path)) == best)
        .map(|operation| match operation.method {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            _ => "OPTIONS",
        })
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// Adds `T`'s schema and every schema it refers to (an enum of its field, say), so that no
/// `$ref` in the document dangles.
fn schema_of<T: ToSchema>(components: ComponentsBuilder) -> ComponentsBuilder {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    components.schema_from::<T>().schemas_from_iter(nested)
}

/// One server-sent event of `GET /v2/events`, as its fields arrive on the wire.
fn stream_event_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One event of the stream. `id` is its stream position (resume after it with \
                 `Last-Event-ID`); `data` is the event as webhooks carry it, JSON text: \
                 `{\"type\", \"timestamp\", \"data\"}`.",
            ))
            .property(
                "event",
                string().enum_values(Some(crate::v1::webhook_endpoints::EVENT_TYPES)),
            )
            .property("data", string().content_media_type("application/json"))
            .property(
                "id",
                string().pattern(Some(parameters::STREAM_POSITION_PATTERN)),
            )
            .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
            .required("event")
            .required("data")
            .required("id")
            .build(),
    )
}

fn build() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for operation in OPERATIONS {
        paths = paths.path(
            operation.path,
            PathItem::new(operation.method.clone(), operation::build(operation)),
        );
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("nmk_…")
                .build(),
        ),
    );
    components = components.schema("StreamEvent", stream_event_schema());
    components = schema_of::<VerificationView>(components);
    components = schema_of::<OrderRequest>(components);
    components = schema_of::<BatchRequest>(components);
    components = schema_of::<ItemError>(components);
    components = schema_of::<EventView>(components);
    components = schema_of::<KeyView>(components);
    components = schema_of::<CreateApiKeyRequest>(components);
    components = schema_of::<EndpointView>(components);
    components = schema_of::<CreateRequest>(components);
    components = schema_of::<PatchRequest>(components);
    components = schema_of::<RecoverRequest>(components);
    components = schema_of::<MessageView>(components);
    components = schema_of::<DeliveryView>(components);
    components = schema_of::<AttemptView>(components);
    components = schema_of::<ReplayRequest>(components);
    components = schema_of::<PaymentView>(components);
    components = schema_of::<CreatePaymentRequest>(components);
    components = schema_of::<ClaimRequest>(components);
    components = schema_of::<ChangeRequest>(components);
    components = schema_of::<Subscription>(components);
    components = schema_of::<Report>(components);
    components = schema_of::<Usage>(components);
    components = schema_of::<schemas::SubscriptionChange>(components);
    components = schema_of::<Summary>(components);
    components = schema_of::<Referee>(components);
    components = schema_of::<schemas::PaymentList>(components);
    components = schema_of::<schemas::PaymentReceipt>(components);
    components = schema_of::<schemas::AccountExport>(components);
    components = schema_of::<schemas::Erased>(components);
    components = schema_of::<Brand>(components);
    components = schema_of::<Tenant>(components);
    components = schema_of::<BrandPatch>(components);
    components = schema_of::<TenantAccount>(components);
    components = schema_of::<CreateAccountRequest>(components);
    components = schema_of::<PricesRequest>(components);
    components = schema_of::<Price>(components);
    components = schema_of::<schemas::TenantAccountList>(components);
    components = schema_of::<schemas::TenantAccountCreated>(components);
    components = schema_of::<schemas::TenantPriceList>(components);
    components = schema_of::<schemas::V1Error>(components);
    components = schema_of::<schemas::V1ErrorDetail>(components);
    components = schema_of::<schemas::Problem>(components);
    components = schema_of::<schemas::Account>(components);
    components = schema_of::<schemas::Service>(components);
    components = schema_of::<schemas::ServiceList>(components);
    components = schema_of::<schemas::VerificationList>(components);
    components = schema_of::<schemas::ExpandedVerification>(components);
    components = schema_of::<schemas::VerificationPage>(components);
    components = schema_of::<schemas::BatchItemResult>(components);
    components = schema_of::<schemas::BatchResult>(components);
    components = schema_of::<schemas::ApiKeyList>(components);
    components = schema_of::<schemas::EndpointList>(components);
    components = schema_of::<schemas::MessageList>(components);
    components = schema_of::<schemas::AttemptList>(components);
    components = schema_of::<schemas::TestSent>(components);
    components = schema_of::<schemas::Recovered>(components);
    components = schema_of::<schemas::Replayed>(components);
    components = schema_of::<schemas::Health>(components);
    components = schema_of::<schemas::Readiness>(components);
    components = schema_of::<schemas::ReadinessChecks>(components);

    let tags = [
        ("verifications", "Rent numbers, read the codes, cancel"),
        ("account", "Balance and tier"),
        ("services", "The catalogue"),
        ("api-keys", "The account's API keys"),
        (
            "webhooks",
            "Endpoints that receive events, and the events sent",
        ),
        ("events", "The event stream"),
        ("payments", "Wallet top-ups through Paystack and Stripe"),
        ("referrals", "Referral codes and rewards"),
        ("subscription", "Monthly tiers paid from the wallet"),
        ("tenant", "White-label tenants: brand, accounts and prices"),
        ("health", "For load balancers"),
    ]
    .into_iter()
    .map(|(name, description)| {
        let mut tag = Tag::new(name);
        tag.description = Some(description.to_owned());
        tag
    });
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Namaskah")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Rent temporary phone numbers for SMS verification; refunded automatically \
                     when no SMS arrives or the verification is cancelled. v1 answers errors as \
                     `{\"error\": {\"code\", \"message\"}}`, v2 as RFC 9457 problem details.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

/// The document, built once.
pub fn document() -> &'static OpenApi {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(build);
    &DOCUMENT
}

/// The document as JSON, built once.
pub fn document_json() -> &'static [u8] {
    static JSON: LazyLock<Vec<u8>> =
        LazyLock::new(|| serde_json::to_vec_pretty(document()).unwrap_or_default());
    &JSON
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// Every `"$ref"` string anywhere under `value`.
    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => references(item, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| references(item, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        let document: Value = serde_json::from_slice(super::document_json()).expect("json");
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 50, "only {} references", found.len());
        let dangling: Vec<&String> = found
            .iter()
            .filter(|target| {
                let pointer = target.strip_prefix('#').unwrap_or(target);
                document.pointer(pointer).is_none()
            })
            .collect();
        assert!(dangling.is_empty(), "dangling references: {dangling:?}");
    }
}
