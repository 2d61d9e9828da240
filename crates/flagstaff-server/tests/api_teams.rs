//! Teams: create, read with `expand`, list with filters, semantic-patch instructions (with
//! either content type, all or nothing), delete; team roles grant their members access, and
//! losing the team loses the access at once.

mod support;

use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const SEMANTIC: &str = "application/json; domain-model=launchdarkly.semanticpatch";

fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .collect()
}

backend_test!(create_read_list_patch_delete, |app| async move {
    app.post(
        "/api/v2/roles",
        json!({"key": "ops", "name": "Operators", "policy": []}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v2/roles",
        json!({"key": "dev", "name": "Developers", "policy": []}),
    )
    .await
    .expect(201);
    let ada = add_member(&app, "ada@example.com", "reader").await;
    let bob = add_member(&app, "bob@example.com", "reader").await;

    let team = app
        .post(
            "/api/v2/teams?expand=members,roles,roleAttributes",
            json!({
                "key": "core", "name": "Core", "description": "The core team",
                "customRoleKeys": ["ops"], "memberIDs": [ada],
                "roleAttributes": {"projects": ["web"]},
            }),
        )
        .await
        .expect(201);
    assert_eq!(team["key"], "core");
    assert_eq!(team["description"], "The core team");
    assert_eq!(team["members"]["totalCount"], 1);
    assert_eq!(
        team["roles"]["items"],
        json!([{"key": "ops", "name": "Operators"}])
    );
    assert_eq!(team["roleAttributes"], json!({"projects": ["web"]}));
    assert_eq!(team["_version"], 1);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "team");
    assert_eq!(accesses(&entry), pairs(&[("createTeam", "team/core")]));

    // Without expand, only the summary fields.
    let plain = app.get("/api/v2/teams/core").await.expect(200);
    assert!(plain.get("members").is_none() && plain.get("roles").is_none());
    assert_eq!(
        app.get("/api/v2/teams/core?expand=projects").await.status,
        400
    );

    app.post(
        "/api/v2/teams",
        json!({"key": "empty", "name": "Empty team"}),
    )
    .await
    .expect(201);
    let all = app.get("/api/v2/teams").await.expect(200);
    assert_eq!(keys(&all), ["core", "empty"]);
    assert_eq!(
        keys(
            &app.get("/api/v2/teams?filter=query:EMPTY")
                .await
                .expect(200)
        ),
        ["empty"]
    );
    assert_eq!(
        keys(
            &app.get("/api/v2/teams?filter=nomembers:true")
                .await
                .expect(200)
        ),
        ["empty"]
    );
    assert_eq!(
        keys(&app.get("/api/v2/teams?limit=1&offset=1").await.expect(200)),
        ["empty"]
    );
    assert_eq!(app.get("/api/v2/teams?limit=101").await.status, 400);

    // Semantic patch, with the semantic content type...
    let patched = app
        .semantic_patch(
            "/api/v2/teams/core?expand=members,roles,roleAttributes",
            json!({"comment": "reorg", "instructions": [
                {"kind": "addMembers", "values": [bob]},
                {"kind": "removeMembers", "values": [ada]},
                {"kind": "addCustomRoles", "values": ["dev"]},
                {"kind": "removeCustomRoles", "values": ["ops"]},
                {"kind": "updateRoleAttribute", "key": "projects", "values": ["web", "mobile"]},
                {"kind": "addRoleAttribute", "key": "envs", "values": ["test"]},
                {"kind": "updateName", "value": "Core team"},
                {"kind": "updateDescription", "value": "Still core"},
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Core team");
    assert_eq!(patched["description"], "Still core");
    assert_eq!(patched["members"]["totalCount"], 1);
    assert_eq!(
        patched["roles"]["items"],
        json!([{"key": "dev", "name": "Developers"}])
    );
    assert_eq!(
        patched["roleAttributes"],
        json!({"envs": ["test"], "projects": ["web", "mobile"]})
    );
    assert_eq!(patched["_version"], 2);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "reorg");
    assert_eq!(
        accesses(&entry),
        pairs(&[
            ("updateTeamCustomRoles", "team/core"),
            ("updateTeamDescription", "team/core"),
            ("updateTeamMembers", "team/core"),
            ("updateTeamName", "team/core"),
            ("updateTeamRoleAttributes", "team/core"),
        ])
    );
    let bob_rep = app.get(&format!("/api/v2/members/{bob}")).await.expect(200);
    assert_eq!(bob_rep["teams"][0]["key"], "core");
    assert_eq!(bob_rep["teams"][0]["customRoleKeys"], json!(["dev"]));

    // ...and as plain JSON (what generated clients send).
    let patched = app
        .patch(
            "/api/v2/teams/core?expand=members",
            json!({"instructions": [
                {"kind": "replaceMembers", "values": [ada, bob]},
                {"kind": "removeRoleAttribute", "key": "envs"},
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["members"]["totalCount"], 2);

    app.delete("/api/v2/teams/core").await.expect(204);
    assert_eq!(app.get("/api/v2/teams/core").await.status, 404);
    assert_eq!(
        accesses(&latest_audit(&app).await),
        pairs(&[("deleteTeam", "team/core")])
    );
    assert_eq!(
        app.get(&format!("/api/v2/members/{bob}")).await.expect(200)["teams"],
        json!([])
    );
});

backend_test!(bad_requests_change_nothing, |app| async move {
    let ada = add_member(&app, "ada@example.com", "reader").await;
    app.post(
        "/api/v2/teams",
        json!({"key": "core", "name": "Core", "memberIDs": [ada]}),
    )
    .await
    .expect(201);
    let before = app.audit_count().await;
    let stored = app
        .get("/api/v2/teams/core?expand=members,roles,roleAttributes")
        .await
        .expect(200);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"instructions": [{"kind": "updateName", "value": "New"}, {"kind": "explode"}]}),
            "instruction 1",
        ),
        (
            json!({"instructions": [{"kind": "addMembers", "values": ["nobody"]}]}),
            "nobody",
        ),
        (
            json!({"instructions": [{"kind": "addCustomRoles", "values": ["nope"]}]}),
            "nope",
        ),
        (
            json!({"instructions": [{"kind": "updateName", "value": ""}]}),
            "name",
        ),
        (
            json!({"instructions": [{"kind": "updateName", "value": "x", "colour": 1}]}),
            "colour",
        ),
        (
            json!({"instructions": [{"kind": "removeRoleAttribute", "key": "absent"}]}),
            "absent",
        ),
        (
            json!({"instructions": [{"kind": "addPermissionGrants", "actions": ["x"], "memberIDs": [ada]}]}),
            "not supported",
        ),
        (json!({"instructions": []}), "at least one"),
        (
            json!([{"op": "replace", "path": "/name", "value": "x"}]),
            "semantic",
        ),
        (json!({"name": "merge"}), "instructions"),
    ];
    for (body, needle) in cases {
        let resp = app.semantic_patch("/api/v2/teams/core", body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
        assert!(
            resp.message().contains(needle),
            "{needle:?} not in {}",
            resp.message()
        );
    }
    for body in [
        json!({"key": "bad key", "name": "Bad"}),
        json!({"key": "bad", "name": ""}),
        json!({"key": "bad", "name": "Bad", "memberIDs": ["nobody"]}),
        json!({"key": "bad", "name": "Bad", "customRoleKeys": ["nope"]}),
        json!({"key": "bad", "name": "Bad", "permissionGrants": [{"actions": ["x"]}]}),
        json!({"name": "Bad"}),
    ] {
        let resp = app.post("/api/v2/teams", body.clone()).await;
        assert_eq!(resp.status, 400, "{body}: {}", resp.body);
    }
    assert_eq!(
        app.post("/api/v2/teams", json!({"key": "core", "name": "Again"}))
            .await
            .status,
        409
    );
    assert_eq!(app.audit_count().await, before);
    assert_eq!(
        app.get("/api/v2/teams/core?expand=members,roles,roleAttributes")
            .await
            .expect(200),
        stored
    );
    assert_eq!(app.get("/api/v2/teams/bad").await.status, 404);
});

backend_test!(team_roles_grant_and_revoke_access, |app| async move {
    // A no_access member whose only access comes from a team.
    app.post(
        "/api/v2/roles",
        json!({"key": "role-admin", "name": "Role admin", "basePermissions": "reader",
               "policy": [allow(&["*"], &["role/${roleAttribute/rolePrefix}*"])]}),
    )
    .await
    .expect(201);
    let member = add_member(&app, "ada@example.com", "no_access").await;
    // An admin-scoped token: bounded by the member, it can do what the member can.
    let (_, secret) = personal_token(&app, &member, json!({"role": "admin"})).await;
    let role = |key: &str| json!({"key": key, "name": key, "policy": []});
    let resp = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/roles",
        Some(role("team-a")),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);

    app.post(
        "/api/v2/teams",
        json!({"key": "t", "name": "T", "customRoleKeys": ["role-admin"], "memberIDs": [member],
               "roleAttributes": {"rolePrefix": ["team-"]}}),
    )
    .await
    .expect(201);
    call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/roles",
        Some(role("team-a")),
    )
    .await
    .expect(201);
    // The team's role attribute bounds it.
    let resp = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/roles",
        Some(role("other")),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    // Team members can view teams (basePermissions reader); they cannot manage them.
    call(&app, &secret, Method::GET, "/api/v2/teams/t", None)
        .await
        .expect(200);
    let resp = call_with_type(
        &app,
        &secret,
        Method::PATCH,
        "/api/v2/teams/t",
        Some(json!({"instructions": [{"kind": "updateName", "value": "Mine"}]})),
        SEMANTIC,
    )
    .await;
    assert_eq!(resp.status, 403);

    // Removed from the team: the access goes at once.
    app.semantic_patch(
        "/api/v2/teams/t",
        json!({"instructions": [{"kind": "removeMembers", "values": [member]}]}),
    )
    .await
    .expect(200);
    let resp = call(
        &app,
        &secret,
        Method::POST,
        "/api/v2/roles",
        Some(role("team-b")),
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);

    // An admin cannot put themselves in a team whose roles exceed theirs.
    app.post(
        "/api/v2/roles",
        json!({"key": "crown", "name": "Crown", "policy": [allow(&["*"], &["acct"])]}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v2/teams",
        json!({"key": "royals", "name": "Royals", "customRoleKeys": ["crown"]}),
    )
    .await
    .expect(201);
    let (admin_id, admin) = member_with_token(&app, "admin@example.com", "admin").await;
    let resp = call_with_type(
        &app,
        &admin,
        Method::PATCH,
        "/api/v2/teams/royals",
        Some(json!({"instructions": [{"kind": "addMembers", "values": [admin_id]}]})),
        SEMANTIC,
    )
    .await;
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert!(resp.message().contains("acct"), "{}", resp.message());
});
