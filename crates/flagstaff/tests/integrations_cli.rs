//! `flagstaff integrations …` as an integration author runs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flagstaff");

fn conformance_dir() -> PathBuf {
    std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../flagstaff-manifest/tests/fixtures/base-integration")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(BIN).args(args).output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn schema_is_a_draft07_schema_that_accepts_the_catalogue() {
    let (code, stdout, _) = run(&["integrations", "schema"]);
    assert_eq!(code, 0);
    let schema: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(schema["properties"]["capabilities"].is_object());
}

#[test]
fn lint_passes_on_the_catalogue_and_reports_timing() {
    let catalogue = conformance_dir().join("integration-framework");
    let (code, stdout, stderr) = run(&[
        "integrations",
        "lint",
        catalogue.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let summary = stdout.lines().last().unwrap();
    assert!(summary.contains(" 0 with errors; 0 error(s)"), "{summary}");
    assert!(summary.contains("sample contexts from"), "{summary}");
}

#[test]
fn lint_fails_with_a_pointed_message() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("broken");
    std::fs::create_dir_all(dir.join("assets/images")).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    for file in ["assets/images/square.svg", "templates/default.json.hbs"] {
        std::fs::copy(fixture_dir().join(file), dir.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(fixture_dir().join("manifest.json"))
        .unwrap()
        .replace("\"isSecret\": true", "\"isSecret\": false");
    std::fs::write(dir.join("manifest.json"), manifest).unwrap();
    let (code, stdout, _) = run(&["integrations", "lint", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains(
        "manifest.json#/icons/horizontal: error[icon-exists]: icon file `assets/images/horizontal.svg` does not exist"
    ), "{stdout}");
    assert!(stdout.contains("#/capabilities/auditLogEventsHook/endpoint/hmacSignature/hmacSecretFormVariableKey: error[hmac-signature]"), "{stdout}");
    let (code, stdout, _) = run(&[
        "integrations",
        "lint",
        dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["errors"], 2);
}

#[test]
fn preview_json_is_one_object_with_the_signed_request() {
    let root = tempfile::tempdir().unwrap();
    let vars = root.path().join("vars.json");
    std::fs::write(
        &vars,
        r#"{"url": "https://hooks.example.com/in", "secret": "s3cret"}"#,
    )
    .unwrap();
    let event = conformance_dir().join("integration-framework/sample-context/flag/toggle.json");
    let (code, stdout, stderr) = run(&[
        "integrations",
        "preview",
        fixture_dir().to_str().unwrap(),
        "--context",
        event.to_str().unwrap(),
        "--form-vars",
        vars.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim().lines().count(), 1);
    let request: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://hooks.example.com/in");
    let headers = request["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h["name"] == name)
            .map(|h| h["value"].as_str().unwrap().to_string())
    };
    // The region form variable was not given: its defaultValue is used.
    assert_eq!(header("X-Region").as_deref(), Some("us"));
    let body = request["body"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(body).unwrap();
    assert_eq!(parsed["kind"], "flag");
    // The signature is the hex HMAC-SHA256 of exactly the body that is sent.
    let expected = flagstaff_manifest::preview::sign_body(b"s3cret", body.as_bytes());
    assert_eq!(header("X-LD-Signature"), Some(expected));
    assert_eq!(request.as_object().unwrap().len(), 4);
}

#[test]
fn preview_says_when_nothing_would_be_sent() {
    let catalogue = conformance_dir().join("integration-framework");
    // dynatrace's flag template renders nothing without a tag or its custom property.
    let event = catalogue.join("sample-context/flag/create.json");
    let (code, stdout, stderr) = run(&[
        "integrations",
        "preview",
        catalogue.join("integrations/dynatrace").to_str().unwrap(),
        "--context",
        event.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        result["skipped"].as_str().unwrap().contains("empty body"),
        "{result}"
    );
}

#[test]
fn preview_validation_and_curl() {
    let catalogue = conformance_dir().join("integration-framework");
    let event = catalogue.join("sample-context/environment/update.json");
    let (code, stdout, stderr) = run(&[
        "integrations",
        "preview",
        catalogue.join("integrations/datadog").to_str().unwrap(),
        "--context",
        event.to_str().unwrap(),
        "--capability",
        "auditLogEventsHook.validation",
        "--format",
        "curl",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("curl -X POST 'https://api.datadoghq.com/api/v1/events'"),
        "{stdout}"
    );
    assert!(stdout.contains("-H 'DD-API-KEY: $APIKEY'"), "{stdout}");
}

#[test]
fn preview_refuses_unknown_capabilities_clearly() {
    let event = conformance_dir().join("integration-framework/sample-context/flag/toggle.json");
    let (code, _, stderr) = run(&[
        "integrations",
        "preview",
        fixture_dir().to_str().unwrap(),
        "--context",
        event.to_str().unwrap(),
        "--capability",
        "featureStore",
    ]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("has no featureStore capability"),
        "{stderr}"
    );
}
