//! Approvals: environment settings, requests bound to the exact change (version + digest),
//! reviews, apply, and enforcement on every write route to a flag or segment.

mod support;

use flagstaff_store::{ChangeSet, EntityKind, EntityRef, EntityWrite};
use flagstaff_testkit::app::{TestApp, TestResponse};
use flagstaff_testkit::backend_test;
use reqwest::Method;
use serde_json::{Value, json};
use support::{call, call_with_type, personal_token};

const FLAG: &str = "/api/v2/flags/p1/f";
const SEGMENT: &str = "/api/v2/segments/p1/production/s";
const SEMANTIC: &str = "application/json; domain-model=launchdarkly.semanticpatch";

fn settings(overrides: Value) -> Value {
    let mut s = json!({
        "required": true,
        "bypassApprovalsForPendingChanges": false,
        "minNumApprovals": 1,
        "canReviewOwnRequest": false,
        "canApplyDeclinedChanges": false,
        "serviceKind": "launchdarkly",
        "serviceConfig": {},
        "requiredApprovalTags": [],
        "autoApplyApprovedChanges": false,
    });
    for (k, v) in overrides.as_object().unwrap() {
        s[k] = v.clone();
    }
    s
}

async fn set_approvals(app: &TestApp, env: &str, value: Value) -> TestResponse {
    app.patch(
        &format!("/api/v2/projects/p1/environments/{env}"),
        json!([{"op": "add", "path": "/approvalSettings", "value": value}]),
    )
    .await
}

/// Two engineers who may change anything in projects but not bypass approvals; returns
/// their secrets.
async fn engineers(app: &TestApp) -> (String, String) {
    let any = [
        "proj/*",
        "proj/*:env/*",
        "proj/*:env/*:flag/*",
        "proj/*:env/*:segment/*",
    ];
    app.post(
        "/api/v2/roles",
        json!({"key": "engineer", "name": "Engineer", "policy": [
            {"effect": "allow", "actions": ["*"], "resources": any},
            {"effect": "deny", "actions": ["bypassRequiredApproval"], "resources": any},
        ]}),
    )
    .await
    .expect(201);
    let mut secrets = Vec::new();
    for email in ["alice@example.com", "bob@example.com"] {
        let id = app
            .post(
                "/api/v2/members",
                json!([{"email": email, "role": "no_access", "customRoles": ["engineer"]}]),
            )
            .await
            .expect(201)["items"][0]["_id"]
            .as_str()
            .unwrap()
            .to_string();
        secrets.push(
            personal_token(app, &id, json!({"customRoleIds": ["engineer"]}))
                .await
                .1,
        );
    }
    (secrets[0].clone(), secrets[1].clone())
}

