//! Routing: static files first, then the tenant by `Host`, the session by cookie, the
//! CSRF checks, and the page.

use bytes::Bytes;
use futures_util::FutureExt;
use std::{
    collections::HashMap, convert::Infallible, net::SocketAddr, panic::AssertUnwindSafe, sync::Arc,
};
use warp::{
    Filter,
    http::{HeaderMap, Method, StatusCode},
    reply::Response,
};

use namaskah_core::store::{StoreError, customers, events};
use namaskah_dashboard::security::{client_ip::Allowlist, headers, session};

use super::{
    COOKIE, WebApp, assets,
    pages::{account, developers, history, live, rent, reset, wallet},
    visit::{Visit, redirect, text},
};

/// Bodies of the app's forms are small.
const BODY_LIMIT: u64 = 16 * 1024;

pub fn routes(app: Arc<WebApp>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let policy = app.policy.clone();
    let with_app = warp::any().map(move || Arc::clone(&app));
    warp::method()
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
        .and(with_app)
        .then(dispatch)
        .map(move |mut response: Response| {
            headers::apply(response.headers_mut(), &policy);
            response
        })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn dispatch(
    method: Method,
    path: warp::path::FullPath,
    query: HashMap<String, String>,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    body: Bytes,
    app: Arc<WebApp>,
) -> Response {
    let segments: Vec<String> = path
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match segments
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["static", name] => {
            return assets::serve(name)
                .unwrap_or_else(|| text(StatusCode::NOT_FOUND, "Not found."));
        }
        ["healthz"] => return text(StatusCode::OK, "ok"),
        _ => {}
    }
    // Pages are read and forms are posted; nothing else is done here.
    if !matches!(method, Method::GET | Method::HEAD | Method::POST) {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "Only GET and POST are used here.",
        );
        response.headers_mut().insert(
            warp::http::header::ALLOW,
            warp::http::HeaderValue::from_static("GET, HEAD, POST"),
        );
        return response;
    }
    // A form posted from another site is refused before anything else (sign-in and sign-up
    // have no session, hence no CSRF token, to protect them).
    if method == Method::POST && !same_origin(&headers) {
        return text(
            StatusCode::FORBIDDEN,
            "Forbidden: this form was sent from another site.",
        );
    }
    let visit = match visit(&app, method, segments, query, &headers, peer, body).await {
        Ok(visit) => visit,
        Err(error) => {
            tracing::warn!(%error, "web app cannot read the tenant or the session");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is briefly unavailable; try again in a moment.",
            );
        }
    };
    let outcome = AssertUnwindSafe(route(&app, visit)).catch_unwind().await;
    outcome.unwrap_or_else(|_| {
        tracing::error!("web app page panicked");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong; it has been logged.",
        )
    })
}

/// Whether a POST comes from this very origin: its `Origin` (or, without one, its
/// `Referer`) names the host it was sent to.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(host) = header(headers, "host") else {
        return false;
    };
    let from = header(headers, "origin")
        .filter(|origin| *origin != "null")
        .or_else(|| header(headers, "referer"));
    let Some(from) = from else {
        // Browsers send `Origin` with every POST; a client that sends neither is not a
        // browser a forged form could drive.
        return true;
    };
    from.split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

