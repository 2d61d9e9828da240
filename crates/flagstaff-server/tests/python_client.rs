//! LaunchDarkly's official Python REST client (`launchdarkly-api` from PyPI, unmodified) against
//! a running Flagstaff, on SQLite and on Postgres. `./scripts/test.sh` installs the client into
//! `.venv` and exports `FLAGSTAFF_PYTHON`.

use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::python::run_check;

async fn run_client_against(backend: Backend) {
    let Some(app) = TestApp::on(backend).await else {
        return;
    };
    run_check(
        &app,
        "launchdarkly-api",
        "ld_api_client_check.py",
        "getAuditLogEntry",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_sqlite() {
    run_client_against(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_postgres() {
    run_client_against(Backend::Postgres).await;
}