/// Project p1 with flag `f` and segment `s`; production requires approval. Returns the
/// engineers' secrets.
async fn setup(app: &TestApp, approval: Value) -> (String, String) {
    app.post("/api/v2/projects", json!({"key": "p1", "name": "P1"}))
        .await
        .expect(201);
    app.post(
        FLAG.trim_end_matches("/f"),
        json!({"key": "f", "name": "F"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v2/segments/p1/production",
        json!({"key": "s", "name": "S"}),
    )
    .await
    .expect(201);
    let env = set_approvals(app, "production", approval.clone())
        .await
        .expect(200);
    assert_eq!(env["approvalSettings"], approval, "{env}");
    engineers(app).await
}

async fn semantic(app: &TestApp, secret: &str, path: &str, body: Value) -> TestResponse {
    call_with_type(app, secret, Method::PATCH, path, Some(body), SEMANTIC).await
}

async fn request_turn_on(app: &TestApp, secret: &str) -> Value {
    call(
        app,
        secret,
        Method::POST,
        "/api/v2/approval-requests",
        Some(json!({
            "resourceId": "proj/p1:env/production:flag/f",
            "description": "Turn f on in production",
            "instructions": [{"kind": "turnFlagOn"}],
        })),
    )
    .await
    .expect(201)
}

fn id(request: &Value) -> String {
    request["_id"].as_str().unwrap().to_string()
}

async fn review(app: &TestApp, secret: &str, id: &str, kind: &str) -> TestResponse {
    call(
        app,
        secret,
        Method::POST,
        &format!("/api/v2/approval-requests/{id}/reviews"),
        Some(json!({"kind": kind, "comment": format!("{kind}!")})),
    )
    .await
}

async fn apply(app: &TestApp, secret: &str, id: &str) -> TestResponse {
    call(
        app,
        secret,
        Method::POST,
        &format!("/api/v2/approval-requests/{id}/apply"),
        Some(json!({"comment": "go"})),
    )
    .await
}

async fn production_on(app: &TestApp) -> bool {
    app.get(FLAG).await.expect(200)["environments"]["production"]["on"]
        .as_bool()
        .unwrap()
}

backend_test!(request_review_apply, |app| async move {
    let (alice, bob) = setup(&app, settings(json!({}))).await;
    // Without a request, the engineer cannot change production...
    let refused = semantic(
        &app,
        &alice,
        FLAG,
        json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]}),
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.message().contains("requires approval"),
        "{}",
        refused.body
    );
    // ...but can change an environment without approval settings.
    semantic(
        &app,
        &alice,
        FLAG,
        json!({"environmentKey": "test", "instructions": [{"kind": "turnFlagOn"}]}),
    )
    .await
    .expect(200);

    let created = request_turn_on(&app, &alice).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["reviewStatus"], "pending");
    assert_eq!(created["instructions"], json!([{"kind": "turnFlagOn"}]));
    let rid = id(&created);

    // Not approved yet: nothing is applied.
    let early = apply(&app, &alice, &rid).await;
    assert_eq!(early.status, 400, "{}", early.body);
    // The author may not approve their own request here.
    let own = review(&app, &alice, &rid, "approve").await;
    assert_eq!(own.status, 403, "{}", own.body);
    assert!(
        own.message().contains("canReviewOwnRequest"),
        "{}",
        own.body
    );
    review(&app, &alice, &rid, "comment").await.expect(200);
    let approved = review(&app, &bob, &rid, "approve").await.expect(200);
    assert_eq!(approved["reviewStatus"], "approved");
    assert_eq!(approved["allReviews"].as_array().unwrap().len(), 2);
    assert!(!production_on(&app).await);

    let applied = apply(&app, &alice, &rid).await.expect(200);
    assert_eq!(applied["status"], "completed");
    assert!(applied["appliedDate"].is_i64());
    assert!(production_on(&app).await);
    // Applied once only.
    assert_eq!(apply(&app, &alice, &rid).await.status, 409);

    // The flag-scoped routes see the same request.
    let scoped = "/api/v2/projects/p1/flags/f/environments/production/approval-requests";
    let list = app.get(scoped).await.expect(200);
    assert_eq!(list["items"][0]["_id"], rid.as_str());
    app.get(&format!("{scoped}/{rid}")).await.expect(200);
    assert_eq!(
        app.get(&format!(
            "/api/v2/projects/p1/flags/f/environments/test/approval-requests/{rid}"
        ))
        .await
        .status,
        404
    );
    let filtered = app
        .get("/api/v2/approval-requests?filter=status%20equals%20completed")
        .await
        .expect(200);
    assert_eq!(filtered["totalCount"], 1);
    let none = app
        .get("/api/v2/approval-requests?filter=status%20equals%20pending")
        .await
        .expect(200);
    assert_eq!(none["totalCount"], 0);
    assert_eq!(
        app.get("/api/v2/approval-requests?filter=color%20equals%20red")
            .await
            .status,
        400
    );

    // Every step left an audit entry on the flag, which webhooks and integrations receive.
    let log = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    let actions: Vec<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(audit_action)
        .collect();
    for wanted in [
        "createApprovalRequest",
        "reviewApprovalRequest",
        "applyApprovalRequest",
        "updateOn",
    ] {
        assert!(
            actions.iter().any(|a| a == wanted),
            "{wanted} in {actions:?}"
        );
    }

    // Delete: the request is gone, with an audit entry.
    let second = request_turn_on_off(&app, &alice).await;
    app.delete(&format!("/api/v2/approval-requests/{}", id(&second)))
        .await
        .expect(204);
    assert_eq!(
        app.get(&format!("/api/v2/approval-requests/{}", id(&second)))
            .await
            .status,
        404
    );
});

