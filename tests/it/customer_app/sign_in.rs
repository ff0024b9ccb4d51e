//! Signing in to the web app: a forgotten password reset by a mailed link, two-factor
//! sign-in, and the throttle behind a proxy.

use reqwest::{StatusCode, header};
use std::time::Duration;

use super::Visitor;
use crate::support::{Mailbox, TestEnv, eventually};
use namaskah_dashboard::security::credentials;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_reset_by_a_mailed_link_that_works_once() {
    let mailbox = Mailbox::start().await;
    let env = TestEnv::builder()
        .api_only()
        .set("SMTP_URL", &mailbox.url())
        .start()
        .await;
    let old_session = Visitor::new(&env, None);
    old_session
        .sign_up("nora@example.com", "first password")
        .await;

    let visitor = Visitor::new(&env, None);
    let sent = visitor
        .post("/forgot", &[("email", "NORA@example.com")])
        .await;
    assert_eq!(sent.status, StatusCode::OK);
    let unknown = visitor
        .post("/forgot", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(
        unknown.body, sent.body,
        "the answer does not say who has an account"
    );
    let mails = eventually(Duration::from_secs(5), "the mail", || async {
        let mails = mailbox.mails();
        (!mails.is_empty()).then_some(mails)
    })
    .await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, vec!["<nora@example.com>".to_owned()]);
    assert_eq!(mails[0].from, "<no-reply@namaskah.localhost>");
    let data = mails[0].data.replace("=\n", "");
    let token = data
        .split("/reset/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a link")
        .to_owned();

    assert_eq!(
        visitor.get(&format!("/reset/{token}")).await.status,
        StatusCode::OK
    );
    let short = visitor
        .post(&format!("/reset/{token}"), &[("password", "short")])
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let changed = visitor
        .post(
            &format!("/reset/{token}"),
            &[("password", "second password")],
        )
        .await;
    assert!(
        changed.body.contains("Password changed"),
        "{}",
        changed.body
    );
    let again = visitor
        .post(
            &format!("/reset/{token}"),
            &[("password", "third password!")],
        )
        .await;
    assert_eq!(again.status, StatusCode::GONE, "a link works once");

    assert_eq!(
        old_session.get("/").await.location.as_deref(),
        Some("/sign-in"),
        "signed out everywhere"
    );
    let old = visitor
        .post(
            "/sign-in",
            &[
                ("email", "nora@example.com"),
                ("password", "first password"),
            ],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNPROCESSABLE_ENTITY);
    let new = visitor
        .post(
            "/sign-in",
            &[
                ("email", "nora@example.com"),
                ("password", "second password"),
            ],
        )
        .await;
    assert_eq!(new.status, StatusCode::SEE_OTHER);
    // Housekeeping forgets expired sessions and spent links a day after they expired.
    sqlx::query("UPDATE customer_sessions SET expires_at = now() - interval '1 minute'")
        .execute(&env.pool)
        .await
        .expect("expire sessions");
    sqlx::query("UPDATE password_resets SET expires_at = now() - interval '2 days'")
        .execute(&env.pool)
        .await
        .expect("age links");
    let deleted = namaskah_core::store::housekeeping::delete_expired_sessions(&env.pool)
        .await
        .expect("housekeeping");
    assert!(deleted >= 2, "deleted {deleted}");
    assert_eq!(visitor.get("/").await.location.as_deref(), Some("/sign-in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_factor_sign_in_asks_for_a_fresh_code() {
    let env = TestEnv::api_only().await;
    let visitor = Visitor::new(&env, None);
    let email = "tara@example.com";
    visitor.sign_up(email, "tara password").await;
    let security = visitor.get("/security").await;
    let (csrf, secret) = (security.field("csrf"), security.field("secret"));
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let wrong = visitor
        .post(
            "/security/two-factor",
            &[
                ("csrf", &csrf),
                ("action", "on"),
                ("secret", &secret),
                ("code", "000000"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    let code = credentials::current_totp(&secret, email, now).expect("code");
    let on = visitor
        .post(
            "/security/two-factor",
            &[
                ("csrf", &csrf),
                ("action", "on"),
                ("secret", &secret),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER, "{}", on.body);
    let csrf = visitor.csrf().await;
    visitor.post("/sign-out", &[("csrf", &csrf)]).await;
    assert!(visitor.cookie().is_none());

    let without = visitor
        .post(
            "/sign-in",
            &[("email", email), ("password", "tara password")],
        )
        .await;
    assert!(without.body.contains("six-digit code"), "{}", without.body);
    let reused = visitor
        .post(
            "/sign-in",
            &[
                ("email", email),
                ("password", "tara password"),
                ("code", &code),
            ],
        )
        .await;
    assert!(reused.body.contains("used already"), "{}", reused.body);
    let next = credentials::current_totp(&secret, email, now + 30).expect("code");
    let signed_in = visitor
        .post(
            "/sign-in",
            &[
                ("email", email),
                ("password", "tara password"),
                ("code", &next),
            ],
        )
        .await;
    assert_eq!(
        signed_in.status,
        StatusCode::SEE_OTHER,
        "{}",
        signed_in.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_sign_in_throttle_counts_each_customers_address() {
    let env = TestEnv::builder()
        .api_only()
        .set("APP_TRUSTED_PROXIES", "127.0.0.1/32")
        .start()
        .await;
    let visitor = Visitor::new(&env, None);
    let sign_in = |from: &'static str| {
        visitor
            .http
            .post(format!("{}/sign-in", env.app))
            .header(header::HOST, visitor.host.clone())
            .header("x-forwarded-for", from)
            .form(&[
                ("email", "nobody@example.com"),
                ("password", "a wrong guess"),
            ])
            .send()
    };
    for _ in 0..10 {
        let answer = sign_in("203.0.113.5").await.expect("answer");
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let throttled = sign_in("203.0.113.5").await.expect("answer");
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another customer behind the same proxy is not held back by the first one's guesses.
    let other = sign_in("198.51.100.7").await.expect("answer");
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
