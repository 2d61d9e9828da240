//! Feature flags end to end over HTTP: create, read, list, the three PATCH formats (every
//! semantic instruction the issue names), copy, archive/restore, clone and delete, with the
//! audit entries each change leaves.

use flagstaff_testkit::app::TestApp;
use flagstaff_testkit::backend_test;
use serde_json::{Value, json};

async fn setup(app: &TestApp) {
    app.post("/api/v2/projects", json!({"key": "p", "name": "P"}))
        .await
        .expect(201);
}

async fn last_audit(app: &TestApp) -> Value {
    app.get("/api/v2/auditlog?limit=1").await.expect(200)["items"][0].clone()
}

fn actions(entry: &Value) -> Vec<String> {
    entry["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect()
}

async fn semantic(app: &TestApp, flag: &str, env: Option<&str>, instructions: Value) -> Value {
    let mut body = json!({"instructions": instructions, "comment": "semantic"});
    if let Some(env) = env {
        body["environmentKey"] = json!(env);
    }
    app.semantic_patch(&format!("/api/v2/flags/p/{flag}"), body)
        .await
        .expect(200)
}

fn var_id(flag: &Value, index: usize) -> String {
    flag["variations"][index]["_id"]
        .as_str()
        .unwrap()
        .to_string()
}

backend_test!(create_and_read, |app| async move {
    setup(&app).await;
    let f = app
        .post(
            "/api/v2/flags/p",
            json!({"key": "bool", "name": "Bool", "description": "d", "tags": ["b", "a", "a"], "temporary": false,
                   "clientSideAvailability": {"usingEnvironmentId": true, "usingMobileKey": false},
                   "customProperties": {"jira": {"name": "Jira", "value": ["X-1"]}}}),
        )
        .await
        .expect(201);
    assert_eq!(f["kind"], "boolean");
    assert_eq!(f["tags"], json!(["a", "b"]));
    assert_eq!(f["temporary"], false);
    assert_eq!(f["_version"], 1);
    assert_eq!(f["variations"][0]["value"], true);
    assert_eq!(f["clientSideAvailability"]["usingEnvironmentId"], true);
    let prod = &f["environments"]["production"];
    assert_eq!(prod["on"], false);
    assert_eq!(prod["fallthrough"]["variation"], 0);
    assert_eq!(prod["offVariation"], 1);
    assert_eq!(prod["_environmentName"], "Production");
    assert_eq!(prod["_site"]["href"], "/p/production/features/bool");
    let entry = last_audit(&app).await;
    assert_eq!(entry["kind"], "flag");
    assert_eq!(actions(&entry), vec!["createFlag", "createFlag"]);
    assert!(
        entry["accesses"][0]["resource"]
            .as_str()
            .unwrap()
            .starts_with("proj/p:env/")
    );

    let mv = app
        .post(
            "/api/v2/flags/p",
            json!({"key": "mv", "name": "MV", "variations": [{"value": "red", "name": "Red"}, {"value": "green"}, {"value": "blue"}],
                   "defaults": {"onVariation": 2, "offVariation": 0}}),
        )
        .await
        .expect(201);
    assert_eq!(mv["kind"], "multivariate");
    assert_eq!(mv["environments"]["test"]["fallthrough"]["variation"], 2);

    let only_prod = app
        .get("/api/v2/flags/p/mv?env=production")
        .await
        .expect(200);
    assert_eq!(
        only_prod["environments"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["production"]
    );
    assert_eq!(app.get("/api/v2/flags/p/nope").await.code(), "not_found");
});

backend_test!(list_filters_and_pages, |app| async move {
    setup(&app).await;
    for i in 0..5 {
        let tags = if i % 2 == 0 {
            json!(["even"])
        } else {
            json!(["odd"])
        };
        app.post(
            "/api/v2/flags/p",
            json!({"key": format!("flag-{i}"), "name": format!("Flag {i}"), "tags": tags}),
        )
        .await
        .expect(201);
    }
    let all = app.get("/api/v2/flags/p").await.expect(200);
    assert_eq!(all["totalCount"], 5);
    assert!(
        all["items"][0].get("environments").is_none(),
        "lists leave environments out unless env is given"
    );
    let even = app.get("/api/v2/flags/p?tag=even").await.expect(200);
    assert_eq!(even["totalCount"], 3);
    let query = app
        .get("/api/v2/flags/p?filter=query:flag-3")
        .await
        .expect(200);
    assert_eq!(query["items"][0]["key"], "flag-3");
    let page = app
        .get("/api/v2/flags/p?limit=2&offset=2&sort=key")
        .await
        .expect(200);
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, vec!["flag-2", "flag-3"]);
    assert!(
        page["_links"]["next"]["href"]
            .as_str()
            .unwrap()
            .contains("offset=4")
    );
    assert!(
        page["_links"]["prev"]["href"]
            .as_str()
            .unwrap()
            .contains("offset=0")
    );
    let with_env = app
        .get("/api/v2/flags/p?env=production&summary=0&limit=1")
        .await
        .expect(200);
    assert!(with_env["items"][0]["environments"]["production"]["rules"].is_array());
    let summary = app
        .get("/api/v2/flags/p?env=production&limit=1")
        .await
        .expect(200);
    assert!(
        summary["items"][0]["environments"]["production"]
            .get("rules")
            .is_none()
    );
});

backend_test!(json_and_merge_patch, |app| async move {
    setup(&app).await;
    app.post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let f = app
        .patch(
            "/api/v2/flags/p/f",
            json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
        )
        .await
        .expect(200);
    assert_eq!(f["_version"], 2);
    assert_eq!(f["environments"]["production"]["version"], 2);
    assert_eq!(f["environments"]["test"]["version"], 1);
    assert_eq!(actions(&last_audit(&app).await), vec!["updateOn"]);
    assert_eq!(last_audit(&app).await["titleVerb"], "turned on the flag");

    let f = app
        .patch(
            "/api/v2/flags/p/f",
            json!({"comment": "target", "patch": [
                {"op": "test", "path": "/version", "value": 2},
                {"op": "add", "path": "/environments/production/targets/-", "value": {"variation": 0, "values": ["u1"]}},
                {"op": "add", "path": "/tags/-", "value": "new"}]}),
        )
        .await
        .expect(200);
    assert_eq!(
        f["environments"]["production"]["targets"][0]["values"],
        json!(["u1"])
    );
    let entry = last_audit(&app).await;
    assert_eq!(entry["comment"], "target");
    let mut acts = actions(&entry);
    acts.sort();
    acts.dedup();
    assert_eq!(acts, vec!["updateTags", "updateTargets"]);

    let conflict = app.patch("/api/v2/flags/p/f", json!([{"op": "test", "path": "/version", "value": 2}, {"op": "replace", "path": "/name", "value": "x"}])).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.code(), "optimistic_locking_error");

    let f = app
        .patch(
            "/api/v2/flags/p/f",
            json!({"comment": "merge", "merge": {"description": "merged", "temporary": false}}),
        )
        .await
        .expect(200);
    assert_eq!(f["description"], "merged");
    assert_eq!(f["temporary"], false);
    let detail = app
        .get(&format!(
            "/api/v2/auditlog/{}",
            last_audit(&app).await["_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(
        detail["delta"],
        json!({"description": "merged", "temporary": false})
    );
    assert_eq!(detail["previousVersion"]["description"], "");
    assert_eq!(detail["currentVersion"]["description"], "merged");

    // A patch that changes nothing writes nothing.
    let before = app.audit_count().await;
    let same = app
        .patch(
            "/api/v2/flags/p/f",
            json!([{"op": "replace", "path": "/description", "value": "merged"}]),
        )
        .await
        .expect(200);
    assert_eq!(same["_version"], f["_version"]);
    assert_eq!(app.audit_count().await, before);
});

backend_test!(semantic_targeting_instructions, |app| async move {
    setup(&app).await;
    app.post("/api/v2/flags/p", json!({"key": "pre", "name": "Pre"}))
        .await
        .expect(201);
    let f = app
        .post("/api/v2/flags/p", json!({"key": "f", "name": "F", "variations": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}))
        .await
        .expect(201);
    let (a, b, c) = (var_id(&f, 0), var_id(&f, 1), var_id(&f, 2));
    let env = Some("production");

    let f = semantic(&app, "f", env, json!([{"kind": "turnFlagOn"}])).await;
    assert_eq!(f["environments"]["production"]["on"], true);
    let f = semantic(&app, "f", env, json!([{"kind": "turnFlagOff"}])).await;
    assert_eq!(f["environments"]["production"]["on"], false);
    assert_eq!(actions(&last_audit(&app).await), vec!["updateOn"]);

    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "addRule", "description": "beta users", "variationId": b,
                "clauses": [{"contextKind": "user", "attribute": "email", "op": "endsWith", "values": ["@beta.io"], "negate": false}]},
               {"kind": "addRule", "rolloutWeights": {a.clone(): 50000, c.clone(): 50000},
                "clauses": [{"attribute": "country", "op": "in", "values": ["NZ"]}]}]),
    )
    .await;
    let rules = f["environments"]["production"]["rules"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["variation"], 1);
    assert_eq!(rules[1]["rollout"]["variations"][1]["weight"], 50000);
    assert_eq!(actions(&last_audit(&app).await), vec!["updateRules"]);
    let (r0, r1) = (
        rules[0]["_id"].as_str().unwrap().to_string(),
        rules[1]["_id"].as_str().unwrap().to_string(),
    );
    let c0 = rules[0]["clauses"][0]["_id"].as_str().unwrap().to_string();

    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "reorderRules", "ruleIds": [r1, r0]},
               {"kind": "addClauses", "ruleId": r0, "clauses": [{"attribute": "plan", "op": "in", "values": ["pro"]}]},
               {"kind": "updateClause", "ruleId": r0, "clauseId": c0, "clause": {"attribute": "email", "op": "endsWith", "values": ["@beta.dev"]}},
               {"kind": "updateRuleVariationOrRollout", "ruleId": r0, "variationId": c},
               {"kind": "updateRuleDescription", "ruleId": r0, "description": "renamed"}]),
    )
    .await;
    let rules = &f["environments"]["production"]["rules"];
    assert_eq!(rules[0]["_id"], json!(r1));
    assert_eq!(rules[1]["clauses"].as_array().unwrap().len(), 2);
    assert_eq!(rules[1]["clauses"][0]["values"], json!(["@beta.dev"]));
    assert_eq!(rules[1]["variation"], 2);
    assert_eq!(rules[1]["description"], "renamed");
    let c1 = rules[1]["clauses"][1]["_id"].as_str().unwrap().to_string();
    let f = semantic(&app, "f", env, json!([{"kind": "removeClauses", "ruleId": r0, "clauseIds": [c1]}, {"kind": "removeRule", "ruleId": r1}])).await;
    assert_eq!(
        f["environments"]["production"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "addTargets", "values": ["u1", "u2"], "variationId": a},
               {"kind": "addContextTargets", "contextKind": "org", "values": ["acme"], "variationId": b}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["targets"][0]["values"],
        json!(["u1", "u2"])
    );
    assert_eq!(
        f["environments"]["production"]["contextTargets"][0]["contextKind"],
        "org"
    );
    assert_eq!(actions(&last_audit(&app).await), vec!["updateTargets"]);
    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "removeTargets", "values": ["u1"], "variationId": a},
               {"kind": "removeContextTargets", "contextKind": "org", "values": ["acme"], "variationId": b}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["targets"][0]["values"],
        json!(["u2"])
    );
    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "replaceTargets", "targets": [{"variationId": c, "values": ["z"]}]}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["targets"],
        json!([{"values": ["z"], "variation": 2, "contextKind": "user"}])
    );

    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "updateFallthroughVariationOrRollout", "rolloutWeights": {a.clone(): 25000, b.clone(): 75000}, "rolloutBucketBy": "email"},
               {"kind": "updateOffVariation", "variationId": b}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["fallthrough"]["rollout"]["bucketBy"],
        "email"
    );
    assert_eq!(f["environments"]["production"]["offVariation"], 1);
    let mut acts = actions(&last_audit(&app).await);
    acts.sort();
    assert_eq!(acts, vec!["updateFallthrough", "updateOffVariation"]);

    let pre = app.get("/api/v2/flags/p/pre").await.expect(200);
    let pre_true = var_id(&pre, 0);
    let pre_false = var_id(&pre, 1);
    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "addPrerequisite", "key": "pre", "variationId": pre_true}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["prerequisites"],
        json!([{"key": "pre", "variation": 0}])
    );
    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "updatePrerequisite", "key": "pre", "variationId": pre_false}]),
    )
    .await;
    assert_eq!(
        f["environments"]["production"]["prerequisites"][0]["variation"],
        1
    );
    assert_eq!(
        actions(&last_audit(&app).await),
        vec!["updatePrerequisites"]
    );
    for refused in [
        app.semantic_patch(
            "/api/v2/flags/p/pre",
            json!({"instructions": [{"kind": "archiveFlag"}]}),
        )
        .await,
        app.delete("/api/v2/flags/p/pre").await,
    ] {
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert!(
            refused.message().contains("prerequisite of \"f\""),
            "{}",
            refused.message()
        );
    }
    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "removePrerequisite", "key": "pre"}]),
    )
    .await;
    assert_eq!(f["environments"]["production"]["prerequisites"], json!([]));
    let missing = app
        .semantic_patch("/api/v2/flags/p/f", json!({"environmentKey": "production", "instructions": [{"kind": "addPrerequisite", "key": "ghost", "variationId": a}]}))
        .await;
    assert_eq!(missing.status, 400, "{}", missing.body);

    let f = semantic(
        &app,
        "f",
        env,
        json!([{"kind": "updateTrackEvents", "trackEvents": true}]),
    )
    .await;
    assert_eq!(f["environments"]["production"]["trackEvents"], true);
    assert_eq!(
        f["environments"]["test"]["trackEvents"], false,
        "other environments untouched"
    );
});