fn audit_action(entry: &Value) -> String {
    entry["accesses"][0]["action"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn request_turn_on_off(app: &TestApp, secret: &str) -> Value {
    call(
        app,
        secret,
        Method::POST,
        "/api/v2/projects/p1/flags/f/environments/production/approval-requests",
        Some(json!({
            "description": "Turn f off again",
            "instructions": [{"kind": "turnFlagOff"}],
        })),
    )
    .await
    .expect(201)
}

backend_test!(edit_after_approval_refuses_apply, |app| async move {
    let (alice, bob) = setup(&app, settings(json!({}))).await;
    let rid = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &rid, "approve").await.expect(200);
    // The owner (allowed to bypass approvals) changes the flag after the approval.
    app.patch(
        FLAG,
        json!([{"op": "replace", "path": "/description", "value": "moved on"}]),
    )
    .await
    .expect(200);
    let refused = apply(&app, &alice, &rid).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.message().contains("changed after approval request"),
        "{}",
        refused.body
    );
    assert!(!production_on(&app).await);
    let request = app
        .get(&format!("/api/v2/approval-requests/{rid}"))
        .await
        .expect(200);
    assert_eq!(request["status"], "pending");
});

// The "still applies cleanly" rule: with `applyAfterUnrelatedChanges`, an approved request
// applies after its flag moved on only where the request cannot reach (another
// environment); any change to the approved environment or the flag-wide fields, or the
// setting off, refuses it.
backend_test!(unrelated_changes_after_approval, |app| async move {
    let (alice, bob) = setup(&app, settings(json!({}))).await;
    let edit_test_env = |n: i64| json!([{"op": "replace", "path": "/environments/test/offVariation", "value": n % 2}]);
    // Setting off: a change in another environment still refuses the apply.
    let strict = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &strict, "approve").await.expect(200);
    app.patch(FLAG, edit_test_env(0)).await.expect(200);
    assert_eq!(apply(&app, &alice, &strict).await.status, 409);

    set_approvals(
        &app,
        "production",
        settings(json!({"applyAfterUnrelatedChanges": true})),
    )
    .await
    .expect(200);
    // Setting on, the approved environment changed: refused.
    let touched = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &touched, "approve").await.expect(200);
    app.patch(
        FLAG,
        json!([{"op": "replace", "path": "/environments/production/offVariation", "value": 0}]),
    )
    .await
    .expect(200);
    assert_eq!(apply(&app, &alice, &touched).await.status, 409);
    // Setting on, a flag-wide field changed: refused.
    let renamed = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &renamed, "approve").await.expect(200);
    app.patch(
        FLAG,
        json!([{"op": "replace", "path": "/description", "value": "moved on"}]),
    )
    .await
    .expect(200);
    assert_eq!(apply(&app, &alice, &renamed).await.status, 409);
    assert!(!production_on(&app).await);
    // Setting on, only another environment changed: applied.
    let clean = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &clean, "approve").await.expect(200);
    app.patch(FLAG, edit_test_env(1)).await.expect(200);
    let applied = apply(&app, &alice, &clean).await.expect(200);
    assert_eq!(applied["status"], "completed");
    assert!(production_on(&app).await);
});

