//! For customers who integrate: their API keys (create, rotate, revoke) and webhook
//! endpoints (create, rotate the secret, the latest delivery attempts). A key or secret is
//! shown once, on the page that made it, as the API shows it once.

use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{api_keys, customers::Session, webhook_endpoints, webhook_messages};

use super::account::unavailable;
use crate::{
    app::{
        WebApp,
        calls::{self, Outcome},
        visit::Visit,
    },
    v1::{self, api_keys::KeyView, webhook_endpoints::EndpointView},
};

/// What the page shows once at the top: a new key or secret, or why an action was refused.
pub enum Notice {
    NewKey { name: String, key: String },
    NewSecret { url: String, secret: String },
    Refused(StatusCode, String),
}

pub async fn page(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    notice: Option<Notice>,
) -> Response {
    let pool = &app.api.pool;
    let found = async {
        Ok::<_, namaskah_core::store::StoreError>((
            api_keys::list_for_account(pool, session.account_id).await?,
            webhook_endpoints::list(pool, session.account_id).await?,
            webhook_messages::recent_attempts(pool, session.account_id, 20).await?,
        ))
    }
    .await;
    let (keys, endpoints, attempts) = match found {
        Ok(found) => found,
        Err(error) => return unavailable(app, visit, &error),
    };
    let keys: Vec<KeyView> = keys.iter().map(|k| KeyView::new(k, None)).collect();
    let endpoints: Vec<EndpointView> = endpoints
        .iter()
        .map(|e| EndpointView::new(e, false))
        .collect();
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|attempt| {
            json!({
                "endpoint_id": attempt.endpoint_id,
                "attempt": attempt.attempt,
                "at": attempt.attempted_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                "succeeded": attempt.succeeded,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": attempt.error,
            })
        })
        .collect();
    let mut status = StatusCode::OK;
    let notice = match notice {
        None => json!(null),
        Some(Notice::NewKey { name, key }) => json!({ "key_name": name, "key": key }),
        Some(Notice::NewSecret { url, secret }) => json!({ "url": url, "secret": secret }),
        Some(Notice::Refused(refused, message)) => {
            status = refused;
            json!({ "error": message })
        }
    };
    app.page(
        visit,
        status,
        "developers",
        "Developers",
        json!({
            "notice": notice,
            "keys": keys,
            "endpoints": endpoints,
            "attempts": attempts,
            "idempotency_key": Uuid::now_v7().to_string(),
        }),
    )
}

/// Runs an API handler as the customer and shows the page with what it came to.
async fn act<F, Fut>(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    handler: F,
    shown: fn(Value) -> Option<Notice>,
) -> Response
where
    F: FnOnce(Arc<crate::AppState>, crate::auth::Caller) -> Fut,
    Fut: std::future::Future<Output = Result<warp::reply::Response, crate::ApiError>>,
{
    let notice = match calls::act(&app.api, session, handler).await {
        Outcome::Done(answer) => shown(answer),
        Outcome::Refused { status, message } => Some(Notice::Refused(status, message)),
    };
    page(app, visit, session, notice).await
}

fn new_key(answer: Value) -> Option<Notice> {
    Some(Notice::NewKey {
        name: answer["name"].as_str().unwrap_or_default().to_owned(),
        key: answer["key"].as_str()?.to_owned(),
    })
}

fn new_secret(answer: Value) -> Option<Notice> {
    Some(Notice::NewSecret {
        url: answer["url"].as_str().unwrap_or_default().to_owned(),
        secret: answer["secret"].as_str()?.to_owned(),
    })
}

/// `POST /developers/keys` `name`, `scope` (`read` or `write`), `idempotency_key`.
pub async fn create_key(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let form = visit.form();
    let scopes: &[&str] = match form.get("scope").map(String::as_str) {
        Some("read") => &["read"],
        Some("write") | None => &["read", "write"],
        Some(_) => {
            let notice = Notice::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose what the key may do.".to_owned(),
            );
            return page(app, visit, session, Some(notice)).await;
        }
    };
    let request =
        json!({ "name": form.get("name").map(|n| n.trim()).unwrap_or_default(), "scopes": scopes });
    let key = calls::idempotency_key(&form);
    act(
        app,
        visit,
        session,
        |state, caller| v1::api_keys::create_as(state, caller, key, calls::body(&request)),
        new_key,
    )
    .await
}

