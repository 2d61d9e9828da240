//! Projects and environments: create, read, list, patch, delete (with cascades) and key
//! resets, each checked against its audit entry.

use flagstaff_store::{EntityKind, EntityRef};
use flagstaff_testkit::app::TestApp;
use flagstaff_testkit::backend_test;
use serde_json::{Value, json};

/// The newest audit entry.
async fn latest_audit(app: &TestApp) -> Value {
    let log = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    log["items"][0].clone()
}

/// `(action, resource)` of every access of an audit entry.
fn accesses(entry: &Value) -> Vec<(String, String)> {
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

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, r)| (a.to_string(), r.to_string()))
        .collect()
}

fn keys(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

fn href(page: &Value, link: &str) -> Option<String> {
    page["_links"][link]["href"].as_str().map(String::from)
}

/// Asserts an environment representation carries fresh SDK and mobile keys and never the
/// internal previous key.
fn assert_environment_keys(env: &Value) {
    assert!(env["apiKey"].as_str().unwrap().starts_with("sdk-"), "{env}");
    assert!(
        env["mobileKey"].as_str().unwrap().starts_with("mob-"),
        "{env}"
    );
    assert!(env["_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(env.get("previousApiKey").is_none(), "{env}");
    assert!(env.get("_version").is_none(), "{env}");
}

backend_test!(create_with_default_environments, |app| async move {
    let project = app
        .post(
            "/api/v2/projects",
            json!({"key": "p1", "name": "Project One", "tags": ["b", "a", "b"]}),
        )
        .await
        .expect(201);
    assert_eq!(project["key"], "p1");
    assert_eq!(project["name"], "Project One");
    assert_eq!(project["tags"], json!(["a", "b"]));
    let envs = project["environments"].as_array().unwrap();
    let mut env_keys = keys(&project["environments"]);
    env_keys.sort();
    assert_eq!(env_keys, ["production", "test"]);
    for env in envs {
        assert_environment_keys(env);
    }
    assert_ne!(envs[0]["apiKey"], envs[1]["apiKey"]);

    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "project");
    assert_eq!(entry["name"], "Project One");
    let mut got = accesses(&entry);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("createEnvironment", "proj/p1:env/production"),
            ("createEnvironment", "proj/p1:env/test"),
            ("createProject", "proj/p1;a,b"),
        ])
    );

    // Plain GET leaves the environments out; expand=environments gives the collection.
    let got = app.get("/api/v2/projects/p1").await.expect(200);
    assert_eq!(got["key"], "p1");
    assert!(got.get("environments").is_none(), "{got}");
    assert_eq!(got["_links"]["self"]["href"], "/api/v2/projects/p1");
    let got = app
        .get("/api/v2/projects/p1?expand=environments")
        .await
        .expect(200);
    assert_eq!(got["environments"]["totalCount"], 2);
    let items = &got["environments"]["items"];
    for env in items.as_array().unwrap() {
        assert_environment_keys(env);
        let created = envs.iter().find(|e| e["key"] == env["key"]).unwrap();
        assert_eq!(env["apiKey"], created["apiKey"]);
    }
});

backend_test!(create_with_explicit_environments, |app| async move {
    let project = app
        .post(
            "/api/v2/projects",
            json!({"key": "p2", "name": "P2", "environments": [
                {"key": "dev", "name": "Development", "color": "00ff00", "defaultTtl": 5, "tags": ["x"]},
                {"key": "prod", "name": "Production", "color": "ff0000", "critical": true, "requireComments": true}
            ]}),
        )
        .await
        .expect(201);
    assert_eq!(keys(&project["environments"]), ["dev", "prod"]);
    let list = app
        .get("/api/v2/projects/p2/environments")
        .await
        .expect(200);
    assert_eq!(list["totalCount"], 2);
    let dev = app
        .get("/api/v2/projects/p2/environments/dev")
        .await
        .expect(200);
    assert_eq!(dev["name"], "Development");
    assert_eq!(dev["color"], "00ff00");
    assert_eq!(dev["defaultTtl"], 5);
    assert_eq!(dev["tags"], json!(["x"]));
    assert_eq!(dev["critical"], false);
    let prod = app
        .get("/api/v2/projects/p2/environments/prod")
        .await
        .expect(200);
    assert_eq!(prod["critical"], true);
    assert_eq!(prod["requireComments"], true);
    app.get("/api/v2/projects/p2/environments/production")
        .await
        .expect(404);

    let mut got = accesses(&latest_audit(&app).await);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("createEnvironment", "proj/p2:env/dev;x"),
            ("createEnvironment", "proj/p2:env/prod"),
            ("createProject", "proj/p2"),
        ])
    );
    // A flag created now has a configuration in exactly these environments.
    let flag = app
        .post("/api/v2/flags/p2", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let mut env_keys: Vec<&String> = flag["environments"].as_object().unwrap().keys().collect();
    env_keys.sort();
    assert_eq!(env_keys, ["dev", "prod"]);
});

