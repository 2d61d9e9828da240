//! LaunchDarkly's sdk-test-harness evaluation data (`shared/conformance/sdk-eval`, read in
//! place), expanded as the harness does (spec §5.2: raw-text placeholder substitution,
//! parameter sets and cartesian products, YAML merge keys, Go-default leniency for partial
//! flags), and run through the evaluator.
//!
//! Every server-side case is run (728), including the `strongly-typed` ones through
//! [`Detail::typed`], and each is checked three more ways: with the context re-expressed in the
//! old user format where possible, against a store rebuilt from the canonical JSON of every
//! flag and segment, and by parsing that canonical JSON with LaunchDarkly's Rust evaluator
//! crate (which rejects payloads missing required fields). The client-side files hold
//! precomputed results; they are served as a client-side SDK would serve them (typed access
//! included).

use std::collections::BTreeMap;
use std::path::PathBuf;

use flagstaff_eval::{
    Context, Detail, ErrorKind, Flag, InMemoryStore, Reason, SdkData, Segment, ValueType,
    evaluate_key, json_eq,
};
use serde_json::{Map, Value, json};

fn conformance_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "conformance data directory not found: tried {} (from $FLAGSTAFF_CONFORMANCE_DIR)",
            dir.display()
        );
        return dir;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance");
    assert!(
        dir.is_dir(),
        "conformance data directory not found: tried {} (default: <workspace root>/../shared/conformance; set $FLAGSTAFF_CONFORMANCE_DIR to override)",
        dir.display()
    );
    dir
}

fn yaml_to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().expect("number"))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// Parses YAML (JSON is YAML), applying merge keys.
fn load(text: &str) -> Value {
    let mut v: serde_yaml::Value =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("YAML: {e}\n{text}"));
    v.apply_merge().expect("YAML merge keys");
    yaml_to_json(v)
}

/// The harness's substitution (spec §5.2 step 4).
fn subst(text: &str, vars: &Map<String, Value>) -> String {
    let mut text = text.replace("\\u003c", "<").replace("\\u003e", ">");
    for (name, value) in vars {
        let json = serde_json::to_string(value).expect("JSON");
        text = text.replace(&format!("\"<{name}>\""), &json);
        let bare = match value {
            Value::String(s) => s.as_str(),
            _ => json.as_str(),
        };
        text = text.replace(&format!("<{name}>"), bare);
    }
    text
}

fn parameter_sets(params: Option<&Value>) -> Vec<Map<String, Value>> {
    let Some(Value::Array(items)) = params else {
        return Vec::new();
    };
    if items.iter().all(Value::is_object) {
        return items
            .iter()
            .map(|i| i.as_object().expect("object").clone())
            .collect();
    }
    // A list of lists: the cartesian product, maps merged in order.
    let mut product = vec![Map::new()];
    for group in items {
        let group = group
            .as_array()
            .expect("parameters: list of maps or of lists");
        let mut next = Vec::new();
        for base in &product {
            for choice in group {
                let mut m = base.clone();
                for (k, v) in choice.as_object().expect("parameter map") {
                    m.insert(k.clone(), v.clone());
                }
                next.push(m);
            }
        }
        product = next;
    }
    product
}

/// The expanded suites of one file.
fn expand(raw: &str) -> Vec<Value> {
    let doc = load(raw);
    let constants = doc
        .get("constants")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let sets = parameter_sets(doc.get("parameters"));
    let texts: Vec<String> = if sets.is_empty() {
        if constants.is_empty() {
            vec![raw.to_owned()]
        } else {
            vec![subst(raw, &constants)]
        }
    } else {
        sets.iter()
            .map(|p| subst(&subst(&subst(raw, &constants), p), &constants))
            .collect()
    };
    texts.iter().map(|t| load(t)).collect()
}

