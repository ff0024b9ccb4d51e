//! The OpenAPI document is the contract: every route it lists answers as it says, an
//! OpenAPI validator accepts it, and schemathesis (property-based, from PyPI), with every
//! one of its checks and a key holding every scope, finds nothing: no server error, no
//! answer off the schema, no schema-valid request refused, no invalid one accepted
//! (`tests/schemathesis.toml` says what no schema can express, operation by operation).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestEnv;
use namaskah_core::domain::{Scope, Tier};

async fn document(env: &TestEnv) -> Value {
    let response = env
        .http
        .get(format!("{}/openapi.json", env.api))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn every_documented_route_answers_with_a_documented_status_and_content_type() {
    let env = TestEnv::start().await;
    // The widest scope, so that tenant administration answers too.
    let account = env
        .account_on_tier(100_000, &[Scope::TenantAdmin], Tier::Enterprise)
        .await;
    let document = document(&env).await;
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    assert!(paths.len() >= 25, "{} paths", paths.len());
    // Erasing the account would end the key: that operation goes last.
    let mut operations: Vec<(&String, &String, &Value)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("operations")
                .iter()
                .map(move |(method, operation)| (path, method, operation))
        })
        .collect();
    operations.sort_by_key(|(path, method, _)| *path == "/v1/account" && *method == "delete");
    let mut checked = 0;
    {
        for (path, method, operation) in operations {
            let mut url = format!(
                "{}{}",
                env.api,
                path.replace("{id}", "00000000-0000-7000-8000-000000000000")
            );
            if path == "/v2/events" {
                // The stream itself never ends; a bad position answers at once.
                url.push_str("?after=nowhere");
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let mut request = env.http.request(method.clone(), &url);
            if operation.get("security").is_some() {
                request = request.bearer_auth(&account.key);
            }
            if operation.get("requestBody").is_some() {
                request = request.json(&json!({}));
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16().to_string();
            let documented = &operation["responses"][&status];
            assert!(
                documented.is_object(),
                "{method} {path} answered {status}, which its document does not list"
            );
            if let Some(content) = documented["content"].as_object() {
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    content.contains_key(&content_type),
                    "{method} {path} {status} came as {content_type}, documented as {:?}",
                    content.keys().collect::<Vec<_>>()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations");

    // The reference page renders every operation and links every error code.
    let page = env
        .http
        .get(format!("{}/docs", env.api))
        .send()
        .await
        .expect("docs")
        .text()
        .await
        .expect("html");
    assert!(page.contains("/v2/verifications/batch"));
    assert!(page.contains("id=\"error-rate_limited\""));
    assert!(
        !page.contains("cdn"),
        "the reference must not load anything remote"
    );
}

#[tokio::test]
async fn the_document_passes_an_openapi_validator() {
    let env = TestEnv::start().await;
    let body = env
        .http
        .get(format!("{}/openapi.json", env.api))
        .send()
        .await
        .expect("openapi.json")
        .bytes()
        .await
        .expect("body");
    let file = std::env::temp_dir().join(format!("namaskah-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, &body).expect("write the document");
    let output = tokio::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
        .await
        .expect(
            "openapi-spec-validator is missing: python3 -m pip install -r tests/requirements.txt",
        );
    let _ = std::fs::remove_file(&file);
    assert!(
        output.status.success(),
        "openapi-spec-validator found problems:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn schemathesis_with_every_check_and_every_scope_finds_nothing() {
    let env = TestEnv::builder()
        // Streams end on their own, so that schemathesis can read and check their events.
        .set("EVENT_STREAM_MAX_AGE", "1s")
        .start()
        .await;
    let account = env
        .account_on_tier(
            100_000_000,
            &[Scope::Read, Scope::Write, Scope::Admin, Scope::TenantAdmin],
            Tier::Enterprise,
        )
        .await;
    // Events for the stream to carry.
    env.create_verification(&account, "telegram", "us").await;
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    // tokio's Command: the API under test runs on this test's own runtime.
    let program = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".to_owned());
    let output = tokio::process::Command::new(program)
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("{}/openapi.json", env.api),
            "--header",
            &format!("Authorization: Bearer {}", account.key),
            // Erasing the account revokes the key every other operation needs; the first
            // contract test calls it, last.
            "--exclude-path",
            "/v1/account",
            "--exclude-method",
            "DELETE",
            "--max-examples",
            "20",
            "--request-timeout",
            "10",
            "--seed",
            "7",
        ])
        .env("NO_COLOR", "1")
        // It keeps a cache of what it found in its working directory; not in the repository.
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("schemathesis is missing: python3 -m pip install -r tests/requirements.txt");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A run that generated little would also "pass": make sure it tried in earnest.
    let generated = stdout
        .lines()
        .find_map(|line| line.trim().split_once(" generated, "))
        .and_then(|(count, _)| count.parse::<u32>().ok())
        .unwrap_or(0);
    println!("schemathesis: {generated} cases generated, every check passed");
    assert!(
        generated >= 1_000,
        "schemathesis ran only {generated} cases:\n{stdout}"
    );
}
