//! Members: add in batches (all or nothing, with LaunchDarkly's invite error codes), read,
//! filter, JSON Patch, delete; owner rules; permission changes that take effect at once; a
//! removed member's tokens stop working.

mod support;

use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect()
}

backend_test!(add_read_filter_patch_delete, |app| async move {
    app.post(
        "/api/v2/roles",
        json!({"key": "ops", "name": "Ops", "policy": []}),
    )
    .await
    .expect(201);
    app.post("/api/v2/teams", json!({"key": "core", "name": "Core"}))
        .await
        .expect(201);
    let added = app
        .post(
            "/api/v2/members",
            json!([
                {"email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace", "role": "writer", "teamKeys": ["core"]},
                {"email": "Bob@Example.com", "customRoles": ["ops"], "roleAttributes": {"projects": ["web"]}},
            ]),
        )
        .await
        .expect(201);
    assert_eq!(added["totalCount"], 2);
    let ada = &added["items"][0];
    assert_eq!(ada["role"], "writer");
    assert_eq!(ada["firstName"], "Ada");
    assert_eq!(ada["_pendingInvite"], false);
    assert_eq!(
        ada["teams"],
        json!([{"key": "core", "name": "Core", "customRoleKeys": [], "_links": {"self": {"href": "/api/v2/teams/core", "type": "application/json"}}}])
    );
    let bob = &added["items"][1];
    assert_eq!(bob["role"], "reader", "the default invite role");
    assert_eq!(bob["customRoles"], json!(["ops"]));
    assert_eq!(bob["roleAttributes"], json!({"projects": ["web"]}));
    let ada_id = ada["_id"].as_str().unwrap().to_string();
    let bob_id = bob["_id"].as_str().unwrap().to_string();
    // One audit entry for the batch, with the team change in it.
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "member");
    assert_eq!(
        accesses(&entry),
        pairs(&[
            ("createMember", &format!("member/{ada_id}")),
            ("updateTeamMembers", "team/core"),
            ("createMember", &format!("member/{bob_id}")),
        ])
    );
    assert_eq!(
        app.get("/api/v2/teams/core?expand=members")
            .await
            .expect(200)["members"]["totalCount"],
        1
    );

    // The owner plus the two new members, oldest first.
    let all = app.get("/api/v2/members").await.expect(200);
    assert_eq!(all["totalCount"], 3);
    assert_eq!(
        emails(&all),
        [
            "owner@flagstaff.local",
            "ada@example.com",
            "Bob@Example.com"
        ]
    );
    let page = app
        .get("/api/v2/members?limit=1&offset=1")
        .await
        .expect(200);
    assert_eq!(emails(&page), ["ada@example.com"]);
    assert!(page["_links"]["next"].is_object() && page["_links"]["prev"].is_object());
    for (filter, want) in [
        ("query:lovelace", vec!["ada@example.com"]),
        ("query:BOB", vec!["Bob@Example.com"]),
        ("role:admin", vec!["owner@flagstaff.local"]),
        (
            "role:writer|ops",
            vec!["ada@example.com", "Bob@Example.com"],
        ),
        ("team:core", vec!["ada@example.com"]),
        (
            "noteam:true",
            vec!["owner@flagstaff.local", "Bob@Example.com"],
        ),
        ("email:bob@example.com", vec!["Bob@Example.com"]),
    ] {
        let page = app
            .get(&format!("/api/v2/members?filter={filter}"))
            .await
            .expect(200);
        assert_eq!(emails(&page), want, "filter {filter}");
    }
    let sorted = app
        .get("/api/v2/members?sort=displayName")
        .await
        .expect(200);
    assert_eq!(emails(&sorted)[0], "ada@example.com");
    assert_eq!(
        app.get("/api/v2/members?filter=colour:red").await.status,
        400
    );

    let got = app
        .get(&format!("/api/v2/members/{ada_id}"))
        .await
        .expect(200);
    assert_eq!(got["email"], "ada@example.com");
    let me = app.get("/api/v2/members/me").await.expect(200);
    assert_eq!(me["role"], "owner");
    assert!(
        me["_lastSeen"].as_i64().unwrap() > 0,
        "the owner token was just used"
    );

    // JSON Patch: role, custom roles (by the documented /customRoles/0 form), names.
    let patched = app
        .patch(
            &format!("/api/v2/members/{ada_id}"),
            json!([
                {"op": "replace", "path": "/role", "value": "admin"},
                {"op": "add", "path": "/customRoles/0", "value": "ops"},
                {"op": "replace", "path": "/lastName", "value": "King"},
            ]),
        )
        .await
        .expect(200);
    assert_eq!(patched["role"], "admin");
    assert_eq!(patched["customRoles"], json!(["ops"]));
    assert_eq!(patched["lastName"], "King");
    let entry = latest_audit(&app).await;
    let resource = format!("member/{ada_id}");
    assert_eq!(
        accesses(&entry),
        pairs(&[
            ("updateCustomRole", &resource),
            ("updateMemberName", &resource),
            ("updateRole", &resource),
        ])
    );
    for bad in [
        json!([{"op": "replace", "path": "/email", "value": "x@example.com"}]),
        json!([{"op": "replace", "path": "/role", "value": "boss"}]),
        json!([{"op": "add", "path": "/customRoles/-", "value": "nope"}]),
        json!([{"op": "add", "path": "/shoeSize", "value": 9}]),
        json!({"role": "reader"}),
    ] {
        let resp = app
            .patch(&format!("/api/v2/members/{ada_id}"), bad.clone())
            .await;
        assert_eq!(resp.status, 400, "{bad}: {}", resp.body);
    }

    app.delete(&format!("/api/v2/members/{ada_id}"))
        .await
        .expect(204);
    assert_eq!(
        app.get(&format!("/api/v2/members/{ada_id}")).await.status,
        404
    );
    assert_eq!(
        app.get("/api/v2/teams/core?expand=members")
            .await
            .expect(200)["members"]["totalCount"],
        0,
        "the removed member left their teams"
    );
    assert!(accesses(&latest_audit(&app).await).contains(&("deleteMember".to_string(), resource)));
    // The address is free again.
    add_member(&app, "ada@example.com", "reader").await;
});

