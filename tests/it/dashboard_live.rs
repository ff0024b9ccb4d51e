//! The dashboard's live overview (charts of the last hour moving over the WebSocket, queue
//! rates from our own counters), page revalidation by ETag, and assets from a CDN origin.

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest, http::HeaderValue};

use crate::dashboard::{admin, client, dashboard_env, get, session};
use namaskah_core::queue::QueueName;

/// An attribute of the live charts' element in some HTML.
fn charts_attribute(html: &str, name: &str) -> Option<String> {
    let element = html
        .split("<div class=\"charts\"")
        .nth(1)?
        .split('>')
        .next()?;
    let value = element
        .split(&format!(" {name}=\""))
        .nth(1)?
        .split('"')
        .next()?;
    Some(value.to_owned())
}

#[tokio::test]
async fn the_overview_draws_the_last_hour_and_the_websocket_moves_it_on() {
    // No management API: rates must come from our own counters.
    let env = dashboard_env()
        .set("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:1")
        .start()
        .await;
    let ops = admin(&env, "live").await;
    let session = session(&env, &ops).await;
    let body = br#"{"type":"refund","verification_id":"0193a0e6-3b1c-7c52-9a4e-5d2f8c9b1a00","attempt":1,"trace_id":"t"}"#;
    for _ in 0..5 {
        env.publish_raw(QueueName::Refund, body).await;
    }

    // The first paint already holds an hour of points, seeded from PostgreSQL.
    let page = get(&env, &session.cookie, "/")
        .await
        .text()
        .await
        .expect("page");
    let drawn = charts_attribute(&page, "data-samples").and_then(|n| n.parse::<usize>().ok());
    assert_eq!(drawn, Some(720), "an hour of 5 s samples");
    let loaded_at = charts_attribute(&page, "data-last").expect("the latest sample's time");
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 4, "{page}");
    for title in [
        "Verifications per second",
        "Queue depth",
        "API latency",
        "Webhook attempts delivered",
    ] {
        assert!(page.contains(title), "{title} missing");
    }

    let address = env.dashboard.trim_start_matches("http://");
    let mut request = format!("ws://{address}/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "cookie",
        HeaderValue::from_str(&session.cookie).expect("cookie"),
    );
    let stream = tokio::net::TcpStream::connect(address).await.expect("tcp");
    let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("websocket");
    // Updates until the refund queue's depth shows in both the numbers and the chart, and
    // the publish rate (no management API here) is a figure, not a dash.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no complete update in 30 s; saw {seen:?}"))
            .expect("socket open")
            .expect("message");
        let Message::Text(text) = message else {
            continue;
        };
        let update: Value = serde_json::from_str(text.as_str()).expect("json");
        let values = &update["values"];
        let charts = update["charts"].as_str().unwrap_or_default();
        seen.push((
            values["queue.refund.ready"].clone(),
            values["queue.refund.publish_rate"].clone(),
            charts_attribute(charts, "data-last"),
        ));
        let rate = values["queue.refund.publish_rate"].as_str().unwrap_or("–");
        if values["queue.refund.ready"] == "5"
            && rate.ends_with("/s")
            && charts.contains("refund: from")
            && charts.contains("last 5.")
        {
            break;
        }
    }
    assert!(
        seen.iter().any(|(_, _, last)| last
            .as_deref()
            .is_some_and(|last| last > loaded_at.as_str())),
        "points were added after the page loaded at {loaded_at}: {seen:?}"
    );
}

#[tokio::test]
async fn an_unchanged_page_is_revalidated_with_a_304_and_personal_pages_are_never_stored() {
    let env = dashboard_env().start().await;
    let ops = admin(&env, "etag").await;
    let session = session(&env, &ops).await;
    let usage = get(&env, &session.cookie, "/usage").await;
    assert_eq!(usage.headers()["cache-control"], "private, no-cache");
    let etag = usage.headers()["etag"].to_str().expect("etag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let again = client()
        .get(format!("{}/usage", env.dashboard))
        .header("cookie", &session.cookie)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("usage");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.expect("body").is_empty());
    let stale = client()
        .get(format!("{}/usage", env.dashboard))
        .header("cookie", &session.cookie)
        .header("if-none-match", "W/\"something-else\"")
        .send()
        .await
        .expect("usage");
    assert_eq!(stale.status(), StatusCode::OK);

    let search = get(&env, &session.cookie, "/verifications").await;
    assert_eq!(search.headers()["cache-control"], "no-store");
    assert!(search.headers().contains_key("etag"));
}

#[tokio::test]
async fn with_an_asset_base_url_pages_load_assets_from_the_cdn_with_integrity() {
    let env = dashboard_env()
        .set("ASSET_BASE_URL", "https://cdn.example.com/namaskah/")
        .start()
        .await;
    let login = client()
        .get(format!("{}/login", env.dashboard))
        .send()
        .await
        .expect("login");
    let policy = login.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        policy.contains("script-src 'self' https://cdn.example.com;")
            && policy.contains("style-src 'self' https://cdn.example.com;")
            && policy.contains("default-src 'self';"),
        "{policy}"
    );
    let html = login.text().await.expect("html");
    let stylesheet = html
        .split("<link rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .unwrap_or_else(|| panic!("no stylesheet in {html}"));
    assert!(
        stylesheet.starts_with("https://cdn.example.com/namaskah/static/app."),
        "{stylesheet}"
    );
    assert!(stylesheet.contains("integrity=\"sha384-"), "{stylesheet}");
    assert!(
        stylesheet.contains("crossorigin=\"anonymous\""),
        "{stylesheet}"
    );
    // What the CDN pulls from the dashboard may be used across origins.
    let path = stylesheet
        .trim_start_matches("https://cdn.example.com/namaskah")
        .split('"')
        .next()
        .unwrap_or_default();
    let asset = client()
        .get(format!("{}{path}", env.dashboard))
        .send()
        .await
        .expect("asset");
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(asset.headers()["access-control-allow-origin"], "*");
}
