//! LaunchDarkly's official Python REST client (`launchdarkly-api` from PyPI, unmodified) against
//! a running Flagstaff, on SQLite and on Postgres. `./scripts/test.sh` installs the client into
//! `.venv` and exports `FLAGSTAFF_PYTHON`.

use std::path::PathBuf;

use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::conformance::workspace_root;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLAGSTAFF_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with launchdarkly-api: run the suite through ./scripts/test.sh (it creates {}), or set FLAGSTAFF_PYTHON",
        venv.display()
    );
    venv
}

async fn run_client_against(backend: Backend) {
    let Some(app) = TestApp::on(backend).await else {
        return;
    };
    let script = workspace_root().join("tests/python/ld_api_client_check.py");
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .env("FLAGSTAFF_URL", &app.base_url)
        .env("FLAGSTAFF_TOKEN", &app.token)
        .output()
        .await
        .expect("run the Python client script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "launchdarkly-api client check failed on {backend:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("getAuditLogEntry"),
        "the script did not reach its last step:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_sqlite() {
    run_client_against(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_postgres() {
    run_client_against(Backend::Postgres).await;
}
