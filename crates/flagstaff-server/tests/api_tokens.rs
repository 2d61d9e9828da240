//! Access tokens: the secret shown once, scope validation (exactly one of role, custom roles,
//! inline policy; positions in policy errors; nothing stored), visibility, JSON Patch, delete,
//! reset with and without expiry, no secrets in the audit log, and the rule that a token never
//! gets more than its creator.

mod support;

use std::time::Duration;

use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn is_full_secret(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.starts_with("api-") && s.len() == 40)
}

backend_test!(secret_is_shown_once, |app| async move {
    let created = app
        .post(
            "/api/v2/tokens",
            json!({"name": "ci", "description": "for CI", "role": "writer"}),
        )
        .await
        .expect(201);
    assert!(is_full_secret(&created["token"]), "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    let id = created["_id"].as_str().unwrap().to_string();
    assert_eq!(created["role"], "writer");
    assert_eq!(created["serviceToken"], false);
    assert_eq!(created["defaultApiVersion"], 20240415);
    assert_eq!(created["_member"]["email"], "owner@flagstaff.local");
    assert_eq!(created["ownerId"], created["memberId"]);

    // The secret works...
    let identity = call(&app, &secret, Method::GET, "/api/v2/caller-identity", None)
        .await
        .expect(200);
    assert_eq!(identity["tokenId"], id.as_str());
    // ...and is never shown again.
    let got = app.get(&format!("/api/v2/tokens/{id}")).await.expect(200);
    assert_eq!(got["token"], &secret[secret.len() - 4..]);
    assert!(
        got["lastUsed"].as_i64().unwrap() > 0,
        "used just now: {got}"
    );
    let list = app.get("/api/v2/tokens").await.expect(200);
    assert_eq!(list["totalCount"], 2, "the bootstrap token and this one");
    for t in list["items"].as_array().unwrap() {
        assert_eq!(t["token"].as_str().unwrap().len(), 4, "{t}");
    }
    let page = app.get("/api/v2/tokens?limit=1").await.expect(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["_links"]["next"].is_object());

    // Neither the secret nor its hash reaches the audit log.
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "token");
    let resource = format!(
        "member/{}:token/{id}",
        created["memberId"].as_str().unwrap()
    );
    assert_eq!(accesses(&entry), pairs(&[("createAccessToken", &resource)]));
    let text = entry.to_string();
    let hash = flagstaff_server::auth::hash_secret(&secret);
    assert!(!text.contains(&secret) && !text.contains(&hash), "{text}");
    assert!(entry["currentVersion"].get("secretHash").is_none());
    assert_eq!(entry["currentVersion"]["name"], "ci");

    // JSON Patch.
    let patched = app
        .patch(
            &format!("/api/v2/tokens/{id}"),
            json!([
                {"op": "replace", "path": "/name", "value": "ci-2"},
                {"op": "replace", "path": "/role", "value": "reader"},
            ]),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "ci-2");
    assert_eq!(patched["role"], "reader");
    assert_eq!(patched["token"].as_str().unwrap().len(), 4);
    assert_eq!(
        accesses(&latest_audit(&app).await),
        pairs(&[
            ("updateAccessTokenName", &resource),
            ("updateAccessTokenPolicy", &resource)
        ])
    );
    // The new scope applies at once.
    let resp = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/projects",
        Some(json!({"key": "p", "name": "P"})),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    // Switch to an inline policy.
    let patched = app
        .patch(
            &format!("/api/v2/tokens/{id}"),
            json!([
                {"op": "remove", "path": "/role"},
                {"op": "add", "path": "/inlineRole", "value": [allow(&["viewProject"], &["proj/*"])]},
            ]),
        )
        .await
        .expect(200);
    assert!(patched.get("role").is_none());
    assert_eq!(patched["inlineRole"][0]["actions"], json!(["viewProject"]));

    // Deleted: the secret stops working at once.
    call(&app, &secret, Method::GET, "/api/v2/projects", None)
        .await
        .expect(200);
    app.delete(&format!("/api/v2/tokens/{id}"))
        .await
        .expect(204);
    assert_eq!(
        call(&app, &secret, Method::GET, "/api/v2/projects", None)
            .await
            .status,
        401
    );
    assert_eq!(app.get(&format!("/api/v2/tokens/{id}")).await.status, 404);
});