backend_test!(semantic_flag_settings_instructions, |app| async move {
    setup(&app).await;
    app.post(
        "/api/v2/flags/p",
        json!({"key": "f", "name": "F", "variations": [{"value": 1}, {"value": 2}]}),
    )
    .await
    .expect(201);
    let f = semantic(
        &app,
        "f",
        None,
        json!([{"kind": "addVariation", "value": 3, "name": "three"},
               {"kind": "updateName", "value": "Renamed"},
               {"kind": "updateDescription", "value": "about"},
               {"kind": "addTags", "values": ["x", "y"]},
               {"kind": "removeTags", "values": ["y"]},
               {"kind": "updateMaintainer", "value": "member-1"},
               {"kind": "makeFlagPermanent"},
               {"kind": "updateClientSideAvailability", "usingEnvironmentId": true, "usingMobileKey": false},
               {"kind": "addCustomProperties", "key": "jira", "name": "Jira", "values": ["A-1"]}]),
    )
    .await;
    assert_eq!(f["variations"].as_array().unwrap().len(), 3);
    assert_eq!(f["name"], "Renamed");
    assert_eq!(f["description"], "about");
    assert_eq!(f["tags"], json!(["x"]));
    assert_eq!(f["maintainerId"], "member-1");
    assert_eq!(f["temporary"], false);
    assert_eq!(
        f["clientSideAvailability"],
        json!({"usingEnvironmentId": true, "usingMobileKey": false})
    );
    assert_eq!(f["customProperties"]["jira"]["value"], json!(["A-1"]));
    let mut acts = actions(&last_audit(&app).await);
    acts.sort();
    acts.dedup();
    for expected in [
        "updateClientSideFlagAvailability",
        "updateDescription",
        "updateFlagCustomProperties",
        "updateFlagVariations",
        "updateMaintainer",
        "updateName",
        "updateTags",
        "updateTemporary",
    ] {
        assert!(
            acts.iter().any(|a| a == expected),
            "{expected} missing from {acts:?}"
        );
    }
    let three = var_id(&f, 2);
    // updateTrackEvents needs an environment: without environmentKey the whole patch fails
    // and nothing changes.
    let before = app.audit_count().await;
    let failed = app
        .semantic_patch(
            "/api/v2/flags/p/f",
            json!({"instructions": [{"kind": "updateVariation", "variationId": three, "value": 30},
                                    {"kind": "updateTrackEvents", "trackEvents": true}]}),
        )
        .await;
    assert_eq!(failed.status, 400, "{}", failed.body);
    assert!(
        failed.message().contains("environmentKey"),
        "{}",
        failed.message()
    );
    assert_eq!(app.audit_count().await, before);
    assert_eq!(
        app.get("/api/v2/flags/p/f").await.expect(200)["variations"][2]["value"],
        3
    );

    let f = semantic(
        &app,
        "f",
        None,
        json!([{"kind": "updateVariation", "variationId": three, "value": 30, "name": "thirty"},
               {"kind": "replaceCustomProperties", "key": "jira", "name": "Jira", "values": ["B-2"]},
               {"kind": "makeFlagTemporary"}]),
    )
    .await;
    assert_eq!(
        f["variations"][2],
        json!({"_id": three, "value": 30, "name": "thirty"})
    );
    assert_eq!(f["customProperties"]["jira"]["value"], json!(["B-2"]));
    assert_eq!(f["temporary"], true);
    let f = semantic(
        &app,
        "f",
        None,
        json!([{"kind": "removeVariation", "variationId": three},
               {"kind": "removeCustomProperties", "key": "jira", "values": ["B-2"]}]),
    )
    .await;
    assert_eq!(f["variations"].as_array().unwrap().len(), 2);
    assert!(f["customProperties"].get("jira").is_none());
    // A variation in use cannot be removed.
    let in_use = var_id(&f, 0);
    let refused = app
        .semantic_patch(
            "/api/v2/flags/p/f",
            json!({"instructions": [{"kind": "removeVariation", "variationId": in_use}]}),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);

    let f = semantic(&app, "f", None, json!([{"kind": "archiveFlag"}])).await;
    assert_eq!(f["archived"], true);
    assert!(f["archivedDate"].is_i64());
    assert_eq!(f["environments"]["production"]["archived"], true);
    assert_eq!(last_audit(&app).await["titleVerb"], "archived the flag");
    assert_eq!(
        app.get("/api/v2/flags/p").await.expect(200)["totalCount"],
        0,
        "archived flags are not listed by default"
    );
    assert_eq!(
        app.get("/api/v2/flags/p?filter=state:archived")
            .await
            .expect(200)["totalCount"],
        1
    );
    let f = semantic(&app, "f", None, json!([{"kind": "restoreFlag"}])).await;
    assert_eq!(f["archived"], false);
    assert_eq!(actions(&last_audit(&app).await)[0], "updateGlobalArchived");
});

