//! Well-known third-party scanners against the live API, dashboard and customer web app, as
//! an outside tester would run them: sqlmap over every parameter that reaches a query (API
//! paths, query strings and JSON bodies with a key; the dashboard's and the web app's forms
//! with a session; the login and sign-in forms without one), and wapiti over the dashboard
//! and the web app for their headers, cookies, CSP, leftover files, methods and injections. What they reported and what was done about it:
//! docs/compliance.md, "Outside scanners".
//!
//! Both come from PyPI into `target/venv-scanners` (`tests/scanners.txt`); the test command
//! installs them and names them in `SQLMAP` and `WAPITI`.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::{
    customer_app::{self, Visitor},
    dashboard::{admin, api_and_dashboard_env, dashboard_env, session},
};
use namaskah_core::domain::{Scope, Tier};

fn scanner(variable: &str, name: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| name.to_owned())
}

/// A directory of this test's own for a scanner's session files and report.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("namaskah-{name}-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// One sqlmap target: a URL (`*` marks a path segment to inject), optional body and headers.
struct Target {
    what: &'static str,
    url: String,
    data: Option<String>,
    headers: Vec<String>,
    /// Statuses the target answers to its own valid request, which sqlmap would stop at.
    expected_error: Option<&'static str>,
}

/// Runs sqlmap on `target` with boolean, error and UNION techniques (time-based blind is
/// left out: slow, and the same queries are bound parameters either way). Returns its output.
async fn sqlmap(target: &Target, output_dir: &Path) -> String {
    let mut command = tokio::process::Command::new(scanner("SQLMAP", "sqlmap"));
    command.args([
        "-u",
        &target.url,
        "--batch",
        "--flush-session",
        "--disable-coloring",
        "--technique=BEU",
        "--level=2",
        "--risk=1",
        "--threads=4",
        "--timeout=10",
        "--output-dir",
    ]);
    command.arg(output_dir);
    if let Some(data) = &target.data {
        command.args(["--data", data]);
    }
    for header in &target.headers {
        command.args(["-H", header]);
    }
    if let Some(code) = target.expected_error {
        command.args(["--ignore-code", code]);
    }
    let output = command
        .current_dir(output_dir)
        .output()
        .await
        .expect("sqlmap is missing: ./scripts/test installs it (tests/scanners.txt)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn sqlmap_finds_no_injection_in_the_api_or_the_dashboard() {
    let env = api_and_dashboard_env().start().await;
    let account = env
        .account_on_tier(
            100_000_000,
            &[Scope::Read, Scope::Write, Scope::Admin],
            Tier::Enterprise,
        )
        .await;
    let verification = env.create_verification(&account, "telegram", "us").await;
    let operator = admin(&env, "scanner").await;
    let cookie = session(&env, &operator).await.cookie;
    let customer = Visitor::new(&env, None);
    customer
        .sign_up("sqlmap@example.com", "scanner password")
        .await;
    let app_cookie = format!(
        "Cookie: namaskah_app_session={}",
        customer.cookie().expect("signed in")
    );
    let csrf = customer.csrf().await;
    let bearer = format!("Authorization: Bearer {}", account.key);
    let targets = [
        Target {
            what: "web app POST /rent (form)",
            url: format!("{}/rent", env.app),
            data: Some(format!(
                "csrf={csrf}&idempotency_key=scan&service=telegram&country=us"
            )),
            headers: vec![app_cookie.clone()],
            // Refused orders (no balance, bad service or country) are a page with a 4xx.
            expected_error: Some("402,404,422,429"),
        },
        Target {
            what: "GET /v1/verifications?status&limit&offset",
            url: format!(
                "{}/v1/verifications?status=pending&limit=10&offset=0",
                env.api
            ),
            data: None,
            headers: vec![bearer.clone()],
            expected_error: None,
        },
        Target {
            what: "GET /v2/verifications/{id}?expand",
            url: format!("{}/v2/verifications/{verification}*?expand=events", env.api),
            data: None,
            headers: vec![bearer.clone()],
            expected_error: None,
        },
        Target {
            what: "GET /v1/services?service&country",
            url: format!("{}/v1/services?service=telegram&country=us", env.api),
            data: None,
            headers: vec![bearer.clone()],
            expected_error: None,
        },
        Target {
            what: "GET /v1/usage?from&to&service",
            url: format!(
                "{}/v1/usage?from=2026-01-01&to=2026-01-31&service=telegram",
                env.api
            ),
            data: None,
            headers: vec![bearer.clone()],
            expected_error: None,
        },
        Target {
            what: "POST /v1/webhook-endpoints (JSON body)",
            url: format!("{}/v1/webhook-endpoints", env.api),
            data: Some(
                json!({ "url": "http://127.0.0.1:9/scan", "description": "scan" }).to_string(),
            ),
            headers: vec![bearer.clone(), "Content-Type: application/json".to_owned()],
            expected_error: None,
        },
        Target {
            what: "dashboard GET /verifications?q&status",
            url: format!(
                "{}/verifications?q=%2B15550001111&status=pending",
                env.dashboard
            ),
            data: None,
            headers: vec![format!("Cookie: {cookie}")],
            expected_error: None,
        },
        Target {
            what: "dashboard GET /usage?account&service",
            url: format!(
                "{}/usage?account={}&service=telegram",
                env.dashboard, account.id
            ),
            data: None,
            headers: vec![format!("Cookie: {cookie}")],
            expected_error: None,
        },
        Target {
            what: "web app GET /history?status&service&page",
            url: format!("{}/history?status=pending&service=telegram&page=1", env.app),
            data: None,
            headers: vec![app_cookie.clone()],
            expected_error: Some("400"),
        },
        Target {
            what: "web app POST /sign-in (no session)",
            url: format!("{}/sign-in", env.app),
            data: Some("email=nobody%40example.com&password=guess&code=".to_owned()),
            headers: Vec::new(),
            expected_error: Some("422,429"),
        },
        Target {
            what: "dashboard POST /login (no session)",
            url: format!("{}/login", env.dashboard),
            data: Some("username=scanner&password=guess&code=123456".to_owned()),
            headers: Vec::new(),
            // Wrong credentials: 401, then 429 once the failures are throttled.
            expected_error: Some("401,429"),
        },
    ];
    // Two scans at a time, each with its own session directory (sqlmap keeps one per host,
    // and `--flush-session` would empty the other's). The web app's order form comes first:
    // it alone takes about a minute, while the other ten run beside it.
    let scans: Vec<_> = futures_util::stream::iter(&targets)
        .map(|target| async move {
            let output_dir = scratch("sqlmap");
            let started = Instant::now();
            let output = sqlmap(target, &output_dir).await;
            let _ = std::fs::remove_dir_all(&output_dir);
            (target, output, started.elapsed())
        })
        .buffer_unordered(2)
        .collect()
        .await;
    let mut findings = Vec::new();
    for (target, output, took) in scans {
        let tested = output.contains("testing 'AND boolean-based blind");
        let clean = output.contains("do not appear to be injectable");
        let injectable = output.contains("identified the following injection point")
            || output.contains("is vulnerable");
        println!(
            "sqlmap {}: {} ({took:.0?})",
            target.what,
            if clean { "nothing injectable" } else { "?" },
        );
        if !tested || !clean || injectable {
            findings.push(format!("{}:\n{output}", target.what));
        }
    }
    assert!(findings.is_empty(), "sqlmap:\n{}", findings.join("\n\n"));
    env.assert_invariants().await;
}

/// What a section of a wapiti JSON report holds, one line per finding:
/// `category: METHOD path (module): what, by curl command`.
fn reported(report: &Value, section: &str) -> Vec<String> {
    let Some(categories) = report[section].as_object() else {
        return Vec::new();
    };
    categories
        .iter()
        .flat_map(|(category, found)| {
            found.as_array().into_iter().flatten().map(move |finding| {
                format!(
                    "{category}: {} {} ({}): {}, by {}",
                    finding["method"].as_str().unwrap_or_default(),
                    finding["path"].as_str().unwrap_or_default(),
                    finding["module"].as_str().unwrap_or_default(),
                    finding["info"].as_str().unwrap_or_default(),
                    finding["curl_command"].as_str().unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// Runs wapiti from `start` with a session `cookie`, never requesting what `exclude` names
/// (wildcards allowed), each module attacking for at most `attack_secs`: its JSON report and
/// what it printed.
async fn wapiti(
    start: &str,
    cookie: &str,
    exclude: &[String],
    attack_secs: u32,
) -> (Value, String) {
    let dir = scratch("wapiti");
    let report_path = dir.join("report.json");
    let mut command = tokio::process::Command::new(scanner("WAPITI", "wapiti"));
    for url in exclude {
        command.args(["-x", url]);
    }
    let output = command
        .args([
            "-u",
            start,
            "--scope",
            "folder",
            "-m",
            "http_headers,cookieflags,csp,backup,htaccess,methods,xss,permanentxss,sql,exec,file,redirect,crlf,ssrf",
            "-C",
            cookie,
            "--flush-session",
            "--no-bugreport",
            "--max-scan-time",
            "300",
            "--max-attack-time",
            &attack_secs.to_string(),
            "--tasks",
            "4",
            "-f",
            "json",
            "-o",
        ])
        .arg(&report_path)
        .arg("--store-session")
        .arg(&dir)
        .arg("--store-config")
        .arg(&dir)
        .env("HOME", &dir)
        .current_dir(&dir)
        .output()
        .await
        .expect("wapiti is missing: ./scripts/test installs it (tests/scanners.txt)");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_path).unwrap_or_else(|_| panic!("no wapiti report:\n{log}")),
    )
    .expect("a JSON report");
    let _ = std::fs::remove_dir_all(&dir);
    (report, log)
}

/// Nothing in a wapiti report's vulnerabilities or anomalies.
fn assert_nothing_reported(report: &Value) {
    let vulnerabilities = reported(report, "vulnerabilities");
    let anomalies = reported(report, "anomalies");
    assert!(
        vulnerabilities.is_empty() && anomalies.is_empty(),
        "wapiti reported\n{}",
        vulnerabilities
            .iter()
            .chain(&anomalies)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn wapiti_finds_nothing_in_the_dashboard() {
    let env = dashboard_env()
        .set("DASHBOARD_SECURE_COOKIES", "true")
        .start()
        .await;
    let account = env.account(10_000).await;
    crate::dashboard::insert_verification(&env, &account).await;
    let operator = admin(&env, "wapiti").await;
    let cookie = session(&env, &operator).await.cookie;
    let (report, log) = wapiti(
        &format!("{}/", env.dashboard),
        &cookie,
        // Signing out would end the scan's session.
        &[format!("{}/logout", env.dashboard)],
        300,
    )
    .await;
    // It reached past the login page: the crawl found the pages a session sees.
    let crawled = report["infos"]["crawled_pages_nbr"].as_u64().unwrap_or(0);
    assert!(crawled >= 8, "wapiti crawled only {crawled} pages:\n{log}");
    assert_nothing_reported(&report);
    println!("wapiti: {crawled} pages crawled, nothing reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wapiti_finds_nothing_in_the_customer_web_app() {
    let env = crate::support::TestEnv::builder()
        .set("APP_SECURE_COOKIES", "true")
        .start()
        .await;
    let customer = Visitor::new(&env, None);
    customer
        .sign_up("scan@example.com", "scanner password")
        .await;
    customer_app::top_up(&env, &customer, "10").await;
    customer_app::rent(&customer, "telegram", "scan-1").await;
    let cookie = format!(
        "namaskah_app_session={}",
        customer.cookie().expect("signed in")
    );
    let (report, log) = wapiti(
        &format!("{}/", env.app),
        &cookie,
        // Signing out would end the scan's session; the live stream never ends by itself.
        // The actions on one key, endpoint or verification are the same code as on the
        // first; each attack on them makes more of them (new keys, new pages), so the crawl
        // would never end.
        &[
            format!("{}/sign-out", env.app),
            format!("{}/events*", env.app),
            format!("{}/developers/keys/*", env.app),
            format!("{}/developers/webhooks/*", env.app),
            format!("{}/verifications/*", env.app),
        ],
        // Eight forms, fourteen modules: ten seconds each keeps the scan near two minutes.
        10,
    )
    .await;
    let crawled = report["infos"]["crawled_pages_nbr"].as_u64().unwrap_or(0);
    assert!(crawled >= 6, "wapiti crawled only {crawled} pages:\n{log}");
    assert_nothing_reported(&report);
    println!("wapiti (web app): {crawled} pages crawled, nothing reported");
}
