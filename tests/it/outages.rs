//! A database that is briefly away is not an internal error: the API and the dashboard
//! answer `503` with `Retry-After` while PostgreSQL cannot be reached, and work again as
//! soon as it can.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TcpProxy, TestEnv};
use namaskah::pipeline::Roles;

#[tokio::test]
async fn requests_during_a_database_outage_get_503_with_retry_after_then_succeed() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("addr"), true)
        .await
        .expect("proxy");
    let env = TestEnv::builder()
        .roles(Roles {
            api: true,
            dashboard: true,
            ..Roles::default()
        })
        .database_through(proxy.address)
        .start()
        .await;
    let account = env.account(10_000).await;
    let order = |key: &'static str| {
        env.http
            .post(format!("{}/v1/verifications", env.api))
            .bearer_auth(&account.key)
            .header("Idempotency-Key", key)
            .json(&json!({ "service": "telegram", "country": "us" }))
            .send()
    };
    assert_eq!(
        order("before").await.expect("send").status(),
        StatusCode::CREATED
    );

    proxy.cut().await;
    for version in ["v1", "v2"] {
        let response = env
            .http
            .get(format!("{}/{version}/verifications", env.api))
            .bearer_auth(&account.key)
            .send()
            .await
            .expect("send");
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{version}"
        );
        assert_eq!(
            response.headers()["retry-after"],
            "2",
            "{version}: Retry-After"
        );
        let body: Value = response.json().await.expect("json");
        let code = body["error"]["code"].as_str().or(body["code"].as_str());
        assert_eq!(code, Some("service_unavailable"), "{version}: {body}");
    }
    let during = order("during").await.expect("send");
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(during.headers().contains_key("retry-after"));
    let page = env
        .http
        .get(format!("{}/", env.dashboard))
        .header("cookie", "namaskah_session=some-session")
        .send()
        .await
        .expect("dashboard");
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.headers()["retry-after"], "2");

    proxy.restore();
    // The same key again: the 503 was not stored against it, so the retry is accepted.
    crate::support::eventually(
        std::time::Duration::from_secs(15),
        "the API to accept orders again",
        || async {
            let response = order("during").await.ok()?;
            (response.status() == StatusCode::CREATED).then_some(())
        },
    )
    .await;
}