backend_test!(list_pagination_and_filter, |app| async move {
    for (key, name) in [
        ("alpha", "Alpha"),
        ("bravo", "Bravo"),
        ("charlie", "Charlie"),
        ("delta", "Delta"),
        ("echo", "Echo Alpha"),
    ] {
        app.post("/api/v2/projects", json!({"key": key, "name": name}))
            .await
            .expect(201);
    }
    // Walk the pages by following `next`, checking the links on each.
    let first = app.get("/api/v2/projects?limit=2").await.expect(200);
    assert_eq!(first["totalCount"], 5);
    assert_eq!(keys(&first["items"]), ["alpha", "bravo"]);
    assert!(href(&first, "prev").is_none());
    assert_eq!(
        href(&first, "first").unwrap(),
        "/api/v2/projects?limit=2&offset=0"
    );
    assert_eq!(
        href(&first, "last").unwrap(),
        "/api/v2/projects?limit=2&offset=4"
    );
    let mut seen = keys(&first["items"]);
    let mut page = first;
    let mut pages = 1;
    while let Some(next) = href(&page, "next") {
        page = app.get(&next).await.expect(200);
        pages += 1;
        assert_eq!(page["totalCount"], 5);
        let prev = href(&page, "prev").expect("prev on a later page");
        let prev_page = app.get(&prev).await.expect(200);
        // `seen` holds the items before this page, so `prev` starts two items back.
        assert_eq!(prev_page["items"][0]["key"], seen[seen.len() - 2]);
        seen.extend(keys(&page["items"]));
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(keys(&page["items"]), ["echo"]);
    assert_eq!(href(&page, "self").unwrap(), href(&page, "last").unwrap());

    // offset past the end: an empty page that still links back.
    let empty = app
        .get("/api/v2/projects?limit=2&offset=10")
        .await
        .expect(200);
    assert_eq!(empty["items"], json!([]));
    assert_eq!(empty["totalCount"], 5);
    assert!(href(&empty, "next").is_none());

    // filter=query: matches key or name, case-insensitively; links keep the filter.
    let found = app
        .get("/api/v2/projects?filter=query:ALPHA&limit=1")
        .await
        .expect(200);
    assert_eq!(found["totalCount"], 2);
    assert_eq!(keys(&found["items"]), ["alpha"]);
    let next = href(&found, "next").unwrap();
    assert!(next.contains("filter=query:ALPHA"), "{next}");
    let second = app.get(&next).await.expect(200);
    assert_eq!(keys(&second["items"]), ["echo"]);
    let found = app
        .get("/api/v2/projects?filter=keys:bravo|delta")
        .await
        .expect(200);
    assert_eq!(keys(&found["items"]), ["bravo", "delta"]);
    let sorted = app.get("/api/v2/projects?sort=-name").await.expect(200);
    assert_eq!(
        keys(&sorted["items"]),
        ["echo", "delta", "charlie", "bravo", "alpha"]
    );
    // expand=environments on the list.
    let expanded = app
        .get("/api/v2/projects?limit=1&expand=environments")
        .await
        .expect(200);
    assert_eq!(expanded["items"][0]["environments"]["totalCount"], 2);
});

backend_test!(patch_name_and_tags, |app| async move {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    let before = app.audit_count().await;
    let patched = app
        .patch(
            "/api/v2/projects/p1",
            json!([{"op": "replace", "path": "/name", "value": "Renamed"}]),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Renamed");
    assert_eq!(patched["environments"].as_array().unwrap().len(), 2);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "project");
    assert_eq!(accesses(&entry), pairs(&[("updateProjectName", "proj/p1")]));
    assert!(entry.get("comment").is_none());

    let patched = app
        .patch(
            "/api/v2/projects/p1",
            json!({"comment": "tag it", "patch": [
                {"op": "add", "path": "/tags/-", "value": "beta"},
                {"op": "add", "path": "/tags/-", "value": "alpha"}]}),
        )
        .await
        .expect(200);
    assert_eq!(patched["tags"], json!(["alpha", "beta"]));
    let entry = latest_audit(&app).await;
    assert_eq!(entry["comment"], "tag it");
    assert_eq!(
        accesses(&entry),
        pairs(&[("updateTags", "proj/p1;alpha,beta")])
    );
    assert_eq!(app.audit_count().await, before + 2);

    // A patch that changes nothing writes nothing.
    app.patch(
        "/api/v2/projects/p1",
        json!([{"op": "replace", "path": "/name", "value": "Renamed"}]),
    )
    .await
    .expect(200);
    assert_eq!(app.audit_count().await, before + 2);

    let got = app.get("/api/v2/projects/p1").await.expect(200);
    assert_eq!(got["name"], "Renamed");
    assert_eq!(got["tags"], json!(["alpha", "beta"]));
});

backend_test!(delete_cascades, |app| async move {
    for key in ["p1", "p2"] {
        app.post("/api/v2/projects", json!({"key": key, "name": key}))
            .await
            .expect(201);
        app.post(
            &format!("/api/v2/flags/{key}"),
            json!({"key": "f1", "name": "F1"}),
        )
        .await
        .expect(201);
        app.post(
            &format!("/api/v2/segments/{key}/production"),
            json!({"key": "s1", "name": "S1"}),
        )
        .await
        .expect(201);
    }
    app.delete("/api/v2/projects/p1").await.expect(204);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "project");
    assert_eq!(accesses(&entry), pairs(&[("deleteProject", "proj/p1")]));
    for path in [
        "/api/v2/projects/p1",
        "/api/v2/projects/p1/environments/production",
        "/api/v2/projects/p1/environments",
        "/api/v2/flags/p1/f1",
        "/api/v2/flags/p1",
        "/api/v2/segments/p1/production/s1",
        "/api/v2/segments/p1/production",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status, 404, "{path} survived the project: {}", r.body);
    }
    app.delete("/api/v2/projects/p1").await.expect(404);
    // Nothing is left behind for a new project with the same key...
    app.post("/api/v2/projects", json!({"key": "p1", "name": "Again"}))
        .await
        .expect(201);
    let flags = app.get("/api/v2/flags/p1").await.expect(200);
    assert_eq!(flags["totalCount"], 0);
    let segments = app.get("/api/v2/segments/p1/production").await.expect(200);
    assert_eq!(segments["totalCount"], 0);
    // ...and the other project is untouched.
    app.get("/api/v2/flags/p2/f1").await.expect(200);
    app.get("/api/v2/segments/p2/production/s1")
        .await
        .expect(200);
    let projects = app.get("/api/v2/projects").await.expect(200);
    assert_eq!(projects["totalCount"], 2);
});

