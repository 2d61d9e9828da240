//! Segments: create, read, list, delete, and the three PATCH formats, with their audit
//! entries and version increments.

use flagstaff_testkit::app::TestApp;
use flagstaff_testkit::backend_test;
use serde_json::{Value, json};

const BETA: &str = "/api/v2/segments/p1/production/beta";

async fn latest_audit(app: &TestApp) -> Value {
    let log = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    log["items"][0].clone()
}

/// The distinct actions of an audit entry, sorted, with the one resource they all name.
fn actions(entry: &Value) -> (Vec<String>, String) {
    let accesses = entry["accesses"].as_array().expect("accesses");
    let mut actions: Vec<String> = accesses
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    let resources: Vec<&str> = accesses
        .iter()
        .map(|a| a["resource"].as_str().unwrap())
        .collect();
    assert!(
        resources.windows(2).all(|w| w[0] == w[1]),
        "one segment, one resource: {entry}"
    );
    let n = actions.len();
    actions.sort();
    actions.dedup();
    assert_eq!(actions.len(), n, "duplicate actions in {entry}");
    (actions, resources[0].to_string())
}

fn keys(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect()
}

async fn setup(app: &TestApp) {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/segments/p1/production",
        json!({"key": "beta", "name": "Beta testers", "description": "Early", "tags": ["x"]}),
    )
    .await
    .expect(201);
}

/// A semantic patch that must succeed; returns the segment and checks the version step.
async fn semantic(app: &TestApp, body: Value, version: i64) -> Value {
    let segment = app.semantic_patch(BETA, body).await.expect(200);
    assert_eq!(segment["version"], version, "{segment}");
    segment
}

backend_test!(create_get_list_delete, |app| async move {
    setup(&app).await;
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "segment");
    assert_eq!(
        actions(&entry),
        (
            vec!["createSegment".to_string()],
            "proj/p1:env/production:segment/beta;x".to_string()
        )
    );
    let beta = app.get(BETA).await.expect(200);
    assert_eq!(beta["key"], "beta");
    assert_eq!(beta["name"], "Beta testers");
    assert_eq!(beta["description"], "Early");
    assert_eq!(beta["tags"], json!(["x"]));
    assert_eq!(beta["version"], 1);
    assert_eq!(beta["included"], json!([]));
    assert_eq!(beta["rules"], json!([]));
    assert_eq!(beta["deleted"], false);
    assert!(beta.get("salt").is_none(), "{beta}");
    assert_eq!(beta["_links"]["self"]["href"], BETA);
    // Segments belong to one environment.
    app.get("/api/v2/segments/p1/test/beta").await.expect(404);

    for (key, name, tags) in [
        ("alpha", "Alpha", json!(["x", "y"])),
        ("gamma", "Gamma group", json!([])),
    ] {
        app.post(
            "/api/v2/segments/p1/production",
            json!({"key": key, "name": name, "tags": tags}),
        )
        .await
        .expect(201);
    }
    let list = app.get("/api/v2/segments/p1/production").await.expect(200);
    assert_eq!(list["totalCount"], 3);
    assert_eq!(keys(&list), ["alpha", "beta", "gamma"]);
    let page = app
        .get("/api/v2/segments/p1/production?limit=2")
        .await
        .expect(200);
    assert_eq!(keys(&page), ["alpha", "beta"]);
    let next = page["_links"]["next"]["href"].as_str().unwrap().to_string();
    let page = app.get(&next).await.expect(200);
    assert_eq!(keys(&page), ["gamma"]);
    assert!(page["_links"].get("next").is_none());
    assert!(page["_links"].get("prev").is_some());
    let found = app
        .get("/api/v2/segments/p1/production?filter=query:GROUP")
        .await
        .expect(200);
    assert_eq!(keys(&found), ["gamma"]);
    let found = app
        .get("/api/v2/segments/p1/production?filter=tags:x")
        .await
        .expect(200);
    assert_eq!(keys(&found), ["alpha", "beta"]);
    let found = app
        .get("/api/v2/segments/p1/production?filter=tags:x%2By")
        .await
        .expect(200);
    assert_eq!(keys(&found), ["alpha"]);
    let other_env = app.get("/api/v2/segments/p1/test").await.expect(200);
    assert_eq!(other_env["totalCount"], 0);

    let before = app.audit_count().await;
    app.delete(BETA).await.expect(204);
    assert_eq!(app.audit_count().await, before + 1);
    let entry = latest_audit(&app).await;
    assert_eq!(
        actions(&entry),
        (
            vec!["deleteSegment".to_string()],
            "proj/p1:env/production:segment/beta;x".to_string()
        )
    );
    app.get(BETA).await.expect(404);
    app.delete(BETA).await.expect(404);
    let list = app.get("/api/v2/segments/p1/production").await.expect(200);
    assert_eq!(keys(&list), ["alpha", "gamma"]);
    // The key is free again.
    let again = app
        .post(
            "/api/v2/segments/p1/production",
            json!({"key": "beta", "name": "Beta again"}),
        )
        .await
        .expect(201);
    assert_eq!(again["version"], 1);
});

