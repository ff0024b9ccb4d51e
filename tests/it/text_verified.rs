//! The TextVerified client against a mock server shaped like TextVerified's API v2
//! documentation, including its errors; and failover between the two real providers.

use serde_json::{Value, json};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use warp::{Filter, http::StatusCode, reply::Reply};

use crate::support::TestEnv;
use namaskah_core::{
    config::{ProviderProtocol, ProviderSettings, Secret},
    providers::{CallTimeouts, OrderState, Provider, ProviderError, text_verified::TextVerified},
};

const KEY: &str = "tv-key";
const USER: &str = "tv@example.com";

#[derive(Default)]
struct MockState {
    base: String,
    tokens_issued: u32,
    valid_token: Option<String>,
    out_of_stock: bool,
    next_id: u32,
    /// id → (state, sms texts)
    verifications: HashMap<String, (String, Vec<String>)>,
}

type Shared = Arc<Mutex<MockState>>;

fn error(status: StatusCode, code: &str, description: &str) -> warp::reply::Response {
    warp::reply::with_status(
        warp::reply::json(&json!({"errorCode": code, "errorDescription": description})),
        status,
    )
    .into_response()
}

fn authorized(state: &MockState, header: Option<&str>) -> bool {
    match (&state.valid_token, header) {
        (Some(token), Some(header)) => header == format!("Bearer {token}"),
        _ => false,
    }
}

