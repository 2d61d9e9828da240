//! Custom roles: CRUD by key and `_id`, the three accepted PATCH shapes, policy validation
//! with positions (nothing stored), refusal to delete a role in use, and who may manage roles.

mod support;

use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn role_body(key: &str) -> Value {
    json!({
        "key": key,
        "name": format!("Role {key}"),
        "description": "Ops",
        "basePermissions": "reader",
        "policy": [allow(&["updateOn"], &["proj/*:env/production:flag/*"])],
    })
}

backend_test!(create_read_list_patch_delete, |app| async move {
    let created = app
        .post("/api/v2/roles", role_body("ops"))
        .await
        .expect(201);
    assert_eq!(created["key"], "ops");
    assert_eq!(created["name"], "Role ops");
    assert_eq!(created["basePermissions"], "reader");
    assert_eq!(
        created["assignedTo"],
        json!({"membersCount": 0, "teamsCount": 0})
    );
    assert_eq!(
        created["policy"],
        json!([{"effect": "allow", "actions": ["updateOn"], "resources": ["proj/*:env/production:flag/*"]}])
    );
    assert_eq!(created["_links"]["self"]["href"], "/api/v2/roles/ops");
    let id = created["_id"].as_str().unwrap().to_string();
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "role");
    assert_eq!(accesses(&entry), pairs(&[("createRole", "role/ops")]));

    // basePermissions defaults to no_access.
    let minimal = app
        .post(
            "/api/v2/roles",
            json!({"key": "min", "name": "Min", "policy": []}),
        )
        .await
        .expect(201);
    assert_eq!(minimal["basePermissions"], "no_access");

    // By key and by _id.
    assert_eq!(
        app.get("/api/v2/roles/ops").await.expect(200)["_id"],
        id.as_str()
    );
    assert_eq!(
        app.get(&format!("/api/v2/roles/{id}")).await.expect(200)["key"],
        "ops"
    );

    app.post("/api/v2/roles", role_body("zeta"))
        .await
        .expect(201);
    let page = app.get("/api/v2/roles?limit=2").await.expect(200);
    assert_eq!(page["totalCount"], 3);
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["min", "ops"]);
    assert_eq!(
        page["_links"]["next"]["href"],
        "/api/v2/roles?limit=2&offset=2"
    );

    // JSON Patch with a comment.
    let patched = app
        .patch(
            "/api/v2/roles/ops",
            json!({"comment": "widen", "patch": [
                {"op": "replace", "path": "/name", "value": "Operations"},
                {"op": "add", "path": "/policy/0", "value": allow(&["updateTargets"], &["proj/*:env/test:flag/*"])},
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Operations");
    assert_eq!(patched["policy"].as_array().unwrap().len(), 2);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "widen");
    assert_eq!(
        accesses(&entry),
        pairs(&[("updateName", "role/ops"), ("updatePolicy", "role/ops")])
    );
    // Bare JSON Patch, by _id.
    let patched = app
        .patch(
            &format!("/api/v2/roles/{id}"),
            json!([{"op": "replace", "path": "/basePermissions", "value": "no_access"}]),
        )
        .await
        .expect(200);
    assert_eq!(patched["basePermissions"], "no_access");
    // Merge patch.
    let patched = app
        .patch("/api/v2/roles/ops", json!({"description": "Runs things"}))
        .await
        .expect(200);
    assert_eq!(patched["description"], "Runs things");
    assert_eq!(
        accesses(&latest_audit(&app).await),
        pairs(&[("updateDescription", "role/ops")])
    );

    app.delete("/api/v2/roles/ops").await.expect(204);
    assert_eq!(app.get("/api/v2/roles/ops").await.status, 404);
    assert_eq!(app.get(&format!("/api/v2/roles/{id}")).await.status, 404);
    assert_eq!(
        accesses(&latest_audit(&app).await),
        pairs(&[("deleteRole", "role/ops")])
    );
});

backend_test!(
    invalid_policies_are_refused_with_positions,
    |app| async move {
        app.post("/api/v2/roles", role_body("ok")).await.expect(201);
        let before = app.audit_count().await;
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!([allow(&["updateOn"], &["proj/*:env/production:flg/*"])]),
                vec!["policy: statement 0", "resources[0]", "at character"],
            ),
            (
                json!([
                    allow(&["updateOn"], &["proj/*"]),
                    allow(&["update On"], &["proj/*"])
                ]),
                vec!["statement 1", "actions[0]", "at character 6"],
            ),
            (
                json!([{"actions": ["*"], "resources": ["proj/*"]}]),
                vec!["statement 0", "effect"],
            ),
            (
                json!([{"effect": "allow", "actions": ["*"], "resources": ["proj/*"], "notResources": ["proj/x"]}]),
                vec!["statement 0", "notResources", "not both"],
            ),
            (json!({"effect": "allow"}), vec!["policy", "array"]),
        ];
        for (policy, needles) in cases {
            let resp = app
                .post(
                    "/api/v2/roles",
                    json!({"key": "bad", "name": "Bad", "policy": policy}),
                )
                .await;
            assert_eq!(resp.status, 400, "{policy}: {}", resp.body);
            assert_eq!(resp.code(), "invalid_request");
            for needle in needles {
                assert!(
                    resp.message().contains(needle),
                    "{needle:?} not in {:?}",
                    resp.message()
                );
            }
            assert_eq!(app.get("/api/v2/roles/bad").await.status, 404);
            assert_eq!(app.audit_count().await, before);
        }
        // Other invalid fields.
        for body in [
            json!({"key": "bad", "name": "Bad", "policy": [], "basePermissions": "writer"}),
            json!({"key": "bad key", "name": "Bad", "policy": []}),
            json!({"key": "bad", "name": " ", "policy": []}),
            json!({"key": "bad", "name": "Bad", "policy": [], "resourceCategory": "flags"}),
            json!({"key": "bad", "name": "Bad"}),
        ] {
            let resp = app.post("/api/v2/roles", body.clone()).await;
            assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        }
        // A duplicate key is a conflict.
        assert_eq!(app.post("/api/v2/roles", role_body("ok")).await.status, 409);
        // Patches: malformed policy, read-only key, semantic patch, unknown field.
        let stored = app.get("/api/v2/roles/ok").await.expect(200);
        let resp = app
        .patch(
            "/api/v2/roles/ok",
            json!([{"op": "add", "path": "/policy/-", "value": allow(&["*"], &["proj/*:flag/*"])}]),
        )
        .await;
        assert_eq!(resp.status, 400, "{}", resp.body);
        assert!(resp.message().contains("statement 1"), "{}", resp.message());
        assert!(
            resp.message().contains("at character"),
            "{}",
            resp.message()
        );
        for patch in [
            json!([{"op": "replace", "path": "/key", "value": "other"}]),
            json!([{"op": "add", "path": "/colour", "value": "red"}]),
            json!({"instructions": [{"kind": "updateName", "value": "x"}]}),
        ] {
            let resp = app.patch("/api/v2/roles/ok", patch.clone()).await;
            assert_eq!(resp.status, 400, "{patch}: {}", resp.body);
        }
        assert_eq!(app.get("/api/v2/roles/ok").await.expect(200), stored);
        assert_eq!(app.audit_count().await, before);
    }
);

