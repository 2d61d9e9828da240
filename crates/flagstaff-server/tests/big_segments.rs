//! Big segments end to end: a partner syncs a cohort through `segment-targets`, Flagstaff
//! writes the membership into Redis in LaunchDarkly's big-segment layout (the catalogue's
//! `redis` big-segment-store integration) and the environment in the Relay layout
//! (`redis-feature-store`), and the official Python SDK in daemon mode evaluates the big
//! segment from Redis alone. Skips without `FLAGSTAFF_TEST_REDIS_URL`.

use std::time::Duration;

use flagstaff_server::AppState;
use flagstaff_server::integrations::stores::StoreSyncSettings;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations};
use flagstaff_testkit::python::run_check;

fn redis_configured() -> bool {
    let set = std::env::var("FLAGSTAFF_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    if !set {
        eprintln!("skipping: FLAGSTAFF_TEST_REDIS_URL is not set");
    }
    set
}

fn integrations() -> Integrations {
    catalogue_integrations(Outbound::Loopback, DeliverySettings::default())
        .with_store_sync_settings(StoreSyncSettings {
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            ..StoreSyncSettings::default()
        })
}

async fn big_segments_on(backend: Backend) {
    if !redis_configured() {
        return;
    }
    let Some(app) = TestApp::on_with(backend, |state: AppState| {
        state.with_integrations(integrations())
    })
    .await
    else {
        return;
    };
    run_check(
        &app,
        "launchdarkly-server-sdk + redis",
        "ld_big_segments_check.py",
        "ld-big-segments-check: all steps passed",
        Some(Duration::from_secs(120)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_evaluates_a_synced_big_segment_sqlite() {
    big_segments_on(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_evaluates_a_synced_big_segment_postgres() {
    big_segments_on(Backend::Postgres).await;
}

// -- configuration errors and an unreachable store ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_segment_store_configurations_are_validated_and_failures_shown() {
    let app = TestApp::sqlite_with(|state: AppState| state.with_integrations(integrations())).await;
    app.post(
        "/api/v2/projects",
        serde_json::json!({"key": "bsbad", "name": "bsbad"}),
    )
    .await
    .expect(201);
    let base = "/api/v2/integration-capabilities/big-segment-store/bsbad/production";
    let audit_before = app.audit_count().await;
    for (integration, config, fix) in [
        (
            "dynamodb",
            serde_json::json!({}),
            "not supported as a big-segment store",
        ),
        ("redis", serde_json::json!({}), "host"),
        ("redis", serde_json::json!({"host": "10.1.2.3"}), "host:"),
        (
            "redis",
            serde_json::json!({"host": "127.0.0.1", "port": 6379.5}),
            "port",
        ),
    ] {
        let response = app
            .post(
                &format!("{base}/{integration}"),
                serde_json::json!({"name": "bad", "on": true, "config": config}),
            )
            .await;
        assert_eq!(
            response.status, 400,
            "{integration} {config}: {}",
            response.body
        );
        assert!(
            response.message().contains(fix),
            "{integration} {config}: the message says what to fix: {}",
            response.message()
        );
    }
    assert_eq!(app.audit_count().await, audit_before, "nothing was written");

    // Nothing listens on port 1: the configuration is stored, and its status says why the
    // store is not current, without the password.
    let created = app
        .post(
            &format!("{base}/redis"),
            serde_json::json!({"name": "down", "on": true,
                "config": {"host": "127.0.0.1", "port": "1", "password": "hunter2-secret"}}),
        )
        .await
        .expect(201);
    assert_eq!(created["config"]["password"], "**********", "{created}");
    let path = format!("{base}/redis/{}", created["_id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let got = app.get(&path).await.expect(200);
        if got["_status"]["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            break got["_status"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error shown: {got}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["available"], false, "{status}");
    let message = status["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("127.0.0.1:1") || message.contains("Redis"),
        "{status}"
    );
    assert!(!status.to_string().contains("hunter2"), "{status}");
}