async fn start_mock() -> (SocketAddr, Shared) {
    let shared: Shared = Arc::new(Mutex::new(MockState::default()));
    let with = {
        let shared = Arc::clone(&shared);
        warp::any().map(move || Arc::clone(&shared))
    };
    let auth = warp::path!("api" / "pub" / "v2" / "auth")
        .and(warp::post())
        .and(warp::header::optional::<String>("x-api-key"))
        .and(warp::header::optional::<String>("x-api-username"))
        .and(with.clone())
        .map(|key: Option<String>, user: Option<String>, shared: Shared| {
            let mut state = shared.lock().expect("lock");
            if key.as_deref() != Some(KEY) || user.as_deref() != Some(USER) {
                return error(StatusCode::UNAUTHORIZED, "Unauthorized", "Invalid credentials");
            }
            state.tokens_issued += 1;
            let token = format!("eyJh-{}", state.tokens_issued);
            state.valid_token = Some(token.clone());
            warp::reply::json(&json!({"token": token, "expiresIn": 3600, "expiresAt": "2099-01-01T00:00:00Z"})).into_response()
        });
    let create = warp::path!("api" / "pub" / "v2" / "verifications")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::json())
        .and(with.clone())
        .map(|authz: Option<String>, body: Value, shared: Shared| {
            let mut state = shared.lock().expect("lock");
            if !authorized(&state, authz.as_deref()) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Bearer token invalid",
                );
            }
            if body["capability"] != "sms" || !body["serviceName"].is_string() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "serviceName and capability are required",
                );
            }
            if state.out_of_stock {
                return error(
                    StatusCode::BAD_REQUEST,
                    "Unavailable",
                    "No numbers are available",
                );
            }
            state.next_id += 1;
            let id = format!("ver_{}", state.next_id);
            state
                .verifications
                .insert(id.clone(), ("verificationPending".into(), Vec::new()));
            let href = format!("{}/api/pub/v2/verifications/{id}", state.base);
            let mut response = warp::reply::with_status(
                warp::reply::json(&json!({"method": "GET", "href": href})),
                StatusCode::CREATED,
            )
            .into_response();
            if let Ok(location) = href.parse() {
                response.headers_mut().insert("location", location);
            }
            response
        });
    let details = warp::path!("api" / "pub" / "v2" / "verifications" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with.clone())
        .map(|id: String, authz: Option<String>, shared: Shared| {
            let state = shared.lock().expect("lock");
            if !authorized(&state, authz.as_deref()) {
                return error(StatusCode::UNAUTHORIZED, "Unauthorized", "Bearer token invalid");
            }
            match state.verifications.get(&id) {
                Some((status, _)) => warp::reply::json(&json!({
                    "id": id, "number": "2025550123", "state": status, "serviceName": "telegram",
                    "totalCost": 0.95, "createdAt": "2026-11-24T00:00:00Z", "endsAt": "2026-11-24T00:15:00Z",
                    "sms": {"method": "GET", "href": format!("{}/api/pub/v2/sms?reservationId={id}", state.base)},
                    "calls": {"method": "GET", "href": ""},
                    "cancel": {"canCancel": true, "link": {"method": "POST", "href": ""}},
                    "report": {"canReport": true, "link": {"method": "POST", "href": ""}},
                    "reactivate": {"canReactivate": false, "link": {"method": "POST", "href": ""}},
                    "reuse": {"link": {"method": "POST", "href": ""}, "reusableUntil": null},
                    "sale": {"method": "GET", "href": ""}
                }))
                .into_response(),
                None => error(StatusCode::NOT_FOUND, "NotFound", "No such verification"),
            }
        });
    let sms = warp::path!("api" / "pub" / "v2" / "sms")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with.clone())
        .map(|authz: Option<String>, query: HashMap<String, String>, shared: Shared| {
            let state = shared.lock().expect("lock");
            if !authorized(&state, authz.as_deref()) {
                return error(StatusCode::UNAUTHORIZED, "Unauthorized", "Bearer token invalid");
            }
            let texts = query
                .get("reservationId")
                .and_then(|id| state.verifications.get(id))
                .map(|(_, texts)| texts.clone())
                .unwrap_or_default();
            let data: Vec<Value> = texts
                .iter()
                .enumerate()
                .map(|(n, text)| {
                    json!({"id": format!("sms_{n}"), "from": "12345", "to": "2025550123",
                           "createdAt": "2026-11-24T00:01:00Z", "smsContent": text,
                           "parsedCode": text.split_whitespace().last(), "encrypted": false})
                })
                .collect();
            let count = data.len();
            warp::reply::json(&json!({"data": data, "hasNext": false, "hasPrevious": false, "count": count, "links": {}}))
                .into_response()
        });
    let cancel = warp::path!("api" / "pub" / "v2" / "verifications" / String / "cancel")
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(with.clone())
        .map(|id: String, authz: Option<String>, shared: Shared| {
            let mut state = shared.lock().expect("lock");
            if !authorized(&state, authz.as_deref()) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized",
                    "Bearer token invalid",
                );
            }
            match state.verifications.get_mut(&id) {
                Some((status, texts)) if status == "verificationPending" && texts.is_empty() => {
                    *status = "verificationCanceled".into();
                    StatusCode::OK.into_response()
                }
                Some(_) => error(
                    StatusCode::BAD_REQUEST,
                    "ProcessingError",
                    "Verification cannot be cancelled",
                ),
                None => error(StatusCode::NOT_FOUND, "NotFound", "No such verification"),
            }
        });
    let routes = auth
        .or(create)
        .unify()
        .or(details)
        .unify()
        .or(sms)
        .unify()
        .or(cancel)
        .unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    shared.lock().expect("lock").base = format!("http://{addr}");
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    (addr, shared)
}

fn client(addr: SocketAddr, key: &str) -> TextVerified {
    let settings = ProviderSettings {
        name: "textverified".into(),
        protocol: ProviderProtocol::TextVerified,
        base_url: format!("http://{addr}"),
        api_key: Secret::new(key),
        username: Some(USER.into()),
    };
    TextVerified::new(
        &settings,
        CallTimeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(5),
        },
    )
    .expect("client")
}

fn deliver(shared: &Shared, id: &str, text: &str) {
    if let Some((_, texts)) = shared.lock().expect("lock").verifications.get_mut(id) {
        texts.push(text.to_owned());
    }
}

