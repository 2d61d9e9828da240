//! The audit log: paging (`limit`, `before`, `after`, `_links.next`), full-text `q`, `spec`
//! filters, the detailed entry, who made the change, and that secrets never appear.

use std::collections::HashSet;

use flagstaff_testkit::app::{TEST_TOKEN, TestApp};
use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};

const DARK: &str = "/api/v2/flags/p1/dark-mode";

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every entry id, newest first, read straight from the store.
async fn all_ids(app: &TestApp) -> Vec<String> {
    let docs = app
        .store
        .audit_list(&flagstaff_store::AuditQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    docs.iter()
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Follows `_links.next` from `first` to the end; returns every id seen, in order.
async fn walk(app: &TestApp, first: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next = Some(first.to_string());
    let mut pages = 0;
    while let Some(url) = next {
        let page = app.get(&url).await.expect(200);
        let page_ids = ids(&page);
        assert!(!page_ids.is_empty() || pages == 0, "empty page at {url}");
        seen.extend(page_ids);
        next = page["_links"]["next"]["href"].as_str().map(String::from);
        pages += 1;
        assert!(pages < 500, "paging does not end");
    }
    seen
}

async fn entry_where(app: &TestApp, q: &str) -> Value {
    let page = app
        .get(&format!("/api/v2/auditlog?q={q}"))
        .await
        .expect(200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "q={q}: {page}");
    page["items"][0].clone()
}

/// A project with two flags and a few changes in both environments; writes happen in bursts
/// so that several entries share a millisecond.
async fn build_log(app: &TestApp) {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/p1",
        json!({"key": "dark-mode", "name": "Dark Mode Toggle", "tags": ["beta"]}),
    )
    .await
    .expect(201);
    app.post("/api/v2/flags/p1", json!({"key": "plain", "name": "Plain"}))
        .await
        .expect(201);
    let bodies: Vec<Value> = (0..6)
        .map(|i| json!({"key": format!("burst-{i}"), "name": format!("Burst {i}")}))
        .collect();
    let (a, b, c, d, e, f) = tokio::join!(
        app.post("/api/v2/flags/p1", bodies[0].clone()),
        app.post("/api/v2/flags/p1", bodies[1].clone()),
        app.post("/api/v2/flags/p1", bodies[2].clone()),
        app.post("/api/v2/flags/p1", bodies[3].clone()),
        app.post("/api/v2/flags/p1", bodies[4].clone()),
        app.post("/api/v2/flags/p1", bodies[5].clone()),
    );
    for r in [a, b, c, d, e, f] {
        r.expect(201);
    }
    app.semantic_patch(
        DARK,
        json!({"environmentKey": "production", "comment": "JIRA-1234 ship it",
               "instructions": [{"kind": "turnFlagOn"}]}),
    )
    .await
    .expect(200);
    app.semantic_patch(
        "/api/v2/flags/p1/plain",
        json!({"environmentKey": "test", "instructions": [{"kind": "turnFlagOn"}]}),
    )
    .await
    .expect(200);
}

backend_test!(limits_and_paging, |app| async move {
    build_log(&app).await;
    let all = all_ids(&app).await;
    assert!(all.len() > 11, "{} entries", all.len());

    let page = app.get("/api/v2/auditlog").await.expect(200);
    assert_eq!(ids(&page), all[..10], "default limit is 10, newest first");
    let page = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    assert_eq!(ids(&page), all[..all.len().min(20)]);
    let page = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    assert_eq!(ids(&page), all[..1]);
    assert!(page["_links"]["next"]["href"].is_string());

    // Following `next` walks the whole log exactly once, whatever the page size.
    for limit in [1, 3, 7, 20] {
        let walked = walk(&app, &format!("/api/v2/auditlog?limit={limit}")).await;
        let unique: HashSet<&String> = walked.iter().collect();
        assert_eq!(unique.len(), walked.len(), "limit={limit}: duplicates");
        assert_eq!(
            walked, all,
            "limit={limit}: the walk missed or reordered entries"
        );
    }

    // before/after are exclusive bounds on the entry date.
    assert!(all.len() <= 20);
    let listed = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    let items = listed["items"].as_array().unwrap();
    let date = items[4]["date"].as_i64().unwrap();
    let dated = |keep: &dyn Fn(i64) -> bool| -> Vec<String> {
        items
            .iter()
            .filter(|e| keep(e["date"].as_i64().unwrap()))
            .map(|e| e["_id"].as_str().unwrap().to_string())
            .collect()
    };
    let older = app
        .get(&format!("/api/v2/auditlog?limit=20&before={date}"))
        .await
        .expect(200);
    assert_eq!(ids(&older), dated(&|d| d < date));
    let newer = app
        .get(&format!("/api/v2/auditlog?limit=20&after={date}"))
        .await
        .expect(200);
    let newer_ids = ids(&newer);
    assert_eq!(newer_ids, dated(&|d| d > date));
    assert!(!newer_ids.is_empty());
    // A window: after the oldest shown, before the newest.
    let (newest, oldest) = (
        items[0]["date"].as_i64().unwrap(),
        items[items.len() - 1]["date"].as_i64().unwrap(),
    );
    let window = app
        .get(&format!(
            "/api/v2/auditlog?limit=20&after={oldest}&before={newest}"
        ))
        .await
        .expect(200);
    for e in window["items"].as_array().unwrap() {
        let d = e["date"].as_i64().unwrap();
        assert!(d > oldest && d < newest, "{e}");
    }
    // `after` is carried into the next link.
    let paged = walk(&app, &format!("/api/v2/auditlog?limit=2&after={date}")).await;
    assert_eq!(paged, newer_ids);
});

backend_test!(full_text_and_spec_filters, |app| async move {
    build_log(&app).await;
    // q matches the flag's name (case-insensitively) and the comment.
    let page = app
        .get("/api/v2/auditlog?limit=20&q=dark%20mode%20TOGGLE")
        .await
        .expect(200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "create and turn on: {page}");
    assert!(items.iter().all(|e| e["name"] == "Dark Mode Toggle"));
    let toggle = entry_where(&app, "jira-1234").await;
    assert_eq!(toggle["comment"], "JIRA-1234 ship it");
    assert_eq!(toggle["name"], "Dark Mode Toggle");
    assert_eq!(entry_where(&app, "JIRA-1234").await["_id"], toggle["_id"]);
    let none = app
        .get("/api/v2/auditlog?q=no-such-text-anywhere")
        .await
        .expect(200);
    assert_eq!(none["items"], json!([]));
    let plain_toggle = app
        .get("/api/v2/auditlog?q=plain&limit=1")
        .await
        .expect(200)["items"][0]
        .clone();
    assert_eq!(plain_toggle["accesses"][0]["action"], "updateOn");

    // spec: only entries that touched a matching resource.
    let spec_ids = |page: &Value| -> HashSet<String> { ids(page).into_iter().collect() };
    let prod = app
        .get("/api/v2/auditlog?limit=20&spec=proj/p1:env/production:flag/*")
        .await
        .expect(200);
    let test = app
        .get("/api/v2/auditlog?limit=20&spec=proj/p1:env/test:flag/*")
        .await
        .expect(200);
    let (prod_ids, test_ids) = (spec_ids(&prod), spec_ids(&test));
    let toggle_id = toggle["_id"].as_str().unwrap().to_string();
    let plain_id = plain_toggle["_id"].as_str().unwrap().to_string();
    assert!(prod_ids.contains(&toggle_id) && !prod_ids.contains(&plain_id));
    assert!(test_ids.contains(&plain_id) && !test_ids.contains(&toggle_id));
    for page in [&prod, &test] {
        assert!(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["kind"] == "flag"),
            "{page}"
        );
    }
    // Flag creations touch every environment: in both, 8 creations + one toggle each.
    assert_eq!(prod_ids.len(), 9);
    assert_eq!(test_ids.len(), 9);
    let tagged = app
        .get("/api/v2/auditlog?limit=20&spec=proj/p1:env/*:flag/*;beta")
        .await
        .expect(200);
    let tagged_items = tagged["items"].as_array().unwrap();
    assert_eq!(tagged_items.len(), 2, "{tagged}");
    assert!(tagged_items.iter().all(|e| e["name"] == "Dark Mode Toggle"));
    let one_flag = app
        .get("/api/v2/auditlog?limit=20&spec=proj/p1:env/test:flag/plain")
        .await
        .expect(200);
    assert_eq!(ids(&one_flag).len(), 2);
    let projects = app
        .get("/api/v2/auditlog?limit=20&spec=proj/*")
        .await
        .expect(200);
    assert_eq!(ids(&projects).len(), 1);
    assert_eq!(projects["items"][0]["kind"], "project");

    // q and spec survive paging: the walk finds exactly what one big page finds.
    for query in [
        "spec=proj/p1:env/production:flag/*",
        "spec=proj/p1:env/*:flag/*;beta",
        "q=burst",
    ] {
        let whole = app
            .get(&format!("/api/v2/auditlog?limit=20&{query}"))
            .await
            .expect(200);
        let walked = walk(&app, &format!("/api/v2/auditlog?limit=2&{query}")).await;
        assert_eq!(walked, ids(&whole), "{query}");
    }
    let combined = app
        .get("/api/v2/auditlog?limit=20&q=toggle&spec=proj/p1:env/test:flag/*")
        .await
        .expect(200);
    assert_eq!(ids(&combined).len(), 1, "only the creation: {combined}");
});

