//! API v2: v1's resources with cursor pagination, RFC 9457 problem details for every
//! error, `expand=events`, bulk creation and the event stream.
//!
//! | method | path                               | handler                                |
//! |--------|------------------------------------|----------------------------------------|
//! | POST   | /v2/verifications                  | [`crate::v1::verifications::create`]   |
//! | POST   | /v2/verifications/batch            | [`verifications::batch`]               |
//! | GET    | /v2/verifications                  | [`verifications::list`] (cursor)       |
//! | GET    | /v2/verifications/{id}             | [`verifications::get`] (`expand`)      |
//! | POST   | /v2/verifications/{id}/cancel      | [`crate::v1::verifications::cancel`]   |
//! | GET    | /v2/account                        | [`crate::v1::account::get`]            |
//! | GET    | /v2/services                       | [`crate::v1::services::list`]          |
//! | POST, GET | /v2/api-keys, DELETE /v2/api-keys/{id} | [`crate::v1::api_keys`]        |
//! | GET    | /v2/events                         | [`events::stream`] (server-sent events) |

pub mod cursor;
pub mod events;
pub mod verifications;

use std::{convert::Infallible, sync::Arc};
use warp::{Filter, Rejection, reply::Response};

use crate::{
    AppState, body,
    respond::{respond_v2, routing_error},
    v1,
};

pub fn routes(
    with_state: impl Filter<Extract = (Arc<AppState>,), Error = Infallible>
    + Clone
    + Send
    + Sync
    + 'static,
) -> warp::filters::BoxedFilter<(Response,)> {
    let authorization = || warp::header::optional::<String>("authorization");
    let idempotency_key = || warp::header::optional::<String>("idempotency-key");

    let create = warp::path!("verifications")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization())
        .and(idempotency_key())
        .and(body::limited())
        .and_then(|state, auth, key, body| {
            respond_v2(v1::verifications::create(state, auth, key, body))
        });
    let batch = warp::path!("verifications" / "batch")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization())
        .and(idempotency_key())
        .and(body::limited())
        .and_then(|state, auth, key, body| {
            respond_v2(verifications::batch(state, auth, key, body))
        });
    let list = warp::path!("verifications")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization())
        .and(body::raw_query())
        .and_then(|state, auth, query| respond_v2(verifications::list(state, auth, query)));
    let get = warp::path!("verifications" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization())
        .and(body::raw_query())
        .and_then(|id, state, auth, query| respond_v2(verifications::get(state, id, auth, query)));
    let cancel = warp::path!("verifications" / String / "cancel")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization())
        .and(idempotency_key())
        .and(body::limited())
        .and_then(|id, state, auth, key, body| {
            respond_v2(v1::verifications::cancel(state, id, auth, key, body))
        });
    let account = warp::path!("account")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization())
        .and_then(|state, auth| respond_v2(v1::account::get(state, auth)));
    let services = warp::path!("services")
        .and(warp::get())
        .and(with_state.clone())
        .and(body::raw_query())
        .and(v1::services::Asked::filter())
        .and_then(|state, query, asked| respond_v2(v1::services::list(state, query, asked)));
    let create_key = warp::path!("api-keys")
        .and(warp::post())
        .and(with_state.clone())
        .and(authorization())
        .and(idempotency_key())
        .and(body::limited())
        .and_then(|state, auth, key, body| {
            respond_v2(v1::api_keys::create(state, auth, key, body))
        });
    let list_keys = warp::path!("api-keys")
        .and(warp::get())
        .and(with_state.clone())
        .and(authorization())
        .and_then(|state, auth| respond_v2(v1::api_keys::list(state, auth)));
    let revoke_key = warp::path!("api-keys" / String)
        .and(warp::delete())
        .and(with_state.clone())
        .and(authorization())
        .and_then(|id, state, auth| respond_v2(v1::api_keys::revoke(state, id, auth)));
    let events = warp::path!("events")
        .and(warp::get())
        .and(with_state)
        .and(authorization())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(body::raw_query())
        .and_then(|state, auth, last, query| respond_v2(events::stream(state, auth, last, query)));

    let v2 = create
        .or(batch)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(cancel)
        .unify()
        .or(account)
        .unify()
        .or(services)
        .unify()
        .or(create_key)
        .unify()
        .or(list_keys)
        .unify()
        .or(revoke_key)
        .unify()
        .or(events)
        .unify()
        .recover(recover)
        .unify();
    warp::path("v2").and(v2).boxed()
}

/// Routing misses under `/v2` as problem details.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    respond_v2(async move { Err(routing_error(&rejection)) }).await
}
