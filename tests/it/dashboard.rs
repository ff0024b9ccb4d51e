//! The operator dashboard over HTTP: who gets in, what they see, what they can do, and the
//! audit trail of it.

use reqwest::{StatusCode, redirect::Policy};
use std::time::Duration;

use crate::support::{Account, TestEnv, TestEnvBuilder, eventually};
use namaskah::pipeline::Roles;
use namaskah_core::{
    domain::VerificationId,
    queue::QueueName,
    store::{
        admins,
        verifications::{self, AssignedNumber, OrderingClaim, OrderingClaimRequest},
    },
};
use namaskah_dashboard::security::credentials;
use namaskah_workers::WorkerKind;

/// An administrator with a known password and TOTP secret.
pub struct Admin {
    pub username: String,
    pub password: String,
    pub secret: String,
}

pub async fn admin(env: &TestEnv, username: &str) -> Admin {
    let password = credentials::generate_password();
    let secret = credentials::generate_totp_secret();
    let hash = credentials::hash_password(&password).expect("hash");
    admins::create(&env.pool, username, &hash, &secret)
        .await
        .expect("admin");
    Admin {
        username: username.to_owned(),
        password,
        secret,
    }
}

pub fn code_now(admin: &Admin) -> String {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    credentials::current_totp(&admin.secret, &admin.username, now).expect("code")
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client")
}

/// The API and the dashboard side by side (with the outbox relay).
pub(crate) fn api_and_dashboard_env() -> TestEnvBuilder {
    TestEnv::builder().roles(Roles {
        api: true,
        dashboard: true,
        relay: true,
        ..Roles::default()
    })
}

pub(crate) fn dashboard_env() -> TestEnvBuilder {
    TestEnv::builder().roles(Roles {
        dashboard: true,
        relay: true,
        ..Roles::default()
    })
}

/// Logs in; returns the session cookie (`name=value`).
async fn log_in(env: &TestEnv, admin: &Admin, code: &str) -> reqwest::Response {
    client()
        .post(format!("{}/login", env.dashboard))
        .form(&[
            ("username", admin.username.as_str()),
            ("password", admin.password.as_str()),
            ("code", code),
        ])
        .send()
        .await
        .expect("login")
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    let header = response.headers().get("set-cookie")?.to_str().ok()?;
    Some(header.split(';').next()?.to_owned())
}

/// A logged-in session: its cookie and the page's CSRF token.
pub(crate) struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub(crate) async fn session(env: &TestEnv, admin: &Admin) -> Session {
    let response = log_in(env, admin, &code_now(admin)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&response).expect("session cookie");
    let page = get(env, &cookie, "/").await.text().await.expect("page");
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token in the page")
        .to_owned();
    Session { cookie, csrf }
}

pub(crate) async fn get(env: &TestEnv, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", env.dashboard))
        .header("cookie", cookie)
        .send()
        .await
        .expect("get")
}

async fn post(env: &TestEnv, cookie: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(format!("{}{path}", env.dashboard))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .expect("post")
}

/// A verification straight in the database, counted, as the API would write it.
pub(crate) async fn insert_verification(env: &TestEnv, account: &Account) -> uuid::Uuid {
    let id = uuid::Uuid::now_v7();
    sqlx::query(
        "WITH counted AS (
             UPDATE accounts SET open_verifications = open_verifications + 1
             WHERE id = $2 RETURNING id
         )
         INSERT INTO verifications (id, account_id, service, country, price_cents, trace_id)
         SELECT $1, counted.id, 'telegram', 'us', 90, 'trace-1' FROM counted",
    )
    .bind(id)
    .bind(account.id)
    .execute(&env.pool)
    .await
    .expect("verification");
    id
}