backend_test!(json_patch_and_merge_patch, |app| async move {
    setup(&app).await;
    let created = app.get(BETA).await.expect(200);
    let segment = app
        .patch(
            BETA,
            json!([
                {"op": "replace", "path": "/name", "value": "Beta 2"},
                {"op": "add", "path": "/included/-", "value": "u1"}
            ]),
        )
        .await
        .expect(200);
    assert_eq!(segment["name"], "Beta 2");
    assert_eq!(segment["included"], json!(["u1"]));
    assert_eq!(segment["version"], 2);
    assert_eq!(segment["creationDate"], created["creationDate"]);
    assert!(segment["lastModifiedDate"].as_i64() >= created["lastModifiedDate"].as_i64());
    let entry = latest_audit(&app).await;
    assert_eq!(
        actions(&entry).0,
        ["updateIncluded".to_string(), "updateName".to_string()]
    );

    // User and context targets are one action; the version test is honoured.
    let segment = app
        .patch(
            BETA,
            json!({"comment": "more targets", "patch": [
                {"op": "test", "path": "/version", "value": 2},
                {"op": "add", "path": "/included/-", "value": "u2"},
                {"op": "add", "path": "/includedContexts/-", "value": {"contextKind": "org", "values": ["o1"]}},
                {"op": "add", "path": "/excluded/-", "value": "u9"}
            ]}),
        )
        .await
        .expect(200);
    assert_eq!(segment["version"], 3);
    assert_eq!(segment["included"], json!(["u1", "u2"]));
    assert_eq!(
        segment["includedContexts"],
        json!([{"contextKind": "org", "values": ["o1"]}])
    );
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "more targets");
    assert_eq!(
        actions(&entry).0,
        ["updateExcluded".to_string(), "updateIncluded".to_string()]
    );
    let stale = app
        .patch(
            BETA,
            json!([{"op": "test", "path": "/version", "value": 2},
                   {"op": "replace", "path": "/name", "value": "Stale"}]),
        )
        .await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.code(), "optimistic_locking_error");

    // A rule added by JSON Patch gets ids.
    let segment = app
        .patch(
            BETA,
            json!([{"op": "add", "path": "/rules/-", "value": {"clauses": [
                {"attribute": "email", "op": "endsWith", "values": ["@x.com"], "contextKind": "user"}]}}]),
        )
        .await
        .expect(200);
    assert_eq!(segment["version"], 4);
    assert!(
        segment["rules"][0]["_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert!(segment["rules"][0]["clauses"][0]["_id"].as_str().is_some());
    assert_eq!(actions(&latest_audit(&app).await).0, ["updateRules"]);

    // Merge patch, wrapped with a comment and bare.
    let segment = app
        .patch(
            BETA,
            json!({"comment": "describe", "merge": {"description": "Beta testers of 2025"}}),
        )
        .await
        .expect(200);
    assert_eq!(segment["description"], "Beta testers of 2025");
    assert_eq!(segment["version"], 5);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "describe");
    assert_eq!(actions(&entry).0, ["updateDescription"]);
    let segment = app
        .patch(BETA, json!({"name": "Merged", "tags": ["x", "z"]}))
        .await
        .expect(200);
    assert_eq!(segment["name"], "Merged");
    assert_eq!(segment["tags"], json!(["x", "z"]));
    assert_eq!(segment["version"], 6);
    let entry = latest_audit(&app).await;
    let (acts, resource) = actions(&entry);
    assert_eq!(acts, ["updateName", "updateTags"]);
    assert_eq!(resource, "proj/p1:env/production:segment/beta;x,z");
    // Detailed entry records the delta and both versions.
    let id = entry["_id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v2/auditlog/{id}")).await.expect(200);
    assert_eq!(
        detail["delta"],
        json!({"name": "Merged", "tags": ["x", "z"]})
    );
    assert_eq!(detail["previousVersion"]["version"], 5);
    assert_eq!(detail["currentVersion"]["version"], 6);

    // No change, no new version and no audit entry.
    let before = app.audit_count().await;
    let same = app
        .patch(
            BETA,
            json!([{"op": "replace", "path": "/name", "value": "Merged"}]),
        )
        .await
        .expect(200);
    assert_eq!(same["version"], 6);
    assert_eq!(app.audit_count().await, before);
    assert_eq!(app.get(BETA).await.expect(200)["version"], 6);
});

