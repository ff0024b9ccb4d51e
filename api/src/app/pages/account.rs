//! Signing up, in and out, and turning two-factor sign-in on or off.

use chrono::Utc;
use serde_json::json;
use warp::{
    http::{HeaderValue, StatusCode, header},
    reply::Response,
};

use namaskah_core::{
    domain::{Cents, Tier},
    store::{StoreError, accounts, customers, referrals},
};
use namaskah_dashboard::security::{credentials, session};

use super::{LOCKOUT, MAX_FAILURES, hash_password, password_problem, verify_password};
use crate::app::{
    COOKIE, WebApp,
    visit::{Visit, form_status, redirect},
};

const WRONG: &str = "That e-mail address and password do not match an account here.";

pub fn sign_in_form(app: &WebApp, visit: &Visit, error: Option<&str>) -> Response {
    let form = visit.form();
    let status = form_status(error);
    app.page(
        visit,
        status,
        "sign_in",
        "Sign in",
        json!({
            "error": error,
            "email": form.get("email"),
            "needs_code": error == Some(CODE_NEEDED),
        }),
    )
}

const CODE_NEEDED: &str = "Enter the six-digit code from your authenticator app.";

pub async fn sign_in(app: &WebApp, visit: &Visit) -> Response {
    if !app.throttle.allows(visit.client) {
        signed_in("throttled");
        return app.message(
            visit,
            StatusCode::TOO_MANY_REQUESTS,
            "Too many attempts",
            "Too many failed sign-ins from this address. Wait a minute and try again.",
        );
    }
    let form = visit.form();
    let field = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (email, password, code) = (
        field("email"),
        form.get("password").cloned().unwrap_or_default(),
        field("code"),
    );
    if email.is_empty() || password.is_empty() {
        return sign_in_form(
            app,
            visit,
            Some("Enter your e-mail address and your password."),
        );
    }
    let pool = &app.api.pool;
    let found = match customers::find_for_sign_in(pool, visit.tenant.tenant.id, &email).await {
        Ok(found) => found,
        Err(error) => return unavailable(app, visit, &error),
    };
    let password_ok =
        verify_password(password, found.as_ref().map(|c| c.password_hash.clone())).await;
    let known = found.as_ref().map(|c| c.account_id);
    let Some(credentials) = found.filter(|_| password_ok) else {
        app.throttle.failed(visit.client);
        if let Some(account) = known {
            let _ = customers::record_failure(pool, account, MAX_FAILURES, LOCKOUT).await;
        }
        signed_in("refused");
        return sign_in_form(app, visit, Some(WRONG));
    };
    if credentials
        .locked_until
        .is_some_and(|until| until > Utc::now())
    {
        signed_in("locked");
        return sign_in_form(
            app,
            visit,
            Some(
                "This account is locked after too many failed sign-ins. Try again in 15 minutes, or reset your password.",
            ),
        );
    }
    let step = match &credentials.totp_secret {
        None => None,
        Some(_) if code.is_empty() => return sign_in_form(app, visit, Some(CODE_NEEDED)),
        Some(secret) => {
            let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
            match credentials::totp_step(secret, &credentials.email, &code, now) {
                Some(step) => Some(step),
                None => {
                    app.throttle.failed(visit.client);
                    let _ = customers::record_failure(
                        pool,
                        credentials.account_id,
                        MAX_FAILURES,
                        LOCKOUT,
                    )
                    .await;
                    signed_in("refused");
                    return sign_in_form(
                        app,
                        visit,
                        Some("That code is not right; codes change every 30 seconds."),
                    );
                }
            }
        }
    };
    match customers::accept_sign_in(pool, credentials.account_id, step).await {
        Ok(true) => {}
        Ok(false) => {
            return sign_in_form(
                app,
                visit,
                Some("That code was used already; wait for the next one."),
            );
        }
        Err(error) => return unavailable(app, visit, &error),
    }
    signed_in("succeeded");
    start_session(app, visit, credentials.account_id).await
}

/// Counts a sign-in by how it ended (`namaskah_app_sign_ins_total`).
fn signed_in(outcome: &'static str) {
    metrics::counter!("namaskah_app_sign_ins_total", "outcome" => outcome).increment(1);
}

