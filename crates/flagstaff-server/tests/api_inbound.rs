//! Inbound capabilities over real HTTP, for every catalogue integration that has them:
//! synced segments (`POST /api/v2/segment-targets/{integrationKey}`) and flag triggers
//! (`/webhook/triggers/{id}/{secret}`), each reaching SDK streams and the audit log, with
//! their authorization, secrecy and bad-input behaviour.

mod support;

use std::sync::Arc;
use std::time::Duration;

use flagstaff_manifest::Integration;
use flagstaff_manifest::synced_segment::sample_requests;
use flagstaff_server::AppState;
use flagstaff_server::integrations::DeliverySettings;
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::conformance::conformance_dir;
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations};
use flagstaff_testkit::sse::SseReader;
use reqwest::Method;
use serde_json::{Value, json};
use support::{call, member_with_token};

const WAIT: Duration = Duration::from_secs(5);

async fn app_on(backend: Backend) -> Option<TestApp> {
    TestApp::on_with(backend, |state: AppState| {
        state.with_integrations(catalogue_integrations(
            Outbound::PublicOnly,
            DeliverySettings::default(),
        ))
    })
    .await
}

/// Catalogue integrations with a capability, by the test `has`.
fn integrations_with(has: impl Fn(&Integration) -> bool) -> Vec<Arc<Integration>> {
    let catalogue = flagstaff_manifest::Catalogue::load(
        &[conformance_dir().join("integration-framework/integrations")],
        &flagstaff_manifest::LintOptions::default(),
    );
    catalogue.iter().filter(|i| has(i)).cloned().collect()
}

struct Env {
    client_id: String,
    sdk_key: String,
}