// The project-level settings routes (beta) read and write the environments' settings.
backend_test!(project_settings_routes, |app| async move {
    setup(&app, settings(json!({"minNumApprovals": 2}))).await;
    let all = app
        .get("/api/v2/approval-requests/projects/p1/settings?expand=default")
        .await
        .expect(200);
    assert_eq!(
        all["flag"]["environments"]["production"]["minNumApprovals"],
        2
    );
    assert_eq!(
        all["segment"]["environments"]["production"]["required"],
        true
    );
    assert_eq!(all["flag"]["environments"]["test"]["required"], false);
    assert_eq!(all["flag"]["_default"]["required"], false);
    let one = app
        .get("/api/v2/approval-requests/projects/p1/settings?environmentKey=test&resourceKind=segment")
        .await
        .expect(200);
    assert!(one.get("flag").is_none());
    assert_eq!(one["segment"]["environments"].as_object().unwrap().len(), 1);

    let patched = app
        .patch(
            "/api/v2/approval-requests/projects/p1/settings",
            json!({"environmentKey": "production", "resourceKind": "flag", "minNumApprovals": 3, "canReviewOwnRequest": true}),
        )
        .await
        .expect(200);
    let production = &patched["flag"]["environments"]["production"];
    assert_eq!(production["minNumApprovals"], 3);
    assert_eq!(production["canReviewOwnRequest"], true);
    // Unchanged fields stay.
    assert_eq!(production["required"], true);
    let env = app
        .get("/api/v2/projects/p1/environments/production")
        .await
        .expect(200);
    assert_eq!(env["approvalSettings"]["minNumApprovals"], 3);
    // Bad input names what to fix (who may change settings: tests/authz_matrix.rs).
    let bad = app
        .patch(
            "/api/v2/approval-requests/projects/p1/settings",
            json!({"environmentKey": "production", "resourceKind": "metric"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("resourceKind"), "{}", bad.body);
    let invalid = app
        .patch(
            "/api/v2/approval-requests/projects/p1/settings",
            json!({"environmentKey": "production", "resourceKind": "flag", "minNumApprovals": 9}),
        )
        .await;
    assert_eq!(invalid.status, 400, "{}", invalid.body);
});

backend_test!(tampered_instructions_refuse_apply, |app| async move {
    let (alice, bob) = setup(&app, settings(json!({}))).await;
    let rid = id(&request_turn_on(&app, &alice).await);
    review(&app, &bob, &rid, "approve").await.expect(200);
    // Someone with database access swaps the approved instructions (A) for others (B).
    let target = EntityRef::new(EntityKind::ApprovalRequest, "", &rid);
    let stored = app.store.get(&target).await.unwrap().unwrap();
    let mut doc: Value = serde_json::from_str(&stored.doc).unwrap();
    doc["instructions"] =
        json!([{"kind": "turnFlagOn"}, {"kind": "updateOffVariation", "variationId": "x"}]);
    app.store
        .commit(ChangeSet {
            writes: vec![EntityWrite::Update {
                target,
                expected_version: stored.version,
                version: stored.version,
                doc: doc.to_string(),
                aliases: None,
            }],
            audit: Vec::new(),
            outbox: Vec::new(),
            deliveries: Vec::new(),
            created_at: 0,
        })
        .await
        .unwrap();
    let before = app.audit_count().await;
    let refused = apply(&app, &alice, &rid).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.message().contains("no longer matches"),
        "{}",
        refused.body
    );
    assert!(!production_on(&app).await);
    assert_eq!(app.audit_count().await, before);
});

backend_test!(reviews_follow_settings, |app| async move {
    let (alice, bob) = setup(
        &app,
        settings(json!({"minNumApprovals": 2, "canReviewOwnRequest": true})),
    )
    .await;
    // Out-of-range settings are refused with what to fix.
    let bad = set_approvals(&app, "test", settings(json!({"minNumApprovals": 0}))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.message().contains("minNumApprovals"), "{}", bad.body);

    let rid = id(&request_turn_on(&app, &alice).await);
    // Self-review is allowed by these settings; one approval is not enough.
    let one = review(&app, &alice, &rid, "approve").await.expect(200);
    assert_eq!(one["reviewStatus"], "pending");
    assert_eq!(apply(&app, &alice, &rid).await.status, 400);
    // A decline declines, and declined changes may not be applied here.
    let declined = review(&app, &bob, &rid, "decline").await.expect(200);
    assert_eq!(declined["reviewStatus"], "declined");
    assert_eq!(apply(&app, &alice, &rid).await.status, 400);
    assert!(!production_on(&app).await);
    // Bob changes his mind: two approvals.
    let approved = review(&app, &bob, &rid, "approve").await.expect(200);
    assert_eq!(approved["reviewStatus"], "approved");
    apply(&app, &alice, &rid).await.expect(200);
    assert!(production_on(&app).await);
    // Unknown review kinds and instructions that cannot apply are 400s.
    assert_eq!(review(&app, &bob, &rid, "maybe").await.status, 400);
    let bad_instruction = call(
        &app,
        &alice,
        Method::POST,
        "/api/v2/approval-requests",
        Some(json!({
            "resourceId": "proj/p1:env/production:flag/f",
            "description": "broken",
            "instructions": [{"kind": "noSuchInstruction"}],
        })),
    )
    .await;
    assert_eq!(bad_instruction.status, 400, "{}", bad_instruction.body);
});

backend_test!(segment_request_applies, |app| async move {
    let (alice, bob) = setup(&app, settings(json!({}))).await;
    let created = call(
        &app,
        &alice,
        Method::POST,
        "/api/v2/approval-requests",
        Some(json!({
            "resourceId": "proj/p1:env/production:segment/s",
            "description": "Include u1",
            "instructions": [{"kind": "addIncludedUsers", "values": ["u1"]}],
        })),
    )
    .await
    .expect(201);
    let rid = id(&created);
    review(&app, &bob, &rid, "approve").await.expect(200);
    apply(&app, &alice, &rid).await.expect(200);
    let segment = app.get(SEGMENT).await.expect(200);
    assert_eq!(segment["included"], json!(["u1"]));
});

backend_test!(tags_decide_coverage, |app| async move {
    let (alice, _) = setup(
        &app,
        settings(json!({"required": false, "requiredApprovalTags": ["gated"]})),
    )
    .await;
    let on = json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]});
    // Untagged: no approval needed.
    semantic(&app, &alice, FLAG, on.clone()).await.expect(200);
    app.patch(
        FLAG,
        json!([{"op": "add", "path": "/tags", "value": ["gated"]}]),
    )
    .await
    .expect(200);
    let off = json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOff"}]});
    assert_eq!(semantic(&app, &alice, FLAG, off).await.status, 403);
    // Removing the tag is itself covered: a change is judged by the tags it had.
    let untag = call(
        &app,
        &alice,
        Method::PATCH,
        FLAG,
        Some(json!([{"op": "replace", "path": "/tags", "value": []}])),
    )
    .await;
    assert_eq!(untag.status, 403, "{}", untag.body);
});