backend_test!(environments_create_get_list_patch, |app| async move {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post("/api/v2/flags/p1", json!({"key": "f1", "name": "F1"}))
        .await
        .expect(201);
    let env = app
        .post(
            "/api/v2/projects/p1/environments",
            json!({"key": "staging", "name": "Staging", "color": "aabbcc", "tags": ["pre"]}),
        )
        .await
        .expect(201);
    assert_environment_keys(&env);
    assert_eq!(env["key"], "staging");
    assert_eq!(env["defaultTtl"], 0);
    assert_eq!(env["critical"], false);
    assert_eq!(
        env["_links"]["self"]["href"],
        "/api/v2/projects/p1/environments/staging"
    );
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "environment");
    assert_eq!(
        accesses(&entry),
        pairs(&[("createEnvironment", "proj/p1:env/staging;pre")])
    );
    // Existing flags get a configuration in the new environment, off, serving the off variation.
    let flag = app.get("/api/v2/flags/p1/f1").await.expect(200);
    let staging = &flag["environments"]["staging"];
    assert_eq!(staging["on"], false);
    assert_eq!(staging["offVariation"], 1);
    assert_eq!(staging["_environmentName"], "Staging");
    assert_eq!(flag["_version"], 2);

    let got = app
        .get("/api/v2/projects/p1/environments/staging")
        .await
        .expect(200);
    assert_eq!(got["apiKey"], env["apiKey"]);
    assert_eq!(got["mobileKey"], env["mobileKey"]);
    let list = app
        .get("/api/v2/projects/p1/environments")
        .await
        .expect(200);
    assert_eq!(list["totalCount"], 3);
    assert_eq!(keys(&list["items"]), ["production", "test", "staging"]);
    let page = app
        .get("/api/v2/projects/p1/environments?limit=1&offset=1")
        .await
        .expect(200);
    assert_eq!(keys(&page["items"]), ["test"]);
    assert!(href(&page, "next").is_some() && href(&page, "prev").is_some());
    let filtered = app
        .get("/api/v2/projects/p1/environments?filter=query:stag")
        .await
        .expect(200);
    assert_eq!(keys(&filtered["items"]), ["staging"]);

    let before = app.audit_count().await;
    let patched = app
        .patch(
            "/api/v2/projects/p1/environments/production",
            json!([
                {"op": "replace", "path": "/name", "value": "Prod"},
                {"op": "replace", "path": "/color", "value": "000000"},
                {"op": "replace", "path": "/requireComments", "value": true}
            ]),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Prod");
    assert_eq!(patched["color"], "000000");
    assert_eq!(patched["requireComments"], true);
    assert_environment_keys(&patched);
    assert_eq!(app.audit_count().await, before + 1);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "environment");
    let mut got = accesses(&entry);
    got.sort();
    assert_eq!(
        got,
        pairs(&[
            ("updateColor", "proj/p1:env/production"),
            ("updateName", "proj/p1:env/production"),
            ("updateRequireComments", "proj/p1:env/production"),
        ])
    );
    // The flag shows the environment's new name.
    let flag = app.get("/api/v2/flags/p1/f1").await.expect(200);
    assert_eq!(
        flag["environments"]["production"]["_environmentName"],
        "Prod"
    );
});