backend_test!(semantic_patch_instructions, |app| async move {
    setup(&app).await;
    let segment = semantic(
        &app,
        json!({"comment": "targets", "instructions": [
            {"kind": "addIncludedTargets", "contextKind": "org", "values": ["o1", "o2"]},
            {"kind": "addIncludedUsers", "values": ["u1", "u2"]},
            {"kind": "addExcludedTargets", "contextKind": "user", "values": ["u9"]}
        ]}),
        2,
    )
    .await;
    assert_eq!(segment["included"], json!(["u1", "u2"]));
    assert_eq!(segment["excluded"], json!(["u9"]));
    assert_eq!(
        segment["includedContexts"],
        json!([{"contextKind": "org", "values": ["o1", "o2"]}])
    );
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "targets");
    assert_eq!(
        actions(&entry),
        (
            vec!["updateExcluded".to_string(), "updateIncluded".to_string()],
            "proj/p1:env/production:segment/beta;x".to_string()
        )
    );
    let description = entry["description"].as_str().unwrap();
    assert!(
        description.contains("Added org targets o1, o2 to the included list"),
        "{description}"
    );

    let segment = semantic(
        &app,
        json!({"instructions": [
            {"kind": "removeIncludedTargets", "contextKind": "org", "values": ["o1"]},
            {"kind": "removeIncludedTargets", "contextKind": "user", "values": ["u1"]}
        ]}),
        3,
    )
    .await;
    assert_eq!(segment["included"], json!(["u2"]));
    assert_eq!(
        segment["includedContexts"],
        json!([{"contextKind": "org", "values": ["o2"]}])
    );
    assert_eq!(actions(&latest_audit(&app).await).0, ["updateIncluded"]);

    let segment = semantic(
        &app,
        json!({"instructions": [{"kind": "addRule", "description": "Staff",
            "clauses": [{"contextKind": "user", "attribute": "email", "op": "endsWith", "values": ["@x.com"]},
                        {"contextKind": "user", "attribute": "country", "op": "in", "values": ["NZ", "AU"], "negate": true}]}]}),
        4,
    )
    .await;
    let rule = &segment["rules"][0];
    let rule_id = rule["_id"].as_str().unwrap().to_string();
    assert_eq!(rule["description"], "Staff");
    assert_eq!(rule["clauses"].as_array().unwrap().len(), 2);
    assert_eq!(rule["clauses"][1]["negate"], true);
    assert_eq!(rule["clauses"][1]["values"], json!(["NZ", "AU"]));
    assert_eq!(actions(&latest_audit(&app).await).0, ["updateRules"]);

    let segment = semantic(
        &app,
        json!({"instructions": [{"kind": "updateRuleDescription", "ruleId": rule_id, "description": "Employees"}]}),
        5,
    )
    .await;
    assert_eq!(segment["rules"][0]["description"], "Employees");
    assert_eq!(segment["rules"][0]["_id"], rule_id.as_str());
    assert_eq!(actions(&latest_audit(&app).await).0, ["updateRules"]);

    let segment = semantic(
        &app,
        json!({"instructions": [
            {"kind": "updateName", "value": "Beta crew"},
            {"kind": "addTags", "values": ["new", "x"]}
        ]}),
        6,
    )
    .await;
    assert_eq!(segment["name"], "Beta crew");
    assert_eq!(segment["tags"], json!(["new", "x"]));
    let entry = latest_audit(&app).await;
    let (acts, resource) = actions(&entry);
    assert_eq!(acts, ["updateName", "updateTags"]);
    assert_eq!(resource, "proj/p1:env/production:segment/beta;new,x");
    assert_eq!(entry["name"], "Beta crew");

    let segment = semantic(
        &app,
        json!({"instructions": [{"kind": "removeRule", "ruleId": rule_id}]}),
        7,
    )
    .await;
    assert_eq!(segment["rules"], json!([]));
    let entry = latest_audit(&app).await;
    assert_eq!(actions(&entry).0, ["updateRules"]);
    assert!(
        entry["description"]
            .as_str()
            .unwrap()
            .contains("Removed rule \"Employees\""),
        "{entry}"
    );
    // The detailed entry records the instructions as the delta.
    let id = entry["_id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v2/auditlog/{id}")).await.expect(200);
    assert_eq!(
        detail["delta"],
        json!([{"kind": "removeRule", "ruleId": rule_id}])
    );

    // Instructions that change nothing leave the version and the log alone.
    let before = app.audit_count().await;
    semantic(
        &app,
        json!({"instructions": [{"kind": "addIncludedUsers", "values": ["u2"]}]}),
        7,
    )
    .await;
    assert_eq!(app.audit_count().await, before);
    let got = app.get(BETA).await.expect(200);
    assert_eq!(got["version"], 7);
    assert_eq!(got["included"], json!(["u2"]));
});