async fn visit(
    app: &WebApp,
    method: Method,
    segments: Vec<String>,
    query: HashMap<String, String>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    body: Bytes,
) -> Result<Visit, StoreError> {
    let state = &app.api;
    let tenant_id = state
        .caches
        .tenant_for_host(&state.pool, header(headers, "host"))
        .await?;
    let tenant = state.caches.tenant(&state.pool, tenant_id).await?;
    let session_token = COOKIE.token_from(header(headers, "cookie"));
    let session = match &session_token {
        Some(token) => customers::find_session(&state.pool, &session::token_hash(token))
            .await?
            // A session is good only under its own tenant's host.
            .filter(|found| found.tenant_id == tenant_id),
        None => None,
    };
    // Only the pages that show rentals follow the live stream; the others need no position.
    let shows_rentals = matches!(
        segments
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        [] | ["history"] | ["verifications", _]
    );
    let live_from = match &session {
        Some(session) if method == Method::GET && shows_rentals => Some(
            events::head(&state.pool, session.account_id)
                .await?
                .to_event_id(),
        ),
        _ => None,
    };
    Ok(Visit {
        live_from,
        method,
        segments,
        query,
        body,
        client: Allowlist {
            allow: Vec::new(),
            trusted_proxies: app.settings.trusted_proxies.clone(),
        }
        .client(peer, header(headers, "x-forwarded-for"))
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        tenant,
        session,
        session_token,
        last_event_id: header(headers, "last-event-id").map(str::to_owned),
    })
}

async fn route(app: &WebApp, visit: Visit) -> Response {
    let is_post = visit.method == Method::POST;
    let segments = visit.segments.clone();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // Pages open without a session.
    match (is_post, segments.as_slice()) {
        (false, ["brand.css"]) => return rent::brand_css(&visit),
        (false, ["sign-in"]) => return account::sign_in_form(app, &visit, None),
        (true, ["sign-in"]) => return account::sign_in(app, &visit).await,
        (false, ["sign-up"]) => return account::sign_up_form(app, &visit, None).await,
        (true, ["sign-up"]) => return account::sign_up(app, &visit).await,
        (false, ["forgot"]) => return reset::forgot_form(app, &visit, None),
        (true, ["forgot"]) => return reset::forgot(app, &visit).await,
        (false, ["reset", token]) => return reset::reset_form(app, &visit, token, None).await,
        (true, ["reset", token]) => return reset::reset(app, &visit, token).await,
        _ => {}
    }
    let Some(session) = visit.session.clone() else {
        return redirect("/sign-in");
    };
    if is_post {
        let form = visit.form();
        if !session::csrf_matches(&session.csrf_token, form.get("csrf").map(String::as_str)) {
            return app.message(
                &visit,
                StatusCode::FORBIDDEN,
                "Please try again",
                "This form has expired. Go back, reload the page and send it again.",
            );
        }
    }
    match (is_post, segments.as_slice()) {
        (true, ["sign-out"]) => account::sign_out(app, &visit).await,
        (false, []) => rent::page(app, &visit, &session, None).await,
        (true, ["rent"]) => rent::order(app, &visit, &session).await,
        (false, ["verifications", id]) => rent::verification(app, &visit, &session, id).await,
        (true, ["verifications", id, "cancel"]) => rent::cancel(app, &visit, &session, id).await,
        (false, ["events"]) => live::events(app, &visit, &session).await,
        (false, ["history"]) => history::page(app, &visit, &session).await,
        (false, ["wallet"]) => wallet::page(app, &visit, &session, None).await,
        (true, ["wallet", "top-up"]) => wallet::top_up(app, &visit, &session).await,
        (false, ["developers"]) => developers::page(app, &visit, &session, None).await,
        (true, ["developers", "keys"]) => developers::create_key(app, &visit, &session).await,
        (true, ["developers", "keys", id, action]) => {
            developers::key_action(app, &visit, &session, id, action).await
        }
        (true, ["developers", "webhooks"]) => {
            developers::create_endpoint(app, &visit, &session).await
        }
        (true, ["developers", "webhooks", id, "rotate"]) => {
            developers::rotate_endpoint(app, &visit, &session, id).await
        }
        (false, ["security"]) => account::security_page(app, &visit, &session, None).await,
        (true, ["security", "two-factor"]) => account::two_factor(app, &visit, &session).await,
        _ => app.message(
            &visit,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, warp::http::HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn posts_from_another_origin_are_told_apart() {
        assert!(same_origin(&headers(&[
            ("host", "verify.acme.example"),
            ("origin", "https://verify.acme.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "verify.acme.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8082"),
            ("referer", "http://127.0.0.1:9999/page")
        ])));
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8082")])));
    }
}
