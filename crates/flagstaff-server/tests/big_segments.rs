//! Big segments end to end: a partner syncs a cohort through `segment-targets`, Flagstaff
//! writes the membership into Redis in LaunchDarkly's big-segment layout (the catalogue's
//! `redis` big-segment-store integration) and the environment in the Relay layout
//! (`redis-feature-store`), and the official Python SDK in daemon mode evaluates the big
//! segment from Redis alone. Skips without `FLAGSTAFF_TEST_REDIS_URL`.

use std::time::Duration;

use flagstaff_outbound::{OutboundPolicy, SecretBox};
use flagstaff_server::AppState;
use flagstaff_server::integrations::stores::StoreSyncSettings;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::python::run_check;

fn redis_configured() -> bool {
    let set = std::env::var("FLAGSTAFF_TEST_REDIS_URL").is_ok_and(|u| !u.is_empty());
    if !set {
        eprintln!("skipping: FLAGSTAFF_TEST_REDIS_URL is not set");
    }
    set
}

fn integrations() -> Integrations {
    Integrations::new(
        vec![
            flagstaff_testkit::conformance::conformance_dir()
                .join("integration-framework/integrations"),
        ],
        SecretBox::new([9; 32]),
        OutboundPolicy::from_cidrs(&["127.0.0.0/8".to_string()]).unwrap(),
        DeliverySettings::default(),
    )
    .unwrap()
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