/// One request per write route to an existing flag or segment.
fn write_cases() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Value,
    Option<&'static str>,
)> {
    vec![
        (
            "patch",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            json!([{"op": "replace", "path": "/environments/production/on", "value": true}]),
            None,
        ),
        (
            "patch",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            json!({"merge": {"environments": {"production": {"on": true}}}}),
            None,
        ),
        (
            "patch",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            json!({"environmentKey": "production", "instructions": [{"kind": "turnFlagOn"}]}),
            Some(SEMANTIC),
        ),
        (
            "patch",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            json!({"instructions": [{"kind": "archiveFlag"}]}),
            Some(SEMANTIC),
        ),
        (
            "patch",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            json!([{"op": "replace", "path": "/archived", "value": true}]),
            None,
        ),
        (
            "post",
            "/api/v2/flags/{projectKey}/{featureFlagKey}/copy",
            "/api/v2/flags/p1/f/copy",
            json!({"source": {"key": "test"}, "target": {"key": "production"}}),
            None,
        ),
        (
            "delete",
            "/api/v2/flags/{projectKey}/{featureFlagKey}",
            FLAG,
            Value::Null,
            None,
        ),
        (
            "patch",
            "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}",
            SEGMENT,
            json!([{"op": "replace", "path": "/description", "value": "x"}]),
            None,
        ),
        (
            "patch",
            "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}",
            SEGMENT,
            json!({"merge": {"description": "x"}}),
            None,
        ),
        (
            "patch",
            "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}",
            SEGMENT,
            json!({"instructions": [{"kind": "addIncludedUsers", "values": ["u"]}]}),
            Some(SEMANTIC),
        ),
        (
            "delete",
            "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}",
            SEGMENT,
            Value::Null,
            None,
        ),
    ]
}

