//! The route table.
//!
//! | method | path                               | handler                        |
//! |--------|------------------------------------|--------------------------------|
//! | GET    | /healthz, /readyz                  | [`health`]                     |
//! | GET    | /openapi.json, /docs               | [`crate::openapi`]             |
//! | POST   | /v1/verifications                  | [`v1::verifications::create`]  |
//! | GET    | /v1/verifications                  | [`v1::verifications::list`]    |
//! | GET    | /v1/verifications/{id}             | [`v1::verifications::get`]     |
//! | POST   | /v1/verifications/{id}/cancel      | [`v1::verifications::cancel`]  |
//! | GET    | /v1/account                        | [`v1::account::get`]           |
//! | GET    | /v1/account/export                 | [`v1::account::export`] (GDPR) |
//! | DELETE | /v1/account                        | [`v1::account::erase`] (GDPR)  |
//! | GET    | /v1/services                       | [`v1::services::list`]         |
//! | POST   | /v1/webhook-endpoints              | [`v1::webhook_endpoints::create`] |
//! | GET    | /v1/webhook-endpoints              | [`v1::webhook_endpoints::list`] |
//! | GET, PATCH, DELETE | /v1/webhook-endpoints/{id} | [`v1::webhook_endpoints`]   |
//! | POST   | /v1/webhook-endpoints/{id}/rotate-secret, /test, /recover | [`v1::webhook_endpoints`] |
//! | GET    | /v1/webhook-messages               | [`v1::webhook_messages::list`] |
//! | GET    | /v1/webhook-messages/{id}/attempts | [`v1::webhook_messages::attempts`] |
//! | POST   | /v1/webhook-messages/{id}/replay   | [`v1::webhook_messages::replay`] |
//! | POST, GET | /v1/api-keys                    | [`v1::api_keys::create`], [`v1::api_keys::list`] |
//! | DELETE | /v1/api-keys/{id}                  | [`v1::api_keys::revoke`]       |
//! | POST, GET | /v1/payments, GET /v1/payments/{id} | [`v1::payments`]            |
//! | POST   | /v1/payments/paystack/webhook, /v1/payments/stripe/webhook | [`v1::payments`] |
//! | GET    | /v1/referrals, POST /v1/referrals/claim | [`v1::referrals`]         |
//! | GET, POST | /v1/subscription                | [`v1::subscription`]           |
//! | GET    | /v1/usage                          | [`v1::usage::get`]             |
//! | GET    | /v1/brand                          | [`v1::account::brand`] (public) |
//! | GET, PATCH | /v1/tenant                     | [`v1::tenant`] (`tenant_admin`) |
//! | POST, GET | /v1/tenant/accounts, GET /v1/tenant/accounts/{id} | [`v1::tenant`] |
//! | GET, PUT | /v1/tenant/prices                | [`v1::tenant`]                 |
//!
//! Handlers never reject: their errors become JSON responses in [`respond`]. Only routing
//! misses reach [`crate::respond::recover`].

use std::{convert::Infallible, sync::Arc};
use warp::{Filter, http::StatusCode, reply::Response};

use crate::{
    AppState, body, health,
    request_metrics::record_request,
    respond::{allow_on_405, json_response, recover, respond},
    v1, v2,
};