/// The harness's normalisation: key from the map key, version 1 if unset.
fn sdk_data(suite: &Value) -> SdkData {
    let mut data = SdkData::default();
    let sdk = suite.get("sdkData");
    if let Some(flags) = sdk.and_then(|d| d.get("flags")).and_then(Value::as_object) {
        for (key, v) in flags {
            let mut flag: Flag = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("flag {key}: {e}: {v}"));
            flag.key = key.clone();
            if flag.version == 0 {
                flag.version = 1;
            }
            data.flags.insert(key.clone(), flag);
        }
    }
    if let Some(segments) = sdk
        .and_then(|d| d.get("segments"))
        .and_then(Value::as_object)
    {
        for (key, v) in segments {
            let mut segment: Segment = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("segment {key}: {e}: {v}"));
            segment.key = key.clone();
            if segment.version == 0 {
                segment.version = 1;
            }
            data.segments.insert(key.clone(), segment);
        }
    }
    data
}

/// The old-user form of a single `user` context, if it has one.
fn as_old_user(context: &Value) -> Option<Value> {
    let obj = context.as_object()?;
    if obj.get("kind")?.as_str()? != "user" || obj.contains_key("_meta") {
        return None;
    }
    let mut user = Map::new();
    let mut custom = Map::new();
    for (k, v) in obj {
        match k.as_str() {
            "kind" => {}
            "key" | "name" | "anonymous" => {
                user.insert(k.clone(), v.clone());
            }
            "custom"
            | "secondary"
            | "privateAttributeNames"
            | "firstName"
            | "lastName"
            | "email"
            | "country"
            | "avatar"
            | "ip" => {
                if v.is_string()
                    && k != "custom"
                    && k != "privateAttributeNames"
                    && k != "secondary"
                {
                    user.insert(k.clone(), v.clone());
                } else {
                    return None;
                }
            }
            _ => {
                custom.insert(k.clone(), v.clone());
            }
        }
    }
    user.insert("custom".into(), Value::Object(custom));
    Some(Value::Object(user))
}

/// The harness infers a missing default from the flag's variation type.
fn inferred_default(data: &SdkData, flag_key: &str) -> Value {
    match data.flags.get(flag_key).and_then(|f| f.variations.first()) {
        Some(Value::Bool(_)) => json!(false),
        Some(Value::Number(_)) => json!(0),
        Some(Value::String(_)) => json!(""),
        _ => Value::Null,
    }
}

struct Outcome {
    value: Value,
    variation_index: Option<u64>,
    reason: Value,
}

fn outcome(detail: &Detail<'_>) -> Outcome {
    Outcome {
        value: detail.value_or_null().clone(),
        variation_index: detail.variation_index.map(|i| i as u64),
        reason: detail.reason_json(),
    }
}

fn check(expect: &Value, got: &Outcome) -> Result<(), String> {
    let want_value = expect.get("value").cloned().unwrap_or(Value::Null);
    let want_index = expect.get("variationIndex").and_then(Value::as_u64);
    let want_reason = expect.get("reason").cloned().unwrap_or(Value::Null);
    if !json_eq(&want_value, &got.value)
        || want_index != got.variation_index
        || !json_eq(&want_reason, &got.reason)
    {
        return Err(format!(
            "expected value={want_value} variationIndex={want_index:?} reason={want_reason}\n     got value={} variationIndex={:?} reason={}",
            got.value, got.variation_index, got.reason
        ));
    }
    Ok(())
}

fn evaluate_case(store: &InMemoryStore, data: &SdkData, case: &Value, context: &Value) -> Outcome {
    let flag_key = case["flagKey"].as_str().expect("flagKey");
    let default = match case.get("default") {
        None | Some(Value::Null) => inferred_default(data, flag_key),
        Some(d) => d.clone(),
    };
    let detail = match Context::from_json(context) {
        Ok(ctx) => evaluate_key(store, flag_key, &ctx),
        Err(_) => Detail::error(ErrorKind::UserNotSpecified),
    };
    let detail = match case.get("valueType").and_then(Value::as_str) {
        Some(t) => detail.typed(ValueType::parse(t).expect("valueType"), default),
        None => detail.or_default(default),
    };
    outcome(&detail)
}