backend_test!(every_write_route_requires_approval, |app| async move {
    let (alice, _) = setup(&app, settings(json!({}))).await;
    // The test environment differs from production, so copying it is a real change.
    app.semantic_patch(
        FLAG,
        json!({"environmentKey": "test", "instructions": [{"kind": "turnFlagOn"}]}),
    )
    .await
    .expect(200);
    let cases = write_cases();

    // Every route of the API that writes an existing flag or segment has a case here: a
    // new write route fails this test until it is shown to be covered.
    let doc = app.get("/api/v2/openapi.json").await.expect(200);
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Trigger routes configure the trigger, not the flag; firing one is the flag write,
        // and api_inbound.rs `triggers_are_refused_where_approval_is_required` covers it.
        let configures_trigger = path.contains("/triggers/");
        let writes_one = !configures_trigger
            && (path.starts_with("/api/v2/flags/{projectKey}/{featureFlagKey}")
                || path.starts_with("/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}"));
        if !writes_one {
            continue;
        }
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                assert!(
                    cases.iter().any(|c| c.0 == method && c.1 == path),
                    "no approval-enforcement case for {method} {path}"
                );
            }
        }
    }

    let before = app.audit_count().await;
    let flag_version = app.get(FLAG).await.expect(200)["_version"].clone();
    for (method, _, path, body, content_type) in &cases {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = (!body.is_null()).then(|| body.clone());
        let resp = call_with_type(
            &app,
            &alice,
            method.clone(),
            path,
            body,
            content_type.unwrap_or("application/json"),
        )
        .await;
        assert_eq!(resp.status, 403, "{method} {path}: {}", resp.body);
        assert!(
            resp.message().contains("requires approval"),
            "{method} {path}: {}",
            resp.body
        );
    }
    assert_eq!(
        app.audit_count().await,
        before,
        "a refused write wrote something"
    );
    assert_eq!(app.get(FLAG).await.expect(200)["_version"], flag_version);

    // The same requests succeed for a caller allowed to bypass approvals (the owner): the
    // refusals above were the approval rule, not a broken request.
    for (method, _, path, body, content_type) in &cases {
        if *path == FLAG && *method != "delete" {
            // Reset so each flag case is a real change again.
            let current = app.get(FLAG).await.expect(200);
            if current["archived"] == true || current["environments"]["production"]["on"] == true {
                app.semantic_patch(
                    FLAG,
                    json!({"environmentKey": "production", "instructions": [
                        {"kind": "turnFlagOff"}]}),
                )
                .await;
                if current["archived"] == true {
                    app.semantic_patch(FLAG, json!({"instructions": [{"kind": "restoreFlag"}]}))
                        .await
                        .expect(200);
                }
            }
        }
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = (!body.is_null()).then(|| body.to_string());
        let resp = app.request(method.clone(), path, body, *content_type).await;
        assert!(
            (200..300).contains(&resp.status),
            "{method} {path} as owner: {} {}",
            resp.status,
            resp.body
        );
    }
});
