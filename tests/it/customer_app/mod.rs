//! The customer web app over HTTP: sign-up, top-up through the checkout and its signed
//! webhook, renting (once per form, however often it is sent), the code, cancel and refund,
//! the live event stream, tenants kept apart by `Host`, password reset by mail, two-factor
//! sign-in (`sign_in.rs`), and bad input on every form answered with a message, never a 500.
//! (`browser.rs` drives the same pages in Chromium.)

mod sign_in;
mod visitor;

pub use visitor::{Visitor, rent, top_up};

use reqwest::{StatusCode, header};
use std::time::Duration;

use crate::support::{TestEnv, eventually, never_sms};
use namaskah_load_tests::simulator::Behaviour;
use visitor::read_until;
async fn balance_cents(env: &TestEnv, email: &str) -> i64 {
    sqlx::query_scalar("SELECT balance_cents FROM accounts WHERE email = $1")
        .bind(email)
        .fetch_one(&env.pool)
        .await
        .expect("balance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_up_tops_up_rents_sees_the_code_and_cancels_for_a_refund() {
    let env = TestEnv::start().await;
    let visitor = Visitor::new(&env, None);
    let first = visitor.get("/").await;
    assert_eq!(first.location.as_deref(), Some("/sign-in"));
    visitor
        .sign_up("rita@example.com", "correct horse battery")
        .await;

    top_up(&env, &visitor, "25").await;
    assert_eq!(
        balance_cents(&env, "rita@example.com").await,
        2_500,
        "credited once"
    );
    let wallet = visitor.get("/wallet").await;
    assert!(wallet.body.contains("25.00"), "{}", wallet.body);

    // The live stream, open before the rental.
    let mut events = visitor.open("/events").await;
    assert_eq!(events.status(), StatusCode::OK);

    // The same form sent twice rents once.
    let id = rent(&visitor, "telegram", "form-1").await;
    let again = rent(&visitor, "telegram", "form-1").await;
    assert_eq!(id, again);
    let rented: i64 = sqlx::query_scalar("SELECT count(*) FROM verifications")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(rented, 1);

    let code = eventually(Duration::from_secs(20), "the code on the page", || {
        let visitor = &visitor;
        let id = id.clone();
        async move {
            let page = visitor.get(&format!("/verifications/{id}")).await;
            let code = page
                .body
                .split("id=\"code\" data-field=\"code\">")
                .nth(1)?
                .split('<')
                .next()?
                .to_owned();
            (code != "waiting…").then_some(code)
        }
    })
    .await;
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");
    let (completed, streamed) = read_until(&mut events, "event:verification.completed").await;
    assert!(completed, "the stream carried the completion: {streamed}");
    assert!(streamed.contains(&code));

    // A number whose SMS never comes, cancelled: the refund shows.
    env.sim.set_behaviour(never_sms());
    let open = rent(&visitor, "telegram", "form-2").await;
    // The page's live stream starts where the page was rendered, so an event that comes
    // while it renders (the number is often assigned within milliseconds) is not missed.
    let rendered = visitor.get(&format!("/verifications/{open}")).await;
    let live_url = rendered
        .body
        .split("data-live=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page names its live stream")
        .replace("&#x3D;", "=");
    let mut live = visitor.open(&live_url).await;
    let (assigned, seen) = read_until(&mut live, "event:verification.number_assigned").await;
    assert!(assigned, "{live_url} carried: {seen}");
    eventually(Duration::from_secs(20), "a number assigned", || {
        let visitor = &visitor;
        let open = open.clone();
        async move {
            let page = visitor.get(&format!("/verifications/{open}")).await;
            page.body
                .contains("data-field=\"status\">waiting_sms")
                .then_some(())
        }
    })
    .await;
    let page = visitor.get(&format!("/verifications/{open}")).await;
    assert!(page.body.contains("data-deadline="), "a countdown");
    let (csrf, key) = (page.field("csrf"), page.field("idempotency_key"));
    let cancelled = visitor
        .post(
            &format!("/verifications/{open}/cancel"),
            &[("csrf", &csrf), ("idempotency_key", &key)],
        )
        .await;
    assert_eq!(
        cancelled.status,
        StatusCode::SEE_OTHER,
        "{}",
        cancelled.body
    );
    eventually(Duration::from_secs(20), "the refund shown", || {
        let visitor = &visitor;
        let open = open.clone();
        async move {
            let page = visitor.get(&format!("/verifications/{open}")).await;
            (page
                .body
                .contains("data-field=\"refunded_at\"  class=\"ok\"")
                || page
                    .body
                    .contains("data-field=\"refunded_at\" class=\"ok\""))
            .then_some(())
        }
    })
    .await;
    let price: i64 =
        sqlx::query_scalar("SELECT price_cents FROM verifications WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&env.pool)
            .await
            .expect("price");
    assert_eq!(balance_cents(&env, "rita@example.com").await, 2_500 - price);
    let history = visitor.get("/history?status=refunded").await;
    assert!(
        history.body.contains(&open) && !history.body.contains(&id),
        "{}",
        history.body
    );
    env.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_brand_their_pages_and_never_see_each_others_customers() {
    let env = TestEnv::api_only().await;
    let alpha = env.tenant("alpha", Some("verify.alpha.test")).await;
    let beta = env.tenant("beta", Some("verify.beta.test")).await;
    let at_alpha = Visitor::new(&env, Some("verify.alpha.test"));
    let sign_in = at_alpha.get("/sign-in").await;
    assert!(
        sign_in.body.contains("Sign in to alpha brand"),
        "{}",
        sign_in.body
    );
    assert!(sign_in.body.contains("https://alpha.example/logo.svg"));
    assert!(
        at_alpha
            .get("/brand.css")
            .await
            .body
            .contains("--brand: #0b5fff")
    );
    at_alpha
        .sign_up("sam@example.com", "alpha password 1")
        .await;
    let tenant: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM accounts WHERE email = 'sam@example.com'")
            .fetch_one(&env.pool)
            .await
            .expect("account");
    assert_eq!(tenant, alpha.id.0);

    // The same address is another customer under another tenant.
    let at_beta = Visitor::new(&env, Some("verify.beta.test"));
    at_beta.sign_up("sam@example.com", "beta password 12").await;
    assert!(at_beta.get("/").await.body.contains("beta brand"));

    // Alpha's session is nothing under beta's host.
    let stolen = Visitor::new(&env, Some("verify.beta.test"));
    stolen.set_cookie(at_alpha.cookie());
    assert_eq!(
        stolen.get("/wallet").await.location.as_deref(),
        Some("/sign-in")
    );

    // Beta's customer cannot open alpha's verification.
    top_up(&env, &at_alpha, "5").await;
    let id = rent(&at_alpha, "telegram", "alpha-1").await;
    assert_eq!(
        at_alpha.get(&format!("/verifications/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        at_beta.get(&format!("/verifications/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!at_beta.get("/history").await.body.contains(&id));

    // A tenant that opens accounts itself has no sign-up page.
    let (status, tenant) = env
        .request(
            reqwest::Method::PATCH,
            "/v1/tenant",
            Some(&beta.admin.key),
            Some(serde_json::json!({ "customer_sign_up": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["customer_sign_up"], false);
    let newcomer = Visitor::new(&env, Some("verify.beta.test"));
    let closed = newcomer
        .post(
            "/sign-up",
            &[("email", "new@example.com"), ("password", "long enough pw")],
        )
        .await;
    assert_eq!(closed.status, StatusCode::FORBIDDEN);
    assert!(closed.body.contains("Sign-up is closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_form_gets_a_message_never_a_500() {
    let env = TestEnv::builder()
        .api_only()
        .behaviour(Behaviour::default())
        .start()
        .await;
    let visitor = Visitor::new(&env, None);
    for (fields, expected) in [
        (
            vec![("email", "not-an-address"), ("password", "long enough pw")],
            "e-mail address",
        ),
        (
            vec![("email", "a@example.com"), ("password", "short")],
            "10 to 128",
        ),
        (
            vec![
                ("email", "a@example.com"),
                ("password", "long enough pw"),
                ("referral_code", "NOPE"),
            ],
            "referral",
        ),
    ] {
        let page = visitor.post("/sign-up", &fields).await;
        assert!(page.status.is_client_error(), "{fields:?}: {}", page.status);
        assert!(
            page.body.to_lowercase().contains(&expected.to_lowercase()),
            "{fields:?}: {}",
            page.body
        );
    }
    let page = visitor
        .post(
            "/sign-in",
            &[("email", "x@example.com"), ("password", "whatever pw")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("do not match"));
    assert_eq!(
        visitor.get("/reset/not-a-token").await.status,
        StatusCode::GONE
    );

    visitor.sign_up("bad@example.com", "bad input pw").await;
    let csrf = visitor.csrf().await;
    // (path, fields, what the message says)
    type Form<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let forms: Vec<Form> = vec![
        ("/rent", vec![("service", "")], "Choose a service"),
        ("/rent", vec![("service", "no such service!")], "service"),
        (
            "/rent",
            vec![("service", "telegram"), ("country", "usa")],
            "country",
        ),
        ("/rent", vec![("service", "telegram")], "balance"),
        (
            "/wallet/top-up",
            vec![("amount", "ten"), ("provider", "paystack")],
            "amount such as",
        ),
        (
            "/wallet/top-up",
            vec![("amount", "0.50"), ("provider", "paystack")],
            "amount_cents",
        ),
        (
            "/wallet/top-up",
            vec![("amount", "10"), ("provider", "bitcoin")],
            "provider",
        ),
        ("/developers/webhooks", vec![("url", "not a url")], "url"),
        (
            "/developers/keys",
            vec![("name", "x"), ("scope", "everything")],
            "Choose what",
        ),
        ("/developers/keys/not-a-uuid/revoke", vec![], "no API key"),
        ("/verifications/not-a-uuid/cancel", vec![], "not found"),
        (
            "/security/two-factor",
            vec![("action", "sideways")],
            "on or off",
        ),
    ];
    for (path, mut fields, expected) in forms {
        fields.push(("csrf", &csrf));
        let page = visitor.post(path, &fields).await;
        assert!(
            page.status.is_client_error(),
            "{path} {fields:?}: {} {}",
            page.status,
            page.body
        );
        assert!(
            page.body.to_lowercase().contains(&expected.to_lowercase()),
            "{path} {fields:?}: {}",
            page.body
        );
    }
    for query in [
        "/history?status=bogus",
        "/history?page=0",
        "/history?service=NO%20WAY",
        "/verifications/nope",
    ] {
        let page = visitor.get(query).await;
        assert!(page.status.is_client_error(), "{query}: {}", page.status);
    }

    // Forms without the session's token, or from another site, change nothing.
    let forged = visitor.post("/rent", &[("service", "telegram")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let cross_site = visitor
        .as_visitor(visitor.http.post(format!("{}/rent", env.app)))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("service", "telegram")])
        .send()
        .await
        .expect("answer");
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    let headers = visitor
        .http
        .get(format!("{}/sign-in", env.app))
        .send()
        .await
        .expect("page");
    let policy = headers
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
}

/// A stand-in for Stripe's checkout API that keeps every form it is sent.
async fn recording_stripe() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use warp::Filter;
    let forms: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let kept = std::sync::Arc::clone(&forms);
    let sessions = warp::path!("v1" / "checkout" / "sessions")
        .and(warp::post())
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            if let Ok(mut forms) = kept.lock() {
                forms.push(String::from_utf8_lossy(&body).into_owned());
            }
            warp::reply::json(&serde_json::json!({
                "id": "cs_test_recorded",
                "url": "https://checkout.stripe.invalid/c/pay/cs_test_recorded",
            }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(sessions).incoming(listener).run());
    (format!("http://{address}"), forms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkout_sends_a_web_customer_back_to_the_wallet_of_their_own_tenant() {
    let (stripe, forms) = recording_stripe().await;
    let env = TestEnv::builder()
        .api_only()
        .set("STRIPE_BASE_URL", &stripe)
        .start()
        .await;
    env.tenant("gamma", Some("verify.gamma.test")).await;
    let success_url = |form: &str| {
        reqwest::Url::parse(&format!("http://form/?{form}"))
            .ok()?
            .query_pairs()
            .find(|(name, _)| name == "success_url")
            .map(|(_, value)| value.into_owned())
    };
    for (host, expected) in [
        (None, "http://127.0.0.1:8082/wallet?paid=1"),
        (
            Some("verify.gamma.test"),
            "https://verify.gamma.test/wallet?paid=1",
        ),
    ] {
        let visitor = Visitor::new(&env, host);
        visitor.sign_up("payer@example.com", "payer password").await;
        let csrf = visitor.csrf().await;
        let page = visitor
            .post(
                "/wallet/top-up",
                &[
                    ("csrf", csrf.as_str()),
                    ("idempotency_key", "k"),
                    ("amount", "12.50"),
                    ("provider", "stripe"),
                ],
            )
            .await;
        assert_eq!(
            page.location.as_deref(),
            Some("https://checkout.stripe.invalid/c/pay/cs_test_recorded")
        );
        let last = forms.lock().ok().and_then(|f| f.last().cloned());
        assert_eq!(
            last.as_deref().and_then(success_url).as_deref(),
            Some(expected)
        );
    }
    // A top-up through the API keeps the configured return address.
    let account = env.account(0).await;
    let (status, payment) = env
        .post(
            "/v1/payments",
            &account.key,
            serde_json::json!({ "provider": "stripe", "amount_cents": 1000, "currency": "USD" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    let last = forms.lock().ok().and_then(|f| f.last().cloned());
    assert_eq!(
        last.as_deref().and_then(success_url).as_deref(),
        Some("http://127.0.0.1:8080/docs")
    );
}
