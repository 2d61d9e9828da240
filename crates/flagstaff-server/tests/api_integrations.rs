//! Change-history delivery end to end: webhooks and catalogue integrations configured through
//! the REST API deliver every matching change to a real loopback receiver, signed, filtered,
//! retried, and exactly as `flagstaff integrations preview` renders it.

use std::path::PathBuf;
use std::time::Duration;

use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview, sign_body};
use flagstaff_server::AppState;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations};
use flagstaff_testkit::receiver::{Received, Receiver};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn conformance_dir() -> PathBuf {
    std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

fn settings() -> DeliverySettings {
    DeliverySettings {
        base_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        poll_interval: Duration::from_millis(50),
        max_attempts: 20,
        ..DeliverySettings::default()
    }
}

fn integrations(allow_loopback: bool, settings: DeliverySettings) -> Integrations {
    let outbound = if allow_loopback {
        Outbound::Loopback
    } else {
        Outbound::PublicOnly
    };
    catalogue_integrations(outbound, settings)
}

async fn app_on(backend: Backend, settings: DeliverySettings) -> Option<TestApp> {
    TestApp::on_with(backend, move |state: AppState| {
        state.with_integrations(integrations(true, settings))
    })
    .await
}

async fn sqlite_app(settings: DeliverySettings) -> TestApp {
    app_on(Backend::Sqlite, settings).await.unwrap()
}

async fn create_project(app: &TestApp, key: &str) {
    app.post(
        "/api/v2/projects",
        json!({"key": key, "name": format!("Project {key}")}),
    )
    .await
    .expect(201);
}

async fn create_flag(app: &TestApp, project: &str, key: &str) {
    app.post(
        &format!("/api/v2/flags/{project}"),
        json!({"key": key, "name": format!("Flag {key}"), "tags": ["checkout"]}),
    )
    .await
    .expect(201);
}

async fn toggle(app: &TestApp, project: &str, flag: &str, env: &str, on: bool) {
    app.semantic_patch(
        &format!("/api/v2/flags/{project}/{flag}"),
        json!({
            "environmentKey": env,
            "comment": "rolling out",
            "instructions": [{"kind": if on { "turnFlagOn" } else { "turnFlagOff" }}]
        }),
    )
    .await
    .expect(200);
}

async fn webhook(app: &TestApp, url: &str, extra: Value) -> String {
    let mut body = json!({"url": url, "sign": true, "on": true, "secret": "webhook-secret-123"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let created = app.post("/api/v2/webhooks", body).await.expect(200);
    created["_id"].as_str().unwrap().to_string()
}

/// Audit entry ids (newest first) whose kind is `kind`.
async fn audit_ids(app: &TestApp) -> Vec<String> {
    let log = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap().to_string())
        .collect()
}

async fn webhooks_deliver_signed_audit_entries(app: TestApp) {
    let receiver = Receiver::start().await;
    let id = webhook(
        &app,
        &format!("{}/hook", receiver.base_url),
        json!({"name": "audit sink"}),
    )
    .await;
    create_project(&app, "shop").await;
    create_flag(&app, "shop", "checkout").await;
    toggle(&app, "shop", "checkout", "production", true).await;
    let received = receiver.wait_for(3, WAIT).await;
    let mut delivered_ids = Vec::new();
    for request in &received {
        assert_eq!(request.method, "POST");
        assert_eq!(request.uri, "/hook");
        assert_eq!(request.header("content-type"), Some("application/json"));
        let signature = request.header("x-ld-signature").expect("signed");
        assert_eq!(signature, sign_body(b"webhook-secret-123", &request.body));
        assert!(request.header("x-flagstaff-delivery").is_some());
        let entry = request.json();
        let audit_id = entry["_id"].as_str().unwrap().to_string();
        // The payload is the audit entry exactly as the API shows it.
        let shown = app
            .get(&format!("/api/v2/auditlog/{audit_id}"))
            .await
            .expect(200);
        assert_eq!(entry, shown);
        delivered_ids.push(audit_id);
    }
    let kinds: Vec<String> = received
        .iter()
        .map(|r| {
            r.json()["accesses"][0]["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for action in ["createProject", "createFlag", "updateOn"] {
        assert!(kinds.iter().any(|k| k == action), "{kinds:?}");
    }
    let ids = audit_ids(&app).await;
    for delivered in &delivered_ids {
        assert!(ids.contains(delivered));
    }
    // Unique delivery ids.
    let mut delivery_ids: Vec<&str> = received
        .iter()
        .map(|r| r.header("x-flagstaff-delivery").unwrap())
        .collect();
    delivery_ids.sort();
    delivery_ids.dedup();
    assert_eq!(delivery_ids.len(), received.len());
    // The delivery log shows them delivered, with each attempt.
    let deliveries = app
        .get(&format!("/api/v2/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    let items = deliveries["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    let first = items[0]["_id"].as_str().unwrap();
    let detail = app
        .get(&format!("/api/v2/deliveries/{first}"))
        .await
        .expect(200);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut detail = detail;
    while detail["state"] != "delivered" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        detail = app
            .get(&format!("/api/v2/deliveries/{first}"))
            .await
            .expect(200);
    }
    assert_eq!(detail["state"], "delivered");
    assert_eq!(detail["attemptLog"][0]["statusCode"], 200);
    // The secret is never shown.
    let shown = app.get(&format!("/api/v2/webhooks/{id}")).await.expect(200);
    assert_eq!(shown["secret"], "**********");
    assert_eq!(shown["name"], "audit sink");
}

mod webhooks_deliver {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        webhooks_deliver_signed_audit_entries(sqlite_app(settings()).await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = app_on(Backend::Postgres, settings()).await {
            webhooks_deliver_signed_audit_entries(app).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_destinations_are_refused_without_the_allow_list() {
    let app =
        TestApp::sqlite_with(|state| state.with_integrations(integrations(false, settings())))
            .await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
    ] {
        let body = app
            .post(
                "/api/v2/webhooks",
                json!({"url": url, "sign": false, "on": true}),
            )
            .await
            .expect(400);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("--allow-outbound"), "{url}: {message}");
    }
    let body = app
        .post(
            "/api/v2/integrations/msteams",
            json!({"name": "teams", "config": {"url": "http://169.254.169.254/hook"}}),
        )
        .await
        .expect(400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254")
    );
    assert_eq!(
        app.get("/api/v2/webhooks").await.expect(200)["items"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_filter_sends_production_toggles_only() {
    let app = sqlite_app(settings()).await;
    let filtered = Receiver::start().await;
    let everything = Receiver::start().await;
    webhook(
        &app,
        &filtered.base_url,
        json!({"statements": [{"effect": "allow", "resources": ["proj/*:env/production:flag/*"], "actions": ["updateOn"]}]}),
    )
    .await;
    webhook(&app, &everything.base_url, json!({})).await;
    create_project(&app, "shop").await;
    create_flag(&app, "shop", "checkout").await;
    toggle(&app, "shop", "checkout", "test", true).await;
    toggle(&app, "shop", "checkout", "production", true).await;
    toggle(&app, "shop", "checkout", "test", false).await;
    // Everything the unfiltered webhook got, in the order committed, ends with the last toggle:
    // when it has all five, the filtered one has had its chance at all of them too.
    everything.wait_for(5, WAIT).await;
    let received = filtered.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = if filtered.received().len() > received.len() {
        filtered.received()
    } else {
        received
    };
    assert_eq!(
        received.len(),
        1,
        "{:?}",
        received.iter().map(Received::body_text).collect::<Vec<_>>()
    );
    let entry = received[0].json();
    assert_eq!(entry["accesses"][0]["action"], "updateOn");
    assert!(
        entry["accesses"][0]["resource"]
            .as_str()
            .unwrap()
            .starts_with("proj/shop:env/production:flag/checkout")
    );
}

/// The request the preview builds for this integration, form values and audit entry.
async fn previewed(
    app: &TestApp,
    integration_key: &str,
    form_values: &Value,
    audit_id: &str,
) -> Option<flagstaff_manifest::preview::RenderedRequest> {
    let context = app
        .get(&format!("/api/v2/auditlog/{audit_id}/integration-context"))
        .await
        .expect(200);
    let standard = app
        .get(&format!("/api/v2/auditlog/{audit_id}"))
        .await
        .expect(200);
    let catalogue = conformance_dir().join("integration-framework/integrations");
    let report = flagstaff_manifest::load_integration(
        &catalogue.join(integration_key),
        &flagstaff_manifest::SampleContexts::discover(&catalogue),
        &Default::default(),
    );
    let integration = report.integration.expect("loads");
    let input = PreviewInput {
        form_values: form_values.as_object().cloned().unwrap_or_default(),
        oauth: None,
        compat: flagstaff_template::Compat::Go,
        standard_payload: Some(standard),
    };
    match preview(&integration, &Target::AuditLogEventsHook, &context, &input).unwrap() {
        Preview::Request(request) => Some(request),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_integrations_send_what_the_preview_renders() {
    let app = sqlite_app(settings()).await;
    let receiver = Receiver::start().await;
    let base = &receiver.base_url;
    // Integrations of the published catalogue whose endpoint host is configurable.
    let configs: Vec<(&str, Value)> = vec![
        (
            "datadog-private",
            json!({"hostURL": format!("{base}/datadog"), "apiKey": "dd-key-1"}),
        ),
        ("msteams", json!({"url": format!("{base}/teams")})),
        (
            "chronosphere",
            json!({"receiverURL": format!("{base}/chronosphere"), "secretToken": "chrono-secret-9"}),
        ),
        (
            "splunk",
            json!({"base-url": format!("{base}/splunk"), "token": "splunk-token-7", "skip-ca-verification": false}),
        ),
        (
            "last9",
            json!({"endpointUrl": format!("{base}/last9"), "apiToken": "p-secret-5"}),
        ),
    ];
    let mut subscriptions = Vec::new();
    for (key, config) in &configs {
        let created = app
            .post(
                &format!("/api/v2/integrations/{key}"),
                json!({"name": format!("{key} sink"), "config": config, "statements": [
                    {"effect": "allow", "resources": ["proj/*"], "actions": ["*"]},
                    {"effect": "allow", "resources": ["proj/*:env/*"], "actions": ["*"]},
                    {"effect": "allow", "resources": ["proj/*:env/*:flag/*"], "actions": ["*"]},
                    {"effect": "allow", "resources": ["member/*"], "actions": ["*"]}
                ]}),
            )
            .await;
        let created = created.expect(201);
        subscriptions.push((
            key.to_string(),
            created["_id"].as_str().unwrap().to_string(),
        ));
    }
    create_project(&app, "shop").await;
    app.post(
        "/api/v2/projects/shop/environments",
        json!({"key": "staging", "name": "Staging", "color": "00ff00"}),
    )
    .await
    .expect(201);
    create_flag(&app, "shop", "checkout").await;
    toggle(&app, "shop", "checkout", "production", true).await;
    app.post(
        "/api/v2/members",
        json!([{"email": "ada@example.com", "role": "writer"}]),
    )
    .await
    .expect(201);
    // 5 changes × 5 integrations.
    let received = receiver.wait_for(25, WAIT).await;
    let mut compared = 0;
    for request in &received {
        let prefix = request
            .uri
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let (key, config) = configs
            .iter()
            .find(|(key, _)| {
                let expected = match *key {
                    "datadog-private" => "datadog",
                    "msteams" => "teams",
                    other => other,
                };
                expected == prefix
            })
            .unwrap_or_else(|| panic!("unexpected request {}", request.uri));
        let delivery = request.header("x-flagstaff-delivery").unwrap();
        let record = app
            .get(&format!("/api/v2/deliveries/{delivery}"))
            .await
            .expect(200);
        let audit_id = record["auditLogEntryId"].as_str().unwrap();
        let want = previewed(&app, key, config, audit_id)
            .await
            .unwrap_or_else(|| panic!("{key}: preview sends nothing for {audit_id}"));
        assert_eq!(request.method, want.method, "{key}");
        assert_eq!(
            format!("{}{}", receiver.base_url, request.uri),
            want.url,
            "{key}"
        );
        assert_eq!(request.body_text(), want.body, "{key} {audit_id}");
        for header in &want.headers {
            assert_eq!(
                request.header(&header.name),
                Some(header.value.as_str()),
                "{key}: header {}",
                header.name
            );
        }
        compared += 1;
    }
    assert_eq!(compared, 25);
    // chronosphere: the standard payload, signed with its secret form variable.
    let chrono = received
        .iter()
        .find(|r| r.uri.starts_with("/chronosphere"))
        .unwrap();
    assert_eq!(
        chrono.header("x-ld-signature"),
        Some(sign_body(b"chrono-secret-9", &chrono.body).as_str())
    );
    assert!(chrono.json()["_id"].is_string() && chrono.json()["accesses"].is_array());
    // Secrets are masked in the API.
    for (key, id) in &subscriptions {
        let shown = app
            .get(&format!("/api/v2/integrations/{key}/{id}"))
            .await
            .expect(200);
        let text = shown.to_string();
        for secret in [
            "chrono-secret-9",
            "splunk-token-7",
            "p-secret-5",
            "dd-key-1",
        ] {
            assert!(!text.contains(secret), "{key} shows {secret}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_up_gets_everything() {
    let app = sqlite_app(settings()).await;
    let mut receiver = Receiver::start().await;
    let port = receiver.port();
    let id = webhook(&app, &format!("{}/in", receiver.base_url), json!({})).await;
    receiver.stop();
    drop(receiver);
    create_project(&app, "shop").await;
    for i in 0..5 {
        create_flag(&app, "shop", &format!("f{i}")).await;
    }
    // Failed attempts are recorded while the partner is down.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let deliveries = app
            .get(&format!("/api/v2/webhooks/{id}/deliveries"))
            .await
            .expect(200);
        let items = deliveries["items"].as_array().unwrap();
        if let Some(tried) = items.iter().find(|d| d["attempts"].as_i64() > Some(0)) {
            assert!(tried["lastError"].is_string(), "{tried}");
            assert_eq!(tried["state"], "pending");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failed attempt recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let receiver = Receiver::start_on(port).await;
    let received = receiver.wait_for(6, WAIT).await;
    let mut ids: Vec<String> = received
        .iter()
        .map(|r| r.json()["_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_partner_delays_no_other() {
    let app = sqlite_app(settings()).await;
    let slow = Receiver::start().await;
    let fast = Receiver::start().await;
    slow.hold();
    webhook(&app, &slow.base_url, json!({})).await;
    webhook(&app, &fast.base_url, json!({})).await;
    create_project(&app, "shop").await;
    for i in 0..20 {
        create_flag(&app, "shop", &format!("f{i}")).await;
    }
    // All 21 reach the fast partner while the slow one has answered none.
    fast.wait_for(21, WAIT).await;
    assert_eq!(slow.received().len(), 0);
    slow.release();
    slow.wait_for(21, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_destination_is_turned_off() {
    let app = sqlite_app(DeliverySettings {
        disable_after_failures: 3,
        max_attempts: 1,
        ..settings()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.respond_with(500);
    let id = webhook(&app, &receiver.base_url, json!({"name": "flaky"})).await;
    create_project(&app, "shop").await;
    for i in 0..3 {
        create_flag(&app, "shop", &format!("f{i}")).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let shown = app.get(&format!("/api/v2/webhooks/{id}")).await.expect(200);
        if shown["on"] == false {
            assert!(
                shown["_disabledReason"]
                    .as_str()
                    .unwrap()
                    .contains("3 consecutive failed")
            );
            assert!(
                shown["_status"]["errorCount"].as_u64() >= Some(3),
                "{shown}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never turned off: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The webhook can be turned off before the last flags are created, so the entry is
    // searched for rather than expected to be the newest.
    let log = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    let turned_off: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["title"]
                .as_str()
                .is_some_and(|t| t.contains("turned off the webhook"))
        })
        .collect();
    assert_eq!(turned_off.len(), 1, "{log}");
    assert_eq!(turned_off[0]["accesses"][0]["action"], "updateOn");
    // Turned off: later changes are not queued for it.
    let count = |v: Value| v["items"].as_array().unwrap().len();
    let before = count(
        app.get(&format!("/api/v2/webhooks/{id}/deliveries"))
            .await
            .expect(200),
    );
    create_flag(&app, "shop", "after").await;
    let after = count(
        app.get(&format!("/api/v2/webhooks/{id}/deliveries"))
            .await
            .expect(200),
    );
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configurations_are_validated_per_field_and_secrets_stay_sealed() {
    let app = sqlite_app(settings()).await;
    let receiver = Receiver::start().await;
    let error = app
        .post(
            "/api/v2/integrations/datadog",
            json!({"name": "dd", "config": {"hostURL": "https://example.com", "colour": 1}}),
        )
        .await
        .expect(400);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("colour: unknown field"), "{message}");
    assert!(
        message.contains("hostURL: `https://example.com` is not one of"),
        "{message}"
    );
    assert!(
        message.contains("apiKey: `apiKey` (Datadog API key) is required"),
        "{message}"
    );
    let unknown = app
        .post(
            "/api/v2/integrations/no-such-thing",
            json!({"name": "x", "config": {}}),
        )
        .await
        .expect(404);
    assert!(
        unknown["message"]
            .as_str()
            .unwrap()
            .contains("no-such-thing")
    );

    let created = app
        .post(
            "/api/v2/integration-configurations/keys/chronosphere",
            json!({"name": "chrono", "configValues": {"receiverURL": format!("{}/c", receiver.base_url), "secretToken": "first-secret-1"}}),
        )
        .await
        .expect(201);
    let id = created["_id"].as_str().unwrap().to_string();
    assert_eq!(created["configValues"]["secretToken"], "**********");
    assert_eq!(created["enabled"], true);
    // Renaming leaves the (masked) secret as it was.
    app.patch(
        &format!("/api/v2/integration-configurations/{id}"),
        json!([{"op": "replace", "path": "/name", "value": "renamed"}]),
    )
    .await
    .expect(200);
    // chronosphere's default policy selects flag changes.
    create_project(&app, "shop").await;
    create_flag(&app, "shop", "checkout").await;
    let first = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        first[0].header("x-ld-signature"),
        Some(sign_body(b"first-secret-1", &first[0].body).as_str())
    );
    // A new secret takes effect.
    app.patch(
        &format!("/api/v2/integration-configurations/{id}"),
        json!([{"op": "replace", "path": "/configValues/secretToken", "value": "second-secret-2"}]),
    )
    .await
    .expect(200);
    toggle(&app, "shop", "checkout", "production", true).await;
    let both = receiver.wait_for(2, WAIT).await;
    let last = both.last().unwrap();
    assert_eq!(
        last.header("x-ld-signature"),
        Some(sign_body(b"second-secret-2", &last.body).as_str())
    );
    // Neither secret is stored or shown in the clear.
    let shown = app
        .get(&format!("/api/v2/integration-configurations/{id}"))
        .await
        .expect(200);
    let listed = app
        .get("/api/v2/integrations/chronosphere")
        .await
        .expect(200);
    let audit = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    let stored = app
        .store
        .list(
            flagstaff_store::EntityKind::IntegrationConfig,
            "chronosphere",
        )
        .await
        .unwrap();
    let deliveries = app
        .get(&format!(
            "/api/v2/integrations/chronosphere/{id}/deliveries"
        ))
        .await
        .expect(200);
    let mut delivery_logs = Vec::new();
    for item in deliveries["items"].as_array().unwrap() {
        let detail = app
            .get(&format!(
                "/api/v2/deliveries/{}",
                item["_id"].as_str().unwrap()
            ))
            .await
            .expect(200);
        delivery_logs.push(detail.to_string());
    }
    assert_eq!(delivery_logs.len(), 2);
    let mut texts = vec![
        shown.to_string(),
        listed.to_string(),
        audit.to_string(),
        format!("{stored:?}"),
    ];
    texts.extend(delivery_logs);
    for text in texts {
        for secret in ["first-secret-1", "second-secret-2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
    // Deleting stops deliveries.
    app.delete(&format!("/api/v2/integration-configurations/{id}"))
        .await
        .expect(204);
    app.get(&format!("/api/v2/integration-configurations/{id}"))
        .await
        .expect(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_can_be_sent_again_and_connections_validated() {
    let app = sqlite_app(settings()).await;
    let receiver = Receiver::start().await;
    let id = webhook(&app, &receiver.base_url, json!({})).await;
    create_project(&app, "shop").await;
    let first = receiver.wait_for(1, WAIT).await;
    let delivery = first[0].header("x-flagstaff-delivery").unwrap().to_string();
    app.post(
        &format!("/api/v2/deliveries/{delivery}/redeliver"),
        json!({}),
    )
    .await
    .expect(202);
    let again = receiver.wait_for(2, WAIT).await;
    assert_eq!(
        again[1].header("x-flagstaff-delivery"),
        Some(delivery.as_str())
    );
    assert_eq!(again[0].body, again[1].body);
    let listed = app
        .get(&format!("/api/v2/webhooks/{id}/deliveries"))
        .await
        .expect(200);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    let created = app
        .post(
            "/api/v2/integrations/msteams",
            json!({"name": "teams", "config": {"url": format!("{}/teams", receiver.base_url)}}),
        )
        .await
        .expect(201);
    let sub = created["_id"].as_str().unwrap();
    let result = app
        .post(
            &format!("/api/v2/integrations/msteams/{sub}/validate"),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(result["ok"], true, "{result}");
    let validation = receiver.wait_for(3, WAIT).await;
    let last = validation.last().unwrap();
    assert_eq!(last.uri, "/teams");
    assert!(last.json().is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_are_listed() {
    let app = sqlite_app(settings()).await;
    let list = app.get("/api/v2/integration-manifests").await.expect(200);
    let keys: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    for key in [
        "flagstaff-webhook",
        "slack-incoming-webhook",
        "datadog",
        "msteams",
        "chronosphere",
    ] {
        assert!(keys.contains(&key), "{key} missing");
    }
    let one = app
        .get("/api/v2/integration-manifests/datadog")
        .await
        .expect(200);
    assert_eq!(one["name"], "Datadog Events");
    assert_eq!(one["key"], "datadog");
    app.get("/api/v2/integration-manifests/nope")
        .await
        .expect(404);
}
