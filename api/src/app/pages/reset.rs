//! A forgotten password: a link by mail (a random token, stored only as its hash, working
//! once, for `PASSWORD_RESET_TTL`), then a new password, which ends every other session.

use serde_json::json;
use std::time::Duration;
use warp::{http::StatusCode, reply::Response};

use namaskah_core::store::{StoreError, customers};
use namaskah_dashboard::security::session;

use super::{account::unavailable, hash_password, password_problem};
use crate::app::{
    WebApp,
    mail::Mail,
    visit::{Visit, form_status},
};

/// At most this many links per account per hour: the form cannot be used to flood a mailbox.
const LINKS_PER_HOUR: i64 = 3;

const SENT: &str = "If an account here has that address, a link to choose a new password is on \
                    its way. It works once, for a short while.";

pub fn forgot_form(app: &WebApp, visit: &Visit, error: Option<&str>) -> Response {
    let status = form_status(error);
    app.page(
        visit,
        status,
        "forgot",
        "Forgot your password?",
        json!({ "error": error, "mail": app.mailer.is_some() }),
    )
}

pub async fn forgot(app: &WebApp, visit: &Visit) -> Response {
    let Some(mailer) = &app.mailer else {
        return forgot_form(app, visit, None);
    };
    let form = visit.form();
    let email = form
        .get("email")
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    if !namaskah_core::store::accounts::is_email(&email) {
        return forgot_form(
            app,
            visit,
            Some("Enter the e-mail address you signed up with."),
        );
    }
    let pool = &app.api.pool;
    let found = match customers::find_for_sign_in(pool, visit.tenant.tenant.id, &email).await {
        Ok(found) => found,
        Err(error) => return unavailable(app, visit, &error),
    };
    // The answer is the same whether or not the address is known.
    let Some(credentials) = found else {
        return app.message(visit, StatusCode::OK, "Check your mail", SENT);
    };
    match customers::recent_resets(pool, credentials.account_id, Duration::from_secs(3600)).await {
        Ok(sent) if sent >= LINKS_PER_HOUR => {
            return app.message(visit, StatusCode::OK, "Check your mail", SENT);
        }
        Ok(_) => {}
        Err(error) => return unavailable(app, visit, &error),
    }
    let token = session::new_token();
    let ttl = app.settings.reset_ttl;
    if let Err(error) = customers::create_reset(
        pool,
        &session::token_hash(&token),
        credentials.account_id,
        ttl,
    )
    .await
    {
        return unavailable(app, visit, &error);
    }
    let brand = &visit.tenant.tenant.brand;
    let link = format!("{}/reset/{token}", base_url(app, visit));
    let minutes = ttl.as_secs() / 60;
    let mail = Mail {
        to: &credentials.email,
        sender_name: &brand.name,
        subject: format!("Choose a new password for {}", brand.name),
        body: format!(
            "Someone (we hope you) asked to choose a new password for your {} account.\n\n\
             Open this link within {minutes} minutes to choose it:\n{link}\n\n\
             If it was not you, ignore this mail: your password stays as it is.\n",
            brand.name
        ),
    };
    // The link is a credential: the log says that a mail failed, never what it held.
    if let Err(error) = mailer.send(mail).await {
        metrics::counter!("namaskah_app_password_reset_mails_total", "outcome" => "failed")
            .increment(1);
        tracing::warn!(%error, account = %credentials.account_id, "password-reset mail not sent");
        return app.message(
            visit,
            StatusCode::SERVICE_UNAVAILABLE,
            "Mail is not going out",
            "We could not send the mail just now. Try again in a few minutes.",
        );
    }
    metrics::counter!("namaskah_app_password_reset_mails_total", "outcome" => "sent").increment(1);
    tracing::info!(account = %credentials.account_id, "password-reset link sent");
    app.message(visit, StatusCode::OK, "Check your mail", SENT)
}

/// Where this tenant's customers reach the app (links in mail, the checkout's way back):
/// its custom domain over https, else the configured public address. Never the request's
/// own `Host`, which anyone can forge.
pub fn base_url(app: &WebApp, visit: &Visit) -> String {
    match &visit.tenant.tenant.brand.custom_domain {
        Some(domain) => format!("https://{domain}"),
        None => app.settings.public_url.clone(),
    }
}

/// Only our own tokens (32 random bytes, URL-safe base64) are looked up.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn link_dead(app: &WebApp, visit: &Visit) -> Response {
    app.message(
        visit,
        StatusCode::GONE,
        "This link no longer works",
        "Links to choose a new password work once, for a short while. Ask for a new one from the sign-in page.",
    )
}

pub async fn reset_form(app: &WebApp, visit: &Visit, token: &str, error: Option<&str>) -> Response {
    if !well_formed(token) {
        return link_dead(app, visit);
    }
    match customers::reset_is_live(&app.api.pool, &session::token_hash(token)).await {
        Ok(true) => {}
        Ok(false) => return link_dead(app, visit),
        Err(error) => return unavailable(app, visit, &error),
    }
    let status = form_status(error);
    app.page(
        visit,
        status,
        "reset",
        "Choose a new password",
        json!({ "error": error, "token": token }),
    )
}

pub async fn reset(app: &WebApp, visit: &Visit, token: &str) -> Response {
    if !well_formed(token) {
        return link_dead(app, visit);
    }
    let password = visit.form().get("password").cloned().unwrap_or_default();
    if let Some(problem) = password_problem(&password) {
        return reset_form(app, visit, token, Some(&problem)).await;
    }
    let Some(hash) = hash_password(password).await else {
        return reset_form(
            app,
            visit,
            token,
            Some("That password cannot be used; choose another."),
        )
        .await;
    };
    let pool = &app.api.pool;
    let changed = async {
        let mut tx = pool.begin().await?;
        let Some(account) = customers::spend_reset(&mut tx, &session::token_hash(token)).await?
        else {
            return Ok(None);
        };
        customers::set_password(&mut tx, account, &hash).await?;
        // Whoever knew the old password is signed out everywhere.
        customers::end_sessions(&mut tx, account).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(Some(account))
    }
    .await;
    match changed {
        Ok(Some(account)) => {
            tracing::info!(%account, "customer chose a new password");
            app.message(
                visit,
                StatusCode::OK,
                "Password changed",
                "Your new password is set. Sign in with it.",
            )
        }
        Ok(None) => link_dead(app, visit),
        Err(error) => unavailable(app, visit, &error),
    }
}