async fn audit_actions(env: &TestEnv) -> Vec<(String, String)> {
    sqlx::query_as("SELECT actor, action FROM audit_log ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .expect("audit")
}

#[tokio::test]
async fn logged_out_visitors_are_sent_to_the_login_page() {
    let env = dashboard_env().start().await;
    for path in ["/", "/errors", "/parked", "/verifications", "/audit"] {
        let response = client()
            .get(format!("{}{path}", env.dashboard))
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(response.headers()["location"], "/login");
    }
    let login = client()
        .get(format!("{}/login", env.dashboard))
        .send()
        .await
        .expect("get");
    assert_eq!(login.status(), StatusCode::OK);
    let headers = login.headers().clone();
    assert!(
        headers["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn wrong_passwords_wrong_codes_and_reused_codes_are_refused_and_audited() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;

    let wrong_password = Admin {
        password: "not-it".into(),
        username: ops.username.clone(),
        secret: ops.secret.clone(),
    };
    assert_eq!(
        log_in(&env, &wrong_password, &code_now(&ops))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        log_in(&env, &ops, "000000").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let code = code_now(&ops);
    let first = log_in(&env, &ops, &code).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let cookie = first.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let replay = log_in(&env, &ops, &code).await;
    assert_eq!(
        replay.status(),
        StatusCode::UNAUTHORIZED,
        "a code is accepted once"
    );

    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT action || ':' || coalesce(details->>'reason', '') FROM audit_log WHERE actor = 'ops' ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .expect("audit");
    assert_eq!(
        reasons,
        vec![
            "login_failed:wrong password",
            "login_failed:wrong code",
            "login:",
            "login_failed:code already used"
        ]
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "locked").await;
    for _ in 0..5 {
        assert_eq!(
            log_in(&env, &ops, "123456").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = log_in(&env, &ops, &code_now(&ops)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.text().await.expect("page").contains("locked"));
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;
    let session = session(&env, &ops).await;
    sqlx::query("INSERT INTO error_groups (fingerprint, role, kind, message) VALUES ('fp1', 'worker', 'retryable', 'boom')")
        .execute(&env.pool)
        .await
        .expect("group");
    let missing = post(&env, &session.cookie, "/errors/fp1/resolve", &[]).await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = post(
        &env,
        &session.cookie,
        "/errors/fp1/resolve",
        &[("csrf", "forged")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let right = post(
        &env,
        &session.cookie,
        "/errors/fp1/resolve",
        &[("csrf", &session.csrf)],
    )
    .await;
    assert_eq!(right.status(), StatusCode::SEE_OTHER);
    let resolved: bool = sqlx::query_scalar(
        "SELECT resolved_at IS NOT NULL FROM error_groups WHERE fingerprint = 'fp1'",
    )
    .fetch_one(&env.pool)
    .await
    .expect("group");
    assert!(resolved);
    assert!(
        audit_actions(&env)
            .await
            .contains(&("ops".to_owned(), "error_resolve".to_owned()))
    );
}

#[tokio::test]
async fn addresses_outside_the_allowlist_are_refused() {
    let env = dashboard_env()
        .set("DASHBOARD_ALLOW_CIDRS", "10.0.0.0/8")
        .set("DASHBOARD_TRUSTED_PROXIES", "127.0.0.1/32")
        .start()
        .await;
    let direct = client()
        .get(format!("{}/login", env.dashboard))
        .send()
        .await
        .expect("get");
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
    let via_proxy = client()
        .get(format!("{}/login", env.dashboard))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .expect("get");
    assert_eq!(
        via_proxy.status(),
        StatusCode::OK,
        "the trusted proxy's client is allowed"
    );
    let spoofed = client()
        .get(format!("{}/login", env.dashboard))
        .header("x-forwarded-for", "10.1.2.3, 198.51.100.7")
        .send()
        .await
        .expect("get");
    assert_eq!(
        spoofed.status(),
        StatusCode::FORBIDDEN,
        "the nearest untrusted hop is the client"
    );
}

/// Fills the refund queue with seven messages and waits for the overview to show them.
async fn overview_shows_seven_ready_refunds(env: &TestEnv, source: &str) {
    let ops = admin(env, "ops").await;
    let session = session(env, &ops).await;
    let body = br#"{"type":"refund","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#;
    for _ in 0..7 {
        env.publish_raw(QueueName::Refund, body).await;
    }
    // The management API refreshes its statistics every few seconds.
    let page = eventually(
        Duration::from_secs(20),
        "seven ready refund messages",
        || async {
            let page = get(env, &session.cookie, "/").await.text().await.ok()?;
            page.contains(r#"data-live="queue.refund.ready">7<"#)
                .then_some(page)
        },
    )
    .await;
    assert!(
        page.contains(source),
        "the numbers should come from the {source}"
    );
    // Depths count messages; the page says how many jobs one message may hold.
    for (queue, jobs) in [
        ("ordering", 16),
        ("polling", 32),
        ("refund", 1),
        ("webhooks", 64),
    ] {
        let cell = format!(r#"data-jobs-per-message="{queue}">{jobs}<"#);
        assert!(page.contains(&cell), "{cell} missing");
    }
}

#[tokio::test]
async fn the_overview_shows_the_queue_depth_rabbitmq_reports_through_passive_declares() {
    let env = dashboard_env()
        .set("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:1")
        .start()
        .await;
    overview_shows_seven_ready_refunds(&env, "AMQP passive declares").await;
}

#[tokio::test]
async fn the_overview_shows_the_queue_depth_rabbitmq_reports_through_its_management_api() {
    namaskah_core::telemetry::install_crypto_provider();
    let probe = reqwest::Client::new()
        .get("http://127.0.0.1:15672/api/overview")
        .basic_auth("guest", Some("guest"))
        .send()
        .await;
    assert!(
        probe.is_ok_and(|r| r.status().is_success()),
        "RabbitMQ's management plugin is off: rabbitmq-plugins enable rabbitmq_management (`./scripts/test` does)"
    );
    let env = dashboard_env().start().await;
    overview_shows_seven_ready_refunds(&env, "management API").await;
}

#[tokio::test]
async fn parked_messages_can_be_requeued_and_purged_and_each_action_is_audited() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;
    let session = session(&env, &ops).await;
    // Two malformed messages parked by a polling worker.
    let _worker = env
        .start_roles(Roles {
            workers: vec![WorkerKind::Polling],
            ..Roles::default()
        })
        .await;
    env.publish_raw(QueueName::Polling, b"first broken message")
        .await;
    env.publish_raw(QueueName::Polling, b"second broken message")
        .await;
    let page = eventually(Duration::from_secs(10), "two parked messages", || async {
        let page = get(&env, &session.cookie, "/parked")
            .await
            .text()
            .await
            .ok()?;
        (page.contains("first broken message") && page.contains("second broken message"))
            .then_some(page)
    })
    .await;
    let id = page
        .split("data-parked-id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a parked message id")
        .to_owned();
    let requeued = post(
        &env,
        &session.cookie,
        "/parked/polling/requeue",
        &[("csrf", &session.csrf), ("id", &id)],
    )
    .await;
    assert_eq!(requeued.status(), StatusCode::SEE_OTHER);
    let purged = post(
        &env,
        &session.cookie,
        "/parked/polling/purge",
        &[("csrf", &session.csrf)],
    )
    .await;
    assert_eq!(purged.status(), StatusCode::SEE_OTHER);
    let actions = audit_actions(&env).await;
    assert!(actions.contains(&("ops".into(), "parked_requeue".into())));
    assert!(actions.contains(&("ops".into(), "parked_purge".into())));

    // The error page groups the failures; the audit log refuses to be edited.
    let errors = get(&env, &session.cookie, "/errors")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        errors.contains("malformed"),
        "parking was recorded as an error"
    );
    assert!(
        sqlx::query("UPDATE audit_log SET actor = 'someone else'")
            .execute(&env.pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM audit_log")
            .execute(&env.pool)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn every_page_renders_for_a_logged_in_operator() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;
    let session = session(&env, &ops).await;
    let account = env.account(1_000).await;
    let id = insert_verification(&env, &account).await;
    for path in [
        "/".to_owned(),
        "/errors?all=1".to_owned(),
        "/parked".to_owned(),
        "/verifications".to_owned(),
        format!("/verifications?q={}", account.id),
        format!("/verifications/{id}"),
        "/webhooks".to_owned(),
        "/scheduler".to_owned(),
        "/audit".to_owned(),
        "/usage".to_owned(),
        "/tenants".to_owned(),
    ] {
        let response = get(&env, &session.cookie, &path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let page = response.text().await.expect("page");
        assert!(!page.contains("failed to render"), "{path}");
    }
    let detail = get(&env, &session.cookie, &format!("/verifications/{id}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(detail.contains("trace-1") && detail.contains("accepted and charged"));
    assert!(detail.contains("<code>default</code>"), "names the tenant");
    assert!(
        detail.contains("<svg class=\"timeline-chart\"")
            && detail.contains("<desc id=\"story-desc\">accepted and charged"),
        "the timeline is drawn on a time axis and described in words: {detail}"
    );
    env.tenant("acme", Some("verify.acme.example")).await;
    let tenants = get(&env, &session.cookie, "/tenants")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        tenants.contains("acme brand")
            && tenants.contains("verify.acme.example")
            && tenants.contains(r##"fill="#0b5fff""##),
        "the tenants page shows each brand"
    );
    let usage = get(&env, &session.cookie, "/usage")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        usage.contains("<td>telegram</td><td>1</td>"),
        "the usage page counts it"
    );
    assert_eq!(
        usage.matches("<svg class=\"chart\"").count(),
        4,
        "the usage page charts verifications, success, money and time to SMS"
    );
    assert!(
        usage.contains("Verifications per day from ") && usage.contains("last 1."),
        "each chart says in words what it shows: {usage}"
    );
    // One account, one service: the same page, filtered; a bad filter is a clear 400.
    for (query, counted) in [
        (format!("account={}", account.id), true),
        ("service=telegram".to_owned(), true),
        (format!("account={}&service=whatsapp", account.id), false),
    ] {
        let filtered = get(&env, &session.cookie, &format!("/usage?{query}"))
            .await
            .text()
            .await
            .expect("page");
        assert_eq!(
            filtered.contains("<td>telegram</td><td>1</td>"),
            counted,
            "{query}: {filtered}"
        );
        assert_eq!(
            filtered.matches("<svg class=\"chart\"").count(),
            4,
            "{query}"
        );
    }
    for query in ["account=not-an-id", "service=Tele%20gram"] {
        let refused = get(&env, &session.cookie, &format!("/usage?{query}")).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let accounts_csv = get(&env, &session.cookie, "/export/accounts.csv").await;
    assert_eq!(
        accounts_csv.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let accounts_csv = accounts_csv.text().await.expect("csv");
    assert!(accounts_csv.starts_with("account_id,email,tier,balance_cents"));
    assert!(accounts_csv.contains(&account.id.to_string()));
    let usage_csv = get(&env, &session.cookie, "/export/usage.csv")
        .await
        .text()
        .await
        .expect("csv");
    assert!(
        usage_csv.contains(&format!("{},telegram,1,0,0,90,0", account.id)),
        "{usage_csv}"
    );
    let exports: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'export_%'")
            .fetch_one(&env.pool)
            .await
            .expect("audit");
    assert_eq!(exports, 2, "every download is audited");
    let css = client()
        .get(format!("{}/static/app.css", env.dashboard))
        .send()
        .await
        .expect("css");
    let etag = css.headers()["etag"].to_str().expect("etag").to_owned();
    let cached = client()
        .get(format!("{}/static/app.css", env.dashboard))
        .header("if-none-match", etag)
        .send()
        .await
        .expect("css");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Pages link the content-hashed name, served immutable and compressed as asked.
    let login = client()
        .get(format!("{}/login", env.dashboard))
        .send()
        .await
        .expect("login page")
        .text()
        .await
        .expect("html");
    let hashed = login
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.starts_with("/static/app.") && href.ends_with(".css"))
        .unwrap_or_else(|| panic!("no stylesheet link in {login}"))
        .to_owned();
    assert_ne!(hashed, "/static/app.css");
    assert!(login.contains("integrity=\"sha384-"), "{login}");
    let plain_length = client()
        .get(format!("{}/static/app.css", env.dashboard))
        .send()
        .await
        .expect("css")
        .bytes()
        .await
        .expect("css")
        .len();
    for (asked, expected) in [("br", "br"), ("gzip", "gzip")] {
        let asset = client()
            .get(format!("{}{hashed}", env.dashboard))
            .header("accept-encoding", asked)
            .send()
            .await
            .expect("hashed css");
        assert_eq!(asset.status(), StatusCode::OK);
        assert_eq!(asset.headers()["content-encoding"], expected);
        assert_eq!(
            asset.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(asset.headers()["vary"], "Accept-Encoding");
        let compressed = asset.bytes().await.expect("body").len();
        assert!(
            compressed < plain_length,
            "{asked}: {compressed} ≥ {plain_length}"
        );
    }
}

/// The search by number reads `verification_numbers` (migration 0027), which the number's
/// assignment fills in the same statement.
#[tokio::test]
async fn a_verification_is_found_by_its_number() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;
    let session = session(&env, &ops).await;
    let account = env.account(1_000).await;
    let id = VerificationId(insert_verification(&env, &account).await);
    let claim = match verifications::claim_for_ordering(
        &env.pool,
        &[OrderingClaimRequest { id, attempt: 1 }],
        Duration::from_secs(60),
    )
    .await
    .expect("claim")
    .pop()
    {
        Some(OrderingClaim::Claimed { claim, .. }) => claim,
        other => panic!("not claimed: {other:?}"),
    };
    verifications::assign_numbers(
        &env.pool,
        &[AssignedNumber {
            id,
            claim,
            provider: "sim".to_owned(),
            provider_order_id: "7".to_owned(),
            phone_number: "+15550007".to_owned(),
            sms_timeout_secs: 120,
            trace_id: "trace-1".to_owned(),
        }],
        0,
    )
    .await
    .expect("assigned");

    let search = |number: &'static str| {
        let env = &env;
        let cookie = session.cookie.clone();
        async move {
            get(
                env,
                &cookie,
                &format!("/verifications?q={}", number.replace('+', "%2B")),
            )
            .await
            .text()
            .await
            .expect("page")
        }
    };
    assert!(search("+15550007").await.contains(&id.to_string()));
    assert!(!search("+15550008").await.contains(&id.to_string()));
    // The fixture's verification carries no charge, so only this invariant is asked.
    let unlisted = env.violations_of("phone_numbers_listed").await;
    assert!(unlisted.is_empty(), "{unlisted:?}");
}

/// The webhooks page reads attempts, not every delivery (migration 0028): the endpoints'
/// counts are of the last hour, and a delivery is failing when an attempt of it failed and
/// it has not succeeded since, newest failure first.
#[tokio::test]
async fn the_webhooks_page_counts_the_hour_and_lists_what_has_not_succeeded_since_failing() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "ops").await;
    let session = session(&env, &ops).await;
    let account = env.account(1_000).await;
    struct Delivery {
        message: &'static str,
        endpoint: &'static str,
        status: &'static str,
        /// (minutes ago, succeeded), oldest first.
        attempts: &'static [(i32, bool)],
    }
    let delivery = |message, endpoint, status, attempts| Delivery {
        message,
        endpoint,
        status,
        attempts,
    };
    let deliveries = [
        delivery(
            "msg_retried_then_delivered",
            "a",
            "succeeded",
            &[(9, false), (8, true)],
        ),
        delivery("msg_given_up", "a", "failed", &[(7, false), (6, false)]),
        delivery("msg_retrying", "b", "pending", &[(5, false)]),
        delivery("msg_delivered_at_once", "b", "succeeded", &[(4, true)]),
        delivery("msg_failed_hours_ago", "b", "failed", &[(120, false)]),
    ];
    for endpoint in ["a", "b"] {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, account_id, url, secret)
             VALUES (gen_random_uuid(), $1, $2, 'whsec_test')",
        )
        .bind(account.id)
        .bind(format!("https://{endpoint}.example/hooks"))
        .execute(&env.pool)
        .await
        .expect("endpoint");
    }
    for Delivery {
        message,
        endpoint,
        status,
        attempts,
    } in deliveries
    {
        sqlx::query(
            "WITH m AS (
                 INSERT INTO webhook_messages (id, account_id, event_type, payload, trace_id)
                 VALUES ($1, $2, 'verification.completed', '{}', 'trace-1') RETURNING id
             )
             INSERT INTO webhook_deliveries (id, message_id, endpoint_id, status, attempts, last_attempt_at)
             SELECT gen_random_uuid(), m.id, e.id, $4, $5, now()
             FROM m, webhook_endpoints e WHERE e.url = $3",
        )
        .bind(message)
        .bind(account.id)
        .bind(format!("https://{endpoint}.example/hooks"))
        .bind(status)
        .bind(i32::try_from(attempts.len()).expect("few attempts"))
        .execute(&env.pool)
        .await
        .expect("delivery");
        for (number, (minutes_ago, succeeded)) in (1..).zip(attempts) {
            sqlx::query(
                "INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, succeeded, latency_ms)
                 SELECT id, $2, now() - make_interval(mins => $3), $4, 5
                 FROM webhook_deliveries WHERE message_id = $1",
            )
            .bind(message)
            .bind(number)
            .bind(minutes_ago)
            .bind(succeeded)
            .execute(&env.pool)
            .await
            .expect("attempt");
        }
    }

    let page = get(&env, &session.cookie, "/webhooks")
        .await
        .text()
        .await
        .expect("page");
    // Attempts and failures of the last hour: the failure two hours ago is not counted.
    for (endpoint, counts) in [("a", "<td>4</td><td>3</td>"), ("b", "<td>2</td><td>1</td>")] {
        assert!(
            page.contains(&format!(
                "https://{endpoint}.example/hooks</td><td>enabled</td>{counts}"
            )),
            "{endpoint}: {page}"
        );
    }
    let failing = page
        .split("<h2>Failing deliveries</h2>")
        .nth(1)
        .expect("the failing list");
    let listed: Vec<usize> = ["msg_retrying", "msg_given_up", "msg_failed_hours_ago"]
        .iter()
        .map(|message| failing.find(message).expect(message))
        .collect();
    assert!(listed.is_sorted(), "newest failure first: {failing}");
    for delivered in ["msg_retried_then_delivered", "msg_delivered_at_once"] {
        assert!(!failing.contains(delivered), "{delivered}: {failing}");
    }
}
