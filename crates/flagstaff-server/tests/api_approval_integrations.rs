//! Approval integrations end to end: approval requests in environments that delegate the
//! decision to a partner, driven through the catalogue's `custom-approvals` and `servicenow`
//! manifests against a real loopback change-management service
//! (`flagstaff_testkit::change_management`): the external record is created, its status is
//! polled (on a schedule and on read) and mapped through the manifest's matchers, the change
//! is applied (by a member, or automatically) and reported back, rejections and deletions
//! cancel, and a partner that errs, answers garbage or hangs leaves the error on the request,
//! is retried, and never gets anything applied.

use std::time::Duration;

use flagstaff_server::AppState;
use flagstaff_server::integrations::Integrations;
use flagstaff_server::integrations::approval_jobs::ApprovalJobSettings;
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::change_management::{Behaviour, ChangeManagement, SERVICENOW_TOKEN};
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations, quick_retries};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const FLAG: &str = "/api/v2/flags/shop/checkout";

fn integrations() -> Integrations {
    catalogue_integrations(Outbound::Loopback, quick_retries()).with_approval_settings(
        ApprovalJobSettings {
            poll_interval: Duration::from_millis(200),
            tick: Duration::from_millis(50),
            request_timeout: Duration::from_millis(700),
            concurrency: 4,
            ..ApprovalJobSettings::default()
        },
    )
}

async fn app_on(backend: Backend) -> Option<TestApp> {
    TestApp::on_with(backend, |state: AppState| {
        state.with_integrations(integrations())
    })
    .await
}

macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(Backend::Postgres).await;
            }
        }
    };
}

