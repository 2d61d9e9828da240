//! Helpers shared by the account tests (members, roles, teams, tokens): acting with another
//! token, adding members and minting their first personal token.

#![allow(dead_code)]

pub mod oauth;

use flagstaff_testkit::app::{TestApp, TestResponse};
use reqwest::Method;
use serde_json::{Value, json};

/// Sends a request with `secret` instead of the owner token.
pub async fn call(
    app: &TestApp,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    call_with_type(app, secret, method, path, body, "application/json").await
}

pub async fn call_with_type(
    app: &TestApp,
    secret: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    content_type: &str,
) -> TestResponse {
    let mut req = app
        .raw(method.clone(), path)
        .header("Authorization", secret);
    if let Some(body) = body {
        req = req
            .header("Content-Type", content_type)
            .body(body.to_string());
    }
    app.send(method.as_str(), path, req).await
}

/// Adds one member with a built-in role; returns its `_id`.
pub async fn add_member(app: &TestApp, email: &str, role: &str) -> String {
    let body = app
        .post("/api/v2/members", json!([{"email": email, "role": role}]))
        .await
        .expect(201);
    body["items"][0]["_id"].as_str().unwrap().to_string()
}

/// Adds one member with custom roles; returns its `_id`.
pub async fn add_member_with_roles(app: &TestApp, email: &str, roles: &[&str]) -> String {
    let body = app
        .post(
            "/api/v2/members",
            json!([{"email": email, "role": "no_access", "customRoles": roles}]),
        )
        .await
        .expect(201);
    body["items"][0]["_id"].as_str().unwrap().to_string()
}

/// A personal token for `member_id` minted by the owner (the `memberId` extension) with the
/// given POST body fields; returns `(token _id, secret)`.
pub async fn personal_token(app: &TestApp, member_id: &str, scope: Value) -> (String, String) {
    let mut body = scope;
    body["memberId"] = json!(member_id);
    body["name"] = json!(format!("token of {member_id}"));
    let token = app.post("/api/v2/tokens", body).await.expect(201);
    (
        token["_id"].as_str().unwrap().to_string(),
        token["token"].as_str().unwrap().to_string(),
    )
}

/// A member with a built-in role and a personal token with the same role; returns
/// `(member _id, secret)`.
pub async fn member_with_token(app: &TestApp, email: &str, role: &str) -> (String, String) {
    let id = add_member(app, email, role).await;
    let scope = if role == "owner" || role == "no_access" {
        json!({"role": "reader"})
    } else {
        json!({"role": role})
    };
    let (_, secret) = personal_token(app, &id, scope).await;
    (id, secret)
}

/// The newest audit entry, with `currentVersion` (read by id for the detailed form).
pub async fn latest_audit(app: &TestApp) -> Value {
    let log = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    let id = log["items"][0]["_id"].as_str().unwrap().to_string();
    app.get(&format!("/api/v2/auditlog/{id}")).await.expect(200)
}

/// `(action, resource)` pairs of an audit entry.
pub fn accesses(entry: &Value) -> Vec<(String, String)> {
    entry["accesses"]
        .as_array()
        .expect("accesses")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["resource"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

/// A policy allowing `actions` on `resources`.
pub fn allow(actions: &[&str], resources: &[&str]) -> Value {
    json!({"effect": "allow", "actions": actions, "resources": resources})
}