backend_test!(environment_cloned_from_source, |app| async move {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post("/api/v2/flags/p1", json!({"key": "f1", "name": "F1"}))
        .await
        .expect(201);
    let flag = app.get("/api/v2/flags/p1/f1").await.expect(200);
    let on_id = flag["variations"][0]["_id"].as_str().unwrap().to_string();
    app.semantic_patch(
        "/api/v2/flags/p1/f1",
        json!({"environmentKey": "production", "instructions": [
            {"kind": "turnFlagOn"},
            {"kind": "addTargets", "contextKind": "user", "values": ["alice"], "variationId": on_id},
            {"kind": "addRule", "variationId": on_id,
             "clauses": [{"contextKind": "user", "attribute": "email", "op": "endsWith", "values": ["@x.com"]}]}
        ]}),
    )
    .await
    .expect(200);
    let source = app
        .get("/api/v2/projects/p1/environments/production")
        .await
        .expect(200);
    let env = app
        .post(
            "/api/v2/projects/p1/environments",
            json!({"key": "staging", "name": "Staging", "color": "aabbcc",
                   "source": {"key": "production"}}),
        )
        .await
        .expect(201);
    // A clone gets its own keys.
    assert_ne!(env["apiKey"], source["apiKey"]);
    assert_ne!(env["mobileKey"], source["mobileKey"]);
    let flag = app.get("/api/v2/flags/p1/f1").await.expect(200);
    let (prod, staging, test) = (
        &flag["environments"]["production"],
        &flag["environments"]["staging"],
        &flag["environments"]["test"],
    );
    assert_eq!(staging["on"], true);
    assert_eq!(staging["targets"], prod["targets"]);
    assert_eq!(staging["rules"], prod["rules"]);
    assert_eq!(staging["fallthrough"], prod["fallthrough"]);
    assert_eq!(test["on"], false);
    assert_eq!(staging["version"], 1);
    let entry = latest_audit(&app).await;
    assert_eq!(
        accesses(&entry),
        pairs(&[("createEnvironment", "proj/p1:env/staging")])
    );
    assert!(
        entry["description"]
            .as_str()
            .unwrap()
            .contains("production"),
        "{entry}"
    );
});

backend_test!(delete_environment_removes_its_config, |app| async move {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    for key in ["f1", "f2"] {
        app.post("/api/v2/flags/p1", json!({"key": key, "name": key}))
            .await
            .expect(201);
    }
    for env in ["test", "production"] {
        app.post(
            &format!("/api/v2/segments/p1/{env}"),
            json!({"key": "s1", "name": "S1"}),
        )
        .await
        .expect(201);
    }
    app.delete("/api/v2/projects/p1/environments/test")
        .await
        .expect(204);
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "environment");
    assert_eq!(
        accesses(&entry),
        pairs(&[("deleteEnvironment", "proj/p1:env/test")])
    );
    for key in ["f1", "f2"] {
        let flag = app
            .get(&format!("/api/v2/flags/p1/{key}"))
            .await
            .expect(200);
        let envs: Vec<&String> = flag["environments"].as_object().unwrap().keys().collect();
        assert_eq!(envs, ["production"], "{key}");
        assert_eq!(flag["_version"], 2);
    }
    app.get("/api/v2/projects/p1/environments/test")
        .await
        .expect(404);
    app.get("/api/v2/segments/p1/test/s1").await.expect(404);
    app.get("/api/v2/segments/p1/production/s1")
        .await
        .expect(200);
    // A new environment with the same key starts empty.
    app.post(
        "/api/v2/projects/p1/environments",
        json!({"key": "test", "name": "Test", "color": "F5A623"}),
    )
    .await
    .expect(201);
    let segments = app.get("/api/v2/segments/p1/test").await.expect(200);
    assert_eq!(segments["totalCount"], 0);
    let list = app
        .get("/api/v2/projects/p1/environments")
        .await
        .expect(200);
    assert_eq!(list["totalCount"], 2);
});