/// Project `shop` with flag `checkout` (off everywhere); returns the owner's email.
async fn project(app: &TestApp) -> String {
    app.post("/api/v2/projects", json!({"key": "shop", "name": "Shop"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/shop",
        json!({"key": "checkout", "name": "Checkout"}),
    )
    .await
    .expect(201);
    let members = app.get("/api/v2/members").await.expect(200);
    members["items"][0]["email"].as_str().unwrap().to_string()
}

async fn approval_settings(app: &TestApp, settings: Value) {
    let mut value = json!({
        "required": true,
        "bypassApprovalsForPendingChanges": false,
        "minNumApprovals": 1,
        "canReviewOwnRequest": false,
        "canApplyDeclinedChanges": false,
        "serviceConfig": {},
        "requiredApprovalTags": [],
        "autoApplyApprovedChanges": false,
    });
    for (k, v) in settings.as_object().unwrap() {
        value[k] = v.clone();
    }
    app.patch(
        "/api/v2/projects/shop/environments/production",
        json!([{"op": "add", "path": "/approvalSettings", "value": value}]),
    )
    .await
    .expect(200);
}

/// A custom-approvals configuration pointing at the service; production delegates to it.
async fn custom_approvals(app: &TestApp, service: &ChangeManagement, auto_apply: bool) {
    let config = app
        .post(
            "/api/v2/integration-configurations/keys/custom-approvals",
            json!({"name": "Change board", "configValues": {"apiKey": "cm-api-key-1", "baseURL": service.base_url}}),
        )
        .await
        .expect(201);
    assert_eq!(config["configValues"]["apiKey"], "**********", "{config}");
    approval_settings(
        app,
        json!({
            "serviceKind": "custom-approvals",
            "serviceKindConfigurationId": config["_id"],
            "autoApplyApprovedChanges": auto_apply,
        }),
    )
    .await;
}

async fn request_turn_on(app: &TestApp) -> Value {
    app.post(
        "/api/v2/approval-requests",
        json!({
            "resourceId": "proj/shop:env/production:flag/checkout",
            "description": "Turn checkout on in production",
            "instructions": [{"kind": "turnFlagOn"}],
            "comment": "release 42",
        }),
    )
    .await
    .expect(201)
}

/// Reads the request (which checks its partner status) until `check` holds.
async fn wait_for(app: &TestApp, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let request = app
            .get(&format!("/api/v2/approval-requests/{id}"))
            .await
            .expect(200);
        if check(&request) {
            return request;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited for {what}; the request is {request}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server whose production delegates to custom-approvals at a new change-management
/// service, and one request to turn `checkout` on, linked to its external record `CR-1`.
async fn linked_request(
    backend: Backend,
    auto_apply: bool,
) -> Option<(TestApp, ChangeManagement, String, Value)> {
    let app = app_on(backend).await?;
    let service = ChangeManagement::start().await;
    project(&app).await;
    custom_approvals(&app, &service, auto_apply).await;
    let created = request_turn_on(&app).await;
    let id = created["_id"].as_str().unwrap().to_string();
    assert_eq!(created["serviceKind"], "custom-approvals");
    let linked = wait_for(&app, &id, "the external record", |r| {
        r["integrationMetadata"]["externalId"] == "CR-1"
    })
    .await;
    Some((app, service, id, linked))
}

async fn flag_on(app: &TestApp) -> bool {
    app.get(FLAG).await.expect(200)["environments"]["production"]["on"]
        .as_bool()
        .unwrap()
}

async fn custom_approvals_end_to_end(backend: Backend) {
    let Some((app, service, id, linked)) = linked_request(backend, false).await else {
        return;
    };
    assert_eq!(
        linked["integrationMetadata"]["externalUrl"],
        format!("{}/approvals?approvalID=CR-1", service.base_url)
    );
    assert_eq!(
        linked["integrationMetadata"]["externalStatus"]["display"],
        "Pending review"
    );
    assert_eq!(linked["reviewStatus"], "pending");

    // The creation request the manifest describes, with the configuration's secret.
    let creation = service
        .calls()
        .into_iter()
        .find(|c| c.method == "POST" && c.uri == "/api/approvals")
        .expect("a creation request");
    assert_eq!(
        creation.authorization.as_deref(),
        Some("Bearer cm-api-key-1")
    );
    assert_eq!(creation.body["_id"], id.as_str());
    assert_eq!(creation.body["flag"]["key"], "checkout");
    assert_eq!(creation.body["environment"]["key"], "production");
    assert_eq!(creation.body["comment"], "Turn checkout on in production");
    assert!(
        creation.body["_site"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/approvals/{id}")),
        "{}",
        creation.body
    );

    // Members cannot decide a request the partner decides, and it cannot be applied yet.
    let review = app
        .post(
            &format!("/api/v2/approval-requests/{id}/reviews"),
            json!({"kind": "approve"}),
        )
        .await
        .expect(400);
    assert!(
        review["message"]
            .as_str()
            .unwrap_or_default()
            .contains("custom-approvals"),
        "{}",
        review["message"].as_str().unwrap_or_default()
    );
    app.post(&format!("/api/v2/approval-requests/{id}/apply"), json!({}))
        .await
        .expect(400);
    assert!(!flag_on(&app).await);

    // Approved in the external system: the status check maps it, a member applies.
    service.set_status("CR-1", "approved");
    let approved = wait_for(&app, &id, "the external approval", |r| {
        r["reviewStatus"] == "approved"
    })
    .await;
    assert_eq!(
        approved["integrationMetadata"]["externalStatus"]["display"],
        "Approved by change board"
    );
    assert_eq!(
        approved["_integrationStatus"]["state"], "done",
        "{approved}"
    );
    assert_eq!(approved["allReviews"][0]["kind"], "approve");
    let applied = app
        .post(&format!("/api/v2/approval-requests/{id}/apply"), json!({}))
        .await
        .expect(200);
    assert_eq!(applied["status"], "completed");
    assert!(flag_on(&app).await);
    assert!(
        service
            .wait_until(WAIT, |s| s.record("CR-1").is_some_and(|r| r.applied))
            .await,
        "the post-apply request reached the service"
    );
    // The decision and the apply are in the change history of the flag.
    let audit = app
        .get("/api/v2/auditlog?spec=proj/shop:env/production:flag/checkout")
        .await
        .expect(200);
    let verbs: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["titleVerb"].as_str())
        .collect();
    assert!(
        verbs
            .iter()
            .any(|v| v.starts_with("approved (in the approval integration)")),
        "{verbs:?}"
    );
    assert!(
        verbs.contains(&"applied an approval request for"),
        "{verbs:?}"
    );
}

both_backends!(
    custom_approvals_request_approve_apply,
    custom_approvals_end_to_end
);

async fn custom_approvals_rejection(backend: Backend) {
    let Some((app, service, id, _)) = linked_request(backend, true).await else {
        return;
    };
    service.set_status("CR-1", "declined");
    let declined = wait_for(&app, &id, "the rejection", |r| {
        r["reviewStatus"] == "declined"
    })
    .await;
    // Terminal: no more polling, nothing applied, and apply is refused.
    assert_eq!(declined["_integrationStatus"]["state"], "done");
    assert_eq!(declined["status"], "pending");
    app.post(&format!("/api/v2/approval-requests/{id}/apply"), json!({}))
        .await
        .expect(400);
    assert!(!flag_on(&app).await);
    // A decided request is not polled any more.
    let checks = service.status_checks();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(service.status_checks(), checks);
    // Deleting the request cancels the external record.
    app.delete(&format!("/api/v2/approval-requests/{id}"))
        .await
        .expect(204);
    assert!(
        service
            .wait_until(WAIT, |s| s.record("CR-1").is_some_and(|r| r.cancelled))
            .await,
        "the deletion request reached the service"
    );
    assert!(!service.record("CR-1").unwrap().applied);
}

both_backends!(
    custom_approvals_rejected_and_deleted,
    custom_approvals_rejection
);

async fn servicenow_end_to_end(backend: Backend) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let service = ChangeManagement::start().await;
    let owner_email = project(&app).await;
    service.set_members(&[
        ("someone.else@example.com", "other.user"),
        (owner_email.as_str(), "snow.owner"),
    ]);
    // ServiceNow requires OAuth: the client the partner issued, connected with client
    // credentials against the service's token endpoint.
    app.request(
        reqwest::Method::PUT,
        "/api/v2/integration-oauth/providers/servicenow",
        Some(
            json!({
                "flow": "clientCredentials",
                "tokenUrl": format!("{}/oauth/token", service.base_url),
                "clientId": "flagstaff",
                "clientSecret": "snow-client-secret",
                "baseUri": service.base_url,
            })
            .to_string(),
        ),
        None,
    )
    .await
    .expect(200);
    app.post(
        "/api/v2/integration-oauth/connections/servicenow/connect",
        json!({}),
    )
    .await
    .expect(200);
    approval_settings(
        &app,
        json!({
            "serviceKind": "servicenow",
            "serviceConfig": {"template": "tmpl-std-1", "detail_column": "justification"},
            "autoApplyApprovedChanges": true,
        }),
    )
    .await;

    let id = request_turn_on(&app).await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let linked = wait_for(&app, &id, "the change request", |r| {
        r["integrationMetadata"]["externalId"] == "snow1"
    })
    .await;
    assert_eq!(
        linked["integrationMetadata"]["externalUrl"],
        format!("{}/change_request.do?sys_id=snow1", service.base_url)
    );
    assert_eq!(
        linked["integrationMetadata"]["externalStatus"]["display"],
        "New"
    );
    let creation = service
        .calls()
        .into_iter()
        .find(|c| c.method == "POST" && c.uri.starts_with("/api/sn_chg_rest/"))
        .unwrap();
    assert_eq!(creation.uri, "/api/sn_chg_rest/change/standard/tmpl-std-1");
    assert_eq!(
        creation.authorization.as_deref(),
        Some(format!("Bearer {SERVICENOW_TOKEN}").as_str())
    );
    // The requester, mapped to the partner's user by email.
    assert_eq!(
        creation.body["requested_by"], "snow.owner",
        "{}",
        creation.body
    );
    assert!(
        creation.body["justification"]
            .as_str()
            .unwrap()
            .contains(&format!("/approvals/{id}")),
        "{}",
        creation.body
    );
    assert!(!flag_on(&app).await);

    // Approved in ServiceNow ("-1", Implement): the scheduler's poll maps it and the
    // environment applies approved changes by itself.
    service.set_status("snow1", "-1");
    // The change is applied first, then the request completed: wait for the latter.
    let done = wait_for(&app, &id, "the automatic apply", |r| {
        r["status"] == "completed"
    })
    .await;
    assert!(flag_on(&app).await);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["reviewStatus"], "approved");
    assert!(done["appliedByMemberId"].is_null());
    assert!(
        service
            .wait_until(WAIT, |s| s.record("snow1").is_some_and(|r| r.applied))
            .await,
        "the post-apply PATCH ?state=Review reached ServiceNow"
    );
    assert!(
        service.calls().iter().any(|c| c.method == "PATCH"
            && c.uri == "/api/sn_chg_rest/change/standard/snow1?state=Review")
    );
}

both_backends!(servicenow_request_approve_auto_apply, servicenow_end_to_end);

async fn partner_failures(backend: Backend) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let service = ChangeManagement::start().await;
    project(&app).await;
    custom_approvals(&app, &service, true).await;

    // The partner fails in three ways while the record is created: each failure shows on
    // the request and the creation is retried.
    service.set_behaviour(Behaviour::ServerError);
    let id = request_turn_on(&app).await["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let failing = wait_for(&app, &id, "the HTTP error", |r| {
        r["_integrationStatus"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500"))
    })
    .await;
    assert_eq!(failing["_integrationStatus"]["step"], "creationRequest");
    assert_eq!(failing["integrationMetadata"]["externalId"], "");
    service.set_behaviour(Behaviour::Garbage);
    wait_for(&app, &id, "the garbage error", |r| {
        r["_integrationStatus"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not JSON"))
    })
    .await;
    service.set_behaviour(Behaviour::Hang);
    wait_for(&app, &id, "the timeout", |r| {
        r["_integrationStatus"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer"))
    })
    .await;
    service.set_behaviour(Behaviour::WrongShape);
    let shapeless = wait_for(&app, &id, "the parse error", |r| {
        r["_integrationStatus"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("/_id"))
    })
    .await;
    assert!(
        shapeless["_integrationStatus"]["attempts"]
            .as_i64()
            .unwrap()
            >= 4,
        "{shapeless}"
    );
    assert!(service.records().is_empty());

    // The partner recovers: the retry creates the record and the error clears.
    service.set_behaviour(Behaviour::Normal);
    let linked = wait_for(&app, &id, "the retried creation", |r| {
        r["integrationMetadata"]["externalId"] == "CR-1"
    })
    .await;
    assert!(
        linked["_integrationStatus"]["lastError"].is_null(),
        "{linked}"
    );

    // Status checks fail while the record is approved outside: nothing is applied until an
    // answer can be read.
    service.set_behaviour(Behaviour::ServerError);
    service.set_status("CR-1", "approved");
    let unread = wait_for(&app, &id, "the failing status check", |r| {
        r["_integrationStatus"]["step"] == "statusRequest"
            && r["_integrationStatus"]["lastError"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 500"))
    })
    .await;
    assert_eq!(unread["reviewStatus"], "pending");
    assert!(!flag_on(&app).await);
    service.set_behaviour(Behaviour::Garbage);
    wait_for(&app, &id, "the garbage status", |r| {
        r["_integrationStatus"]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("not JSON"))
    })
    .await;
    assert!(!flag_on(&app).await);
    service.set_behaviour(Behaviour::Normal);
    wait_for(&app, &id, "the applied change", |r| {
        r["status"] == "completed"
    })
    .await;
    assert!(flag_on(&app).await);
}

both_backends!(
    partner_errors_garbage_and_timeouts_are_retried,
    partner_failures
);

async fn approved_then_edited(backend: Backend) {
    let Some((app, service, id, _)) = linked_request(backend, false).await else {
        return;
    };
    service.set_status("CR-1", "approved");
    wait_for(&app, &id, "the approval", |r| {
        r["reviewStatus"] == "approved"
    })
    .await;
    // The owner (who may bypass) edits the flag after the approval: the approved change no
    // longer applies to what was reviewed.
    app.patch(
        FLAG,
        json!([{"op": "replace", "path": "/environments/production/offVariation", "value": 0}]),
    )
    .await
    .expect(200);
    let refused = app
        .post(&format!("/api/v2/approval-requests/{id}/apply"), json!({}))
        .await
        .expect(409);
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("changed after approval"),
        "{}",
        refused["message"].as_str().unwrap_or_default()
    );
    assert!(!flag_on(&app).await);
    assert!(!service.record("CR-1").unwrap().applied);
}

both_backends!(
    externally_approved_then_edited_is_refused,
    approved_then_edited
);

async fn misconfigured(backend: Backend) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    project(&app).await;
    // Not an approval integration, and one that is not loaded: refused before anything is
    // written or sent.
    for kind in ["datadog", "no-such-integration"] {
        approval_settings(&app, json!({"serviceKind": kind})).await;
        let refused = app
            .post(
                "/api/v2/approval-requests",
                json!({
                    "resourceId": "proj/shop:env/production:flag/checkout",
                    "description": "x",
                    "instructions": [{"kind": "turnFlagOn"}],
                }),
            )
            .await
            .expect(400);
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains(kind),
            "{}",
            refused["message"].as_str().unwrap_or_default()
        );
    }
    // custom-approvals has top-level form variables: with no configuration it cannot be used.
    approval_settings(&app, json!({"serviceKind": "custom-approvals"})).await;
    let refused = app
        .post(
            "/api/v2/approval-requests",
            json!({
                "resourceId": "proj/shop:env/production:flag/checkout",
                "description": "x",
                "instructions": [{"kind": "turnFlagOn"}],
            }),
        )
        .await
        .expect(400);
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("serviceKindConfigurationId"),
        "{}",
        refused["message"].as_str().unwrap_or_default()
    );
    let listed = app.get("/api/v2/approval-requests").await.expect(200);
    assert_eq!(listed["items"], json!([]));
}