async fn setup(app: &TestApp) -> Env {
    app.post("/api/v2/projects", json!({"key": "p", "name": "P"}))
        .await
        .expect(201);
    let env = app
        .get("/api/v2/projects/p/environments/production")
        .await
        .expect(200);
    Env {
        client_id: env["_id"].as_str().unwrap().to_string(),
        sdk_key: env["apiKey"].as_str().unwrap().to_string(),
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Posts every request a partner would send for these changes; returns the last response.
async fn sync(
    app: &TestApp,
    secret: &str,
    integration: &Integration,
    env_id: &str,
    kind: &str,
    add: &[&str],
    remove: &[&str],
) -> Vec<flagstaff_testkit::app::TestResponse> {
    let parser = &integration
        .manifest
        .capabilities
        .as_ref()
        .unwrap()
        .synced_segment
        .as_ref()
        .unwrap()
        .request_parser;
    let mut out = Vec::new();
    for body in sample_requests(
        parser,
        env_id,
        kind,
        "cohort-1",
        "Cohort one",
        &ids(add),
        &ids(remove),
    ) {
        let path = format!("/api/v2/segment-targets/{}", integration.key);
        out.push(call(app, secret, Method::POST, &path, Some(body)).await);
    }
    out
}

/// Which of `keys` the synced segment includes, read through LaunchDarkly's big-segment
/// membership route (the segment document holds no members).
async fn members(app: &TestApp, segment_key: &str, keys: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for key in keys {
        let state = app
            .get(&format!(
                "/api/v2/segments/p/production/{segment_key}/contexts/{key}"
            ))
            .await
            .expect(200);
        assert_eq!(state["userKey"], *key);
        if state["included"] == true {
            out.push(key.to_string());
        }
    }
    out
}

const PROBE: &[&str] = &["a1", "a2", "a3", "zz"];

fn has_template(integration: &Integration) -> bool {
    integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.synced_segment.as_ref())
        .is_some_and(|s| s.json_response_body.is_some())
}

async fn synced_segments_for_every_integration(app: TestApp) {
    let env = setup(&app).await;
    let mut sse = SseReader::open(&app, "/all", &env.sdk_key).await;
    let (name, _) = sse.next(WAIT).await;
    assert_eq!(name, "put");
    let owner = app.token.clone();
    let synced = integrations_with(|i| {
        i.manifest
            .capabilities
            .as_ref()
            .is_some_and(|c| c.synced_segment.is_some())
    });
    assert!(
        synced.len() >= 10,
        "{} synced-segment integrations",
        synced.len()
    );
    for integration in &synced {
        let key = &integration.key;
        let parser = &integration
            .manifest
            .capabilities
            .as_ref()
            .unwrap()
            .synced_segment
            .as_ref()
            .unwrap()
            .request_parser;
        let kind = if parser.context_kind_path.is_some() {
            "account"
        } else {
            "user"
        };
        let segment_key = format!("{key}-cohort-1");
        let segment_path = format!("/api/v2/segments/p/production/{segment_key}");
        let success = if has_template(integration) { 200 } else { 204 };

        // First sight: the segment is created with its members, and SDKs hear of it.
        for response in sync(
            &app,
            &owner,
            integration,
            &env.client_id,
            kind,
            &["a1", "a2"],
            &[],
        )
        .await
        {
            assert_eq!(response.status, success, "{key}: {}", response.body);
            if success == 200 {
                assert_eq!(
                    response.body["status"], "success",
                    "{key}: {}",
                    response.body
                );
            }
        }
        let segment = app.get(&segment_path).await.expect(200);
        assert_eq!(segment["name"], "Cohort one", "{key}");
        assert_eq!(segment["_external"], json!(key), "{key}");
        // A big segment, as LaunchDarkly's synced segments are: members live outside the
        // document.
        assert_eq!(segment["unbounded"], true, "{key}");
        assert_eq!(segment["unboundedContextKind"], kind, "{key}");
        assert_eq!(segment["included"], json!([]), "{key}");
        assert_eq!(segment["includedContexts"], json!([]), "{key}");
        assert!(segment["generation"].as_i64().unwrap() > 0, "{key}");
        assert_eq!(
            members(&app, &segment_key, PROBE).await,
            ids(&["a1", "a2"]),
            "{key}"
        );
        let (name, patch) = sse.next(WAIT).await;
        assert_eq!(name, "patch", "{key}");
        assert_eq!(patch["path"], format!("/segments/{segment_key}"), "{key}");

        // Adds and removals; the same batch again changes nothing.
        sync(
            &app,
            &owner,
            integration,
            &env.client_id,
            kind,
            &["a3"],
            &["a1"],
        )
        .await;
        let version = app.get(&segment_path).await.expect(200)["version"].clone();
        assert_eq!(
            members(&app, &segment_key, PROBE).await,
            ids(&["a2", "a3"]),
            "{key}"
        );
        let audits = app.audit_count().await;
        for response in sync(
            &app,
            &owner,
            integration,
            &env.client_id,
            kind,
            &["a3"],
            &["a1"],
        )
        .await
        {
            assert_eq!(response.status, success, "{key}: {}", response.body);
        }
        assert_eq!(
            app.audit_count().await,
            audits,
            "{key}: a repeated batch wrote"
        );
        assert_eq!(
            app.get(&segment_path).await.expect(200)["version"],
            version,
            "{key}: a repeated batch bumped the version"
        );
        let entry = support::latest_audit(&app).await;
        assert_eq!(entry["delta"]["integrationKey"], json!(key));
        assert_eq!(entry["delta"]["removed"], json!(["a1"]), "{key}");
        // Drain the stream's patches for the membership changes.
        while let Ok((_, patch)) =
            tokio::time::timeout(Duration::from_millis(300), sse.next(WAIT)).await
        {
            assert_eq!(patch["path"], format!("/segments/{segment_key}"));
        }
    }

    // A synced segment's members belong to its integration: hand edits of its membership
    // are refused and change nothing; its name and rules stay editable.
    let integration = &synced[0].key;
    let segment_path = format!("/api/v2/segments/p/production/{integration}-cohort-1");
    let before = app.get(&segment_path).await.expect(200);
    for (path, value) in [
        ("/included/-", json!("hand-added")),
        ("/unbounded", json!(false)),
        ("/excluded/-", json!("hand-excluded")),
    ] {
        let refused = app
            .patch(
                &segment_path,
                json!([{"op": "add", "path": path, "value": value}]),
            )
            .await;
        assert_eq!(refused.status, 400, "{path}: {}", refused.body);
        assert!(
            refused
                .message()
                .contains(&format!("segment-targets/{integration}")),
            "{path}: the message says where members are managed: {}",
            refused.message()
        );
    }
    assert_eq!(app.get(&segment_path).await.expect(200), before);
    let renamed = app
        .patch(
            &segment_path,
            json!([{"op": "replace", "path": "/name", "value": "Renamed cohort"}]),
        )
        .await
        .expect(200);
    assert_eq!(renamed["name"], "Renamed cohort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_segments_sqlite() {
    synced_segments_for_every_integration(app_on(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_segments_postgres() {
    if let Some(app) = app_on(Backend::Postgres).await {
        synced_segments_for_every_integration(app).await;
    }
}

/// The value of flag `gate` for user `key`, as the client-side SDK endpoint evaluates it.
async fn client_side_value(app: &TestApp, env: &Env, key: &str) -> Value {
    let response = reqwest::Client::new()
        .request(
            Method::from_bytes(b"REPORT").unwrap(),
            format!(
                "{}/sdk/evalx/{}/context?withReasons=true",
                app.base_url, env.client_id
            ),
        )
        .header("Content-Type", "application/json")
        .body(json!({"kind": "user", "key": key}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["gate"].clone()
}

/// Polls until the client-side value of `gate` for `key` is `expected` (the SDK feed applies
/// changes shortly after the commit); returns the last evaluation.
async fn await_client_side(app: &TestApp, env: &Env, key: &str, expected: bool) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let detail = client_side_value(app, env, key).await;
        if detail["value"] == expected || std::time::Instant::now() > deadline {
            return detail;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn synced_membership_in_evaluation(app: TestApp) {
    let env = setup(&app).await;
    let amplitude = integrations_with(|i| i.key == "amplitude").remove(0);
    let owner = app.token.clone();
    let segment = "amplitude-cohort-1";
    let segment_path = format!("/api/v2/segments/p/production/{segment}");
    sync(
        &app,
        &owner,
        &amplitude,
        &env.client_id,
        "user",
        &["a1", "a2"],
        &[],
    )
    .await;

    // A client-side flag that is true for the synced segment, false otherwise.
    app.post(
        "/api/v2/flags/p",
        json!({"key": "gate", "name": "Gate",
               "clientSideAvailability": {"usingEnvironmentId": true, "usingMobileKey": true}}),
    )
    .await
    .expect(201);
    app.patch(
        "/api/v2/flags/p/gate",
        json!([
            {"op": "add", "path": "/environments/production/rules/0", "value":
                {"variation": 0, "clauses": [{"attribute": "segmentMatch", "op": "segmentMatch",
                 "values": [segment], "contextKind": "user"}]}},
            {"op": "replace", "path": "/environments/production/fallthrough", "value": {"variation": 1}},
            {"op": "replace", "path": "/environments/production/on", "value": true}
        ]),
    )
    .await
    .expect(200);
    let member = await_client_side(&app, &env, "a1", true).await;
    assert_eq!(member["value"], true, "{member}");
    assert_eq!(member["reason"]["kind"], "RULE_MATCH", "{member}");
    assert_eq!(member["reason"]["bigSegmentsStatus"], "HEALTHY", "{member}");
    assert_eq!(client_side_value(&app, &env, "zz").await["value"], false);

    // Server-side SDKs get LaunchDarkly's big-segment shape: no member lists.
    let all: Value = reqwest::Client::new()
        .get(format!("{}/sdk/latest-all", app.base_url))
        .header("Authorization", &env.sdk_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sdk_segment = &all["segments"][segment];
    assert_eq!(sdk_segment["unbounded"], true, "{sdk_segment}");
    assert_eq!(sdk_segment["included"], json!([]), "{sdk_segment}");
    let generation = sdk_segment["generation"].as_i64().unwrap();
    assert!(generation > 0);

    // A removal reaches evaluation.
    sync(
        &app,
        &owner,
        &amplitude,
        &env.client_id,
        "user",
        &[],
        &["a1"],
    )
    .await;
    assert_eq!(
        await_client_side(&app, &env, "a1", false).await["value"],
        false
    );
    assert_eq!(client_side_value(&app, &env, "a2").await["value"], true);

    // Deleting the segment forgets its members: the cohort synced again starts empty, with a
    // new generation.
    app.delete(&segment_path).await.expect(204);
    sync(
        &app,
        &owner,
        &amplitude,
        &env.client_id,
        "user",
        &["a3"],
        &[],
    )
    .await;
    assert_eq!(members(&app, segment, PROBE).await, ids(&["a3"]));
    let again = app.get(&segment_path).await.expect(200);
    assert!(again["generation"].as_i64().unwrap() > generation);

    // Deleting the environment forgets its members too (nothing of the old rows is read by a
    // later environment with the same key: environment ids are new).
    let rows = app
        .store
        .segment_member_changes(&env.client_id, 0, 100)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    app.post(
        "/api/v2/projects/p/environments",
        json!({"key": "other", "name": "Other", "color": "000000"}),
    )
    .await
    .expect(201);
    app.delete("/api/v2/projects/p/environments/production")
        .await
        .expect(204);
    let rows = app
        .store
        .segment_member_changes(&env.client_id, 0, 100)
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_membership_in_evaluation_sqlite() {
    synced_membership_in_evaluation(app_on(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_membership_in_evaluation_postgres() {
    if let Some(app) = app_on(Backend::Postgres).await {
        synced_membership_in_evaluation(app).await;
    }
}

async fn segment_count(app: &TestApp) -> usize {
    app.get("/api/v2/segments/p/production").await.expect(200)["totalCount"]
        .as_u64()
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_segment_refusals_write_nothing() {
    let app = app_on(Backend::Sqlite).await.unwrap();
    let env = setup(&app).await;
    let amplitude = integrations_with(|i| i.key == "amplitude").remove(0);
    let heap = integrations_with(|i| i.key == "heap-inbound").remove(0);
    let owner = app.token.clone();
    let post = |key: &str, body: Value| {
        let path = format!("/api/v2/segment-targets/{key}");
        let secret = owner.clone();
        let app = &app;
        async move { call(app, &secret, Method::POST, &path, Some(body)).await }
    };

    // A token without the segment permissions.
    let (_, reader) = member_with_token(&app, "reader@example.com", "reader").await;
    let audits_before_reader = app.audit_count().await;
    let response = sync(
        &app,
        &reader,
        &amplitude,
        &env.client_id,
        "user",
        &["a"],
        &[],
    )
    .await;
    assert_eq!(response[0].status, 403, "{}", response[0].body);
    assert!(
        response[0].message().contains("createSegment"),
        "{}",
        response[0].body
    );
    // heap answers with its template, carrying the same status.
    let heap_body = sample_requests(
        &heap
            .manifest
            .capabilities
            .as_ref()
            .unwrap()
            .synced_segment
            .as_ref()
            .unwrap()
            .request_parser,
        &env.client_id,
        "user",
        "cohort-1",
        "Cohort one",
        &ids(&["a"]),
        &[],
    )
    .remove(0);
    let (status, body) = post_template(&app, &reader, "heap-inbound", &heap_body).await;
    assert_eq!(status, 403);
    assert_eq!(body["status"], "failure");
    assert_eq!(body["error"]["code"], 403);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("createSegment")
    );
    assert_eq!(app.audit_count().await, audits_before_reader);

    // Wrong types at the pointers, with the pointer named.
    let wrong = post(
        "amplitude",
        json!({"environmentId": env.client_id, "batch": [
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": "yes"}]}),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.message().contains("/batch/0/value"), "{}", wrong.body);
    let wrong = post(
        "amplitude",
        json!({"environmentId": env.client_id, "batch": {"userId": "u1"}}),
    )
    .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);

    // Missing environment, unknown environment, unknown integration, no capability.
    let missing = post("amplitude", json!({"batch": []})).await;
    assert_eq!(missing.status, 400);
    assert!(
        missing.message().contains("/environmentId"),
        "{}",
        missing.body
    );
    let unknown_env = post(
        "amplitude",
        json!({"environmentId": "nope", "batch": [
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": true}]}),
    )
    .await;
    assert_eq!(unknown_env.status, 400);
    assert!(
        unknown_env.message().contains("client-side ID"),
        "{}",
        unknown_env.body
    );
    let (status, heap_missing) = post_template(
        &app,
        &owner,
        "heap-inbound",
        &json!({"parameters": {}, "heap": {"data": {"segment": {"id": "h", "name": "H"}}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(heap_missing["status"], "failure");
    assert_eq!(
        heap_missing["error"]["message"],
        "could not find path /parameters/environment_id in request payload"
    );
    assert_eq!(post("no-such-integration", json!({})).await.status, 404);
    let no_capability = post("datadog", json!({})).await;
    assert_eq!(no_capability.status, 400);
    assert!(no_capability.message().contains("syncedSegment"));

    // 50 MB.
    let huge = "x".repeat(50 * 1024 * 1024);
    let response = app
        .raw(Method::POST, "/api/v2/segment-targets/amplitude")
        .header("Authorization", &owner)
        .header("Content-Type", "application/json")
        .body(format!("{{\"environmentId\": \"{huge}\"}}"))
        .send()
        .await;
    // The server answers 413 from Content-Length and may close the connection before the
    // client has written everything; either way it refused the body.
    match response {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }

    // A hand-made segment under a synced key is not taken over.
    app.post(
        "/api/v2/segments/p/production",
        json!({"key": "amplitude-c", "name": "Mine"}),
    )
    .await
    .expect(201);
    let taken = post(
        "amplitude",
        json!({"environmentId": env.client_id, "batch": [
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": true}]}),
    )
    .await;
    assert_eq!(taken.status, 409, "{}", taken.body);
    // Members overriding the cohort reach two segments: one refused, neither written.
    let split = post(
        "amplitude",
        json!({"environmentId": env.client_id, "batch": [
            {"userId": "u1", "cohortId": "fresh", "cohortName": "F", "value": true},
            {"userId": "u2", "cohortId": "c", "cohortName": "C", "value": true}]}),
    )
    .await;
    assert_eq!(split.status, 409, "{}", split.body);

    assert_eq!(segment_count(&app).await, 1);
    assert_eq!(
        app.audit_count().await,
        audits_before_reader + 1,
        "only the hand-made segment was written"
    );
}

/// A synced-segment request answered with the integration's own response template (not
/// LaunchDarkly's error shape).
async fn post_template(app: &TestApp, secret: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = app
        .raw(Method::POST, &format!("/api/v2/segment-targets/{key}"))
        .header("Authorization", secret)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A partner alert body for `parser`, with `event_name` at its event-name pointer.
fn alert_body(trigger: &flagstaff_manifest::model::Trigger, event_name: &str) -> Value {
    let parser = trigger.parser.clone().unwrap_or_default();
    let mut body = json!({});
    let mut set = |pointer: &Option<String>, value: Value| {
        if let Some(p) = pointer {
            let key = p.trim_start_matches('/');
            body[key] = value;
        }
    };
    set(&parser.event_name, json!(event_name));
    set(&parser.url, json!("https://partner.example/alerts/1"));
    set(&parser.value, json!(42));
    body
}

/// A name the integration's `testEventNameRegexp` (or the default) matches.
fn test_event_name(trigger: &flagstaff_manifest::model::Trigger) -> String {
    let pattern = trigger
        .test_event_name_regexp
        .clone()
        .unwrap_or(flagstaff_manifest::model::Trigger::DEFAULT_TEST_EVENT_NAME_REGEXP.into());
    let regex = flagstaff_manifest::jsregex::compile(&pattern).unwrap();
    [
        "Dynatrace problem notification test run",
        "New Relic Alert - Test Condition",
        "Monitor [TEST] fired",
        "This is a test",
    ]
    .into_iter()
    .find(|name| regex.is_match(name))
    .unwrap_or_else(|| panic!("no sample test name matches {pattern}"))
    .to_string()
}

async fn post_raw(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", app.base_url))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn url_path(url: &str) -> String {
    let start = url.find("/webhook/").expect("trigger URL path");
    url[start..].to_string()
}

async fn triggers_for_every_integration(app: TestApp) {
    let env = setup(&app).await;
    let mut sse = SseReader::open(&app, "/all", &env.sdk_key).await;
    assert_eq!(sse.next(WAIT).await.0, "put");
    let triggers = integrations_with(|i| {
        i.manifest
            .capabilities
            .as_ref()
            .is_some_and(|c| c.trigger.is_some())
    });
    assert!(
        triggers.len() >= 5,
        "{} trigger integrations",
        triggers.len()
    );
    for integration in &triggers {
        let key = &integration.key;
        let capability = integration
            .manifest
            .capabilities
            .as_ref()
            .unwrap()
            .trigger
            .clone()
            .unwrap();
        let flag = format!("f-{key}");
        app.post("/api/v2/flags/p", json!({"key": flag, "name": flag}))
            .await
            .expect(201);
        assert_eq!(sse.next(WAIT).await.0, "patch");
        let base = format!("/api/v2/flags/p/{flag}/triggers/production");
        let created = app
            .post(
                &base,
                json!({"integrationKey": key, "instructions": [{"kind": "turnFlagOn"}]}),
            )
            .await
            .expect(201);
        let url = created["triggerURL"].as_str().unwrap().to_string();
        let secret = url.rsplit('/').next().unwrap().to_string();
        assert!(secret.len() >= 32, "{key}: a short secret");
        let path = url_path(&url);

        // The secret is shown once.
        let listed = app.get(&base).await.expect(200);
        assert_eq!(listed["items"].as_array().unwrap().len(), 1);
        assert!(
            !listed.to_string().contains(&secret),
            "{key}: list shows the secret"
        );
        let id = created["_id"].as_str().unwrap();
        let one = app.get(&format!("{base}/{id}")).await.expect(200);
        assert!(!one.to_string().contains(&secret));

        // The partner's test event is accepted and changes nothing.
        let audits = app.audit_count().await;
        let (status, answer) = post_raw(
            &app,
            &path,
            &alert_body(&capability, &test_event_name(&capability)),
        )
        .await;
        assert_eq!(status, 200, "{key}: {answer}");
        assert_eq!(answer["testEvent"], true, "{key}");
        assert_eq!(
            app.audit_count().await,
            audits,
            "{key}: the test event wrote"
        );

        // Wrong types at the parser's pointers: refused, naming the pointer; nothing written.
        let parser = capability.parser.clone().unwrap_or_default();
        for pointer in [&parser.event_name, &parser.url].into_iter().flatten() {
            let mut bad = alert_body(&capability, "High error rate");
            bad[pointer.trim_start_matches('/')] = json!({"not": "a string"});
            let (status, answer) = post_raw(&app, &path, &bad).await;
            assert_eq!(status, 400, "{key} {pointer}: {answer}");
            assert!(
                answer["message"]
                    .as_str()
                    .unwrap()
                    .contains(pointer.as_str()),
                "{key}: {answer}"
            );
        }
        assert_eq!(
            app.audit_count().await,
            audits,
            "{key}: a refused alert wrote"
        );

        // A real alert turns the flag on; SDK streams and the audit log see it.
        let alert = alert_body(&capability, "High error rate");
        let (status, answer) = post_raw(&app, &path, &alert).await;
        assert_eq!(status, 200, "{key}: {answer}");
        assert_eq!(answer["changed"], true, "{key}");
        let flag_doc = app
            .get(&format!("/api/v2/flags/p/{flag}"))
            .await
            .expect(200);
        assert_eq!(flag_doc["environments"]["production"]["on"], true, "{key}");
        let (name, patch) = sse.next(WAIT).await;
        assert_eq!(name, "patch");
        assert_eq!(patch["path"], format!("/flags/{flag}"));
        assert_eq!(patch["data"]["on"], true, "{key}");
        let entry = support::latest_audit(&app).await;
        assert_eq!(entry["triggerBody"]["body"], alert, "{key}");
        assert_eq!(
            entry["triggerBody"]["eventName"], "High error rate",
            "{key}"
        );
        assert!(entry["comment"].as_str().unwrap().contains(key.as_str()));
        let counted = app.get(&format!("{base}/{id}")).await.expect(200);
        assert_eq!(counted["_triggerCount"], 1, "{key}");

        // Again: the flag is already on, nothing is written.
        let audits = app.audit_count().await;
        let (_, answer) = post_raw(&app, &path, &alert).await;
        assert_eq!(answer["changed"], false);
        assert_eq!(app.audit_count().await, audits);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_sqlite() {
    triggers_for_every_integration(app_on(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_postgres() {
    if let Some(app) = app_on(Backend::Postgres).await {
        triggers_for_every_integration(app).await;
    }
}

const GENERIC_TRIGGERS: &str = "/api/v2/flags/p/f/triggers/production";

/// Project `p` with flag `f` and a generic trigger that turns it on in production:
/// (trigger id, trigger URL, its secret).
async fn flag_with_generic_trigger(app: &TestApp) -> (String, String, String) {
    setup(app).await;
    app.post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let created = app
        .post(
            GENERIC_TRIGGERS,
            json!({"integrationKey": "generic-trigger", "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await
        .expect(201);
    let url = created["triggerURL"].as_str().unwrap().to_string();
    let secret = url.rsplit('/').next().unwrap().to_string();
    (created["_id"].as_str().unwrap().to_string(), url, secret)
}

/// The secret with its first character changed.
fn wrong_secret(secret: &str) -> String {
    let mut wrong = secret.to_string();
    wrong.replace_range(..1, if secret.starts_with('0') { "1" } else { "0" });
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_urls_keep_their_secret() {
    let app = app_on(Backend::Sqlite).await.unwrap();
    let (id, url, secret) = flag_with_generic_trigger(&app).await;
    let base = GENERIC_TRIGGERS;
    let path = url_path(&url);

    // Wrong secret, unknown id and disabled trigger: one answer.
    let wrong = wrong_secret(&secret);
    let (s1, b1) = post_raw(&app, &format!("/webhook/triggers/{id}/{wrong}"), &json!({})).await;
    let (s2, b2) = post_raw(
        &app,
        &format!("/webhook/triggers/0000/{secret}"),
        &json!({}),
    )
    .await;
    app.semantic_patch(
        &format!("{base}/{id}"),
        json!({"instructions": [{"kind": "disableTrigger"}]}),
    )
    .await
    .expect(200);
    let (s3, b3) = post_raw(&app, &path, &json!({})).await;
    for (status, body) in [(s1, &b1), (s2, &b2), (s3, &b3)] {
        assert_eq!(status, 404);
        assert_eq!(body["code"], b1["code"]);
        assert_eq!(body["message"], b1["message"]);
    }
    let flag = app.get("/api/v2/flags/p/f").await.expect(200);
    assert_eq!(flag["environments"]["production"]["on"], false);

    // Reset the URL: the old one stops working, the new one works.
    let enabled = app
        .semantic_patch(
            &format!("{base}/{id}"),
            json!({"instructions": [{"kind": "enableTrigger"}, {"kind": "cycleTriggerUrl"}]}),
        )
        .await
        .expect(200);
    let new_url = enabled["triggerURL"].as_str().unwrap().to_string();
    assert_ne!(new_url, url);
    assert_eq!(post_raw(&app, &path, &json!({})).await.0, 404);
    let (status, _) = post_raw(&app, &url_path(&new_url), &json!({"eventName": 5})).await;
    assert_eq!(status, 400, "a non-string event name");
    let (status, _) = post_raw(&app, &url_path(&new_url), &json!({})).await;
    assert_eq!(status, 200);

    // Replace the action; bad instructions are refused.
    app.semantic_patch(
        &format!("{base}/{id}"),
        json!({"instructions": [{"kind": "replaceTriggerActionInstructions", "value": [{"kind": "turnFlagOff"}]}]}),
    )
    .await
    .expect(200);
    let bad = app
        .semantic_patch(
            &format!("{base}/{id}"),
            json!({"instructions": [{"kind": "replaceTriggerActionInstructions", "value": [{"kind": "deleteFlag"}]}]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let (_, answer) = post_raw(&app, &url_path(&new_url), &json!({})).await;
    assert_eq!(answer["changed"], true);
    assert_eq!(
        app.get("/api/v2/flags/p/f").await.expect(200)["environments"]["production"]["on"],
        false
    );

    // No secret in the audit log, detailed or not.
    let log = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    for item in log["items"].as_array().unwrap() {
        let detail = app
            .get(&format!(
                "/api/v2/auditlog/{}",
                item["_id"].as_str().unwrap()
            ))
            .await
            .expect(200)
            .to_string();
        let new_secret = new_url.rsplit('/').next().unwrap();
        assert!(!detail.contains(&secret) && !detail.contains(new_secret));
        assert!(!detail.contains("secretHash"));
    }

    // Unknown integrations and actions are refused; readers cannot create triggers.
    let refused = app
        .post(
            base,
            json!({"integrationKey": "amplitude", "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await;
    assert_eq!(refused.status, 400);
    let (_, reader) = member_with_token(&app, "r@example.com", "reader").await;
    let denied = call(
        &app,
        &reader,
        Method::POST,
        base,
        Some(
            json!({"integrationKey": "generic-trigger", "instructions": [{"kind": "turnFlagOn"}]}),
        ),
    )
    .await;
    assert_eq!(denied.status, 403);
    // 50 MB to a trigger URL: refused before anything is read into a flag change.
    let audits = app.audit_count().await;
    let huge = format!("{{\"eventName\": \"{}\"}}", "x".repeat(50 * 1024 * 1024));
    match reqwest::Client::new()
        .post(format!("{}{}", app.base_url, url_path(&new_url)))
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await
    {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(app.audit_count().await, audits);

    app.delete(&format!("{base}/{id}")).await.expect(204);
    assert_eq!(post_raw(&app, &url_path(&new_url), &json!({})).await.0, 404);
}

/// Everything Flagstaff (and its SQL layer) logs while triggers are created, listed, fired
/// with right and wrong secrets and reset, captured at TRACE.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_secrets_stay_out_of_logs() {
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let installed = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "flagstaff=trace,flagstaff_server=trace,flagstaff_store=trace,sqlx=trace,axum=trace,tower_http=trace",
        ))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    assert!(installed.is_ok(), "another subscriber was installed first");
    let app = app_on(Backend::Sqlite).await.unwrap();
    let (id, url, secret) = flag_with_generic_trigger(&app).await;
    let base = GENERIC_TRIGGERS;
    app.get(base).await.expect(200);
    let (status, _) = post_raw(&app, &url_path(&url), &json!({"eventName": "Alert"})).await;
    assert_eq!(status, 200);
    let (status, _) = post_raw(&app, &url_path(&url), &json!({"eventName": 5})).await;
    assert_eq!(status, 400);
    let wrong = wrong_secret(&secret);
    let (status, _) = post_raw(&app, &format!("/webhook/triggers/{id}/{wrong}"), &json!({})).await;
    assert_eq!(status, 404);
    let reset = app
        .semantic_patch(
            &format!("{base}/{id}"),
            json!({"instructions": [{"kind": "cycleTriggerUrl"}]}),
        )
        .await
        .expect(200);
    let new_secret = reset["triggerURL"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string();
    // The capture works: the trigger's writes were logged by the SQL layer.
    assert!(
        text.contains("INSERT INTO audit_log"),
        "nothing was captured"
    );
    for s in [&secret, &wrong, &new_secret] {
        assert!(
            !text.contains(s.as_str()),
            "a trigger secret is in the logs"
        );
    }
}

async fn flag_links_with_integration_blocks(app: TestApp) {
    setup(&app).await;
    app.post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let base = "/api/v2/flag-links/projects/p/flags/f";
    let created = app
        .post(
            base,
            json!({"integrationKey": "slack-app", "deepLink": "https://slack.example/archives/C1/p2",
                "metadata": {"avatarUrl": "https://slack.example/a.png", "displayName": "Ada",
                    "channelName": "releases", "message": "Rolling out <new> checkout"}}),
        )
        .await
        .expect(201);
    let id = created["_id"].as_str().unwrap();
    let blocks = &created["uiBlocks"];
    assert_eq!(blocks["name"], "Ada");
    assert_eq!(blocks["image"]["sourceUrl"], "https://slack.example/a.png");
    assert_eq!(blocks["context"]["elements"][1]["text"], "#releases");
    assert_eq!(
        blocks["context"]["elements"][2]["url"],
        "https://slack.example/archives/C1/p2"
    );
    assert_eq!(created["_timestamp"]["milliseconds"], created["_createdAt"]);
    let entry = support::latest_audit(&app).await;
    assert!(
        support::accesses(&entry)
            .iter()
            .all(|(action, _)| action == "createFlagLink")
    );

    // A plain URL link; then the list, newest first, and a patch.
    let plain = app
        .post(
            base,
            json!({"deepLink": "https://issues.example/1", "title": "Issue 1", "key": "issue-1", "timestamp": 1}),
        )
        .await
        .expect(201);
    assert!(plain.get("uiBlocks").is_none());
    let list = app.get(base).await.expect(200);
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id, plain["_id"].as_str().unwrap()]);
    let patched = app
        .patch(
            &format!("{base}/{id}"),
            json!([{"op": "replace", "path": "/metadata/channelName", "value": "ops"}]),
        )
        .await
        .expect(200);
    assert_eq!(
        patched["uiBlocks"]["context"]["elements"][1]["text"],
        "#ops"
    );
    assert_eq!(
        app.get(&format!("{base}/{id}")).await.expect(200)["_metadata"]["channelName"],
        "ops"
    );

    // Refusals write nothing.
    let audits = app.audit_count().await;
    for (body, says) in [
        (
            json!({"integrationKey": "slack-app", "deepLink": "https://x.example", "metadata": {"nope": "x"}}),
            "metadata.nope",
        ),
        (
            json!({"integrationKey": "slack-app", "deepLink": "https://x.example", "metadata": {"avatarUrl": "not a url"}}),
            "metadata.avatarUrl",
        ),
        (
            json!({"integrationKey": "datadog", "deepLink": "https://x.example"}),
            "flagLink",
        ),
        (json!({"deepLink": "ftp://x.example"}), "deepLink"),
        (
            json!({"deepLink": "https://x.example", "key": "issue-1"}),
            "issue-1",
        ),
    ] {
        let refused = app.post(base, body).await;
        assert!(matches!(refused.status, 400 | 409), "{}", refused.body);
        assert!(refused.message().contains(says), "{}", refused.body);
    }
    let bad_patch = app
        .patch(
            &format!("{base}/{id}"),
            json!([{"op": "replace", "path": "/metadata/avatarUrl", "value": "nope"}]),
        )
        .await;
    assert_eq!(bad_patch.status, 400);
    assert_eq!(app.audit_count().await, audits);
    app.delete(&format!("{base}/{id}")).await.expect(204);
    assert_eq!(app.get(&format!("{base}/{id}")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_links_sqlite() {
    flag_links_with_integration_blocks(app_on(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_links_postgres() {
    if let Some(app) = app_on(Backend::Postgres).await {
        flag_links_with_integration_blocks(app).await;
    }
}

/// A trigger is a write path to its flag like any other: in an environment that requires
/// approval it is refused (a trigger holds no `bypassRequiredApproval`), and nothing is
/// written — not the flag, not the trigger's counters, no audit entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_are_refused_where_approval_is_required() {
    let app = app_on(Backend::Sqlite).await.unwrap();
    setup(&app).await;
    app.post("/api/v2/flags/p", json!({"key": "f", "name": "F"}))
        .await
        .expect(201);
    let created = app
        .post(
            "/api/v2/flags/p/f/triggers/production",
            json!({"integrationKey": "generic-trigger", "instructions": [{"kind": "turnFlagOn"}]}),
        )
        .await
        .expect(201);
    let path = url_path(created["triggerURL"].as_str().unwrap());
    app.patch(
        "/api/v2/projects/p/environments/production",
        json!([{"op": "add", "path": "/approvalSettings", "value": {"required": true,
            "minNumApprovals": 1, "canReviewOwnRequest": false, "serviceKind": "launchdarkly"}}]),
    )
    .await
    .expect(200);
    let audit_before =
        app.get("/api/v2/auditlog?limit=1").await.expect(200)["items"][0]["_id"].clone();
    let flag_before = app.get("/api/v2/flags/p/f").await.expect(200);

    let (status, body) = post_raw(&app, &path, &json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("requires approval"),
        "{body}"
    );
    let flag_after = app.get("/api/v2/flags/p/f").await.expect(200);
    assert_eq!(flag_after["_version"], flag_before["_version"]);
    assert_eq!(flag_after["environments"]["production"]["on"], false);
    let audit_after =
        app.get("/api/v2/auditlog?limit=1").await.expect(200)["items"][0]["_id"].clone();
    assert_eq!(
        audit_after, audit_before,
        "a refused trigger wrote an audit entry"
    );

    // Without the requirement the same URL flips the flag: the refusal was the approval rule.
    app.patch(
        "/api/v2/projects/p/environments/production",
        json!([{"op": "replace", "path": "/approvalSettings/required", "value": false}]),
    )
    .await
    .expect(200);
    let (status, body) = post_raw(&app, &path, &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let flag = app.get("/api/v2/flags/p/f").await.expect(200);
    assert_eq!(flag["environments"]["production"]["on"], true);
}

async fn reserved_custom_properties(app: TestApp) {
    setup(&app).await;
    let path = "/api/v2/integration-capabilities/reserved-custom-properties";
    // Nothing is configured: nothing is reserved, and any name goes.
    assert_eq!(app.get(path).await.expect(200)["items"], json!([]));
    app.post(
        "/api/v2/flags/p",
        json!({"key": "early", "name": "Early",
               "customProperties": {"datadog": {"name": "anything", "value": ["x"]}}}),
    )
    .await
    .expect(201);

    // Configuring Datadog reserves its key.
    app.post(
        "/api/v2/integrations/datadog",
        json!({"name": "dd", "config": {"apiKey": "k"}, "on": true}),
    )
    .await
    .expect(201);
    let listed = app.get(path).await.expect(200);
    let datadog: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["integrationKey"] == "datadog")
        .collect();
    assert_eq!(datadog.len(), 1, "{listed}");
    assert_eq!(datadog[0]["key"], "datadog");
    assert_eq!(datadog[0]["name"], "Datadog tags");

    // A reserved key with another name or empty values is refused, naming the key; nothing
    // is written.
    let audits = app.audit_count().await;
    let wrong = app
        .post(
            "/api/v2/flags/p",
            json!({"key": "tagged", "name": "Tagged",
                   "customProperties": {"datadog": {"name": "DD", "value": ["team:x"]}}}),
        )
        .await;
    assert_eq!(wrong.status, 400, "{}", wrong.body);
    assert!(wrong.message().contains("\"datadog\""), "{}", wrong.body);
    assert!(wrong.message().contains("Datadog tags"), "{}", wrong.body);
    assert_eq!(app.audit_count().await, audits);
    app.get("/api/v2/flags/p/tagged").await.expect(404);
    app.post(
        "/api/v2/flags/p",
        json!({"key": "tagged", "name": "Tagged",
               "customProperties": {"datadog": {"name": "Datadog tags", "value": ["team:x", "env:prod"]},
                                    "mine": {"name": "Free", "value": ["1"]}}}),
    )
    .await
    .expect(201);
    let empty = app
        .patch(
            "/api/v2/flags/p/tagged",
            json!([{"op": "replace", "path": "/customProperties/datadog/value", "value": [" "]}]),
        )
        .await;
    assert_eq!(empty.status, 400, "{}", empty.body);
    assert!(empty.message().contains("value[0]"), "{}", empty.body);
    // A flag that used the key before it was reserved keeps working for other changes.
    app.patch(
        "/api/v2/flags/p/early",
        json!([{"op": "replace", "path": "/description", "value": "still fine"}]),
    )
    .await
    .expect(200);

    // Templates see the values as customProperties.<key>.values.
    app.patch(
        "/api/v2/flags/p/tagged",
        json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
    )
    .await
    .expect(200);
    let entry = support::latest_audit(&app).await;
    let audit_id = entry["_id"].as_str().unwrap();
    let context = app
        .get(&format!("/api/v2/auditlog/{audit_id}/integration-context"))
        .await
        .expect(200);
    assert_eq!(
        context["customProperties"]["datadog"],
        json!({"name": "Datadog tags", "values": ["team:x", "env:prod"]})
    );
    let datadog = integrations_with(|i| i.key == "datadog").remove(0);
    let input = flagstaff_manifest::preview::PreviewInput {
        form_values: json!({"apiKey": "k"}).as_object().cloned().unwrap(),
        oauth: None,
        compat: flagstaff_template::Compat::Go,
        standard_payload: None,
    };
    let rendered = match flagstaff_manifest::preview::preview(
        &datadog,
        &flagstaff_manifest::preview::Target::AuditLogEventsHook,
        &context,
        &input,
    )
    .unwrap()
    {
        flagstaff_manifest::preview::Preview::Request(request) => request,
        other => panic!("datadog sends nothing: {other:?}"),
    };
    let body: Value = serde_json::from_str(&rendered.body).unwrap();
    let tags = body["tags"].as_array().unwrap();
    assert!(
        tags.contains(&json!("team:x")) && tags.contains(&json!("env:prod")),
        "{body}"
    );

    // Turning the integration off releases the key.
    let id = app.get("/api/v2/integrations/datadog").await.expect(200)["items"][0]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.patch(
        &format!("/api/v2/integrations/datadog/{id}"),
        json!([{"op": "replace", "path": "/on", "value": false}]),
    )
    .await
    .expect(200);
    assert!(
        !app.get(path).await.expect(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["integrationKey"] == "datadog")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_custom_properties_sqlite() {
    reserved_custom_properties(app_on(Backend::Sqlite).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_custom_properties_postgres() {
    if let Some(app) = app_on(Backend::Postgres).await {
        reserved_custom_properties(app).await;
    }
}