#[derive(Default)]
struct Tally {
    ran: usize,
    passed: usize,
    old_user_checks: usize,
    roundtrip_checks: usize,
    /// Expected reason kinds (`ERROR/<errorKind>` for errors).
    expected_kinds: BTreeMap<String, usize>,
}

fn run_server_file(name: &str, raw: &str, failures: &mut Vec<String>) -> Tally {
    let mut tally = Tally::default();
    for suite in expand(raw) {
        let suite_name = suite["name"].as_str().unwrap_or("?").to_owned();
        let data = sdk_data(&suite);
        // Canonical JSON must be accepted by LaunchDarkly's own (strict) Rust evaluator crate.
        let canonical = serde_json::to_string(&data).expect("serialise");
        for (key, flag) in &data.flags {
            let text = serde_json::to_string(flag).expect("flag JSON");
            if let Err(e) = serde_json::from_str::<launchdarkly_server_sdk_evaluation::Flag>(&text)
            {
                failures.push(format!(
                    "{name} / {suite_name}: LD crate rejects flag {key}: {e}\n  {text}"
                ));
            }
        }
        for (key, segment) in &data.segments {
            let text = serde_json::to_string(segment).expect("segment JSON");
            if let Err(e) =
                serde_json::from_str::<launchdarkly_server_sdk_evaluation::Segment>(&text)
            {
                failures.push(format!(
                    "{name} / {suite_name}: LD crate rejects segment {key}: {e}\n  {text}"
                ));
            }
        }
        let roundtrip_store =
            InMemoryStore::from_data(serde_json::from_str(&canonical).expect("reparse"));
        let store = InMemoryStore::from_data(data.clone());
        for case in suite["evaluations"].as_array().expect("evaluations") {
            tally.ran += 1;
            let reason = &case["expect"]["reason"];
            let kind = match reason["kind"].as_str().expect("reason kind") {
                "ERROR" => format!("ERROR/{}", reason["errorKind"].as_str().unwrap_or("?")),
                k => k.to_owned(),
            };
            *tally.expected_kinds.entry(kind).or_default() += 1;
            let case_name = case
                .get("name")
                .and_then(Value::as_str)
                .or(case["flagKey"].as_str())
                .unwrap_or("?");
            let label = format!("{name} / {suite_name} / {case_name}");
            let context = &case["context"];
            let got = evaluate_case(&store, &data, case, context);
            let mut ok = true;
            if let Err(e) = check(&case["expect"], &got) {
                failures.push(format!("{label}\n     {e}"));
                ok = false;
            }
            if let Some(old) = as_old_user(context) {
                tally.old_user_checks += 1;
                if let Err(e) = check(&case["expect"], &evaluate_case(&store, &data, case, &old)) {
                    failures.push(format!("{label} (as old user {old})\n     {e}"));
                    ok = false;
                }
            }
            tally.roundtrip_checks += 1;
            if let Err(e) = check(
                &case["expect"],
                &evaluate_case(&roundtrip_store, &data, case, context),
            ) {
                failures.push(format!("{label} (canonical JSON round trip)\n     {e}"));
                ok = false;
            }
            if ok {
                tally.passed += 1;
            }
        }
    }
    tally
}

/// Client-side data is precomputed: serve it as a client-side SDK does.
fn run_client_file(name: &str, raw: &str, failures: &mut Vec<String>) -> Tally {
    let mut tally = Tally::default();
    for suite in expand(raw) {
        let suite_name = suite["name"].as_str().unwrap_or("?").to_owned();
        let flags: BTreeMap<String, Value> = suite
            .get("sdkData")
            .and_then(Value::as_object)
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default();
        Context::from_json(&suite["context"]).expect("suite context");
        for case in suite["evaluations"].as_array().expect("evaluations") {
            tally.ran += 1;
            let flag_key = case["flagKey"].as_str().expect("flagKey");
            let default = case.get("default").cloned().unwrap_or(Value::Null);
            let value_type = case
                .get("valueType")
                .and_then(Value::as_str)
                .map(|t| ValueType::parse(t).expect("valueType"));
            let got = match flags.get(flag_key) {
                None => outcome(&Detail::error(ErrorKind::FlagNotFound).or_default(default)),
                Some(result) => {
                    let value = result.get("value").cloned().unwrap_or(Value::Null);
                    if value_type.is_some_and(|t| !t.accepts(&value)) {
                        outcome(
                            &Detail {
                                value: None,
                                variation_index: None,
                                reason: Reason::Error {
                                    error_kind: ErrorKind::WrongType,
                                },
                                big_segments_status: None,
                            }
                            .or_default(default),
                        )
                    } else {
                        Outcome {
                            value,
                            variation_index: result.get("variation").and_then(Value::as_u64),
                            reason: result.get("reason").cloned().unwrap_or(Value::Null),
                        }
                    }
                }
            };
            match check(&case["expect"], &got) {
                Ok(()) => tally.passed += 1,
                Err(e) => failures.push(format!("{name} / {suite_name} / {flag_key}\n     {e}")),
            }
        }
    }
    tally
}

