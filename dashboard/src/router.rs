//! Routing: the allowlist and the session come first, then the page.
//!
//! | page | GET | POST |
//! |---|---|---|
//! | `/login` | form | password + TOTP → session |
//! | `/logout` | | ends the session |
//! | `/` | overview (live over `/ws`) | |
//! | `/errors` | groups (`?all=1` with resolved) | `/errors/{fp}/resolve`, `/errors/{fp}/reopen` |
//! | `/parked` | parked messages per queue | `/parked/{queue}/requeue` (one `id` or all), `/parked/{queue}/purge` |
//! | `/verifications` | search | |
//! | `/verifications/{id}` | detail and timeline | |
//! | `/webhooks`, `/scheduler`, `/audit` | lists | |
//! | `/tenants` | white-label tenants and their brands | |

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::{
    collections::HashMap, convert::Infallible, net::SocketAddr, panic::AssertUnwindSafe, sync::Arc,
};
use warp::{
    Filter,
    http::{HeaderMap, Method, StatusCode},
    reply::{Reply, Response},
    ws::{Message, WebSocket},
};

use namaskah_core::store::{self, admins};

use crate::{
    DashboardState, assets, pages,
    request::{Request, redirect, text},
    security::{headers, session},
};

/// Bodies of dashboard forms are small.
const BODY_LIMIT: u64 = 16 * 1024;

pub fn routes(
    state: Arc<DashboardState>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let policy = state.policy.clone();
    let with_state = warp::any().map(move || Arc::clone(&state));
    let websocket = warp::path!("ws")
        .and(warp::ws())
        .and(with_state.clone())
        .and(warp::addr::remote())
        .and(warp::header::headers_cloned())
        .then(upgrade);
    let everything = warp::method()
        .and(warp::path::full())
        .and(
            warp::query::<HashMap<String, String>>()
                .or(warp::any().map(HashMap::new))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(
            warp::body::content_length_limit(BODY_LIMIT)
                .and(warp::body::bytes())
                .or(warp::any().map(Bytes::new))
                .unify(),
        )
        .and(with_state)
        .then(dispatch);
    websocket
        .or(everything)
        .unify()
        .map(move |mut response: Response| {
            headers::apply(response.headers_mut(), &policy);
            response
        })
}

/// The client's address if the allowlist lets it in.
fn admitted(
    state: &DashboardState,
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
) -> Option<std::net::IpAddr> {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    state
        .allowlist
        .client(peer, forwarded)
        .filter(|client| state.allowlist.allows(*client))
}

/// The session the cookie names. `Err` when the database cannot say: an operator whose
/// session merely cannot be read during an outage is told so, not sent to the login page.
async fn current_session(
    state: &DashboardState,
    headers: &HeaderMap,
) -> Result<(Option<String>, Option<admins::Session>), store::StoreError> {
    let cookies = headers.get("cookie").and_then(|v| v.to_str().ok());
    let Some(token) = session::DASHBOARD.token_from(cookies) else {
        return Ok((None, None));
    };
    let found = admins::find_session(&state.pool, &session::token_hash(&token)).await?;
    Ok((Some(token), found))
}

async fn dispatch(
    method: Method,
    path: warp::path::FullPath,
    query: HashMap<String, String>,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    body: Bytes,
    state: Arc<DashboardState>,
) -> Response {
    let Some(client) = admitted(&state, peer, &headers) else {
        return text(
            StatusCode::FORBIDDEN,
            "Forbidden: this address may not use the dashboard.",
        );
    };
    let segments: Vec<String> = path
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let ["static", name] = segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        return assets::serve(name, header("accept-encoding"), header("if-none-match"))
            .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "Not found."));
    }
    if segments.first().map(String::as_str) == Some("healthz") {
        return text(StatusCode::OK, "ok");
    }
    let (session_token, found) = match current_session(&state, &headers).await {
        Ok(session) => session,
        Err(error) => {
            tracing::warn!(%error, "cannot read the session");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again shortly.",
            );
        }
    };
    let is_get = method == Method::GET;
    let cache_policy = page_cache_policy(&segments);
    let if_none_match = headers
        .get(warp::http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let request = Request {
        method,
        segments,
        query,
        body,
        client,
        session: found,
        session_token,
    };
    let outcome = AssertUnwindSafe(route(&state, request))
        .catch_unwind()
        .await;
    let response = outcome.unwrap_or_else(|_| {
        tracing::error!("dashboard page panicked");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong; it has been logged.",
        )
    });
    if is_get && response.status() == StatusCode::OK {
        revalidated(response, cache_policy, if_none_match.as_deref())
    } else {
        response
    }
}