both_backends!(misconfigured_integrations_are_refused, misconfigured);

async fn concurrency_limit(backend: Backend) {
    let Some(app) = app_on(backend).await else {
        return;
    };
    let service = ChangeManagement::start().await;
    project(&app).await;
    custom_approvals(&app, &service, false).await;
    // A slow partner and twelve requests at once: creations and status checks all share
    // the four permits (ApprovalJobSettings::concurrency in this test).
    service.set_behaviour(Behaviour::Slow);
    let mut tasks = Vec::new();
    for n in 0..12 {
        let request = app
            .raw(reqwest::Method::POST, "/api/v2/approval-requests")
            .header("Authorization", app.token.as_str())
            .json(&json!({
                "resourceId": "proj/shop:env/production:flag/checkout",
                "description": format!("request {n}"),
                "instructions": [{"kind": "turnFlagOn"}],
            }));
        tasks.push(tokio::spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201);
            response.json::<Value>().await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap()["_id"].as_str().unwrap().to_string());
    }
    service.set_behaviour(Behaviour::Normal);
    for id in &ids {
        wait_for(&app, id, "the external record", |r| {
            r["integrationMetadata"]["externalId"]
                .as_str()
                .is_some_and(|e| e.starts_with("CR-"))
        })
        .await;
    }
    assert_eq!(service.records().len(), 12);
    assert!(
        service.max_in_flight() <= 4,
        "{} partner requests were in flight at once",
        service.max_in_flight()
    );
}

both_backends!(
    partner_requests_respect_the_concurrency_limit,
    concurrency_limit
);
