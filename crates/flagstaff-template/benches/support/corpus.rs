//! The render benchmark workload, shared by `benches/render.rs` and
//! `examples/render_corpus.rs` (and mirrored by `bench/template-js/bench.js` for handlebars.js):
//! every `auditLogEventsHook` template file of the conformance catalogue, parsed once, × the 17
//! sample contexts (JSON-escaped for `.json`/`.json.hbs` templates), each with `formVariables`
//! = `{...formVariableValues[integration].formVariables.defaults, oauth}` from
//! `golden/inputs.json`. Contexts are prepared up front.

use std::path::{Path, PathBuf};

use flagstaff_template::{Template, is_json_template_name, json_escape_context};
use serde_json::{Map, Value, json};

pub struct Workload {
    pub templates: usize,
    pub contexts: usize,
    pub jobs: Vec<(Template, Value)>,
}

pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("FLAGSTAFF_CONFORMANCE_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sorted_dir(path: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", path.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries
}

pub fn load() -> Workload {
    let conformance = conformance_dir();
    let catalogue = conformance.join("integration-framework");
    let inputs = read_json(&conformance.join("golden/inputs.json"));

    let mut samples = Vec::new();
    for group in sorted_dir(&catalogue.join("sample-context")) {
        for file in sorted_dir(&group) {
            samples.push(read_json(&file));
        }
    }

    let mut jobs = Vec::new();
    let mut templates = 0;
    for dir in sorted_dir(&catalogue.join("integrations")) {
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.is_file() {
            continue;
        }
        let manifest = read_json(&manifest_path);
        let Some(files) = manifest["capabilities"]["auditLogEventsHook"]["templates"].as_object()
        else {
            continue;
        };
        let mut files: Vec<&str> = files.values().filter_map(Value::as_str).collect();
        files.sort_unstable();
        files.dedup();
        let integration = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut form_variables: Map<String, Value> =
            inputs["formVariableValues"][&integration]["formVariables"]["defaults"]
                .as_object()
                .cloned()
                .unwrap_or_default();
        let oauth = if manifest["requiresOAuth"] == json!(true) {
            json!({"baseURI": "$OAUTH_BASE_URI", "accessToken": "$OAUTH_ACCESS_TOKEN"})
        } else {
            Value::Null
        };
        form_variables.insert("oauth".to_owned(), oauth);
        let form_variables = Value::Object(form_variables);
        for file in files {
            let source = std::fs::read_to_string(dir.join(file)).expect("template file");
            let name = format!("{integration}/{file}");
            let template = Template::parse(&name, &source)
                .unwrap_or_else(|e| panic!("catalogue template does not parse: {e}"));
            templates += 1;
            for sample in &samples {
                let mut context = if is_json_template_name(file) {
                    json_escape_context(sample)
                } else {
                    sample.clone()
                };
                if let Some(object) = context.as_object_mut() {
                    object.insert("formVariables".to_owned(), form_variables.clone());
                }
                jobs.push((template.clone(), context));
            }
        }
    }
    Workload {
        templates,
        contexts: samples.len(),
        jobs,
    }
}