backend_test!(detail_member_token_and_title, |app| async move {
    build_log(&app).await;
    let toggle = entry_where(&app, "jira-1234").await;
    // Listings leave out the detail-only fields.
    let listing = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    for e in listing["items"].as_array().unwrap() {
        for field in ["delta", "previousVersion", "currentVersion"] {
            assert!(e.get(field).is_none(), "listing has {field}: {e}");
        }
    }
    let id = toggle["_id"].as_str().unwrap();
    let detail = app.get(&format!("/api/v2/auditlog/{id}")).await.expect(200);
    assert_eq!(detail["_id"], id);
    assert_eq!(detail["kind"], "flag");
    assert_eq!(detail["comment"], "JIRA-1234 ship it");
    assert_eq!(detail["delta"], json!([{"kind": "turnFlagOn"}]));
    assert_eq!(
        detail["previousVersion"]["environments"]["production"]["on"],
        false
    );
    assert_eq!(
        detail["currentVersion"]["environments"]["production"]["on"],
        true
    );
    assert_eq!(detail["previousVersion"]["_version"], 1);
    assert_eq!(detail["currentVersion"]["_version"], 2);
    assert_eq!(
        detail["accesses"],
        json!([{"action": "updateOn", "resource": "proj/p1:env/production:flag/dark-mode;beta"}])
    );
    assert_eq!(
        detail["target"]["resources"],
        json!(["proj/p1:env/production:flag/dark-mode;beta"])
    );
    assert_eq!(detail["_links"]["canonical"]["href"], DARK);
    assert_eq!(
        detail["_links"]["self"]["href"],
        format!("/api/v2/auditlog/{id}")
    );

    // Who: the member and the token they used.
    let member = &detail["member"];
    assert_eq!(member["email"], "owner@flagstaff.local");
    assert!(member["_id"].as_str().is_some_and(|s| !s.is_empty()));
    let token = &detail["token"];
    assert_eq!(token["ending"], &TEST_TOKEN[TEST_TOKEN.len() - 4..]);
    assert!(token["_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(token["name"].is_string());
    assert_eq!(token["serviceToken"], false);
    assert!(
        !detail.to_string().contains(TEST_TOKEN),
        "the token secret leaked"
    );
    // The listing entry has the same member, token and title.
    for field in [
        "member",
        "token",
        "title",
        "titleVerb",
        "comment",
        "accesses",
    ] {
        assert_eq!(toggle[field], detail[field], "{field}");
    }

    // The title names the member and the target.
    assert_eq!(detail["titleVerb"], "turned on the flag");
    let title = detail["title"].as_str().unwrap();
    assert!(title.contains("Flagstaff Owner"), "{title}");
    assert!(title.contains("owner@flagstaff.local"), "{title}");
    assert!(title.contains("turned on the flag"), "{title}");
    assert!(title.contains("Dark Mode Toggle"), "{title}");
    assert!(title.contains("/p1/features/dark-mode"), "{title}");

    // A JSON Patch records the patch itself as the delta.
    app.patch(
        DARK,
        json!({"comment": "rename", "patch": [{"op": "replace", "path": "/name", "value": "Dark Mode"}]}),
    )
    .await
    .expect(200);
    let renamed = entry_where(&app, "rename").await;
    let detail = app
        .get(&format!(
            "/api/v2/auditlog/{}",
            renamed["_id"].as_str().unwrap()
        ))
        .await
        .expect(200);
    assert_eq!(
        detail["delta"],
        json!([{"op": "replace", "path": "/name", "value": "Dark Mode"}])
    );
    assert_eq!(detail["previousVersion"]["name"], "Dark Mode Toggle");
    assert_eq!(detail["currentVersion"]["name"], "Dark Mode");
    assert!(detail["title"].as_str().unwrap().contains("Dark Mode"));
    // The old entries keep the name the flag had then.
    assert_eq!(
        app.get(&format!("/api/v2/auditlog/{id}")).await.expect(200)["name"],
        "Dark Mode Toggle"
    );
});

backend_test!(environment_keys_never_appear, |app| async move {
    build_log(&app).await;
    let mut secrets: HashSet<String> = HashSet::new();
    let mut remember = |env: &Value| {
        for field in ["apiKey", "mobileKey"] {
            secrets.insert(env[field].as_str().unwrap().to_string());
        }
    };
    let project = app
        .get("/api/v2/projects/p1?expand=environments")
        .await
        .expect(200);
    for env in project["environments"]["items"].as_array().unwrap() {
        remember(env);
    }
    let env = app
        .post(
            "/api/v2/projects/p1/environments",
            json!({"key": "staging", "name": "Staging", "color": "aabbcc", "source": {"key": "production"}}),
        )
        .await
        .expect(201);
    remember(&env);
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    for path in [
        format!("/api/v2/projects/p1/environments/production/apiKey?expiry={expiry}"),
        "/api/v2/projects/p1/environments/production/apiKey".to_string(),
        "/api/v2/projects/p1/environments/production/mobileKey".to_string(),
        "/api/v2/projects/p1/environments/staging/apiKey".to_string(),
    ] {
        let env = app
            .request(Method::POST, &path, None, None)
            .await
            .expect(200);
        remember(&env);
    }
    app.patch(
        "/api/v2/projects/p1/environments/staging",
        json!([{"op": "replace", "path": "/name", "value": "Pre-production"}]),
    )
    .await
    .expect(200);
    app.delete("/api/v2/projects/p1/environments/staging")
        .await
        .expect(204);
    app.delete("/api/v2/projects/p1").await.expect(204);
    assert_eq!(secrets.len(), 10);

    // Neither the listings nor any detailed entry shows a key.
    let all = all_ids(&app).await;
    let mut texts = Vec::new();
    for id in &all {
        texts.push(
            app.get(&format!("/api/v2/auditlog/{id}"))
                .await
                .expect(200)
                .to_string(),
        );
    }
    for page in [
        app.get("/api/v2/auditlog?limit=20").await.expect(200),
        app.get("/api/v2/auditlog?limit=20&q=sdk-")
            .await
            .expect(200),
        app.get("/api/v2/auditlog?limit=20&q=mob-")
            .await
            .expect(200),
    ] {
        texts.push(page.to_string());
    }
    for text in &texts {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "key {secret} in {text}");
            let body = &secret[4..];
            assert!(!text.contains(body), "key {secret} (unprefixed) in {text}");
        }
        assert!(!text.contains("previousApiKey"), "{text}");
    }
    // Searching for a key finds nothing.
    for secret in &secrets {
        let found = app
            .get(&format!("/api/v2/auditlog?q={secret}"))
            .await
            .expect(200);
        assert_eq!(found["items"], json!([]), "{secret}");
    }
    // The key changes are still recorded, by action.
    let resets = app
        .get("/api/v2/auditlog?limit=20&q=updateapikey")
        .await
        .expect(200);
    assert_eq!(ids(&resets).len(), 3);
});