backend_test!(invalid_scopes_store_nothing, |app| async move {
    app.post(
        "/api/v2/roles",
        json!({"key": "ops", "name": "Ops", "policy": []}),
    )
    .await
    .expect(201);
    let before = app.audit_count().await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"name": "none"}),
            vec!["exactly one", "none was given"],
        ),
        (
            json!({"role": "reader", "customRoleIds": ["ops"]}),
            vec!["exactly one", "role and customRoleIds"],
        ),
        (
            json!({"role": "reader", "inlineRole": [allow(&["*"], &["proj/*"])]}),
            vec!["exactly one"],
        ),
        (json!({"role": "owner"}), vec!["reader, writer or admin"]),
        (json!({"customRoleIds": ["nope"]}), vec!["nope"]),
        (
            json!({"inlineRole": [allow(&["*"], &["proj/*"]), allow(&["*"], &["proj/*:env/*:flag/x;"])]}),
            vec!["inlineRole: statement 1", "resources[0]", "at character"],
        ),
        (
            json!({"inlineRole": [allow(&["*"], &["proj/${roleAttribute/team}"])]}),
            vec!["inlineRole", "team"],
        ),
        (
            json!({"role": "reader", "defaultApiVersion": 2015}),
            vec!["defaultApiVersion"],
        ),
        (
            json!({"role": "reader", "serviceToken": true, "memberId": "x"}),
            vec!["memberId"],
        ),
        (json!({"role": "reader", "colour": "red"}), vec!["colour"]),
    ];
    for (body, needles) in cases {
        let resp = app.post("/api/v2/tokens", body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        for needle in needles {
            assert!(
                resp.message().contains(needle),
                "{needle:?} not in {}",
                resp.message()
            );
        }
    }
    assert_eq!(app.audit_count().await, before);
    assert_eq!(app.get("/api/v2/tokens").await.expect(200)["totalCount"], 1);

    // Patches that would break the scope change nothing either.
    let token = app
        .post("/api/v2/tokens", json!({"role": "reader"}))
        .await
        .expect(201);
    let path = format!("/api/v2/tokens/{}", token["_id"].as_str().unwrap());
    let stored = app.get(&path).await.expect(200);
    let before = app.audit_count().await;
    for patch in [
        json!([{"op": "add", "path": "/customRoleIds/-", "value": "ops"}]),
        json!([{"op": "remove", "path": "/role"}]),
        json!([{"op": "replace", "path": "/role", "value": "owner"}]),
        json!([{"op": "replace", "path": "/serviceToken", "value": true}]),
        json!([{"op": "replace", "path": "/memberId", "value": "someone"}]),
        json!([{"op": "add", "path": "/token", "value": "api-mine"}]),
    ] {
        let resp = app.patch(&path, patch.clone()).await;
        assert_eq!(resp.status, 400, "{patch}: {}", resp.body);
    }
    assert_eq!(app.audit_count().await, before);
    assert_eq!(app.get(&path).await.expect(200), stored);
});

