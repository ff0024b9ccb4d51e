//! The authorisation matrix: every operation the OpenAPI document lists × every scope a key
//! can hold × whose resource it names (the caller's own, another account's of the same
//! tenant, another tenant's) → the status it must answer.
//!
//! The document declares the scope each operation needs (`security: [{api_key: [scope]}]`,
//! a key's higher scopes including the lower: read < write < admin < tenant_admin); this
//! walks every cell and fails naming each one where the API does otherwise.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{
    support::{Account, TestEnv},
    tenants::{Owned, one_of_everything, valid_body},
};
use namaskah_core::{
    domain::{ApiKey, Scope, TenantId, Tier},
    store::api_keys,
};

const SCOPES: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::TenantAdmin];

fn rank(scope: Scope) -> u8 {
    match scope {
        Scope::Read => 0,
        Scope::Write => 1,
        Scope::Admin => 2,
        Scope::TenantAdmin => 3,
    }
}

/// One documented operation and the scope it declares.
struct Operation {
    method: Method,
    path: String,
    scope: Scope,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let Some(requirements) = operation.get("security") else {
                continue;
            };
            let declared = requirements[0]["api_key"][0]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} names no scope: {requirements}"));
            found.push(Operation {
                method: Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                path: path.clone(),
                scope: Scope::parse(declared)
                    .unwrap_or_else(|| panic!("{method} {path}: unknown scope {declared}")),
            });
        }
    }
    found
}

/// An account of `tenant` whose owner key (`admin`) made one of every resource, and a
/// second key holding only `scope`, the one the matrix calls with.
struct Caller {
    account: Account,
    key: String,
    owned: Owned,
}

async fn caller(env: &TestEnv, tenant: TenantId, scope: Scope) -> Caller {
    let account = env
        .account_in(tenant, 100_000, &[Scope::Admin], Tier::Free)
        .await;
    let owned = one_of_everything(env, &account).await;
    let key = ApiKey::generate();
    let mut tx = env.pool.begin().await.expect("tx");
    api_keys::insert(&mut tx, account.id, &key, &[scope], "matrix")
        .await
        .expect("key");
    tx.commit().await.expect("commit");
    Caller {
        account,
        key: key.expose().to_owned(),
        owned,
    }
}

/// Calls `operation` on the resource `owned` holds, with `key`. A stream answers with its
/// headers only: its body never ends.
async fn call(
    env: &TestEnv,
    operation: &Operation,
    owned: &Owned,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let path = match owned.id_for(&operation.path) {
        Some(id) => operation.path.replace("{id}", id),
        None => operation.path.clone(),
    };
    let method = operation.method.as_str().to_lowercase();
    let mut request = env
        .http
        .request(operation.method.clone(), format!("{}{path}", env.api));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = valid_body(&operation.path, &method) {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        return (status, Value::Null);
    }
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .or_else(|| body["code"].as_str())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_operation_answers_each_scope_and_owner_as_the_document_declares() {
    let env = TestEnv::api_only().await;
    let (_, document) = env.request(Method::GET, "/openapi.json", None, None).await;
    let operations = operations(&document);
    assert!(
        operations.len() >= 45,
        "only {} operations",
        operations.len()
    );
    let home = env.tenant("matrix-home", None).await;
    let away = env.tenant("matrix-away", None).await;
    // Another account of the caller's tenant, and one of another tenant, each owning one of
    // everything; neither may be reached by the caller.
    let neighbour = caller(&env, home.id, Scope::Read).await;
    let stranger = caller(&env, away.id, Scope::Read).await;
    // One caller per scope for the cells that must be refused (nothing of theirs changes).
    let mut refused_callers = Vec::new();
    for scope in SCOPES {
        refused_callers.push((scope, caller(&env, home.id, scope).await));
    }

    let mut wrong = Vec::new();
    let mut cells = 0;
    // Every allowed cell gets a caller of its own: some erase, revoke or delete what they name.
    for operation in &operations {
        let (status, body) = call(&env, operation, &neighbour.owned, None).await;
        cells += 1;
        if status != StatusCode::UNAUTHORIZED {
            wrong.push(format!(
                "{} {} without a key: {status} {body}",
                operation.method, operation.path
            ));
        }
        for (scope, refused) in &refused_callers {
            if rank(*scope) >= rank(operation.scope) {
                continue;
            }
            let (status, body) = call(&env, operation, &refused.owned, Some(&refused.key)).await;
            cells += 1;
            if status != StatusCode::FORBIDDEN || error_code(&body) != "insufficient_scope" {
                wrong.push(format!(
                    "{} {} with a {} key (needs {}): {status} {body}",
                    operation.method,
                    operation.path,
                    scope.as_str(),
                    operation.scope.as_str()
                ));
            }
        }
        for scope in SCOPES
            .into_iter()
            .filter(|scope| rank(*scope) >= rank(operation.scope))
        {
            let allowed = caller(&env, home.id, scope).await;
            let names_an_id = operation.path.contains("{id}");
            let (status, body) = call(&env, operation, &allowed.owned, Some(&allowed.key)).await;
            cells += 1;
            let refused = [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::NOT_FOUND,
            ];
            if refused.contains(&status) || status.is_server_error() {
                wrong.push(format!(
                    "{} {} on its own with a {} key: {status} {body}",
                    operation.method,
                    operation.path,
                    scope.as_str()
                ));
            }
            if !names_an_id {
                continue;
            }
            // A tenant administrator sees every account of its own tenant, none of another's.
            let neighbour_expected = if operation.path.starts_with("/v1/tenant/accounts/") {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            for (whose, other, expected) in [
                ("a neighbour's", &neighbour, neighbour_expected),
                ("another tenant's", &stranger, StatusCode::NOT_FOUND),
            ] {
                let (status, body) = call(&env, operation, &other.owned, Some(&allowed.key)).await;
                cells += 1;
                if status != expected {
                    wrong.push(format!(
                        "{} {} on {whose} with a {} key: {status}, expected {expected}: {body}",
                        operation.method,
                        operation.path,
                        scope.as_str()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    println!(
        "{cells} cells of {} operations × {} scopes, every one as declared",
        operations.len(),
        SCOPES.len()
    );

    // The neighbour's and the stranger's things are all still there.
    for other in [&neighbour, &stranger] {
        let (status, _) = env.get("/v1/account", &other.account.key).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = env
            .get(
                &format!("/v1/webhook-endpoints/{}", other.owned.webhook_endpoint),
                &other.account.key,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let verification = env
            .verification(&other.account, &other.owned.verification)
            .await;
        assert_ne!(verification["status"], "cancelling");
        assert_ne!(verification["status"], "refunded");
    }
}