/// The stored environment document (with the fields never rendered).
async fn stored_environment(app: &TestApp, project: &str, env: &str) -> Value {
    let stored = app
        .store
        .get(&EntityRef::new(EntityKind::Environment, project, env))
        .await
        .unwrap()
        .expect("stored environment");
    serde_json::from_str(&stored.doc).unwrap()
}

async fn finds_sdk_key(app: &TestApp, key: &str) -> bool {
    app.store
        .resolve_alias(&format!("sdk:{key}"))
        .await
        .unwrap()
        .is_some()
}

backend_test!(sdk_and_mobile_key_resets, |app| async move {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    let path = "/api/v2/projects/p1/environments/production";
    let original = app.get(path).await.expect(200);
    let key0 = original["apiKey"].as_str().unwrap().to_string();
    assert!(finds_sdk_key(&app, &key0).await);

    // Without expiry the old key stops working at once.
    let reset = app
        .request(reqwest::Method::POST, &format!("{path}/apiKey"), None, None)
        .await
        .expect(200);
    assert_environment_keys(&reset);
    let key1 = reset["apiKey"].as_str().unwrap().to_string();
    assert_ne!(key1, key0);
    assert_eq!(reset["mobileKey"], original["mobileKey"]);
    assert_eq!(reset["_id"], original["_id"]);
    assert!(!finds_sdk_key(&app, &key0).await);
    assert!(finds_sdk_key(&app, &key1).await);
    assert!(
        stored_environment(&app, "p1", "production")
            .await
            .get("previousApiKey")
            .is_none()
    );
    let entry = latest_audit(&app).await;
    assert_eq!(entry["kind"], "environment");
    assert_eq!(
        accesses(&entry),
        pairs(&[("updateApiKey", "proj/p1:env/production")])
    );

    // With a future expiry the old key keeps working, but only internally: no response shows it.
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    let reset = app
        .request(
            reqwest::Method::POST,
            &format!("{path}/apiKey?expiry={expiry}"),
            None,
            None,
        )
        .await
        .expect(200);
    assert_environment_keys(&reset);
    let key2 = reset["apiKey"].as_str().unwrap().to_string();
    assert_ne!(key2, key1);
    assert!(finds_sdk_key(&app, &key1).await);
    assert!(finds_sdk_key(&app, &key2).await);
    let stored = stored_environment(&app, "p1", "production").await;
    assert_eq!(
        stored["previousApiKey"],
        json!({"key": key1, "expiry": expiry})
    );
    for shown in [
        app.get(path).await.expect(200),
        app.get("/api/v2/projects/p1/environments")
            .await
            .expect(200),
        app.get("/api/v2/projects/p1?expand=environments")
            .await
            .expect(200),
    ] {
        let text = shown.to_string();
        assert!(!text.contains(&key1), "old key shown: {text}");
        assert!(!text.contains("previousApiKey"), "{text}");
    }
    // A reset without expiry revokes the previous key too.
    app.request(reqwest::Method::POST, &format!("{path}/apiKey"), None, None)
        .await
        .expect(200);
    assert!(!finds_sdk_key(&app, &key1).await);
    assert!(!finds_sdk_key(&app, &key2).await);

    // Mobile key: a new `mob-` key, the SDK key untouched.
    let before = app.get(path).await.expect(200);
    let reset = app
        .request(
            reqwest::Method::POST,
            &format!("{path}/mobileKey"),
            None,
            None,
        )
        .await
        .expect(200);
    assert_environment_keys(&reset);
    assert_ne!(reset["mobileKey"], before["mobileKey"]);
    assert_eq!(reset["apiKey"], before["apiKey"]);
    let entry = latest_audit(&app).await;
    assert_eq!(
        accesses(&entry),
        pairs(&[("updateMobileKey", "proj/p1:env/production")])
    );
    let got = app.get(path).await.expect(200);
    assert_eq!(got["mobileKey"], reset["mobileKey"]);
    // The other environment kept its keys.
    let test = app
        .get("/api/v2/projects/p1/environments/test")
        .await
        .expect(200);
    assert_ne!(test["apiKey"], got["apiKey"]);
});