pub fn routes(
    state: Arc<AppState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_state = {
        let state = Arc::clone(&state);
        warp::any().map(move || Arc::clone(&state))
    };
    let authorization = warp::header::optional::<String>("authorization");
    let idempotency_key = warp::header::optional::<String>("idempotency-key");

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and_then(health::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state.clone())
        .and_then(health::readyz);

    let create = warp::path!("v1" / "verifications")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|state, auth, key, body| {
            respond(v1::verifications::create(state, auth, key, body))
        });
    let list = warp::path!("v1" / "verifications")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and(body::raw_query())
        .and_then(|state, auth, query| respond(v1::verifications::list(state, auth, query)));
    let get = warp::path!("v1" / "verifications" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(v1::verifications::get(state, id, auth)));
    let cancel = warp::path!("v1" / "verifications" / String / "cancel")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond(v1::verifications::cancel(state, id, auth, key, body))
        });
    let account = warp::path!("v1" / "account")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(v1::account::get(state, auth)));
    let export = warp::path!("v1" / "account" / "export")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(v1::account::export(state, auth)));
    let erase = warp::path!("v1" / "account")
        .and(warp::delete())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(v1::account::erase(state, auth)));
    let services = warp::path!("v1" / "services")
        .and(warp::get())
        .and(with_state.clone())
        .and(body::raw_query())
        .and(v1::services::Asked::filter())
        .and_then(|state, query, asked| respond(v1::services::list(state, query, asked)));

    let core = healthz
        .or(readyz)
        .unify()
        .or(create)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(cancel)
        .unify()
        .or(account)
        .unify()
        .or(export)
        .unify()
        .or(erase)
        .unify()
        .or(services)
        .unify()
        .boxed();

    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .map(|| json_response(StatusCode::OK, crate::openapi::document_json().to_vec()));
    let docs = warp::path!("docs").and(warp::get()).map(|| {
        let mut response = Response::new(crate::openapi::reference_page().into());
        response.headers_mut().insert(
            warp::http::header::CONTENT_TYPE,
            warp::http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
    });
    let routes = openapi
        .or(docs)
        .unify()
        .or(core)
        .unify()
        .or(webhook_routes(with_state.clone()))
        .unify()
        .or(api_key_routes(with_state.clone()))
        .unify()
        .or(money_routes(with_state.clone()))
        .unify()
        .or(tenant_routes(with_state.clone()))
        .unify()
        .or(v2::routes(with_state.clone()))
        .unify()
        .recover(recover)
        .unify();
    warp::path::full()
        .and(routes)
        .map(allow_on_405)
        .with(warp::log::custom(record_request))
        .map(warp::Reply::into_response)
}

/// `/v1/brand` and the tenant administration under `/v1/tenant`.
fn tenant_routes(
    with_state: impl Filter<Extract = (Arc<AppState>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> warp::filters::BoxedFilter<(Response,)> {
    use v1::tenant;
    let authorization = warp::header::optional::<String>("authorization");
    let brand = warp::path!("v1" / "brand")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::header::optional::<String>("host"))
        .and_then(|state, host| respond(v1::account::brand(state, host)));
    let get = warp::path!("v1" / "tenant")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(tenant::get(state, auth)));
    let update = warp::path!("v1" / "tenant")
        .and(warp::patch())
        .and(with_state.clone())
        .and(authorization)
        .and(body::limited())
        .and_then(|state, auth, body| respond(tenant::update(state, auth, body)));
    let accounts = warp::path!("v1" / "tenant" / "accounts")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and(body::raw_query())
        .and_then(|state, auth, query| respond(tenant::accounts(state, auth, query)));
    let create_account = warp::path!("v1" / "tenant" / "accounts")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body::limited())
        .and_then(|state, auth, key, body| respond(tenant::create_account(state, auth, key, body)));
    let account = warp::path!("v1" / "tenant" / "accounts" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(tenant::account(state, id, auth)));
    let prices = warp::path!("v1" / "tenant" / "prices")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(tenant::prices(state, auth)));
    let replace_prices = warp::path!("v1" / "tenant" / "prices")
        .and(warp::put())
        .and(with_state)
        .and(authorization)
        .and(body::limited())
        .and_then(|state, auth, body| respond(tenant::replace_prices(state, auth, body)));
    brand
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(accounts)
        .unify()
        .or(create_account)
        .unify()
        .or(account)
        .unify()
        .or(prices)
        .unify()
        .or(replace_prices)
        .unify()
        .boxed()
}

