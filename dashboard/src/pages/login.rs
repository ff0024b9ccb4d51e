//! Logging in (password and TOTP code together) and out.

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use namaskah_core::store::admins::{self, Session};

use super::audit;
use crate::{
    DashboardState,
    request::{Request, html, redirect},
    security::{credentials, session},
    templates,
};

/// After this many failures in a row an account is locked for [`LOCKOUT`].
const MAX_FAILURES: i32 = 5;
const LOCKOUT: Duration = Duration::from_secs(15 * 60);

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    code: String,
}

pub fn form(state: &DashboardState, _request: &Request, error: Option<&str>) -> Response {
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    html(
        status,
        templates::render(
            &state.templates,
            "login",
            &json!({ "error": error, "title": "Log in" }),
        ),
    )
}

pub async fn submit(state: &DashboardState, request: &Request) -> Response {
    let refuse = |message: &str| form(state, request, Some(message));
    if !state.throttle.allows(request.client) {
        let mut response = form(
            state,
            request,
            Some("Too many failed attempts from your address; wait a minute."),
        );
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        return response;
    }
    let Some(login) = request.form_as::<LoginForm>() else {
        return refuse("Enter your user name, password and code.");
    };
    let username = login.username.trim().to_ascii_lowercase();
    let ip = request.ip();
    let admin = match admins::find_by_username(&state.pool, &username).await {
        Ok(admin) => admin,
        Err(error) => {
            tracing::error!(%error, "cannot read administrators");
            return refuse("The dashboard cannot reach its database; try again shortly.");
        }
    };
    let Some(admin) = admin else {
        // The same work and answer as a wrong password, so names cannot be probed.
        let _ = credentials::verify_password(&login.password, DUMMY_HASH);
        state.throttle.failed(request.client);
        audit(
            state,
            &username,
            "login_failed",
            None,
            json!({"reason": "unknown user"}),
            &ip,
        )
        .await;
        return refuse("Wrong user name, password or code.");
    };
    if admin.locked_until.is_some_and(|until| until > Utc::now()) {
        audit(
            state,
            &username,
            "login_refused",
            None,
            json!({"reason": "locked"}),
            &ip,
        )
        .await;
        return refuse("This account is locked after repeated failures; try again in 15 minutes.");
    }
    let password_ok = {
        let (password, hash) = (login.password.clone(), admin.password_hash.clone());
        tokio::task::spawn_blocking(move || credentials::verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    };
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let step = credentials::totp_step(&admin.totp_secret, &admin.username, &login.code, now);
    let accepted = match (password_ok, step) {
        (true, Some(step)) => admins::accept_login(&state.pool, admin.id, step)
            .await
            .unwrap_or(false),
        _ => false,
    };
    if !accepted {
        state.throttle.failed(request.client);
        let _ = admins::record_failure(&state.pool, admin.id, MAX_FAILURES, LOCKOUT).await;
        let reason = match (password_ok, step) {
            (false, _) => "wrong password",
            (true, None) => "wrong code",
            (true, Some(_)) => "code already used",
        };
        audit(
            state,
            &username,
            "login_failed",
            None,
            json!({ "reason": reason }),
            &ip,
        )
        .await;
        return refuse("Wrong user name, password or code.");
    }
    let token = session::new_token();
    let csrf = session::new_token();
    let ttl = state.config.dashboard.session_ttl;
    if let Err(error) = admins::create_session(
        &state.pool,
        &session::token_hash(&token),
        admin.id,
        &csrf,
        &ip,
        ttl,
    )
    .await
    {
        tracing::error!(%error, "cannot create a session");
        return refuse("The dashboard cannot reach its database; try again shortly.");
    }
    audit(state, &username, "login", None, json!({}), &ip).await;
    let mut response = redirect("/");
    if let Ok(cookie) = HeaderValue::from_str(&session::DASHBOARD.set(
        &token,
        state.config.dashboard.secure_cookies,
        ttl.as_secs(),
    )) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub async fn logout(state: &DashboardState, request: &Request, session: &Session) -> Response {
    if let Some(token) = &request.session_token {
        let _ = admins::delete_session(&state.pool, &session::token_hash(token)).await;
    }
    audit(
        state,
        &session.username,
        "logout",
        None,
        json!({}),
        &request.ip(),
    )
    .await;
    let mut response = redirect("/login");
    if let Ok(cookie) =
        HeaderValue::from_str(&session::DASHBOARD.clear(state.config.dashboard.secure_cookies))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A valid argon2id hash of a random password, checked against when the user is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Zb9tOuFmx3yh7mAVjmSHvwtPUp2kqBNJ1QS5qAh8GEU";