backend_test!(copy_clone_delete, |app| async move {
    setup(&app).await;
    let f = app
        .post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let on = var_id(&f, 0);
    semantic(&app, "f", Some("test"), json!([{"kind": "turnFlagOn"}, {"kind": "addTargets", "values": ["qa"], "variationId": on}])).await;
    let test_version =
        app.get("/api/v2/flags/p/f").await.expect(200)["environments"]["test"]["version"]
            .as_i64()
            .unwrap();

    let stale = app
        .post("/api/v2/flags/p/f/copy", json!({"source": {"key": "test", "currentVersion": test_version - 1}, "target": {"key": "production"}}))
        .await;
    assert_eq!(stale.status, 409);
    let copied = app
        .post(
            "/api/v2/flags/p/f/copy",
            json!({"source": {"key": "test", "currentVersion": test_version}, "target": {"key": "production"}, "comment": "promote", "excludedActions": ["updateOn"]}),
        )
        .await
        .expect(201);
    assert_eq!(
        copied["environments"]["production"]["targets"][0]["values"],
        json!(["qa"])
    );
    assert_eq!(
        copied["environments"]["production"]["on"], false,
        "updateOn was excluded"
    );
    let entry = last_audit(&app).await;
    assert_eq!(
        actions(&entry),
        vec!["copyFlagConfigFrom", "copyFlagConfigTo"]
    );
    assert_eq!(entry["comment"], "promote");

    let clone = app
        .post(
            "/api/v2/flags/p?clone=f",
            json!({"key": "f2", "name": "F2"}),
        )
        .await
        .expect(201);
    assert_eq!(clone["environments"]["test"]["on"], true);
    assert_eq!(
        clone["environments"]["test"]["targets"][0]["values"],
        json!(["qa"])
    );
    assert_eq!(clone["_version"], 1);

    assert_eq!(app.delete("/api/v2/flags/p/f").await.status, 204);
    assert_eq!(app.get("/api/v2/flags/p/f").await.status, 404);
    assert_eq!(
        actions(&last_audit(&app).await),
        vec!["deleteFlag", "deleteFlag"]
    );
    assert_eq!(app.delete("/api/v2/flags/p/f").await.status, 404);
});

backend_test!(concurrent_patches_lose_nothing, |app| async move {
    setup(&app).await;
    let f = app
        .post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let on = var_id(&f, 0);
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = app.clone();
        let on = on.clone();
        tasks.push(tokio::spawn(async move {
            app.semantic_patch(
                "/api/v2/flags/p/f",
                json!({"environmentKey": "production", "instructions": [{"kind": "addTargets", "values": [format!("user-{i}")], "variationId": on}]}),
            )
            .await
            .expect(200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let f = app.get("/api/v2/flags/p/f").await.expect(200);
    assert_eq!(
        f["environments"]["production"]["targets"][0]["values"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(f["_version"], 17);
});