/// `/v1/webhook-endpoints` and `/v1/webhook-messages`.
fn webhook_routes(
    with_state: impl Filter<Extract = (Arc<AppState>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> warp::filters::BoxedFilter<(Response,)> {
    use v1::{webhook_endpoints as endpoints, webhook_messages as messages};
    let authorization = warp::header::optional::<String>("authorization");
    let idempotency_key = warp::header::optional::<String>("idempotency-key");

    let create = warp::path!("v1" / "webhook-endpoints")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|state, auth, key, body| respond(endpoints::create(state, auth, key, body)));
    let list = warp::path!("v1" / "webhook-endpoints")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(endpoints::list(state, auth)));
    let get = warp::path!("v1" / "webhook-endpoints" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(endpoints::get(state, id, auth)));
    let update = warp::path!("v1" / "webhook-endpoints" / String)
        .and(warp::patch())
        .and(with_state.clone())
        .and(authorization)
        .and(body::limited())
        .and_then(|id, state, auth, body| respond(endpoints::update(state, id, auth, body)));
    let delete = warp::path!("v1" / "webhook-endpoints" / String)
        .and(warp::delete())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(endpoints::delete(state, id, auth)));
    let rotate = warp::path!("v1" / "webhook-endpoints" / String / "rotate-secret")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond(endpoints::rotate_secret(state, id, auth, key, body))
        });
    let test = warp::path!("v1" / "webhook-endpoints" / String / "test")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond(endpoints::send_test(state, id, auth, key, body))
        });
    let recover = warp::path!("v1" / "webhook-endpoints" / String / "recover")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond(endpoints::recover(state, id, auth, key, body))
        });
    let list_messages = warp::path!("v1" / "webhook-messages")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and(body::raw_query())
        .and_then(|state, auth, query| respond(messages::list(state, auth, query)));
    let attempts = warp::path!("v1" / "webhook-messages" / String / "attempts")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(messages::attempts(state, id, auth)));
    let replay = warp::path!("v1" / "webhook-messages" / String / "replay")
        .and(warp::post())
        .and(with_state)
        .and(authorization)
        .and(idempotency_key)
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond(messages::replay(state, id, auth, key, body))
        });

    create
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(rotate)
        .unify()
        .or(test)
        .unify()
        .or(recover)
        .unify()
        .or(list_messages)
        .unify()
        .or(attempts)
        .unify()
        .or(replay)
        .unify()
        .boxed()
}

/// `/v1/api-keys`.
fn api_key_routes(
    with_state: impl Filter<Extract = (Arc<AppState>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> warp::filters::BoxedFilter<(Response,)> {
    use v1::api_keys;
    let authorization = warp::header::optional::<String>("authorization");
    let create = warp::path!("v1" / "api-keys")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body::limited())
        .and_then(|state, auth, key, body| respond(api_keys::create(state, auth, key, body)));
    let list = warp::path!("v1" / "api-keys")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(api_keys::list(state, auth)));
    let revoke = warp::path!("v1" / "api-keys" / String)
        .and(warp::delete())
        .and(with_state)
        .and(authorization)
        .and_then(|id, state, auth| respond(api_keys::revoke(state, id, auth)));
    create.or(list).unify().or(revoke).unify().boxed()
}

/// `/v1/payments` (top-ups and the providers' webhooks), `/v1/referrals`, `/v1/subscription`.
fn money_routes(
    with_state: impl Filter<Extract = (Arc<AppState>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> warp::filters::BoxedFilter<(Response,)> {
    use v1::{payments, referrals};
    let authorization = warp::header::optional::<String>("authorization");
    let create = warp::path!("v1" / "payments")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body::limited())
        .and_then(|state, auth, key, body| respond(payments::create(state, auth, key, body)));
    let list = warp::path!("v1" / "payments")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and(body::raw_query())
        .and_then(|state, auth, query| respond(payments::list(state, auth, query)));
    let get = warp::path!("v1" / "payments" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|id, state, auth| respond(payments::get(state, id, auth)));
    let paystack = warp::path!("v1" / "payments" / "paystack" / "webhook")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::header::optional::<String>("x-paystack-signature"))
        .and(body::limited())
        .and_then(|state, signature, body| {
            respond(payments::paystack_webhook(state, signature, body))
        });
    let stripe = warp::path!("v1" / "payments" / "stripe" / "webhook")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(body::limited())
        .and_then(|state, signature, body| {
            respond(payments::stripe_webhook(state, signature, body))
        });
    let subscription_get = warp::path!("v1" / "subscription")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(v1::subscription::get(state, auth)));
    let subscription_change = warp::path!("v1" / "subscription")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body::limited())
        .and_then(|state, auth, key, body| {
            respond(v1::subscription::change(state, auth, key, body))
        });
    let usage = warp::path!("v1" / "usage")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and(body::raw_query())
        .and_then(|state, auth, query| respond(v1::usage::get(state, auth, query)));
    let referrals_get = warp::path!("v1" / "referrals")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization)
        .and_then(|state, auth| respond(referrals::get(state, auth)));
    let claim = warp::path!("v1" / "referrals" / "claim")
        .and(warp::post())
        .and(with_state)
        .and(authorization)
        .and(warp::header::optional::<String>("idempotency-key"))
        .and(body::limited())
        .and_then(|state, auth, key, body| respond(referrals::claim(state, auth, key, body)));
    paystack
        .or(stripe)
        .unify()
        .or(create)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(referrals_get)
        .unify()
        .or(subscription_get)
        .unify()
        .or(usage)
        .unify()
        .or(subscription_change)
        .unify()
        .or(claim)
        .unify()
        .boxed()
}
