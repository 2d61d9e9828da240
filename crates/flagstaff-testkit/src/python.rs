//! Running the Python checks in `tests/python/` (LaunchDarkly's official Python packages,
//! unmodified) against a [`TestApp`]. `./scripts/test.sh` installs the packages into `.venv`
//! and exports `FLAGSTAFF_PYTHON`.

use std::path::PathBuf;
use std::time::Duration;

use crate::app::TestApp;
use crate::conformance::workspace_root;

/// `$FLAGSTAFF_PYTHON`, else the workspace's `.venv/bin/python` (which must exist).
fn python(package: &str) -> PathBuf {
    if let Some(p) = std::env::var_os("FLAGSTAFF_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with {package}: run the suite through ./scripts/test.sh (it creates {}), or set FLAGSTAFF_PYTHON",
        venv.display()
    );
    venv
}

/// Runs `tests/python/<script>` with `FLAGSTAFF_URL` and `FLAGSTAFF_TOKEN` pointing at `app`,
/// prints its stdout, asserts that it exits successfully and that its stdout contains
/// `last_step` (the script reached its end), and returns the stdout. `package` is the PyPI
/// package the script exercises, for failure messages. With `timeout`, the script is killed
/// (and the test fails) if it runs longer.
pub async fn run_check(
    app: &TestApp,
    package: &str,
    script: &str,
    last_step: &str,
    timeout: Option<Duration>,
) -> String {
    let script = workspace_root().join("tests/python").join(script);
    let mut command = tokio::process::Command::new(python(package));
    command
        .arg(&script)
        .env("FLAGSTAFF_URL", &app.base_url)
        .env("FLAGSTAFF_TOKEN", &app.token)
        .kill_on_drop(true);
    let output = match timeout {
        Some(limit) => tokio::time::timeout(limit, command.output())
            .await
            .unwrap_or_else(|_| panic!("{} finishes within {limit:?}", script.display())),
        None => command.output().await,
    }
    .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{package} check failed on {:?}:\n{stdout}\n{stderr}",
        app.backend
    );
    assert!(
        stdout.contains(last_step),
        "the script did not reach its last step:\n{stdout}"
    );
    stdout
}