backend_test!(reset_keeps_the_old_secret_until_expiry, |app| async move {
    let created = app
        .post(
            "/api/v2/tokens",
            json!({"name": "rotating", "role": "reader"}),
        )
        .await
        .expect(201);
    let id = created["_id"].as_str().unwrap().to_string();
    let first = created["token"].as_str().unwrap().to_string();
    let works = |secret: String| {
        let app = &app;
        async move {
            call(app, &secret, Method::GET, "/api/v2/projects", None)
                .await
                .status
        }
    };
    assert_eq!(works(first.clone()).await, 200);

    // Reset with an expiry two seconds ahead: both secrets work until then.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 2_000;
    let reset = app
        .post(
            &format!("/api/v2/tokens/{id}/reset?expiry={expiry}"),
            Value::Null,
        )
        .await
        .expect(200);
    assert!(is_full_secret(&reset["token"]), "{reset}");
    let second = reset["token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(works(second.clone()).await, 200);
    assert_eq!(
        works(first.clone()).await,
        200,
        "the old secret works until the expiry"
    );
    let entry = latest_audit(&app).await;
    let text = entry.to_string();
    assert!(!text.contains(&first) && !text.contains(&second), "{text}");
    assert!(
        entry["accesses"][0]["action"] == "resetAccessToken",
        "{entry}"
    );
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    // (The resolved-caller cache lives 5 s; it must not keep an expired secret alive.)
    assert_eq!(works(first.clone()).await, 401, "expired");
    assert_eq!(works(second.clone()).await, 200);
    assert_eq!(
        app.get(&format!("/api/v2/tokens/{id}")).await.expect(200)["token"],
        &second[36..]
    );

    // Reset without an expiry: the old secret stops at once, even right after use.
    let reset = app
        .post(&format!("/api/v2/tokens/{id}/reset"), Value::Null)
        .await
        .expect(200);
    let third = reset["token"].as_str().unwrap().to_string();
    assert_eq!(works(second).await, 401);
    assert_eq!(works(third).await, 200);
    assert_eq!(
        app.post("/api/v2/tokens/nope/reset", Value::Null)
            .await
            .status,
        404
    );
});

backend_test!(
    service_tokens_never_exceed_their_creator,
    |app| async move {
        // A member who may manage service tokens and everything in project `a`, nothing else.
        app.post(
        "/api/v2/roles",
        json!({"key": "a-maintainer", "name": "A maintainer", "basePermissions": "reader", "policy": [
            allow(&["*"], &["service-token/*"]),
            allow(&["*"], &["proj/a", "proj/a:env/*", "proj/a:env/*:flag/*"]),
            {"effect": "deny", "actions": ["deleteFlag"], "resources": ["proj/a:env/*:flag/*"]},
        ]}),
    )
    .await
    .expect(201);
        let member = add_member_with_roles(&app, "maint@example.com", &["a-maintainer"]).await;
        let (_, secret) =
            personal_token(&app, &member, json!({"customRoleIds": ["a-maintainer"]})).await;
        let post = |body: Value| {
            let app = &app;
            let secret = secret.clone();
            async move { call(app, &secret, Method::POST, "/api/v2/tokens", Some(body)).await }
        };
        let before = app.audit_count().await;
        for body in [
            json!({"serviceToken": true, "role": "writer"}),
            json!({"serviceToken": true, "role": "admin"}),
            json!({"serviceToken": true, "inlineRole": [allow(&["*"], &["proj/*"])]}),
            json!({"serviceToken": true, "inlineRole": [allow(&["*"], &["proj/a:env/*:flag/*"])]}),
            json!({"serviceToken": true, "inlineRole": [allow(&["createMember"], &["member/*"])]}),
            json!({"serviceToken": true, "inlineRole": [{"effect": "allow", "notActions": ["viewProject"], "resources": ["proj/a:env/*:flag/*"]}]}),
        ] {
            let resp = post(body.clone()).await;
            assert_eq!(resp.status, 403, "{body}: {}", resp.body);
            assert!(
                resp.message().contains("more access than they have"),
                "{}",
                resp.message()
            );
        }
        assert_eq!(app.audit_count().await, before);

        // Within the creator's access: fine (the deny on deleteFlag is respected by leaving it out).
        let ok = post(
            json!({"serviceToken": true, "name": "a-bot", "inlineRole": [
                allow(&["updateOn", "updateTargets"], &["proj/a:env/*:flag/*"]),
                allow(&["viewProject"], &["proj/*"]),
            ]}),
        )
        .await
        .expect(201);
        assert_eq!(ok["serviceToken"], true);
        let ok_id = ok["_id"].as_str().unwrap().to_string();
        let entry = latest_audit(&app).await;
        assert_eq!(
            accesses(&entry),
            pairs(&[("createAccessToken", &format!("service-token/{ok_id}"))])
        );
        post(json!({"serviceToken": true, "role": "reader"}))
            .await
            .expect(201);
        // Re-scoping it beyond the creator is refused too.
        let resp = call(
        &app,
        &secret,
        Method::PATCH,
        &format!("/api/v2/tokens/{ok_id}"),
        Some(json!([{"op": "add", "path": "/inlineRole/-", "value": allow(&["deleteFlag"], &["proj/a:env/*:flag/*"])}])),
    )
    .await;
        assert_eq!(resp.status, 403, "{}", resp.body);

        // A service token is not bounded by its creator afterwards: downgrading the creator
        // leaves it working.
        let service_secret = ok["token"].as_str().unwrap().to_string();
        app.patch(&format!("/api/v2/members/{member}"), json!([{"op": "replace", "path": "/customRoles", "value": []}, {"op": "replace", "path": "/role", "value": "no_access"}]))
        .await
        .expect(200);
        call(&app, &service_secret, Method::GET, "/api/v2/projects", None)
            .await
            .expect(200);

        // A writer (no token management) cannot create tokens at all; the owner can mint an
        // admin service token.
        let (_, writer) = member_with_token(&app, "writer@example.com", "writer").await;
        let resp = call(
            &app,
            &writer,
            Method::POST,
            "/api/v2/tokens",
            Some(json!({"role": "reader"})),
        )
        .await;
        assert_eq!(resp.status, 403, "{}", resp.body);
        app.post(
            "/api/v2/tokens",
            json!({"serviceToken": true, "role": "admin"}),
        )
        .await
        .expect(201);

        // A scoped personal token cannot mint a broader personal token of the same member.
        let owner_reader = app.post("/api/v2/tokens", json!({"inlineRole": [allow(&["*"], &["member/*:token/*"]), allow(&["view*"], &["proj/*"])]})).await.expect(201);
        let scoped = owner_reader["token"].as_str().unwrap().to_string();
        let resp = call(
            &app,
            &scoped,
            Method::POST,
            "/api/v2/tokens",
            Some(json!({"role": "admin"})),
        )
        .await;
        assert_eq!(resp.status, 403, "{}", resp.body);
        // Nor can an admin mint a token acting for the owner.
        let (_, admin) = member_with_token(&app, "admin@example.com", "admin").await;
        let owner_id = app.get("/api/v2/members/me").await.expect(200)["_id"]
            .as_str()
            .unwrap()
            .to_string();
        let resp = call(
            &app,
            &admin,
            Method::POST,
            "/api/v2/tokens",
            Some(json!({"role": "reader", "memberId": owner_id})),
        )
        .await;
        assert_eq!(resp.status, 403, "{}", resp.body);
    }
);

backend_test!(who_sees_which_tokens, |app| async move {
    let (admin_id, admin) = member_with_token(&app, "admin@example.com", "admin").await;
    let reader_id = add_member(&app, "reader@example.com", "reader").await;
    // Readers cannot manage tokens through the API, so the owner mints theirs.
    let (reader_token_id, reader) =
        personal_token(&app, &reader_id, json!({"role": "reader"})).await;
    let service = app
        .post(
            "/api/v2/tokens",
            json!({"serviceToken": true, "role": "reader", "name": "svc"}),
        )
        .await
        .expect(201);
    let owner_tokens = app.get("/api/v2/tokens").await.expect(200);
    let owner_personal = owner_tokens["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["serviceToken"] == false
                && t["memberId"] != reader_id.as_str()
                && t["memberId"] != admin_id.as_str()
        })
        .unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_string();

    let names = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["_id"].as_str().unwrap().to_string())
            .collect()
    };
    // A reader sees their own personal tokens and the service tokens, even with showAll.
    for path in ["/api/v2/tokens", "/api/v2/tokens?showAll=true"] {
        let seen = call(&app, &reader, Method::GET, path, None)
            .await
            .expect(200);
        assert_eq!(
            names(&seen),
            [
                reader_token_id.clone(),
                service["_id"].as_str().unwrap().to_string()
            ],
            "{path}"
        );
    }
    let resp = call(
        &app,
        &reader,
        Method::GET,
        &format!("/api/v2/tokens/{owner_personal}"),
        None,
    )
    .await;
    assert_eq!(resp.status, 403);
    call(
        &app,
        &reader,
        Method::GET,
        &format!("/api/v2/tokens/{}", service["_id"].as_str().unwrap()),
        None,
    )
    .await
    .expect(200);
    // Readers cannot reset or delete even their own tokens through the API.
    let resp = call(
        &app,
        &reader,
        Method::POST,
        &format!("/api/v2/tokens/{reader_token_id}/reset"),
        None,
    )
    .await;
    assert_eq!(resp.status, 403);
    let resp = call(
        &app,
        &reader,
        Method::DELETE,
        &format!("/api/v2/tokens/{reader_token_id}"),
        None,
    )
    .await;
    assert_eq!(resp.status, 403);

    // An admin sees everyone's personal tokens with showAll, and may manage them.
    let mine = call(&app, &admin, Method::GET, "/api/v2/tokens", None)
        .await
        .expect(200);
    assert_eq!(
        mine["totalCount"], 2,
        "own personal token and the service token"
    );
    let all = call(
        &app,
        &admin,
        Method::GET,
        "/api/v2/tokens?showAll=true",
        None,
    )
    .await
    .expect(200);
    assert_eq!(all["totalCount"], 4);
    call(
        &app,
        &admin,
        Method::GET,
        &format!("/api/v2/tokens/{owner_personal}"),
        None,
    )
    .await
    .expect(200);
    call(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/v2/tokens/{reader_token_id}"),
        None,
    )
    .await
    .expect(204);
    assert_eq!(
        call(&app, &reader, Method::GET, "/api/v2/tokens", None)
            .await
            .status,
        401
    );
});