#[tokio::test]
async fn buys_polls_and_cancels_like_the_documentation_says() {
    let (addr, shared) = start_mock().await;
    let provider = client(addr, KEY);

    let number = provider.buy("telegram", "US").await.expect("buy");
    assert_eq!(number.phone_number, "+12025550123");
    assert_eq!(
        provider.check(&number.order_id).await,
        Ok(OrderState::Waiting)
    );
    deliver(&shared, &number.order_id, "Your code is 654321");
    assert_eq!(
        provider.check(&number.order_id).await,
        Ok(OrderState::Received {
            code: "654321".into(),
            text: "Your code is 654321".into()
        })
    );
    assert_eq!(
        provider.cancel(&number.order_id).await,
        Err(ProviderError::OrderHasSms)
    );

    let other = provider.buy("whatsapp", "US").await.expect("buy");
    provider.cancel(&other.order_id).await.expect("cancel");
    assert_eq!(
        provider.check(&other.order_id).await,
        Ok(OrderState::Cancelled)
    );
    assert_eq!(
        provider.check("ver_nope").await,
        Err(ProviderError::OrderNotFound)
    );
    assert_eq!(
        shared.lock().expect("lock").tokens_issued,
        1,
        "the token is reused"
    );
}

#[tokio::test]
async fn documented_errors_become_typed_errors() {
    let (addr, shared) = start_mock().await;
    shared.lock().expect("lock").out_of_stock = true;
    assert_eq!(
        client(addr, KEY).buy("telegram", "US").await,
        Err(ProviderError::OutOfStock)
    );
    assert!(matches!(
        client(addr, "wrong").buy("telegram", "US").await,
        Err(ProviderError::Rejected(_))
    ));
    assert!(matches!(
        client(addr, KEY).buy("telegram", "GB").await,
        Err(ProviderError::Rejected(_))
    ));
    let unreachable = client("127.0.0.1:1".parse().expect("addr"), KEY);
    assert!(matches!(
        unreachable.buy("telegram", "US").await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let (addr, shared) = start_mock().await;
    let provider = client(addr, KEY);
    let number = provider.buy("telegram", "US").await.expect("buy");
    shared.lock().expect("lock").valid_token = Some("rotated-server-side".into());
    assert_eq!(
        provider.check(&number.order_id).await,
        Ok(OrderState::Waiting)
    );
    assert_eq!(shared.lock().expect("lock").tokens_issued, 2);
}

async fn env_with_both_real_providers(tv: SocketAddr) -> TestEnv {
    TestEnv::builder()
        .set("PROVIDERS", "textverified,5sim")
        .set("TEXTVERIFIED_BASE_URL", &format!("http://{tv}"))
        .set("TEXTVERIFIED_API_KEY", KEY)
        .set("TEXTVERIFIED_API_USERNAME", USER)
        .behaviour(namaskah_load_tests::simulator::Behaviour {
            no_sms_ratio: 1.0,
            ..Default::default()
        })
        .start()
        .await
}

#[tokio::test]
async fn a_textverified_verification_completes_end_to_end() {
    let (addr, shared) = start_mock().await;
    let env = env_with_both_real_providers(addr).await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    let waiting = env
        .wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(15))
        .await;
    assert_eq!(waiting["phone_number"], "+12025550123");
    let order: String = env.column(&id, "provider_order_id").await;
    deliver(&shared, &order, "Telegram code 112233");
    let done = env
        .wait_for_status(&account, &id, "completed", Duration::from_secs(15))
        .await;
    assert_eq!(done["code"], "112233");
}

#[tokio::test]
async fn textverified_out_of_stock_fails_over_to_5sim() {
    let (addr, shared) = start_mock().await;
    shared.lock().expect("lock").out_of_stock = true;
    let env = env_with_both_real_providers(addr).await;
    let account = env.account(1_000).await;
    let id = env.create_verification(&account, "telegram", "us").await;
    env.wait_for_status(&account, &id, "waiting_sms", Duration::from_secs(15))
        .await;
    let provider: String = env.column(&id, "provider").await;
    assert_eq!(provider, "5sim");
    assert_eq!(env.sim.purchases(), 1);
}