/// Pages that show no customer's personal data may stay in the operator's browser (always
/// revalidated); the rest are never stored.
fn page_cache_policy(segments: &[String]) -> &'static str {
    match segments.first().map(String::as_str) {
        None | Some("usage" | "scheduler" | "tenants") => "private, no-cache",
        Some(_) => "no-store",
    }
}

/// A page the client already holds (its `If-None-Match` names the page's ETag) becomes an
/// empty `304`; every page gets its cache policy.
fn revalidated(
    mut response: Response,
    cache_policy: &'static str,
    if_none_match: Option<&str>,
) -> Response {
    use warp::http::{HeaderValue, header};
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_policy),
    );
    let current = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|etag| etag.trim_start_matches("W/").to_owned());
    match (current, if_none_match) {
        (Some(etag), Some(tags)) if assets::etag_matches(tags, &etag) => {
            let mut not_modified = Response::new(Vec::new().into());
            *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
            *not_modified.headers_mut() = std::mem::take(response.headers_mut());
            not_modified.headers_mut().remove(header::CONTENT_TYPE);
            not_modified
        }
        _ => response,
    }
}

async fn route(state: &DashboardState, request: Request) -> Response {
    let is_post = request.method == Method::POST;
    let segments = request.segments.clone();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The login page is the only one open without a session.
    match (is_post, segments.as_slice()) {
        (false, ["login"]) => return pages::login::form(state, &request, None),
        (true, ["login"]) => return pages::login::submit(state, &request).await,
        _ => {}
    }
    let Some(session) = request.session.clone() else {
        return redirect("/login");
    };
    if is_post {
        let form = request.form();
        if !session::csrf_matches(&session.csrf_token, form.get("csrf").map(String::as_str)) {
            return text(
                StatusCode::FORBIDDEN,
                "Forbidden: the form's CSRF token is missing or wrong. Reload the page and try again.",
            );
        }
    }
    match (is_post, segments.as_slice()) {
        (true, ["logout"]) => pages::login::logout(state, &request, &session).await,
        (false, []) => pages::overview::page(state, &session).await,
        (false, ["errors"]) => pages::errors::page(state, &request, &session).await,
        (true, ["errors", fingerprint, action]) => {
            pages::errors::act(state, &request, &session, fingerprint, action).await
        }
        (false, ["parked"]) => pages::parked::page(state, &session).await,
        (true, ["parked", queue, action]) => {
            pages::parked::act(state, &request, &session, queue, action).await
        }
        (false, ["verifications"]) => pages::verifications::search(state, &request, &session).await,
        (false, ["verifications", id]) => pages::verifications::detail(state, &session, id).await,
        (false, ["webhooks"]) => pages::lists::webhooks(state, &session).await,
        (false, ["scheduler"]) => pages::lists::scheduler(state, &session).await,
        (false, ["usage"]) => pages::usage::page(state, &request, &session).await,
        (false, ["export", "accounts.csv"]) => {
            pages::export::accounts(state, &request, &session).await
        }
        (false, ["export", "usage.csv"]) => pages::export::usage(state, &request, &session).await,
        (false, ["tenants"]) => pages::tenants::page(state, &session).await,
        (false, ["audit"]) => pages::lists::audit(state, &session).await,
        _ => text(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// `GET /ws`: after the same checks as a page, the overview's numbers and charts as they
/// are sampled.
async fn upgrade(
    ws: warp::ws::Ws,
    state: Arc<DashboardState>,
    peer: Option<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if admitted(&state, peer, &headers).is_none() {
        return text(StatusCode::FORBIDDEN, "Forbidden.");
    }
    match current_session(&state, &headers).await {
        Ok((_, Some(_))) => {}
        Ok((_, None)) => return text(StatusCode::UNAUTHORIZED, "Log in first."),
        Err(_) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database is unavailable; try again shortly.",
            );
        }
    }
    ws.on_upgrade(move |socket| push_updates(socket, state))
        .into_response()
}

/// Sends each sample's update (numbers and charts) as it is taken, the latest at once.
async fn push_updates(socket: WebSocket, state: Arc<DashboardState>) {
    let (mut sender, mut receiver) = socket.split();
    let mut updates = state.live.subscribe();
    updates.mark_changed();
    loop {
        tokio::select! {
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                let message = updates.borrow_and_update().clone();
                if let Some(message) = message
                    && sender.send(Message::text(message.as_ref())).await.is_err()
                {
                    break;
                }
            }
            incoming = receiver.next() => match incoming {
                Some(Ok(message)) if message.is_close() => break,
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
}
