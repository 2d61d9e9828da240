//! The preview builds the same request the reference renderer produced: for every
//! auditLogEventsHook integration in the conformance catalogue and every sample context, the
//! previewed URL, headers and body equal the golden handlebars.js renders of the template the
//! dispatcher routes to (JS compat mode), or the preview says nothing is sent when the golden
//! render is empty.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview};
use flagstaff_manifest::{LintOptions, SampleContexts, load_integration};
use flagstaff_template::Compat;
use serde_json::{Map, Value};

fn conformance_dir() -> PathBuf {
    std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

#[derive(Default)]
struct Expected {
    url: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<(String, bool)>,
}

#[test]
fn preview_matches_golden_renders() {
    let root = conformance_dir();
    let catalogue = root.join("integration-framework");
    let inputs: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("golden/inputs.json")).unwrap())
            .unwrap();
    // (integration, context) -> expected request pieces, from the golden rows.
    let mut expected: HashMap<(String, String), Expected> = HashMap::new();
    let golden = std::fs::read_to_string(root.join("golden/golden.jsonl")).unwrap();
    for line in golden.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["capability"] != "auditLogEventsHook" || row["variant"] != "defaults" {
            continue;
        }
        let key = (
            row["integration"].as_str().unwrap().to_string(),
            row["context"].as_str().unwrap().to_string(),
        );
        let entry = expected.entry(key).or_default();
        let template = row["template"].as_str().unwrap();
        let output = row["output"].as_str().unwrap_or_default().to_string();
        if row["templateKind"] == "inline" {
            if template.ends_with("/endpoint/url") {
                entry.url = Some(output);
            } else if let Some((_, name)) = template.split_once('#') {
                entry.headers.push((name.to_string(), output));
            }
        } else if row["routedForContextKind"] == true {
            entry.body = Some((output, row["emptyOutput"] == true));
        }
    }
    let samples = SampleContexts::load(&catalogue.join("sample-context")).unwrap();
    let mut compared = 0;
    let mut skipped_empty = 0;
    let mut custom_delivery = 0;
    let mut failures = Vec::new();
    let mut keys: Vec<_> = expected.keys().cloned().collect();
    keys.sort();
    let mut loaded = HashMap::new();
    for (integration_key, context_name) in keys {
        let want = &expected[&(integration_key.clone(), context_name.clone())];
        let Some((want_body, want_empty)) = &want.body else {
            continue;
        };
        let integration = loaded
            .entry(integration_key.clone())
            .or_insert_with(|| {
                load_integration(
                    &catalogue.join("integrations").join(&integration_key),
                    &samples,
                    &LintOptions::default(),
                )
                .integration
                .expect("catalogue integrations load")
            })
            .clone();
        let event = samples
            .get(
                context_name
                    .trim_start_matches("sample-context/")
                    .trim_end_matches(".json"),
            )
            .unwrap_or_else(|| panic!("sample {context_name}"));
        let form_values: Map<String, Value> =
            inputs["formVariableValues"][&integration_key]["formVariables"]["defaults"]
                .as_object()
                .cloned()
                .unwrap_or_default();
        let input = PreviewInput {
            form_values,
            oauth: None,
            compat: Compat::Js,
            standard_payload: None,
        };
        let result = preview(&integration, &Target::AuditLogEventsHook, event, &input);
        let label = format!("{integration_key} × {context_name}");
        match result {
            Ok(Preview::Skipped(reason)) if reason.contains("custom delivery") => {
                // cloudtrail: LaunchDarkly's own AWS delivery, not an HTTP request; its body
                // template renders are covered by the template conformance test.
                custom_delivery += 1;
            }
            Ok(Preview::Skipped(reason)) => {
                if *want_empty {
                    skipped_empty += 1;
                } else {
                    failures.push(format!(
                        "{label}: skipped ({reason}) but golden is non-empty"
                    ));
                }
            }
            Ok(Preview::Request(request)) => {
                compared += 1;
                if *want_empty {
                    failures.push(format!("{label}: sent a request for an empty render"));
                    continue;
                }
                if &request.body != want_body {
                    failures.push(format!(
                        "{label}: body differs\n--- golden\n{want_body}\n--- preview\n{}",
                        request.body
                    ));
                }
                if let Some(url) = &want.url
                    && &request.url != url
                {
                    failures.push(format!("{label}: url {} != golden {url}", request.url));
                }
                for (name, value) in &want.headers {
                    let got = request.headers.iter().find(|h| &h.name == name);
                    if got.map(|h| &h.value) != Some(value) {
                        failures.push(format!(
                            "{label}: header {name} = {:?}, golden {value:?}",
                            got.map(|h| &h.value)
                        ));
                    }
                }
            }
            Ok(other) => failures.push(format!("{label}: unexpected {other:?}")),
            Err(error) => failures.push(format!("{label}: {error}")),
        }
    }
    let summary = format!(
        "integration preview vs golden renders: {compared} requests identical in URL, headers and body; {skipped_empty} empty renders correctly not sent; {custom_delivery} custom-delivery (not HTTP) skipped; {} failures\n",
        failures.len()
    );
    println!("{summary}");
    if let Some(dir) = std::env::var_os("FLAGSTAFF_REPORT_DIR") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(Path::new(&dir).join("preview-golden.txt"), summary);
    }
    assert!(compared > 200, "too few comparisons: {compared}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
