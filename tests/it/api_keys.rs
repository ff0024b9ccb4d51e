//! `/v1/api-keys`: keys shown once, scoped, and revoked at once on every API replica
//! despite their caches.

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

use crate::support::{TestEnv, eventually};
use namaskah::pipeline::Roles;
use namaskah_core::domain::{Scope, Tier};

#[tokio::test]
async fn an_admin_key_creates_lists_and_revokes_keys() {
    let env = TestEnv::start().await;
    let admin = env.account_with_scopes(1_000, &[Scope::Admin]).await;

    let (status, created) = env
        .post(
            "/v1/api-keys",
            &admin.key,
            json!({ "name": "ci runner", "scopes": ["read", "write", "read"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"]
        .as_str()
        .expect("the key, this once")
        .to_owned();
    assert!(key.starts_with(created["prefix"].as_str().expect("prefix")));
    assert_eq!(created["scopes"], json!(["read", "write"]));
    assert_eq!(created["name"], "ci runner");

    // The new key works, within its scopes.
    let (status, _) = env.get("/v1/account", &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = env.get("/v1/api-keys", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");

    // Listed without the key itself.
    let (_, listed) = env.get("/v1/api-keys", &admin.key).await;
    let entries = listed["data"].as_array().expect("data");
    assert_eq!(entries.len(), 2, "{listed}");
    assert!(entries.iter().all(|entry| entry["key"].is_null()));

    let id = created["id"].as_str().expect("id");
    let (status, revoked) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (status, body) = env.get("/v1/account", &key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "revoked_api_key");

    // Revoking again is harmless; another account's key id is not found.
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stranger = env.account_with_scopes(0, &[Scope::Admin]).await;
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&stranger.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_key_requests_get_clear_errors() {
    let env = TestEnv::start().await;
    let admin = env.account_with_scopes(0, &[Scope::Admin]).await;
    for (body, code) in [
        (json!({ "scopes": [] }), "invalid_request"),
        (json!({ "scopes": ["root"] }), "invalid_request"),
        (json!({ "scopes": "read" }), "invalid_request"),
        (
            json!({ "name": "x".repeat(101), "scopes": ["read"] }),
            "invalid_request",
        ),
        (
            json!({ "scopes": ["read"], "expires": "never" }),
            "invalid_request",
        ),
    ] {
        let (status, answer) = env.post("/v1/api-keys", &admin.key, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], code, "{body} → {answer}");
    }
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            "/v1/api-keys/not-a-uuid",
            Some(&admin.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replayed_create_makes_no_second_key_and_never_repeats_the_secret() {
    let env = TestEnv::start().await;
    let admin = env.account_with_scopes(0, &[Scope::Admin]).await;
    let send = || async {
        let response = env
            .http
            .post(format!("{}/v1/api-keys", env.api))
            .bearer_auth(&admin.key)
            .header("idempotency-key", "key-create-1")
            .json(&json!({ "scopes": ["read"] }))
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        (status, body)
    };
    let (first_status, first) = send().await;
    let (second_status, second) = send().await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first["id"], second["id"]);
    assert!(first["key"].is_string());
    assert!(second["key"].is_null(), "the key is never stored: {second}");
    let (_, listed) = env.get("/v1/api-keys", &admin.key).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn a_revoked_key_is_refused_by_another_replica_that_had_it_cached() {
    let env = TestEnv::start().await;
    let account = env
        .account_with_scopes(1_000, &[Scope::Read, Scope::Admin])
        .await;
    let (_second, second_api) = second_api_replica(&env).await;
    let account_on_second = || async {
        env.http
            .get(format!("{second_api}/v1/account"))
            .bearer_auth(&account.key)
            .send()
            .await
            .expect("request")
            .status()
    };
    // Both replicas now hold the key in their caches.
    assert_eq!(account_on_second().await, StatusCode::OK);
    let (_, keys) = env.get("/v1/api-keys", &account.key).await;
    let id = keys["data"][0]["id"]
        .as_str()
        .expect("the key's id")
        .to_owned();

    // The key revokes itself through the first replica, which refuses it from then on.
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{id}"),
            Some(&account.key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.get("/v1/account", &account.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The second replica hears of it from PostgreSQL within milliseconds.
    eventually(
        Duration::from_secs(2),
        "the second replica to refuse the revoked key",
        || async { (account_on_second().await == StatusCode::UNAUTHORIZED).then_some(()) },
    )
    .await;
}

/// An API replica loads the keys used or created in the last day before it takes traffic
/// (`namaskah_api::warm_up`), so its first request with one of them reads no key from the
/// database.
#[tokio::test]
async fn a_replica_starts_with_the_recent_keys_already_in_its_cache() {
    let env = TestEnv::start().await;
    let account = env.account(1_000).await;
    let (_second, second_api) = second_api_replica(&env).await;
    // The key's row no longer matches the key: only a cache filled before can know it. A
    // changed hash notifies nobody (only revocations and scopes do), so no cache forgets it.
    sqlx::query(
        "UPDATE api_keys SET key_hash = decode(md5(id::text), 'hex') WHERE account_id = $1",
    )
    .bind(account.id)
    .execute(&env.pool)
    .await
    .expect("the key's hash changed");

    let status_on = |api: String| {
        let http = env.http.clone();
        let key = account.key.clone();
        async move {
            http.get(format!("{api}/v1/account"))
                .bearer_auth(key)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    assert_eq!(
        status_on(second_api).await,
        StatusCode::OK,
        "the replica started after the key was created knows it from its warm-up"
    );
    assert_eq!(
        status_on(env.api.clone()).await,
        StatusCode::UNAUTHORIZED,
        "the replica started before the key was created looks it up, and finds nothing"
    );
}

/// The warm-up also loads the tenants of those keys (several, side by side), so a key of a
/// white-label tenant finds its brand in the cache too.
#[tokio::test]
async fn a_replica_starts_with_the_tenants_of_the_recent_keys_in_its_cache() {
    let env = TestEnv::start().await;
    let mut customers = Vec::new();
    for slug in ["north", "south", "east"] {
        let tenant = env.tenant(slug, None).await;
        let customer = env
            .account_in(tenant.id, 0, &[Scope::Read], Tier::Free)
            .await;
        customers.push((slug, customer));
    }
    let (_second, second_api) = second_api_replica(&env).await;
    // Renamed without the trigger that tells the caches: only a cache filled before the
    // rename still holds the old name.
    let mut tx = env.pool.begin().await.expect("tx");
    sqlx::query("SET LOCAL session_replication_role = replica")
        .execute(&mut *tx)
        .await
        .expect("triggers off");
    sqlx::query("UPDATE tenants SET name = name || ' renamed' WHERE slug <> 'default'")
        .execute(&mut *tx)
        .await
        .expect("tenants renamed");
    tx.commit().await.expect("commit");

    let brand_name = |api: String, key: String| {
        let http = env.http.clone();
        async move {
            let account: serde_json::Value = http
                .get(format!("{api}/v1/account"))
                .bearer_auth(key)
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("JSON");
            account["brand"]["name"]
                .as_str()
                .expect("brand name")
                .to_owned()
        }
    };
    for (slug, customer) in customers {
        assert_eq!(
            brand_name(second_api.clone(), customer.key.clone()).await,
            format!("{slug} brand"),
            "the replica started after the tenant was created loaded it in its warm-up"
        );
        assert_eq!(
            brand_name(env.api.clone(), customer.key).await,
            format!("{slug} brand renamed"),
            "the replica started before the tenant was created reads it now"
        );
    }
}

/// A second API process on the same database (kept running while the first is held), and
/// its base URL.
async fn second_api_replica(env: &TestEnv) -> (namaskah::pipeline::Running, String) {
    let second = env
        .start_roles(Roles {
            api: true,
            ..Roles::default()
        })
        .await;
    let url = format!("http://{}", second.api_addr.expect("second API"));
    (second, url)
}

/// `namaskah accounts create` with `args`; the JSON it prints.
fn create_account(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
        .args(["accounts", "create"])
        .args(args)
        .env("DATABASE_URL", env.database_url())
        .output()
        .expect("namaskah runs");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[tokio::test]
async fn an_account_owner_rotates_their_key_exports_and_erases_with_the_first_key_alone() {
    let env = TestEnv::api_only().await;
    let created = create_account(&env, &["--email", "owner@example.com"]);
    assert_eq!(created["scopes"], json!(["read", "write", "admin"]));
    let first = created["api_key"].as_str().expect("key").to_owned();

    // Rotation: a new key, switch to it, revoke the old one with the new one.
    let (status, second) = env
        .post(
            "/v1/api-keys",
            &first,
            json!({ "name": "rotated", "scopes": ["read", "write", "admin"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second_key = second["key"].as_str().expect("key").to_owned();
    let (_, keys) = env.get("/v1/api-keys", &second_key).await;
    let first_id = keys["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|key| key["name"] != "rotated")
        .and_then(|key| key["id"].as_str())
        .expect("the first key listed")
        .to_owned();
    let (status, _) = env
        .request(
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{first_id}"),
            Some(&second_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env.get("/v1/account", &first).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, export) = env.get("/v1/account/export", &second_key).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["account"]["email"], "owner@example.com", "{export}");
    let (status, erased) = env
        .request(
            reqwest::Method::DELETE,
            "/v1/account",
            Some(&second_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{erased}");

    // A narrower first key when asked for one.
    let narrow = create_account(&env, &["--email", "reader@example.com", "--scopes", "read"]);
    assert_eq!(narrow["scopes"], json!(["read"]));
    let (status, _) = env
        .get("/v1/api-keys", narrow["api_key"].as_str().expect("key"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
