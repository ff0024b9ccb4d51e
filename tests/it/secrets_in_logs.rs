//! No secret ever reaches a log line or a Sentry event: a whole pipeline (`namaskah up`) runs
//! with every kind of secret in use — API keys, webhook secrets, an operator's password and
//! TOTP seed, the provider's and the payment services' keys, the database password, the
//! Sentry key — with our own crates logging at `debug`, and every line it and the commands
//! around it wrote, and every event the fake Sentry received, is searched for each secret and
//! its obvious encodings.

use base64::Engine;
use serde_json::{Value, json};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use warp::Filter;

use crate::support::{Lines, Mailbox, Up, amqp_url, eventually, free_address, server_url};
use namaskah_core::{
    Config,
    queue::{self, QueueName, Topology},
    store::admins,
};
use namaskah_dashboard::security::credentials;

/// A local stand-in for Sentry's ingestion endpoint: every envelope it receives.
pub(crate) async fn fake_sentry() -> (SocketAddr, Lines) {
    let received: Lines = Arc::default();
    let store = Arc::clone(&received);
    let ingest = warp::post()
        .and(warp::path!("api" / u64 / "envelope"))
        .and(warp::body::bytes())
        .map(move |_project: u64, body: bytes::Bytes| {
            if let Ok(mut received) = store.lock() {
                received.push(String::from_utf8_lossy(&body).into_owned());
            }
            warp::reply()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(ingest).incoming(listener).run());
    (address, received)
}

/// A secret as it is, and as it would look base64-, hex- or URL-encoded.
fn encodings(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
        secret.bytes().map(|b| format!("{b:02x}")).collect(),
        urlencoding(secret),
    ]
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_log_line_or_a_sentry_event() {
    namaskah_core::telemetry::install_crypto_provider();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let database_password = format!("db-pass-{id}");
    let database_url = format!(
        "{}/namaskah_test_secrets_{id}",
        server_url().replacen("postgres@", &format!("postgres:{database_password}@"), 1)
    );
    let (sentry, sentry_events) = fake_sentry().await;
    let mailbox = Mailbox::start().await;
    let sentry_key = format!("sentrykey{id}");
    let mut secrets = vec![
        database_password.clone(),
        format!("sim-key-{id}"),
        format!("sk_test_paystack_{id}"),
        format!("sk_test_stripe_{id}"),
        format!("whsec_c3RyaXBlLXNpZ25pbmctc2VjcmV0LXt7aWR9fQ{id}"),
        sentry_key.clone(),
    ];
    let environment = [
        ("DATABASE_URL", database_url.clone()),
        ("AMQP_URL", amqp_url()),
        ("QUEUE_PREFIX", format!("t{id}.")),
        ("API_ADDR", "127.0.0.1:0".to_owned()),
        ("APP_ADDR", "127.0.0.1:0".to_owned()),
        ("SMTP_URL", mailbox.url()),
        ("DASHBOARD_ADDR", "127.0.0.1:0".to_owned()),
        // The providers' URL is built from this address, so it needs a real port.
        ("SIMULATOR_ADDR", free_address()),
        ("METRICS_ADDR", "off".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        (
            "RUST_LOG",
            "info,namaskah=debug,namaskah_core=debug,namaskah_api=debug,namaskah_workers=debug,\
             namaskah_dashboard=debug,namaskah_scheduler=debug,namaskah_load_tests=debug"
                .to_owned(),
        ),
        ("SIMULATOR_API_KEY", secrets[1].clone()),
        ("PAYSTACK_SECRET_KEY", secrets[2].clone()),
        ("STRIPE_SECRET_KEY", secrets[3].clone()),
        ("STRIPE_WEBHOOK_SECRET", secrets[4].clone()),
        ("SENTRY_DSN", format!("http://{sentry_key}@{sentry}/42")),
        ("WEBHOOK_ALLOW_HTTP", "true".to_owned()),
        ("WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true".to_owned()),
    ];
    let mut up = Up::start(&environment).await;
    let logs = Arc::clone(&up.lines);
    let (api, dashboard) = (up.announced("API"), up.announced("dashboard"));
    let app = up.announced("customer web app");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // A customer with an API key, made by the command an operator would use.
    let created = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .args([
            "accounts",
            "create",
            "--email",
            "secrets@example.com",
            "--balance-cents",
            "100000",
        ])
        .envs(environment.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("namaskah accounts create");
    assert!(created.status.success(), "{created:?}");
    logs.lock().expect("logs").extend(
        String::from_utf8_lossy(&created.stderr)
            .lines()
            .map(str::to_owned),
    );
    let created: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let api_key = created["api_key"].as_str().expect("key").to_owned();
    secrets.push(api_key.clone());

    // An operator logs in with password and code, and someone else tries a wrong password.
    let pool = namaskah_core::store::connect(&database_url, 2)
        .await
        .expect("pool");
    let password = credentials::generate_password();
    let totp_secret = credentials::generate_totp_secret();
    let hash = credentials::hash_password(&password).expect("hash");
    admins::create(&pool, "ops", &hash, &totp_secret)
        .await
        .expect("operator");
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let code = credentials::current_totp(&totp_secret, "ops", now).expect("code");
    let wrong_password = format!("wrong-password-{id}");
    secrets.extend([
        password.clone(),
        totp_secret.clone(),
        wrong_password.clone(),
        hash,
    ]);
    for (password, code) in [
        (wrong_password.as_str(), "000000"),
        (password.as_str(), code.as_str()),
    ] {
        http.post(format!("{dashboard}/login"))
            .form(&[("username", "ops"), ("password", password), ("code", code)])
            .send()
            .await
            .expect("login");
    }

    // A customer of the web app: signs up, turns on two-factor sign-in, fails a sign-in,
    // forgets the password and sets a new one through the mailed link.
    secrets.extend(web_app_secrets(&http, &app, &mailbox, id).await);

    // A webhook endpoint (its secret, then the rotated one) at a receiver that fails, and a
    // verification whose events it is sent.
    let receiver = warp::post()
        .map(|| warp::reply::with_status("no", warp::http::StatusCode::INTERNAL_SERVER_ERROR));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let receiver_addr = listener.local_addr().expect("address");
    tokio::spawn(warp::serve(receiver).incoming(listener).run());
    let authorised = |request: reqwest::RequestBuilder| request.bearer_auth(&api_key);
    let endpoint: Value = authorised(http.post(format!("{api}/v1/webhook-endpoints")))
        .json(&json!({ "url": format!("http://{receiver_addr}/hook") }))
        .send()
        .await
        .expect("endpoint")
        .json()
        .await
        .expect("JSON");
    secrets.push(endpoint["secret"].as_str().expect("secret").to_owned());
    let rotated: Value = authorised(http.post(format!(
        "{api}/v1/webhook-endpoints/{}/rotate-secret",
        endpoint["id"].as_str().expect("id")
    )))
    .send()
    .await
    .expect("rotate")
    .json()
    .await
    .expect("JSON");
    secrets.push(
        rotated["secret"]
            .as_str()
            .expect("rotated secret")
            .to_owned(),
    );
    let verification: Value = authorised(http.post(format!("{api}/v1/verifications")))
        .json(&json!({ "service": "telegram", "country": "us" }))
        .send()
        .await
        .expect("order")
        .json()
        .await
        .expect("JSON");
    let verification_id = verification["id"]
        .as_str()
        .unwrap_or_else(|| panic!("ordered: {verification}"))
        .to_owned();
    eventually(
        Duration::from_secs(30),
        "the verification completes",
        || {
            let request = authorised(http.get(format!("{api}/v1/verifications/{verification_id}")));
            async move {
                let response = request.send().await;
                let body: Value = response.ok()?.json().await.ok()?;
                (body["status"] == "completed").then_some(())
            }
        },
    )
    .await;

    // A forged payment notice, and a message no worker can read (recorded, so sent to Sentry).
    http.post(format!("{api}/v1/payments/paystack/webhook"))
        .header("x-paystack-signature", "forged")
        .body("{}")
        .send()
        .await
        .expect("notice");
    let config = Config::from_map(
        &environment
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
    .expect("config");
    let connection = queue::connect(&amqp_url(), "test").await.expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .basic_publish(
            Topology::from_config(&config).exchange().into(),
            QueueName::Polling.as_str().into(),
            Default::default(),
            b"not a message",
            Default::default(),
        )
        .await
        .expect("publish");
    eventually(
        Duration::from_secs(30),
        "an event at the fake Sentry",
        || {
            let events = sentry_events.lock().map(|e| e.len()).unwrap_or(0);
            async move { (events > 0).then_some(()) }
        },
    )
    .await;
    // Let the webhook's failures and retries be logged too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = up.process.kill().await;
    let _ = up.process.wait().await;
    // The pipeline's queues go with its database.
    let _ = Topology::from_config(&config).delete(&channel).await;
    let _ = connection.close(200, "done".into()).await;
    pool.close().await;
    namaskah_core::store::drop_database(&database_url)
        .await
        .expect("drop");

    let logs = logs.lock().expect("logs").clone();
    let events = sentry_events.lock().expect("events").clone();
    assert!(logs.len() > 20, "the run logged: {logs:?}");
    assert!(
        logs.iter().any(|line| line.contains(&verification_id)),
        "the logs follow the verification, so they are worth searching"
    );
    assert!(!events.is_empty(), "Sentry received the recorded failure");
    for secret in &secrets {
        for encoded in encodings(secret) {
            if let Some(line) = logs
                .iter()
                .chain(&events)
                .find(|line| line.contains(&encoded))
            {
                panic!(
                    "a secret ({}…) is in: {line}",
                    &secret[..4.min(secret.len())]
                );
            }
        }
    }
}

/// Drives the web app through every form that carries a secret, and returns the secrets:
/// passwords (right, wrong, new), the session cookie, the TOTP seed, the reset link's token.
async fn web_app_secrets(
    http: &reqwest::Client,
    app: &str,
    mailbox: &Mailbox,
    id: &str,
) -> Vec<String> {
    let origin = app.to_owned();
    let post = |path: &str, cookie: Option<&str>, form: Vec<(&str, String)>| {
        let mut request = http
            .post(format!("{app}{path}"))
            .header("origin", &origin)
            .form(&form);
        if let Some(cookie) = cookie {
            request = request.header("cookie", format!("namaskah_app_session={cookie}"));
        }
        request.send()
    };
    let email = format!("web-{id}@example.com");
    let password = format!("web-password-{id}");
    let signed_up = post(
        "/sign-up",
        None,
        vec![("email", email.clone()), ("password", password.clone())],
    )
    .await
    .expect("sign-up");
    let cookie = signed_up
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("namaskah_app_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let security = http
        .get(format!("{app}/security"))
        .header("cookie", format!("namaskah_app_session={cookie}"))
        .send()
        .await
        .expect("security page")
        .text()
        .await
        .expect("page");
    let field = |name: &str| {
        security
            .split(&format!("name=\"{name}\" value=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("field")
            .to_owned()
    };
    let (csrf, seed) = (field("csrf"), field("secret"));
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let code = credentials::current_totp(&seed, &email, now).expect("code");
    post(
        "/security/two-factor",
        Some(&cookie),
        vec![
            ("csrf", csrf),
            ("action", "on".into()),
            ("secret", seed.clone()),
            ("code", code),
        ],
    )
    .await
    .expect("two-factor on");
    let wrong = format!("web-wrong-{id}");
    post(
        "/sign-in",
        None,
        vec![("email", email.clone()), ("password", wrong.clone())],
    )
    .await
    .expect("sign-in");
    post("/forgot", None, vec![("email", email.clone())])
        .await
        .expect("forgot");
    let mail = eventually(Duration::from_secs(10), "the reset mail", || async {
        mailbox.mails().into_iter().next()
    })
    .await;
    let token = mail
        .data
        .replace("=\n", "")
        .split("/reset/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a link")
        .to_owned();
    let new_password = format!("web-new-password-{id}");
    let reset = post(
        &format!("/reset/{token}"),
        None,
        vec![("password", new_password.clone())],
    )
    .await
    .expect("reset");
    assert!(reset.status().is_success(), "reset: {}", reset.status());
    vec![password, cookie, seed, wrong, token, new_password]
}