fn yaml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn sdk_eval_conformance() {
    let base = conformance_dir().join("sdk-eval/data/data-files");
    let mut failures = Vec::new();
    let mut report = String::new();
    let mut totals = BTreeMap::new();
    for (side, runner) in [
        (
            "server-side-eval",
            run_server_file as fn(&str, &str, &mut Vec<String>) -> Tally,
        ),
        ("client-side-eval", run_client_file),
    ] {
        let files = yaml_files(&base.join(side));
        assert!(
            !files.is_empty(),
            "no YAML files in {}",
            base.join(side).display()
        );
        let mut total = Tally::default();
        report.push_str(&format!("{side} ({} files):\n", files.len()));
        for file in &files {
            let name = file
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let raw = std::fs::read_to_string(file).expect("read YAML");
            let t = runner(&name, &raw, &mut failures);
            assert!(t.ran > 0, "{name}: no cases found");
            report.push_str(&format!(
                "  {name:<38} ran {:>4}  passed {:>4}  (+{} old-user, +{} round-trip re-checks)\n",
                t.ran, t.passed, t.old_user_checks, t.roundtrip_checks
            ));
            total.ran += t.ran;
            total.passed += t.passed;
            total.old_user_checks += t.old_user_checks;
            total.roundtrip_checks += t.roundtrip_checks;
            for (k, n) in t.expected_kinds {
                *total.expected_kinds.entry(k).or_default() += n;
            }
        }
        report.push_str(&format!(
            "  {:<38} ran {:>4}  passed {:>4}  skipped 0  (+{} old-user, +{} round-trip re-checks)\n",
            "total", total.ran, total.passed, total.old_user_checks, total.roundtrip_checks
        ));
        if !total.expected_kinds.is_empty() {
            report.push_str(&format!("  expected reasons: {:?}\n", total.expected_kinds));
        }
        totals.insert(side, (total.ran, total.expected_kinds));
    }
    println!("{report}");
    // The test runner captures output of passing tests; the suite script prints these files.
    if let Some(dir) = std::env::var_os("FLAGSTAFF_REPORT_DIR") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            std::path::Path::new(&dir).join("sdk-eval-conformance.txt"),
            format!("sdk-test-harness evaluation conformance\n{report}"),
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n\n{report}",
        failures.len(),
        failures.join("\n")
    );
    // The counts the spec (§5.3) reports for this data.
    assert_eq!(totals["server-side-eval"].0, 728, "server-side case count");
    assert_eq!(totals["client-side-eval"].0, 30, "client-side case count");
    let expected_kinds: BTreeMap<String, usize> = [
        ("FALLTHROUGH", 447),
        ("RULE_MATCH", 169),
        ("TARGET_MATCH", 26),
        ("OFF", 14),
        ("PREREQUISITE_FAILED", 6),
        ("ERROR/MALFORMED_FLAG", 50),
        ("ERROR/FLAG_NOT_FOUND", 10),
        ("ERROR/WRONG_TYPE", 6),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_owned(), n))
    .collect();
    assert_eq!(
        totals["server-side-eval"].1, expected_kinds,
        "expected reason kinds"
    );
}