backend_test!(invalid_invites_add_nobody, |app| async move {
    add_member(&app, "taken@example.com", "reader").await;
    let before = app.audit_count().await;
    let count = app.get("/api/v2/members").await.expect(200)["totalCount"].clone();
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({"email": format!("m{i}@example.com")}))
        .collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!([{"email": "new@example.com"}, {"email": "not-an-address"}]),
            "invalid_request",
            "[1].email",
        ),
        (
            json!([{"email": "new@example.com"}, {"email": "NEW@example.com"}]),
            "duplicate_emails",
            "more than once",
        ),
        (
            json!([{"email": "new@example.com"}, {"email": "Taken@example.com"}]),
            "email_already_exists_in_account",
            "already exists",
        ),
        (
            json!([{"email": "new@example.com", "role": "owner"}]),
            "invalid_request",
            "PATCH",
        ),
        (
            json!([{"email": "new@example.com", "role": "boss"}]),
            "invalid_request",
            "role",
        ),
        (
            json!([{"email": "new@example.com", "customRoles": ["nope"]}]),
            "invalid_request",
            "nope",
        ),
        (
            json!([{"email": "new@example.com", "teamKeys": ["nope"]}]),
            "invalid_request",
            "nope",
        ),
        (json!([{"role": "reader"}]), "invalid_request", "email"),
        (json!([]), "invalid_request", "at least one"),
        (Value::Array(too_many), "invalid_request", "at most 50"),
    ];
    for (body, code, needle) in cases {
        let resp = app.post("/api/v2/members", body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert_eq!(resp.code(), code, "{}", resp.body);
        assert!(
            resp.message().contains(needle),
            "{needle:?} not in {}",
            resp.message()
        );
        if code != "invalid_request" {
            assert!(resp.body["invalid_emails"].is_array(), "{}", resp.body);
        }
        assert_eq!(app.audit_count().await, before);
        assert_eq!(
            app.get("/api/v2/members").await.expect(200)["totalCount"],
            count
        );
    }
    let resp = app
        .post("/api/v2/members", json!([{"email": "TAKEN@example.com"}]))
        .await;
    assert_eq!(resp.body["invalid_emails"], json!(["TAKEN@example.com"]));
});