/// A new session for the account: the cookie, and on to the rent page.
async fn start_session(
    app: &WebApp,
    visit: &Visit,
    account: namaskah_core::domain::AccountId,
) -> Response {
    let token = session::new_token();
    let csrf = session::new_token();
    let ttl = app.settings.session_ttl;
    if let Err(error) = customers::create_session(
        &app.api.pool,
        &session::token_hash(&token),
        account,
        &csrf,
        ttl,
    )
    .await
    {
        return unavailable(app, visit, &error);
    }
    tracing::info!(%account, "customer signed in to the web app");
    let mut response = redirect("/");
    if let Ok(value) =
        HeaderValue::from_str(&COOKIE.set(&token, app.settings.secure_cookies, ttl.as_secs()))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn sign_out(app: &WebApp, visit: &Visit) -> Response {
    if let Some(token) = &visit.session_token {
        let _ = customers::delete_session(&app.api.pool, &session::token_hash(token)).await;
    }
    let mut response = redirect("/sign-in");
    if let Ok(value) = HeaderValue::from_str(&COOKIE.clear(app.settings.secure_cookies)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub async fn sign_up_form(app: &WebApp, visit: &Visit, error: Option<&str>) -> Response {
    if !visit.tenant.tenant.customer_sign_up {
        return sign_up_closed(app, visit);
    }
    let form = visit.form();
    let status = form_status(error);
    app.page(
        visit,
        status,
        "sign_up",
        "Create an account",
        json!({
            "error": error,
            "email": form.get("email"),
            "referral_code": form.get("referral_code").map(String::as_str).or(visit.query("ref")),
        }),
    )
}

fn sign_up_closed(app: &WebApp, visit: &Visit) -> Response {
    app.message(
        visit,
        StatusCode::FORBIDDEN,
        "Sign-up is closed",
        "New accounts here are opened by the team that runs this service. Ask them for one.",
    )
}

pub async fn sign_up(app: &WebApp, visit: &Visit) -> Response {
    let pool = &app.api.pool;
    if !visit.tenant.tenant.customer_sign_up {
        return sign_up_closed(app, visit);
    }
    let form = visit.form();
    let email = form
        .get("email")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    let referral = form
        .get("referral_code")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    if !accounts::is_email(&email) {
        return sign_up_form(
            app,
            visit,
            Some("Enter an e-mail address, like name@example.com."),
        )
        .await;
    }
    if let Some(problem) = password_problem(&password) {
        return sign_up_form(app, visit, Some(&problem)).await;
    }
    if referral
        .as_ref()
        .is_some_and(|code| code.chars().count() > 64)
    {
        return sign_up_form(app, visit, Some("That referral code is not one of ours.")).await;
    }
    let Some(hash) = hash_password(password).await else {
        return sign_up_form(
            app,
            visit,
            Some("That password cannot be used; choose another."),
        )
        .await;
    };
    let created = async {
        let mut tx = pool.begin().await?;
        let account = accounts::create(
            &mut tx,
            visit.tenant.tenant.id,
            &email,
            Tier::Free,
            Cents::ZERO,
        )
        .await?;
        if let Some(code) = &referral {
            let link = referrals::link(&mut tx, account.id, code).await?;
            if let Err(refused) = crate::v1::referrals::refusal(&link) {
                return Ok(Err(refused.to_string()));
            }
        }
        customers::set_password(&mut tx, account.id, &hash).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(Ok(account))
    }
    .await;
    match created {
        Ok(Ok(account)) => {
            metrics::counter!("namaskah_app_sign_ups_total").increment(1);
            tracing::info!(account = %account.id, tenant = %account.tenant_id, "customer signed up in the web app");
            start_session(app, visit, account.id).await
        }
        Ok(Err(refusal)) => sign_up_form(app, visit, Some(&refusal)).await,
        Err(StoreError::AlreadyExists(_)) => {
            sign_up_form(
                app,
                visit,
                Some("An account with this e-mail address exists already: sign in, or reset its password."),
            )
            .await
        }
        Err(error) => unavailable(app, visit, &error),
    }
}

pub async fn security_page(
    app: &WebApp,
    visit: &Visit,
    session: &customers::Session,
    error: Option<&str>,
) -> Response {
    // A secret to add to an authenticator app: kept in the form until a code confirms it.
    let secret = credentials::generate_totp_secret();
    let uri = credentials::otpauth_uri(&secret, &session.email).unwrap_or_default();
    let status = form_status(error);
    app.page(
        visit,
        status,
        "security",
        "Security",
        json!({
            "error": error,
            "has_totp": session.has_totp,
            "secret": secret,
            "otpauth_uri": uri,
        }),
    )
}

/// `action=on` with the new `secret` and a `code` from it; `action=off` with the password.
pub async fn two_factor(app: &WebApp, visit: &Visit, session: &customers::Session) -> Response {
    let form = visit.form();
    let pool = &app.api.pool;
    let now = u64::try_from(Utc::now().timestamp()).unwrap_or(0);
    let changed = match form.get("action").map(String::as_str) {
        Some("on") => {
            let secret = form
                .get("secret")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            let code = form
                .get("code")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            if !credentials::totp_secret_is_usable(&secret, &session.email) {
                return security_page(
                    app,
                    visit,
                    session,
                    Some("Start again: the secret was damaged."),
                )
                .await;
            }
            let Some(step) = credentials::totp_step(&secret, &session.email, &code, now) else {
                return security_page(app, visit, session, Some("That code is not right. Add the secret to your app and enter the code it shows.")).await;
            };
            customers::set_totp(pool, session.account_id, Some(&secret), step).await
        }
        Some("off") => {
            let password = form.get("password").cloned().unwrap_or_default();
            let stored = match customers::find(pool, session.account_id).await {
                Ok(found) => found.map(|c| c.password_hash),
                Err(error) => return unavailable(app, visit, &error),
            };
            if !verify_password(password, stored).await {
                return security_page(app, visit, session, Some("That password is not right."))
                    .await;
            }
            customers::set_totp(pool, session.account_id, None, 0).await
        }
        _ => {
            return security_page(
                app,
                visit,
                session,
                Some("Choose to turn two-factor sign-in on or off."),
            )
            .await;
        }
    };
    match changed {
        Ok(()) => {
            tracing::info!(account = %session.account_id, "customer changed two-factor sign-in");
            redirect("/security")
        }
        Err(error) => unavailable(app, visit, &error),
    }
}

/// The database could not answer: say so, and to come back.
pub fn unavailable(app: &WebApp, visit: &Visit, error: &StoreError) -> Response {
    tracing::warn!(%error, "web app page cannot reach the database");
    app.message(
        visit,
        StatusCode::SERVICE_UNAVAILABLE,
        "Briefly unavailable",
        "The service cannot answer right now. Nothing was changed; try again in a moment.",
    )
}
