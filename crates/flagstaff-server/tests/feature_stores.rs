//! Persistent stores end to end: the official Python SDK in daemon mode reading the Redis
//! that `redis-feature-store` writes; a featureStore manifest's pushes to a loopback
//! receiver (exactly what `flagstaff integrations preview` renders, coalesced, retried after
//! a 500); Redis unreachable during changes, then back, converging to the current state.
//! Tests needing Redis skip without `FLAGSTAFF_TEST_REDIS_URL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview};
use flagstaff_server::AppState;
use flagstaff_server::integrations::stores::StoreSyncSettings;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::integrations::Outbound;
use flagstaff_testkit::python::run_check;
use flagstaff_testkit::receiver::Receiver;
use serde_json::{Map, Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(30);

fn redis_url() -> Option<String> {
    let url = std::env::var("FLAGSTAFF_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("skipping: FLAGSTAFF_TEST_REDIS_URL is not set");
    }
    url
}

fn conformance_dir() -> PathBuf {
    flagstaff_testkit::conformance::conformance_dir()
}

fn integrations() -> Integrations {
    integrations_from(conformance_dir().join("integration-framework/integrations"))
}

fn integrations_from(catalogue: PathBuf) -> Integrations {
    flagstaff_testkit::integrations::integrations_from(
        vec![catalogue],
        Outbound::Loopback,
        DeliverySettings::default(),
    )
    .with_store_sync_settings(StoreSyncSettings {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        ..StoreSyncSettings::default()
    })
    // A push held by the receiver during the rapid changes must not time out on a loaded
    // machine: a timed-out push is retried, and when the receiver releases both, the stale
    // one can be recorded last (an HTTP store cannot order two PUTs it answers together).
    .with_outbound_request_timeout(Duration::from_secs(120))
}

async fn app_on(backend: Backend) -> Option<TestApp> {
    TestApp::on_with(backend, |state: AppState| {
        state.with_integrations(integrations())
    })
    .await
}

async fn project_with_flag(app: &TestApp, project: &str, flag: &str) -> String {
    app.post("/api/v2/projects", json!({"key": project, "name": project}))
        .await
        .expect(201);
    app.post(
        &format!("/api/v2/flags/{project}"),
        json!({"key": flag, "name": flag}),
    )
    .await
    .expect(201);
    let env = app
        .get(&format!(
            "/api/v2/projects/{project}/environments/production"
        ))
        .await
        .expect(200);
    env["apiKey"].as_str().unwrap().to_string()
}

/// The environment as SDKs get it from Flagstaff (`/sdk/latest-all`).
async fn latest_all(app: &TestApp, sdk_key: &str) -> Value {
    app.raw(reqwest::Method::GET, "/sdk/latest-all")
        .header("Authorization", sdk_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn toggle(app: &TestApp, project: &str, flag: &str, on: bool) {
    app.patch(
        &format!("/api/v2/flags/{project}/{flag}"),
        json!([{"op": "replace", "path": "/environments/production/on", "value": on}]),
    )
    .await
    .expect(200);
}

/// 100 changes of flag `f`, ten at a time: quick enough that a held push does not reach the
/// outbound client's timeout even on a loaded machine.
async fn rapid_changes(app: &TestApp, project: &str) {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v2/flags/{project}/f", app.base_url);
    for batch in 0..10 {
        let mut changes = tokio::task::JoinSet::new();
        for i in 0..10 {
            let request = client.patch(&url).header("Authorization", &app.token).json(
                &json!([{"op": "replace", "path": "/environments/production/on",
                    "value": (batch * 10 + i) % 2 == 0}]),
            );
            changes.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        while let Some(status) = changes.join_next().await {
            assert_eq!(status.unwrap().unwrap(), 200);
        }
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(()) => return,
            Err(why) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not reached within {WAIT:?}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

// -- the official Python SDK in daemon mode ----------------------------------------------

async fn daemon_mode_on(backend: Backend) {
    if redis_url().is_none() {
        return;
    }
    let Some(app) = app_on(backend).await else {
        return;
    };
    run_check(
        &app,
        "launchdarkly-server-sdk + redis",
        "ld_daemon_check.py",
        "ld-daemon-check: all steps passed",
        Some(Duration::from_secs(120)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_daemon_mode_sqlite() {
    daemon_mode_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_daemon_mode_postgres() {
    daemon_mode_on(Backend::Postgres).await;
}

// -- HTTP feature stores -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_feature_store_gets_the_previewed_request_coalesced_and_retried() {
    let app = app_on(Backend::Sqlite).await.unwrap();
    let receiver = Receiver::start().await;
    let sdk_key = project_with_flag(&app, "hs", "f").await;
    let env = app
        .get("/api/v2/projects/hs/environments/production")
        .await
        .expect(200);
    let client_side_id = env["_id"].as_str().unwrap().to_string();
    let form = json!({
        "featureStoreReqUrl": format!("{}/store", receiver.base_url),
        "validationReqUrl": format!("{}/validate", receiver.base_url),
    });
    let created = app
        .post(
            "/api/v2/integration-capabilities/featureStore/hs/production/generic-feature-store",
            json!({"name": "edge", "on": true, "config": form}),
        )
        .await
        .expect(201);
    // The validation request went to the receiver; its body (empty) has no /success.
    assert_eq!(created["_validation"]["success"], false, "{created}");
    let id = created["_id"].as_str().unwrap().to_string();

    // The first push carries the current environment, exactly as preview renders it.
    let integration = flagstaff_manifest::load_integration(
        &conformance_dir().join("integration-framework/integrations/generic-feature-store"),
        &flagstaff_manifest::SampleContexts::builtin(),
        &flagstaff_manifest::LintOptions::default(),
    )
    .integration
    .expect("generic-feature-store loads");
    let expected_request = |payload: &Value| {
        let mut values: Map<String, Value> = form.as_object().unwrap().clone();
        values.insert(
            "_featureStoreKey".into(),
            Value::from(format!("LD-Env-{client_side_id}")),
        );
        values.insert("envId".into(), Value::from(client_side_id.clone()));
        let input = PreviewInput {
            form_values: values,
            ..PreviewInput::default()
        };
        match preview(&integration, &Target::FeatureStore, payload, &input).unwrap() {
            Preview::Request(request) => request,
            other => panic!("{other:?}"),
        }
    };
    let pushes = |r: &Receiver| -> Vec<flagstaff_testkit::receiver::Received> {
        r.received()
            .into_iter()
            .filter(|x| x.uri.starts_with("/store"))
            .collect()
    };
    eventually("first push", || {
        let app = &app;
        let got = pushes(&receiver);
        let sdk_key = sdk_key.clone();
        async move {
            let current = latest_all(app, &sdk_key).await;
            match got.last() {
                Some(last) if last.json() == current => Ok(()),
                other => Err(format!("{:?}", other.map(|r| r.body_text()))),
            }
        }
    })
    .await;
    let first = pushes(&receiver).last().cloned().unwrap();
    let want = expected_request(&latest_all(&app, &sdk_key).await);
    assert_eq!(first.method, want.method);
    let want_url = reqwest::Url::parse(&want.url).unwrap();
    let want_path = format!("{}?{}", want_url.path(), want_url.query().unwrap_or(""));
    assert_eq!(first.uri, want_path);
    for header in &want.headers {
        assert_eq!(
            first.header(&header.name),
            Some(header.value.as_str()),
            "{}",
            header.name
        );
    }
    let want_body: Value = serde_json::from_str(&want.body).unwrap();
    assert_eq!(first.json(), want_body);

    // 100 rapid changes while the partner is slow: far fewer pushes, the last one current.
    receiver.hold();
    let before = pushes(&receiver).len();
    rapid_changes(&app, "hs").await;
    receiver.release();
    // The SDK feed applies a commit just after the PATCH answers, so the final state is read
    // again on every attempt rather than once.
    eventually("the final state pushed", || {
        let got = pushes(&receiver);
        let (app, sdk_key) = (&app, &sdk_key);
        async move {
            let final_state = latest_all(app, sdk_key).await;
            match got.last() {
                Some(last) if last.json() == final_state => Ok(()),
                _ => Err("not yet".into()),
            }
        }
    })
    .await;
    let during = pushes(&receiver).len() - before;
    assert!(during < 50, "{during} pushes for 100 changes");
    let versions: Vec<u64> = pushes(&receiver)
        .iter()
        .map(|r| r.json()["flags"]["f"]["version"].as_u64().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "a push went backwards: {versions:?}"
    );

    // The partner fails: the error is visible, the push is retried, and it converges.
    receiver.respond_with(500);
    // A real change whatever state the concurrent changes left (setting the same value
    // changes nothing and pushes nothing).
    let on = app.get("/api/v2/flags/hs/f").await.expect(200)["environments"]["production"]["on"]
        .as_bool()
        .unwrap();
    toggle(&app, "hs", "f", !on).await;
    let path = format!(
        "/api/v2/integration-capabilities/featureStore/hs/production/generic-feature-store/{id}"
    );
    eventually("the failure reported", || {
        let app = &app;
        let path = path.clone();
        async move {
            let rep = app.get(&path).await.expect(200);
            if rep["_status"]["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
            {
                Ok(())
            } else {
                Err(rep["_status"].to_string())
            }
        }
    })
    .await;
    receiver.respond_with(200);
    eventually("converged after the 500s", || {
        let got = pushes(&receiver);
        let (app, sdk_key) = (&app, &sdk_key);
        async move {
            let final_state = latest_all(app, sdk_key).await;
            match got.last() {
                Some(last) if last.json() == final_state => Ok(()),
                _ => Err("not yet".into()),
            }
        }
    })
    .await;
    eventually("status clean again", || {
        let app = &app;
        let path = path.clone();
        async move {
            let rep = app.get(&path).await.expect(200);
            let status = &rep["_status"];
            if status["available"] == true && status["syncedVersion"].as_i64() > Some(0) {
                Ok(())
            } else {
                Err(status.to_string())
            }
        }
    })
    .await;
}

// -- Redis outage ------------------------------------------------------------------------

/// A TCP proxy to the real Redis that the test can take down and bring back on the same
/// port (the shared Redis itself is never stopped).
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Proxy {
            port,
            upstream,
            task: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let upstream = upstream.clone();
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drops the listener and every open connection (the JoinSet aborts them).
    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    async fn restart(&mut self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_converges_after_an_outage() {
    let Some(url) = redis_url() else { return };
    let upstream = reqwest::Url::parse(&url).unwrap();
    let upstream_addr = format!(
        "{}:{}",
        upstream.host_str().unwrap(),
        upstream.port().unwrap_or(6379)
    );
    let app = app_on(Backend::Sqlite).await.unwrap();
    let sdk_key = project_with_flag(&app, "ro", "f").await;
    for key in ["g", "h"] {
        app.post("/api/v2/flags/ro", json!({"key": key, "name": key}))
            .await
            .expect(201);
    }
    let mut proxy = Proxy::start(upstream_addr).await;
    let prefix = format!("flagstaff-outage-{}", uuid::Uuid::new_v4().simple());
    app.post(
        "/api/v2/integration-capabilities/featureStore/ro/production/redis-feature-store",
        json!({"name": "r", "on": true, "config": {
            "url": format!("redis://127.0.0.1:{}", proxy.port), "prefix": prefix}}),
    )
    .await
    .expect(201);
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let conn_ref = Arc::new(tokio::sync::Mutex::new(conn.clone()));

    let matches_flagstaff =
        |app: &TestApp,
         sdk_key: String,
         prefix: String,
         conn: Arc<tokio::sync::Mutex<redis::aio::MultiplexedConnection>>| {
            let app_url = app.base_url.clone();
            async move {
                let current: Value = reqwest::Client::new()
                    .get(format!("{app_url}/sdk/latest-all"))
                    .header("Authorization", sdk_key)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut conn = conn.lock().await;
                let inited: bool = redis::cmd("EXISTS")
                    .arg(format!("{prefix}:$inited"))
                    .query_async(&mut *conn)
                    .await
                    .map_err(|e| e.to_string())?;
                if !inited {
                    return Err("not inited".to_string());
                }
                for (hash, kind) in [("features", "flags"), ("segments", "segments")] {
                    let stored: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                        .arg(format!("{prefix}:{hash}"))
                        .query_async(&mut *conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    let want = current[kind].as_object().cloned().unwrap_or_default();
                    let live: Map<String, Value> = stored
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::from_str::<Value>(v).unwrap()))
                        .filter(|(_, v)| v["deleted"] != true)
                        .collect();
                    if live != want {
                        return Err(format!("{hash}: {live:?} != {want:?}"));
                    }
                }
                Ok(())
            }
        };
    eventually("first sync", || {
        matches_flagstaff(&app, sdk_key.clone(), prefix.clone(), conn_ref.clone())
    })
    .await;

    proxy.stop();
    toggle(&app, "ro", "f", true).await;
    app.delete("/api/v2/flags/ro/g").await.expect(204);
    app.post("/api/v2/flags/ro", json!({"key": "k", "name": "k"}))
        .await
        .expect(201);
    toggle(&app, "ro", "h", true).await;
    proxy.restart().await;
    eventually("converged after the outage", || {
        matches_flagstaff(&app, sdk_key.clone(), prefix.clone(), conn_ref.clone())
    })
    .await;
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}:features"))
        .arg(format!("{prefix}:segments"))
        .arg(format!("{prefix}:$inited"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

// -- every featureStore manifest of the conformance catalogue ----------------------------

/// The catalogue's featureStore integrations, copied into `dir` with their endpoints moved
/// to `receiver` (scheme and host only: paths, queries, headers and bodies stay the
/// manifest's), and form values for each.
fn catalogue_stores_pointing_at(
    receiver: &Receiver,
    dir: &std::path::Path,
) -> Vec<(String, Value)> {
    let source = conformance_dir().join("integration-framework/integrations");
    let host = receiver.base_url.trim_start_matches("http://").to_string();
    let mut stores = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&source).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(text) = std::fs::read_to_string(entry.path().join("manifest.json")) else {
            continue;
        };
        let mut manifest: Value = serde_json::from_str(&text).unwrap();
        let Some(store) = manifest["capabilities"].get_mut("featureStore") else {
            continue;
        };
        let key = entry.file_name().to_string_lossy().into_owned();
        let mut form = Map::new();
        for variable in store["formVariables"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let name = variable["key"].as_str().unwrap().to_string();
            let value = match variable["type"].as_str().unwrap_or("string") {
                "enum" => variable["allowedValues"][0].clone(),
                "boolean" => Value::Bool(false),
                "uri" => Value::from(format!("{}/store/{name}", receiver.base_url)),
                _ if name == "hostname" => Value::from(host.clone()),
                _ => Value::from(format!("v-{name}")),
            };
            form.insert(name, value);
        }
        for pointer in [
            "/featureStoreRequest/endpoint/url",
            "/validationRequest/endpoint/url",
        ] {
            if let Some(Value::String(url)) = store.pointer_mut(pointer) {
                if let Some(rest) = url.strip_prefix("https://{{") {
                    *url = format!("http://{{{{{rest}");
                } else if let Some(rest) = url.strip_prefix("https://") {
                    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("/");
                    *url = format!("{}{path}", receiver.base_url);
                }
            }
        }
        let target = dir.join(&key);
        copy_dir(&entry.path(), &target);
        std::fs::write(target.join("manifest.json"), manifest.to_string()).unwrap();
        stores.push((key, Value::Object(form)));
    }
    stores
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A header value as the receiver must see it: EdgeGrid signatures carry a timestamp and a
/// nonce, so only their credential part is stable between two renders.
fn stable_header(value: &str) -> &str {
    if value.starts_with("EG1-HMAC-SHA256 ") {
        value.split(";timestamp=").next().unwrap_or(value)
    } else {
        value
    }
}

fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::from(String::from_utf8_lossy(body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogue_feature_store_receives_the_previewed_request() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stores = catalogue_stores_pointing_at(&receiver, dir.path());
    assert!(
        stores.len() >= 5,
        "featureStore integrations found: {stores:?}"
    );
    let catalogue_dir = dir.path().to_path_buf();
    let app = TestApp::sqlite_with(move |state: AppState| {
        state.with_integrations(integrations_from(catalogue_dir))
    })
    .await;
    for (index, (key, form)) in stores.iter().enumerate() {
        let project = format!("c{index}");
        let sdk_key = project_with_flag(&app, &project, "f").await;
        let env = app
            .get(&format!(
                "/api/v2/projects/{project}/environments/production"
            ))
            .await
            .expect(200);
        let client_side_id = env["_id"].as_str().unwrap().to_string();
        let seen_before = receiver.received().len();
        app.post(
            &format!("/api/v2/integration-capabilities/featureStore/{project}/production/{key}"),
            json!({"name": key, "on": true, "config": form}),
        )
        .await
        .expect(201);
        let integration = flagstaff_manifest::load_integration(
            &dir.path().join(key),
            &flagstaff_manifest::SampleContexts::builtin(),
            &flagstaff_manifest::LintOptions::default(),
        )
        .integration
        .unwrap_or_else(|| panic!("{key} loads after its endpoint moved"));
        let render = |payload: &Value| {
            let mut values = form.as_object().unwrap().clone();
            values.insert(
                "_featureStoreKey".into(),
                Value::from(format!("LD-Env-{client_side_id}")),
            );
            values.insert("envId".into(), Value::from(client_side_id.clone()));
            let input = PreviewInput {
                form_values: values,
                ..PreviewInput::default()
            };
            match preview(&integration, &Target::FeatureStore, payload, &input).unwrap() {
                Preview::Request(request) => request,
                other => panic!("{key}: {other:?}"),
            }
        };
        let want_uri = |url: &str| {
            let url = reqwest::Url::parse(url).unwrap();
            match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            }
        };
        // Pushes of this configuration: requests to its rendered path with its method. Some
        // manifests (convex) validate with a GET to the push URL, and that GET is sent after
        // the create commits, so it can land after the first push.
        let push_request = render(&json!({}));
        let (push_uri, push_method) = (want_uri(&push_request.url), push_request.method.clone());
        let pushes = |r: &Receiver| -> Vec<flagstaff_testkit::receiver::Received> {
            r.received()[seen_before..]
                .iter()
                .filter(|x| x.uri == push_uri && x.method == push_method)
                .cloned()
                .collect()
        };
        let current = latest_all(&app, &sdk_key).await;
        let expected = render(&current);
        eventually(&format!("{key}: first push"), || {
            let got = pushes(&receiver);
            let want = body_value(expected.body.as_bytes());
            async move {
                match got.last() {
                    Some(last) if body_value(&last.body) == want => Ok(()),
                    other => Err(format!("{:?}", other.map(|r| r.body_text()))),
                }
            }
        })
        .await;
        let first = pushes(&receiver).last().cloned().unwrap();
        assert_eq!(first.method, expected.method, "{key}");
        for header in &expected.headers {
            assert_eq!(
                first.header(&header.name).map(stable_header),
                Some(stable_header(&header.value)),
                "{key}: header {}",
                header.name
            );
        }

        receiver.hold();
        let before = pushes(&receiver).len();
        rapid_changes(&app, &project).await;
        receiver.release();
        // Read again on every attempt: the SDK feed applies the last commit just after its
        // PATCH answers.
        eventually(&format!("{key}: final state pushed"), || {
            let got = pushes(&receiver);
            let (app, sdk_key, render) = (&app, &sdk_key, &render);
            async move {
                let want = body_value(render(&latest_all(app, sdk_key).await).body.as_bytes());
                match got.last() {
                    Some(last) if body_value(&last.body) == want => Ok(()),
                    _ => Err("not yet".into()),
                }
            }
        })
        .await;
        let during = pushes(&receiver).len() - before;
        assert!(during < 50, "{key}: {during} pushes for 100 changes");
        println!("{key}: 100 changes, {during} pushes; the last one current");
    }
}

// -- several nodes -----------------------------------------------------------------------

/// Test settings with leases that renew quickly but last long enough that a loaded machine
/// does not lose one between renewals.
fn leased_integrations() -> Integrations {
    integrations().with_store_sync_settings(StoreSyncSettings {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        lease_ttl: Duration::from_secs(10),
        lease_renew: Duration::from_millis(100),
        ..StoreSyncSettings::default()
    })
}

/// The bodies of the pushes to `/store`, oldest first.
fn store_pushes(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .into_iter()
        .filter(|x| x.uri.starts_with("/store"))
        .map(|x| x.json())
        .collect()
}

/// Waits until the last push to `/store` is the environment as SDKs get it now.
async fn store_push_current(app: &TestApp, sdk_key: &str, receiver: &Receiver, what: &str) {
    eventually(what, || {
        let got = store_pushes(receiver);
        async move {
            let current = latest_all(app, sdk_key).await;
            match got.last() {
                Some(last) if *last == current => Ok(()),
                _ => Err(format!("{} pushes", got.len())),
            }
        }
    })
    .await;
}

/// Two nodes over one database both run an engine for the configuration; only the lease
/// holder writes, so each state reaches the store once. When the holder shuts down, the other
/// node takes over.
/// A node's integrations runtime, kept by the test to drive its store sync directly.
type RuntimeSlot = Arc<std::sync::OnceLock<Arc<Integrations>>>;

/// The state change that gives a node the leased runtime and keeps a handle on it.
fn leased_node(slot: &RuntimeSlot) -> impl FnOnce(AppState) -> AppState + use<> {
    let slot = slot.clone();
    move |state: AppState| {
        let state = state.with_integrations(leased_integrations());
        let _ = slot.set(state.integrations.clone());
        state
    }
}

async fn one_writer_per_store_across_nodes(backend: Backend) {
    let node_a_runtime = RuntimeSlot::default();
    let node_b_runtime = RuntimeSlot::default();
    let Some(node_a) = TestApp::on_with(backend, leased_node(&node_a_runtime)).await else {
        return;
    };
    let node_b = node_a.another_node(leased_node(&node_b_runtime)).await;
    let receiver = Receiver::start().await;
    let sdk_key = project_with_flag(&node_a, "ln", "f").await;
    node_a
        .post(
            "/api/v2/integration-capabilities/featureStore/ln/production/generic-feature-store",
            json!({"name": "edge", "on": true, "config": {
                "featureStoreReqUrl": format!("{}/store", receiver.base_url),
                "validationReqUrl": format!("{}/validate", receiver.base_url),
            }}),
        )
        .await
        .expect(201);
    // Node B reads configurations every 5 s; read them now so both engines run from here.
    node_b_runtime.get().unwrap().reload_store_sync().await;

    let pushes = || store_pushes(&receiver);
    store_push_current(&node_a, &sdk_key, &receiver, "first push").await;
    for on in [true, false, true, false] {
        toggle(&node_a, "ln", "f", on).await;
        store_push_current(&node_a, &sdk_key, &receiver, "change pushed").await;
    }
    // Give the standby node time to push (its feed polls the database every 500 ms) if it
    // were writing too: two writers would push every state twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = pushes();
    for (i, push) in seen.iter().enumerate() {
        assert!(
            !seen[..i].contains(push),
            "state {i} pushed twice: two nodes wrote the store ({} pushes)",
            seen.len()
        );
    }

    // Node A shuts down its engines and hands the lease over: node B writes from now on,
    // whichever of the two held it. Node B starts with a full push, which may repeat the
    // last state node A pushed; after that, every state once.
    let node_a_sync = node_a_runtime.get().unwrap();
    node_a_sync.store_sync.get().unwrap().shutdown().await;
    let handed_over_at = pushes().len();
    toggle(&node_b, "ln", "f", true).await;
    store_push_current(
        &node_b,
        &sdk_key,
        &receiver,
        "pushed by node B after A stopped",
    )
    .await;
    // A stopped node stays stopped, whatever asks it to re-read the configurations.
    node_a_sync.reload_store_sync().await;
    toggle(&node_b, "ln", "f", false).await;
    store_push_current(&node_b, &sdk_key, &receiver, "and keeps writing").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = pushes().split_off(handed_over_at);
    for (i, push) in after.iter().enumerate() {
        assert!(
            !after[..i].contains(push),
            "state {i} after the handover pushed twice ({} pushes)",
            after.len()
        );
    }

    // A third node stands by; the configuration is deleted through node B, the writer. The
    // standby node must not take the lease of a configuration that is gone (which would
    // write to a store the user just removed until its next re-read).
    let node_c_runtime = RuntimeSlot::default();
    let _node_c = node_a.another_node(leased_node(&node_c_runtime)).await;
    node_c_runtime.get().unwrap().reload_store_sync().await;
    let listed = node_b
        .get("/api/v2/integration-capabilities/featureStore/ln/production")
        .await
        .expect(200);
    let id = listed["items"][0]["_id"].as_str().unwrap().to_string();
    node_b
        .delete(&format!(
            "/api/v2/integration-capabilities/featureStore/ln/production/generic-feature-store/{id}"
        ))
        .await
        .expect(204);
    let deleted_at = pushes().len();
    toggle(&node_b, "ln", "f", true).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        pushes().len(),
        deleted_at,
        "a node wrote the store of a deleted configuration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_store_across_nodes_sqlite() {
    one_writer_per_store_across_nodes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_per_store_across_nodes_postgres() {
    one_writer_per_store_across_nodes(Backend::Postgres).await;
}
