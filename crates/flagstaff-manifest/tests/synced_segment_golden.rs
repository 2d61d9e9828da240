//! Every synced-segment run of the reference validation server recorded in
//! `golden/synced-segment-parse.jsonl` gives the same outcome here: status, segment key,
//! parsed batch and rendered response body. The one documented server bug (a falsy
//! `"value": false` refused as missing) is the single expected difference.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use flagstaff_manifest::synced_segment::{
    ResponseTarget, parse_request, render_response, response_context,
};
use flagstaff_manifest::{LintOptions, SampleContexts, load_integration};
use flagstaff_template::Compat;
use serde_json::{Value, json};

fn conformance_dir() -> PathBuf {
    std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance")
        })
}

/// The reference server's response context (it has no real project or environment).
fn reference_target(environment_id: &str, segment_key: &str) -> ResponseTarget {
    ResponseTarget {
        project_key: "default".into(),
        environment_key: environment_id.into(),
        segment_key: segment_key.into(),
        segment_url: format!(
            "https://app.launchdarkly.com/default/production/segments/{segment_key}/targeting"
        ),
    }
}

#[test]
fn synced_segment_parse_matches_the_reference_server() {
    let root = conformance_dir();
    let catalogue = root.join("integration-framework");
    let samples = SampleContexts::load(&catalogue.join("sample-context")).unwrap();
    let rows = std::fs::read_to_string(root.join("golden/synced-segment-parse.jsonl")).unwrap();
    let mut failures = Vec::new();
    let mut matched = 0;
    let mut documented_bug = 0;
    let mut covered = BTreeSet::new();
    for line in rows.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let key = row["integration"].as_str().unwrap();
        let label = format!("{key}/{}", row["case"].as_str().unwrap());
        covered.insert(key.to_string());
        let integration = load_integration(
            &catalogue.join("integrations").join(key),
            &samples,
            &LintOptions::default(),
        )
        .integration
        .expect("catalogue integration loads");
        let capability = integration
            .manifest
            .capabilities
            .as_ref()
            .and_then(|c| c.synced_segment.as_ref())
            .expect("syncedSegment capability");
        let request = &row["request"];
        let parsed = parse_request(&capability.request_parser, request);
        if label == "amplitude/removeFalse" {
            // Reference-server bug (spec §2.4): "required" is tested with JS falsiness, so a
            // removal (`"value": false`) is refused as "could not find path /value". Removal
            // must work: Flagstaff parses it as a removal.
            assert_eq!(row["status"], 400);
            let parsed = parsed.expect("a removal parses");
            assert_eq!(parsed.batch.len(), 1);
            assert!(!parsed.batch[0].value);
            assert_eq!(parsed.segment_key(key).as_deref(), Some("amplitude-c1"));
            documented_bug += 1;
            continue;
        }
        let (status, segment_key, parsed_json, error) = match &parsed {
            Ok(p) => (
                200,
                p.segment_key(key),
                serde_json::to_value(p).unwrap(),
                None,
            ),
            Err(e) => (400, None, Value::Null, Some(e.to_string())),
        };
        if row["status"] != json!(status) {
            failures.push(format!(
                "{label}: status {status} ({error:?}), golden {}",
                row["status"]
            ));
            continue;
        }
        if row["segmentKey"] != json!(segment_key) {
            failures.push(format!(
                "{label}: segment key {segment_key:?}, golden {}",
                row["segmentKey"]
            ));
        }
        if row["parsed"] != parsed_json {
            failures.push(format!(
                "{label}: parsed {parsed_json}, golden {}",
                row["parsed"]
            ));
        }
        let environment_id = parsed
            .as_ref()
            .map(|p| p.environment_id.clone())
            .unwrap_or_default();
        let context = response_context(
            request,
            status,
            error.as_deref(),
            &reference_target(&environment_id, segment_key.as_deref().unwrap_or_default()),
        );
        let body = render_response(&integration, &context, Compat::Js).unwrap();
        if body.as_ref().unwrap_or(&Value::Null) != &row["responseBody"] {
            failures.push(format!(
                "{label}: response {body:?}, golden {}",
                row["responseBody"]
            ));
        }
        matched += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{matched} runs match, {documented_bug} documented reference bug, {} integrations",
        covered.len()
    );
    assert_eq!(matched + documented_bug, rows.lines().count());
}

/// Beyond the recorded runs: every syncedSegment integration in the catalogue reads back the
/// adds and removals of a payload shaped by its own parser, into one segment.
#[test]
fn every_synced_segment_integration_reads_adds_and_removals() {
    let catalogue = conformance_dir().join("integration-framework");
    let samples = SampleContexts::load(&catalogue.join("sample-context")).unwrap();
    let mut checked = 0;
    for dir in flagstaff_manifest::integration_dirs(&catalogue.join("integrations")).unwrap() {
        let Some(integration) =
            load_integration(&dir, &samples, &LintOptions::default()).integration
        else {
            continue;
        };
        let Some(capability) = integration
            .manifest
            .capabilities
            .as_ref()
            .and_then(|c| c.synced_segment.as_ref())
        else {
            continue;
        };
        let add: Vec<String> = vec!["a1".into(), "a2".into()];
        let remove: Vec<String> = vec!["r1".into()];
        let parser = &capability.request_parser;
        let requests = flagstaff_manifest::synced_segment::sample_requests(
            parser,
            "env-1",
            "account",
            "cohort-9",
            "Cohort nine",
            &add,
            &remove,
        );
        assert!(!requests.is_empty(), "{}: no request", integration.key);
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for request in &requests {
            let parsed = parse_request(parser, request)
                .unwrap_or_else(|e| panic!("{}: {e}\n{request}", integration.key));
            assert_eq!(parsed.environment_id, "env-1");
            let want_kind = if parser.context_kind_path.is_some() {
                "account"
            } else {
                "user"
            };
            assert_eq!(parsed.context_kind, want_kind, "{}", integration.key);
            let cohorts = parsed.cohorts();
            assert_eq!(cohorts.len(), 1, "{}", integration.key);
            assert_eq!(
                parsed.segment_key(&integration.key),
                Some(format!("{}-cohort-9", integration.key))
            );
            assert_eq!(cohorts[0].cohort_name, "Cohort nine");
            added.extend(cohorts[0].add.iter().map(|s| s.to_string()));
            removed.extend(cohorts[0].remove.iter().map(|s| s.to_string()));
        }
        assert_eq!(added, add, "{}", integration.key);
        assert_eq!(removed, remove, "{}", integration.key);
        checked += 1;
    }
    println!("{checked} syncedSegment integrations");
    assert!(
        checked >= 10,
        "only {checked} syncedSegment integrations found"
    );
}