backend_test!(roles_in_use_cannot_be_deleted, |app| async move {
    let role = app
        .post("/api/v2/roles", role_body("used"))
        .await
        .expect(201);
    let role_id = role["_id"].as_str().unwrap().to_string();
    let member = add_member_with_roles(&app, "ada@example.com", &["used"]).await;
    app.post(
        "/api/v2/teams",
        json!({"key": "t1", "name": "T1", "customRoleKeys": [role_id]}),
    )
    .await
    .expect(201);
    let (_, _) = personal_token(&app, &member, json!({"customRoleIds": ["used"]})).await;
    let used = app.get("/api/v2/roles/used").await.expect(200);
    assert_eq!(
        used["assignedTo"],
        json!({"membersCount": 1, "teamsCount": 1})
    );
    let before = app.audit_count().await;
    let resp = app.delete("/api/v2/roles/used").await;
    assert_eq!(resp.status, 400);
    for needle in ["ada@example.com", "t1", "access tokens"] {
        assert!(
            resp.message().contains(needle),
            "{needle} not in {}",
            resp.message()
        );
    }
    assert_eq!(app.audit_count().await, before);
    app.get("/api/v2/roles/used").await.expect(200);
});

backend_test!(who_may_manage_roles, |app| async move {
    app.post("/api/v2/roles", role_body("seen"))
        .await
        .expect(201);
    let (_, reader) = member_with_token(&app, "reader@example.com", "reader").await;
    let (_, writer) = member_with_token(&app, "writer@example.com", "writer").await;
    let (_, admin) = member_with_token(&app, "admin@example.com", "admin").await;
    let (_, nobody) = member_with_token(&app, "nobody@example.com", "no_access").await;

    // Readers see roles; no_access members don't.
    let list = call(&app, &reader, Method::GET, "/api/v2/roles", None)
        .await
        .expect(200);
    assert_eq!(list["totalCount"], 1);
    call(&app, &reader, Method::GET, "/api/v2/roles/seen", None)
        .await
        .expect(200);
    let list = call(&app, &nobody, Method::GET, "/api/v2/roles", None)
        .await
        .expect(200);
    assert_eq!(list["totalCount"], 0);
    assert_eq!(
        call(&app, &nobody, Method::GET, "/api/v2/roles/seen", None)
            .await
            .status,
        403
    );

    // Readers and writers may not manage roles; admins may.
    let before = app.audit_count().await;
    for secret in [&reader, &writer] {
        let resp = call(
            &app,
            secret,
            Method::POST,
            "/api/v2/roles",
            Some(role_body("new")),
        )
        .await;
        assert_eq!(resp.status, 403, "{}", resp.body);
        assert!(resp.message().contains("createRole"), "{}", resp.message());
        let resp = call(&app, secret, Method::DELETE, "/api/v2/roles/seen", None).await;
        assert_eq!(resp.status, 403);
    }
    assert_eq!(app.audit_count().await, before);
    call(
        &app,
        &admin,
        Method::POST,
        "/api/v2/roles",
        Some(role_body("new")),
    )
    .await
    .expect(201);

    // Nobody grants more than they have: an admin cannot write a role that may change the
    // account owner; the owner can.
    let owner_only = json!({"key": "crown", "name": "Crown", "policy": [allow(&["updateAccountOwner"], &["acct"])]});
    let resp = call(
        &app,
        &admin,
        Method::POST,
        "/api/v2/roles",
        Some(owner_only.clone()),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert!(
        resp.message().contains("updateAccountOwner"),
        "{}",
        resp.message()
    );
    let resp = call(
        &app,
        &admin,
        Method::PATCH,
        "/api/v2/roles/new",
        Some(json!([{"op": "add", "path": "/policy/-", "value": allow(&["*"], &["acct"])}])),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    app.post("/api/v2/roles", owner_only).await.expect(201);
});