/// `POST /developers/keys/{id}/revoke`, or `/rotate`: a new key with the same name and
/// scopes, then the old one revoked.
pub async fn key_action(
    app: &WebApp,
    visit: &Visit,
    session: &Session,
    id: &str,
    action: &str,
) -> Response {
    let revoke = |state, caller| v1::api_keys::revoke_as(state, id.to_owned(), caller);
    match action {
        "revoke" => act(app, visit, session, revoke, |_| None).await,
        "rotate" => {
            let existing = match Uuid::parse_str(id) {
                Ok(key_id) => {
                    let mut conn = match app.api.pool.acquire().await {
                        Ok(conn) => conn,
                        Err(error) => return unavailable(app, visit, &error.into()),
                    };
                    api_keys::find_for_account(&mut conn, session.account_id, key_id).await
                }
                Err(_) => Ok(None),
            };
            let existing = match existing {
                Ok(Some(key)) if key.revoked_at.is_none() => key,
                Ok(_) => {
                    let notice = Notice::Refused(
                        StatusCode::NOT_FOUND,
                        "That key is not one of your live keys.".to_owned(),
                    );
                    return page(app, visit, session, Some(notice)).await;
                }
                Err(error) => return unavailable(app, visit, &error),
            };
            let request = json!({ "name": existing.name, "scopes": existing.scopes });
            let key = calls::idempotency_key(&visit.form());
            let state = &app.api;
            let created = match calls::caller(state, session).await {
                Ok(caller) => v1::api_keys::create_as(
                    Arc::clone(state),
                    caller.clone(),
                    key,
                    calls::body(&request),
                )
                .await
                .map(|created| (created, caller)),
                Err(error) => Err(error),
            };
            let (created, caller) = match created {
                Ok(done) => done,
                Err(error) => {
                    let notice = Notice::Refused(error.status(), error.to_string());
                    return page(app, visit, session, Some(notice)).await;
                }
            };
            let notice = match calls::outcome(Ok(created)).await {
                Outcome::Done(answer) => {
                    // The old key goes only once its successor exists.
                    if let Outcome::Refused { status, message } =
                        calls::outcome(revoke(Arc::clone(state), caller).await).await
                    {
                        Some(Notice::Refused(status, message))
                    } else {
                        new_key(answer)
                    }
                }
                Outcome::Refused { status, message } => Some(Notice::Refused(status, message)),
            };
            page(app, visit, session, notice).await
        }
        _ => app.message(
            visit,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such action.",
        ),
    }
}

/// `POST /developers/webhooks` `url`, `description`, `idempotency_key`.
pub async fn create_endpoint(app: &WebApp, visit: &Visit, session: &Session) -> Response {
    let form = visit.form();
    let request = json!({
        "url": form.get("url").map(|u| u.trim()).unwrap_or_default(),
        "description": form.get("description").map(|d| d.trim()).unwrap_or_default(),
    });
    let key = calls::idempotency_key(&form);
    act(
        app,
        visit,
        session,
        |state, caller| v1::webhook_endpoints::create_as(state, caller, key, calls::body(&request)),
        new_secret,
    )
    .await
}

/// `POST /developers/webhooks/{id}/rotate`: a new secret (the old one keeps signing for the
/// overlap, as with the API).
pub async fn rotate_endpoint(app: &WebApp, visit: &Visit, session: &Session, id: &str) -> Response {
    let key = calls::idempotency_key(&visit.form());
    let rotate = |state, caller| {
        v1::webhook_endpoints::rotate_secret_as(
            state,
            id.to_owned(),
            caller,
            key,
            Ok(bytes::Bytes::new()),
        )
    };
    act(app, visit, session, rotate, new_secret).await
}