backend_test!(owners_are_protected, |app| async move {
    let owner_id = app.get("/api/v2/members/me").await.expect(200)["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (admin_id, admin) = member_with_token(&app, "admin@example.com", "admin").await;
    let other = add_member(&app, "other@example.com", "reader").await;
    app.post(
        "/api/v2/roles",
        json!({"key": "crown", "name": "Crown", "policy": [allow(&["*"], &["acct"])]}),
    )
    .await
    .expect(201);
    let before = app.audit_count().await;

    // An admin may not make or unmake owners, nor remove one.
    let promote = json!([{"op": "replace", "path": "/role", "value": "owner"}]);
    let resp = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v2/members/{other}"),
        Some(promote.clone()),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert!(
        resp.message().contains("updateAccountOwner"),
        "{}",
        resp.message()
    );
    let demote = json!([{"op": "replace", "path": "/role", "value": "reader"}]);
    let resp = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v2/members/{owner_id}"),
        Some(demote.clone()),
    )
    .await;
    assert_eq!(resp.status, 403);
    let resp = call(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/v2/members/{owner_id}"),
        None,
    )
    .await;
    assert_eq!(resp.status, 403);
    // Nor give anyone a custom role with owner powers.
    let crown = json!([{"op": "add", "path": "/customRoles/0", "value": "crown"}]);
    let resp = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v2/members/{admin_id}"),
        Some(crown),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    // The admin may manage ordinary members.
    call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/api/v2/members/{other}"),
        Some(json!([{"op": "replace", "path": "/role", "value": "writer"}])),
    )
    .await
    .expect(200);
    assert_eq!(app.audit_count().await, before + 1);

    // The last owner can be neither demoted nor removed (nor remove themselves).
    let resp = app
        .patch(&format!("/api/v2/members/{owner_id}"), demote.clone())
        .await;
    assert_eq!(resp.status, 400);
    assert!(resp.message().contains("last owner"), "{}", resp.message());
    let resp = app
        .patch(
            &format!("/api/v2/members/{owner_id}"),
            json!([{"op": "add", "path": "/customRoles/0", "value": "crown"}]),
        )
        .await;
    assert_eq!(
        resp.status, 400,
        "custom roles would replace the owner role: {}",
        resp.body
    );
    assert_eq!(
        app.delete(&format!("/api/v2/members/{owner_id}"))
            .await
            .status,
        400
    );

    // The owner may promote someone else, and then step down.
    let promoted = app
        .patch(&format!("/api/v2/members/{other}"), promote)
        .await
        .expect(200);
    assert_eq!(promoted["role"], "owner");
    let entry = latest_audit(&app).await;
    assert!(accesses(&entry).contains(&("updateAccountOwner".to_string(), "acct".to_string())));
    app.patch(&format!("/api/v2/members/{owner_id}"), demote)
        .await
        .expect(200);
    // The bootstrap token is bounded by its (now reader) member at once.
    let resp = app
        .post(
            "/api/v2/roles",
            json!({"key": "late", "name": "Late", "policy": []}),
        )
        .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
});

backend_test!(downgrades_apply_at_once, |app| async move {
    let (admin_id, admin) = member_with_token(&app, "admin@example.com", "admin").await;
    let role = |key: &str| json!({"key": key, "name": key, "policy": []});
    call(
        &app,
        &admin,
        Method::POST,
        "/api/v2/roles",
        Some(role("one")),
    )
    .await
    .expect(201);
    // Cached permissions must not outlive the change.
    call(&app, &admin, Method::GET, "/api/v2/roles", None)
        .await
        .expect(200);
    app.patch(
        &format!("/api/v2/members/{admin_id}"),
        json!([{"op": "replace", "path": "/role", "value": "reader"}]),
    )
    .await
    .expect(200);
    let resp = call(
        &app,
        &admin,
        Method::POST,
        "/api/v2/roles",
        Some(role("two")),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    // Reads still work for a reader.
    call(&app, &admin, Method::GET, "/api/v2/roles/one", None)
        .await
        .expect(200);
    // Upgraded again: the same (admin-scoped) token writes again.
    app.patch(
        &format!("/api/v2/members/{admin_id}"),
        json!([{"op": "replace", "path": "/role", "value": "admin"}]),
    )
    .await
    .expect(200);
    call(
        &app,
        &admin,
        Method::POST,
        "/api/v2/roles",
        Some(role("two")),
    )
    .await
    .expect(201);
});

backend_test!(removed_members_tokens_stop_working, |app| async move {
    let (member_id, secret) = member_with_token(&app, "gone@example.com", "admin").await;
    call(&app, &secret, Method::GET, "/api/v2/members", None)
        .await
        .expect(200);
    // A service token the member created survives them.
    let service = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/tokens",
        Some(json!({"name": "ci", "role": "reader", "serviceToken": true})),
    )
    .await
    .expect(201);
    let service_secret = service["token"].as_str().unwrap().to_string();
    let listed = call(&app, &secret, Method::GET, "/api/v2/tokens", None)
        .await
        .expect(200);
    let personal_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["serviceToken"] == false)
        .unwrap()["_id"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = call(
        &app,
        &secret,
        Method::DELETE,
        &format!("/api/v2/members/{member_id}"),
        None,
    )
    .await;
    assert_eq!(
        resp.status, 400,
        "members cannot remove themselves: {}",
        resp.body
    );
    app.delete(&format!("/api/v2/members/{member_id}"))
        .await
        .expect(204);
    let resp = call(&app, &secret, Method::GET, "/api/v2/members", None).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.code(), "unauthorized");
    assert_eq!(
        app.get(&format!("/api/v2/tokens/{personal_id}"))
            .await
            .status,
        404
    );
    let entry = latest_audit(&app).await;
    assert!(accesses(&entry).contains(&(
        "deleteAccessToken".to_string(),
        format!("member/{member_id}:token/{personal_id}")
    )));
    // The service token moved to the owner who removed its creator and keeps working.
    let moved = call(&app, &service_secret, Method::GET, "/api/v2/members", None)
        .await
        .expect(200);
    assert!(moved["totalCount"].as_i64().unwrap() >= 1);
    let owner_id = app.get("/api/v2/members/me").await.expect(200)["_id"].clone();
    let service = app
        .get(&format!(
            "/api/v2/tokens/{}",
            service["_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(service["memberId"], owner_id);
});
