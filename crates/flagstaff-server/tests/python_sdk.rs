//! LaunchDarkly's official Python server-side SDK (`launchdarkly-server-sdk` from PyPI,
//! unmodified) against a running Flagstaff, on SQLite and on Postgres: initialisation from the
//! `/all` stream and from `/sdk/latest-all` polling, evaluations, and REST changes seen within
//! one second (see `tests/python/ld_sdk_check.py`). `./scripts/test.sh` installs the SDK into
//! `.venv` and exports `FLAGSTAFF_PYTHON`.

use std::time::Duration;

use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::python::run_check;

async fn run_sdk_against(backend: Backend) {
    let Some(app) = TestApp::on(backend).await else {
        return;
    };
    run_check(
        &app,
        "launchdarkly-server-sdk",
        "ld_sdk_check.py",
        "ld-sdk-check: all steps passed",
        Some(Duration::from_secs(120)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_sqlite() {
    run_sdk_against(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_postgres() {
    run_sdk_against(Backend::Postgres).await;
}
