//! LaunchDarkly's official Python server-side SDK (`launchdarkly-server-sdk` from PyPI,
//! unmodified) against a running Flagstaff, on SQLite and on Postgres: initialisation from the
//! `/all` stream and from `/sdk/latest-all` polling, evaluations, and REST changes seen within
//! one second (see `tests/python/ld_sdk_check.py`). `./scripts/test.sh` installs the SDK into
//! `.venv` and exports `FLAGSTAFF_PYTHON`.

use std::path::PathBuf;
use std::time::Duration;

use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::conformance::workspace_root;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("FLAGSTAFF_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with launchdarkly-server-sdk: run the suite through ./scripts/test.sh (it creates {}), or set FLAGSTAFF_PYTHON",
        venv.display()
    );
    venv
}

async fn run_sdk_against(backend: Backend) {
    let Some(app) = TestApp::on(backend).await else {
        return;
    };
    let script = workspace_root().join("tests/python/ld_sdk_check.py");
    let mut command = tokio::process::Command::new(python());
    command
        .arg(&script)
        .env("FLAGSTAFF_URL", &app.base_url)
        .env("FLAGSTAFF_TOKEN", &app.token)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the SDK script finishes within 2 minutes")
        .expect("run the Python SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "launchdarkly-server-sdk check failed on {backend:?}:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ld-sdk-check: all steps passed"),
        "the script did not reach its last step:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_sqlite() {
    run_sdk_against(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_postgres() {
    run_sdk_against(Backend::Postgres).await;
}
