//! White-label tenants: brand, accounts and prices managed by the tenant's own administrators,
//! and no tenant ever reaching another's data.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Account, TestEnv};
use namaskah_core::domain::{Scope, TenantId, Tier};

async fn with_host(env: &TestEnv, path: &str, host: &str) -> (StatusCode, Value) {
    let response = env
        .http
        .get(format!("{}{path}", env.api))
        .header("host", host)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

async fn patch(env: &TestEnv, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    env.request(Method::PATCH, path, Some(key), Some(body))
        .await
}

async fn put(env: &TestEnv, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
    env.request(Method::PUT, path, Some(key), Some(body)).await
}

#[tokio::test]
async fn a_tenant_admin_brands_its_tenant_and_its_customers_see_the_brand() {
    let env = TestEnv::api_only().await;
    let acme = env.tenant("acme", Some("verify.acme.example")).await;
    let admin = &acme.admin.key;

    let (status, tenant) = env.get("/v1/tenant", admin).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["name"], "acme brand");

    // Present fields change, `null` clears, absent ones stay.
    let (status, tenant) = patch(
        &env,
        "/v1/tenant",
        admin,
        json!({ "name": "Acme Verify", "accent_colour": "#ffb000", "logo_url": null }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["name"], "Acme Verify");
    assert_eq!(tenant["accent_colour"], "#ffb000");
    assert_eq!(tenant["primary_colour"], "#0b5fff");
    assert!(tenant["logo_url"].is_null());
    for (body, field) in [
        (json!({ "primary_colour": "blue" }), "primary_colour"),
        (
            json!({ "logo_url": "http://acme.example/logo.png" }),
            "logo_url",
        ),
        (json!({ "custom_domain": "localhost" }), "custom_domain"),
        (json!({ "name": "" }), "name"),
        (json!({ "colour": "#000000" }), "colour"),
    ] {
        let (status, error) = patch(&env, "/v1/tenant", admin, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
        let message = error["error"]["message"].as_str().expect("message");
        assert!(message.contains(field), "{message}");
    }
    // A custom domain is one tenant's only.
    let globex = env.tenant("globex", None).await;
    let (status, error) = patch(
        &env,
        "/v1/tenant",
        &globex.admin.key,
        json!({ "custom_domain": "verify.acme.example" }),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["error"]["code"], "already_exists");

    // A new customer: free tier, empty wallet, a key shown once; the create is idempotent.
    let create = |key: &'static str| {
        env.http
            .post(format!("{}/v1/tenant/accounts", env.api))
            .bearer_auth(admin)
            .header("idempotency-key", key)
            .json(&json!({ "email": "customer@acme.example" }))
            .send()
    };
    let first = create("new-customer").await.expect("create");
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.expect("json");
    assert_eq!(first["account"]["tier"], "free");
    assert_eq!(first["account"]["balance_cents"], 0);
    let customer_key = first["api_key"]["key"].as_str().expect("key").to_owned();
    let replay: Value = create("new-customer")
        .await
        .expect("replay")
        .json()
        .await
        .expect("json");
    assert_eq!(replay["account"]["id"], first["account"]["id"]);
    assert!(replay["api_key"]["key"].is_null(), "{replay}");
    let (status, error) = env
        .post(
            "/v1/tenant/accounts",
            admin,
            json!({ "email": "customer@acme.example" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let (status, error) = env
        .post("/v1/tenant/accounts", admin, json!({ "email": "nobody" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    // Signing up with a referral code links the new account to its referrer; a bad code
    // refuses the sign-up and leaves no account behind.
    let referral_code = first["account"]["referral_code"].as_str().expect("code");
    let (status, referred) = env
        .post(
            "/v1/tenant/accounts",
            admin,
            json!({ "email": "friend@acme.example", "referral_code": referral_code }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{referred}");
    let (_, summary) = env
        .get(
            "/v1/referrals",
            referred["api_key"]["key"].as_str().expect("key"),
        )
        .await;
    assert_eq!(summary["referred_by"], referral_code);
    let (status, error) = env
        .post(
            "/v1/tenant/accounts",
            admin,
            json!({ "email": "stranger@acme.example", "referral_code": "NOSUCHCODE" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let strangers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM accounts WHERE email = 'stranger@acme.example'")
            .fetch_one(&env.pool)
            .await
            .expect("count");
    assert_eq!(strangers, 0);

    // The customer sees its tenant's brand; the default tenant's customers see ours.
    let (status, account) = env.get("/v1/account", &customer_key).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    assert_eq!(account["brand"]["name"], "Acme Verify");
    assert_eq!(account["brand"]["accent_colour"], "#ffb000");
    assert_eq!(account["brand"]["support_email"], "help@acme.example");
    let ours = env.account(0).await;
    let (_, account) = env.get("/v1/account", &ours.key).await;
    assert_eq!(account["brand"]["name"], "Namaskah");
    // Before sign-in, by the host name the page was served under.
    let (status, brand) = with_host(&env, "/v1/brand", "Verify.Acme.Example:443").await;
    assert_eq!(status, StatusCode::OK, "{brand}");
    assert_eq!(brand["name"], "Acme Verify");
    let (_, brand) = with_host(&env, "/v1/brand", "127.0.0.1").await;
    assert_eq!(brand["name"], "Namaskah");

    // The administrator lists and reads its accounts.
    let (status, page) = env.get("/v1/tenant/accounts?limit=1", admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["email"], "friend@acme.example");
    assert_eq!(page["has_more"], true);
    let id = first["account"]["id"].as_str().expect("id");
    let (status, _) = env.get(&format!("/v1/tenant/accounts/{id}"), admin).await;
    assert_eq!(status, StatusCode::OK);

    // Managing a tenant takes `tenant_admin`; only such a key can make another.
    let (status, _) = env.get("/v1/tenant", &customer_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let account_admin = env.account_with_scopes(0, &[Scope::Admin]).await;
    let (status, error) = env.get("/v1/tenant", &account_admin.key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    let (status, error) = env
        .post(
            "/v1/api-keys",
            &account_admin.key,
            json!({ "scopes": ["tenant_admin"] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{error}");
    assert_eq!(error["error"]["code"], "insufficient_scope");
    let (status, created) = env
        .post(
            "/v1/api-keys",
            admin,
            json!({ "name": "second admin", "scopes": ["tenant_admin"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // Every change is in the operators' audit log.
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE actor = $1 ORDER BY id")
            .bind(format!("tenant-admin:{}", acme.admin.id))
            .fetch_all(&env.pool)
            .await
            .expect("audit");
    assert_eq!(
        actions,
        [
            "tenant.brand_changed",
            "tenant.account_created",
            "tenant.account_created"
        ]
    );
}

#[tokio::test]
async fn a_tenants_prices_are_what_its_customers_pay_and_nobody_elses() {
    let env = TestEnv::api_only().await;
    let acme = env.tenant("acme", Some("verify.acme.example")).await;
    let admin = &acme.admin.key;
    let customer = env
        .account_in(acme.id, 1_000, &[Scope::Read, Scope::Write], Tier::Free)
        .await;
    let pro_customer = env
        .account_in(acme.id, 1_000, &[Scope::Read, Scope::Write], Tier::Pro)
        .await;
    let ours = env.account(1_000).await;

    for (prices, status, code) in [
        (
            json!([{ "service": "telegram", "country": "zz", "price_cents": 7 }]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_service",
        ),
        (
            json!([{ "service": "telegram", "country": "us", "price_cents": 0 }]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!([
                { "service": "telegram", "country": "us", "price_cents": 7 },
                { "service": "telegram", "country": "us", "price_cents": 8 }
            ]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!([{ "service": "TELEGRAM", "country": "us", "price_cents": 7 }]),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ] {
        let (answered, error) = put(
            &env,
            "/v1/tenant/prices",
            admin,
            json!({ "prices": prices }),
        )
        .await;
        assert_eq!(answered, status, "{error}");
        assert_eq!(error["error"]["code"], code);
    }
    let prices =
        json!({ "prices": [{ "service": "telegram", "country": "us", "price_cents": 40 }] });
    // PUT twice: the same list, not two.
    for _ in 0..2 {
        let (status, listed) = put(&env, "/v1/tenant/prices", admin, prices.clone()).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["data"], prices["prices"]);
    }

    // The catalogue as each one sees it.
    let path = "/v1/services?service=telegram&country=us";
    let price_of = |body: &Value| body["data"][0]["price_cents"].as_i64().expect("price");
    let (_, catalogue) = env.request(Method::GET, path, None, None).await;
    let catalogue_price = price_of(&catalogue);
    assert_ne!(catalogue_price, 40);
    let (_, seen) = env.get(path, &customer.key).await;
    assert_eq!(price_of(&seen), 40);
    let (_, seen) = with_host(&env, path, "verify.acme.example").await;
    assert_eq!(price_of(&seen), 40);
    let (_, seen) = env.get(path, &ours.key).await;
    assert_eq!(price_of(&seen), catalogue_price);

    // What each pays: the tenant's price, times the tier's percentage (pro: 95 %).
    let charged = |account: Account| {
        let env = &env;
        async move {
            let (status, body) = env
                .post(
                    "/v1/verifications",
                    &account.key,
                    json!({ "service": "telegram", "country": "us" }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["price_cents"].as_i64().expect("price")
        }
    };
    assert_eq!(charged(customer.clone()).await, 40);
    assert_eq!(charged(pro_customer).await, 38);
    assert_eq!(charged(ours.clone()).await, catalogue_price);
    assert_eq!(env.balance(&customer).await, 960);

    // An empty list hands the tenant back to the catalogue.
    let (status, _) = put(&env, "/v1/tenant/prices", admin, json!({ "prices": [] })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(charged(customer).await, catalogue_price);
    env.assert_invariants().await;
}

#[tokio::test]
async fn a_referral_code_is_good_only_within_its_tenant() {
    let env = TestEnv::api_only().await;
    let acme = env.tenant("acme", None).await;
    let referrer = env.account(0).await;
    let (_, referrals) = env.get("/v1/referrals", &referrer.key).await;
    let code = referrals["code"].as_str().expect("code");
    let customer = env
        .account_in(acme.id, 0, &[Scope::Admin], Tier::Free)
        .await;
    let (status, error) = env
        .post(
            "/v1/referrals/claim",
            &customer.key,
            json!({ "code": code }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "unknown_referral_code");
}

/// What an account owns, one id per kind of resource a path can name.
pub(crate) struct Owned {
    pub(crate) verification: String,
    api_key: String,
    pub(crate) webhook_endpoint: String,
    webhook_message: String,
    payment: String,
    account: String,
}

impl Owned {
    /// The id of the resource `path` names, by the segment before `{id}`.
    pub(crate) fn id_for(&self, path: &str) -> Option<&str> {
        let resource = path.split("/{id}").next()?.rsplit('/').next()?;
        Some(match resource {
            "verifications" => &self.verification,
            "api-keys" => &self.api_key,
            "webhook-endpoints" => &self.webhook_endpoint,
            "webhook-messages" => &self.webhook_message,
            "payments" => &self.payment,
            "accounts" => &self.account,
            _ => return None,
        })
    }
}

/// One of every resource a path can name, made for `b` (whose key must hold `admin`).
pub(crate) async fn one_of_everything(env: &TestEnv, b: &Account) -> Owned {
    let verification = env.create_verification(b, "telegram", "us").await;
    let (status, key) = env
        .post("/v1/api-keys", &b.key, json!({ "scopes": ["read"] }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (status, endpoint) = env
        .post(
            "/v1/webhook-endpoints",
            &b.key,
            json!({ "url": "http://127.0.0.1:9/tenant-b" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let endpoint = endpoint["id"].as_str().expect("id").to_owned();
    let (status, sent) = env
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/test"),
            &b.key,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let payment = namaskah_core::store::payments::create(
        &env.pool,
        b.id,
        namaskah_core::payments::PaymentProvider::Paystack,
        5_000,
        "USD",
    )
    .await
    .expect("payment");
    Owned {
        verification,
        api_key: key["id"].as_str().expect("id").to_owned(),
        webhook_endpoint: endpoint,
        webhook_message: sent["message_id"].as_str().expect("message").to_owned(),
        payment: payment.id.to_string(),
        account: b.id.to_string(),
    }
}

/// A body that passes validation, so that only ownership decides the answer.
pub(crate) fn valid_body(path: &str, method: &str) -> Option<Value> {
    match (method, path.rsplit('/').next()?) {
        ("patch", _) => Some(json!({ "description": "taken over" })),
        ("post", "recover") => Some(json!({ "since": "2020-01-01T00:00:00Z" })),
        ("post", _) => Some(json!({})),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_that_names_an_id_answers_404_to_another_tenants_key() {
    let env = TestEnv::api_only().await;
    let tenant_a = env.tenant("tenant-a", None).await;
    let tenant_b = env.tenant("tenant-b", None).await;
    // B's customer, with every scope an account can hold, and money to spend.
    let b = env
        .account_in(tenant_b.id, 10_000, &[Scope::Admin], Tier::Free)
        .await;
    let owned = one_of_everything(&env, &b).await;
    // A's administrator holds the widest scope there is.
    let a = &tenant_a.admin;

    let (_, document) = env.request(Method::GET, "/openapi.json", None, None).await;
    let mut walked = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if !path.contains("{id}") {
            continue;
        }
        let id = owned
            .id_for(path)
            .unwrap_or_else(|| panic!("{path} names an id this suite does not own yet: add it"));
        for method in item.as_object().expect("operations").keys() {
            let url = path.replace("{id}", id);
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let (status, body) = env
                .request(verb, &url, Some(&a.key), valid_body(path, method))
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} {path} with tenant A's key on tenant B's id: {body}"
            );
            walked.push(format!("{method} {path}"));
        }
    }
    assert!(walked.len() >= 16, "only {walked:?}");

    // Nothing of B's moved: its key works, its endpoint is there, its verification is open.
    let (status, _) = env.get("/v1/account", &b.key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env
        .get(
            &format!("/v1/webhook-endpoints/{}", owned.webhook_endpoint),
            &b.key,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let verification = env.verification(&b, &owned.verification).await;
    assert_ne!(verification["status"], "cancelling");
    assert_ne!(verification["status"], "refunded");
    let (_, keys) = env.get("/v1/api-keys", &b.key).await;
    assert!(
        keys["data"]
            .as_array()
            .expect("keys")
            .iter()
            .all(|key| key["revoked_at"].is_null()),
        "{keys}"
    );

    // And no list of A's shows anything of B's.
    let (_, accounts) = env.get("/v1/tenant/accounts?limit=100", &a.key).await;
    let ids: Vec<&str> = accounts["data"]
        .as_array()
        .expect("accounts")
        .iter()
        .filter_map(|account| account["id"].as_str())
        .collect();
    assert_eq!(ids, [a.id.to_string()]);
    for list in [
        "/v1/verifications",
        "/v2/verifications",
        "/v1/webhook-endpoints",
        "/v1/webhook-messages",
        "/v1/payments",
    ] {
        let (status, page) = env.get(list, &a.key).await;
        assert_eq!(status, StatusCode::OK, "{list}: {page}");
        assert_eq!(page["data"], json!([]), "{list}");
    }
    assert_ne!(tenant_a.id, TenantId::DEFAULT);
}

#[tokio::test]
async fn namaskah_tenants_create_makes_a_tenant_whose_admin_key_works() {
    let env = TestEnv::api_only().await;
    let run = |slug: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_namaskah"))
            .args([
                "tenants",
                "create",
                "--slug",
                slug,
                "--name",
                "Acme Verify",
                "--admin-email",
                "ops@acme.example",
                "--custom-domain",
                "verify.acme.example",
            ])
            .env("DATABASE_URL", env.database_url())
            .output()
            .expect("namaskah runs")
    };
    let output = run("acme");
    assert!(output.status.success(), "{output:?}");
    let created: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let key = created["api_key"].as_str().expect("key");
    let (status, tenant) = env.get("/v1/tenant", key).await;
    assert_eq!(status, StatusCode::OK, "{tenant}");
    assert_eq!(tenant["slug"], "acme");
    assert_eq!(tenant["custom_domain"], "verify.acme.example");
    // The domain is taken now: refused, and nothing half-made is left behind.
    let again = run("acme-two");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("custom domain"));
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&env.pool)
        .await
        .expect("count");
    assert_eq!(tenants, 2, "the default tenant and acme");
}
