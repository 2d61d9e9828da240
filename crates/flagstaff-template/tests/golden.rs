//! Conformance against the golden renders of handlebars.js 4.7.7
//! (`<conformance>/golden/golden.jsonl`, 1,824 rows, read in place).
//!
//! Every row's template source and render context are rebuilt exactly as
//! `golden/README.md` ("How contexts were built") describes, from the catalogue in
//! `<conformance>/integration-framework/` and the synthetic inputs in `golden/inputs.json`.
//! Then:
//!
//! * **JS**: `Compat::Js`, non-strict, must equal `output` byte for byte (or fail when the
//!   reference failed);
//! * **strict**: `Compat::Js` with `strict: true` must succeed exactly when `strictOk`;
//! * **Go**: `Compat::Go`, non-strict, compared with `outputGoCompat ?? output`; reported,
//!   mismatches are printed but do not fail the test.
//!
//! The only rows left out of those counts are the ones whose reference error is the missing
//! `edgeGridAuth` helper (handlebars.js has no such helper; our engine does): they must
//! render a well-formed `EG1-HMAC-SHA256` header in every mode.
//!
//! With `$FLAGSTAFF_REPORT_DIR` set, the counts are also written to
//! `$FLAGSTAFF_REPORT_DIR/template-golden.json` (and the summary lines to `template-golden.txt`,
//! which `scripts/test.sh` prints).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use flagstaff_template::edgegrid::{self, Credentials, Request, SignOptions, SigningClock};
use flagstaff_template::{Compat, RenderOptions, Template, TemplateError, json_escape_context};
use serde_json::{Map, Value, json};

/// How many mismatches of each kind to print in full.
const SHOW: usize = 20;

const CLOCK: SigningClock = SigningClock {
    unix_seconds: 1_580_777_685,
    nonce: "00000000-0000-4000-8000-000000000000",
};

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

fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_text(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn s<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key].as_str().unwrap_or("")
}

/// Everything needed to rebuild rows: the catalogue, the synthetic inputs, caches.
struct Corpus {
    catalogue: PathBuf,
    inputs: Value,
    manifests: HashMap<String, Value>,
    samples: HashMap<String, Value>,
}

impl Corpus {
    fn new(conformance: &Path) -> Corpus {
        Corpus {
            catalogue: conformance.join("integration-framework"),
            inputs: read_json(&conformance.join("golden/inputs.json")),
            manifests: HashMap::new(),
            samples: HashMap::new(),
        }
    }

    fn manifest(&mut self, integration: &str) -> &Value {
        let path = self
            .catalogue
            .join("integrations")
            .join(integration)
            .join("manifest.json");
        self.manifests
            .entry(integration.to_owned())
            .or_insert_with(|| read_json(&path))
    }

    /// The template source of a row: a file under the integration's directory, or the string
    /// at the row's JSON pointer into `manifest.json` (minus the `#<label>` suffix that header
    /// and request-body rows carry).
    fn source(&mut self, row: &Value) -> String {
        let integration = s(row, "integration");
        let template = s(row, "template");
        if s(row, "templateKind") == "file" {
            read_text(
                &self
                    .catalogue
                    .join("integrations")
                    .join(integration)
                    .join(template),
            )
        } else {
            let pointer = template.split('#').next().unwrap_or_default();
            self.manifest(integration)
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{integration}: no template string at {pointer}"))
                .to_owned()
        }
    }

    /// A `sample-context/…` file or a `synthetic/…` entry of `inputs.json`.
    fn event(&mut self, name: &str) -> Value {
        if name.starts_with("sample-context/") {
            let path = self.catalogue.join(name);
            self.samples
                .entry(name.to_owned())
                .or_insert_with(|| read_json(&path))
                .clone()
        } else {
            self.inputs["syntheticContexts"]
                .get(name)
                .unwrap_or_else(|| panic!("unknown synthetic context {name}"))
                .clone()
        }
    }

    /// The render context, exactly as `golden/README.md` describes.
    fn context(&mut self, row: &Value) -> Value {
        let integration = s(row, "integration");
        let capability = s(row, "capability");
        let context_name = s(row, "context");
        let values = self.inputs["formVariableValues"]
            .get(integration)
            .cloned()
            .unwrap_or(Value::Null);
        let form_variables = object(&values["formVariables"][s(row, "variant")]);
        let oauth = if self.manifest(integration)["requiresOAuth"] == json!(true) {
            json!({"baseURI": "$OAUTH_BASE_URI", "accessToken": "$OAUTH_ACCESS_TOKEN"})
        } else {
            Value::Null
        };
        let with_oauth = |mut vars: Map<String, Value>| {
            vars.insert("oauth".into(), oauth.clone());
            vars
        };

        if capability == "featureStore" {
            // {...formVariables, oauth, ...featureStoreFormVariables, _featureStoreKey, envId}
            let mut ctx = with_oauth(form_variables);
            ctx.extend(object(&values["featureStoreFormVariables"]));
            ctx.insert("_featureStoreKey".into(), json!("$_FEATURESTOREKEY"));
            ctx.insert("envId".into(), json!("$ENVID"));
            return Value::Object(ctx);
        }
        if let Some(mode) = row["contextMode"].as_str() {
            // Body-like templates: the event itself (escaped for JSON bodies).
            if context_name == "none" {
                return json!({});
            }
            let mut event = self.event(context_name);
            if mode == "jsonEscaped" {
                event = json_escape_context(&event);
            }
            let Value::Object(mut ctx) = event else {
                panic!("{context_name} is not an object")
            };
            match capability {
                "approval" => {
                    ctx.insert(
                        "environmentFormVariables".into(),
                        values["environmentFormVariables"].clone(),
                    );
                    ctx.insert(
                        "approvalFormVariables".into(),
                        json_escape_context(&values["approvalFormVariables"]),
                    );
                    ctx.insert(
                        "formVariables".into(),
                        Value::Object(with_oauth(form_variables)),
                    );
                }
                "syncedSegment" | "buttonAction" => {}
                _ => {
                    ctx.insert(
                        "formVariables".into(),
                        Value::Object(with_oauth(form_variables)),
                    );
                }
            }
            return Value::Object(ctx);
        }
        if capability == "flagLink" {
            // {deepLink, metadata}
            return self.event(context_name);
        }
        // Endpoint url / header templates.
        let mut ctx = with_oauth(form_variables);
        if context_name != "none" {
            ctx.insert("context".into(), self.event(context_name));
        }
        if capability == "approval" {
            ctx.insert(
                "environment".into(),
                values["environmentFormVariables"].clone(),
            );
        }
        Value::Object(ctx)
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Parse + render (with a fixed EdgeGrid clock), turning an engine panic into an error string
/// so one bad row cannot hide the others.
fn render(source: &str, name: &str, ctx: &Value, options: RenderOptions) -> Result<String, String> {
    let run =
        || -> Result<String, TemplateError> { Template::parse(name, source)?.render(ctx, options) };
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        edgegrid::with_signing_clock(CLOCK, run)
    })) {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("{e} ({:?})", e.kind)),
        Err(panic) => Err(format!(
            "PANIC: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        )),
    }
}

/// `…context…` around the first difference of two strings.
fn compact_diff(expected: &str, actual: &str) -> String {
    let at = expected
        .char_indices()
        .zip(actual.chars())
        .find(|((_, e), a)| e != a)
        .map(|((i, _), _)| i)
        .unwrap_or_else(|| expected.len().min(actual.len()));
    let window = |text: &str| {
        let mut start = at.saturating_sub(60);
        while !text.is_char_boundary(start.min(text.len())) {
            start -= 1;
        }
        let start = start.min(text.len());
        let mut end = (at + 80).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        format!(
            "{}{:?}{}",
            if start > 0 { "…" } else { "" },
            &text[start..end],
            if end < text.len() { "…" } else { "" }
        )
    };
    format!(
        "first difference at byte {at} (expected {} bytes, actual {} bytes)\n      expected: {}\n      actual:   {}",
        expected.len(),
        actual.len(),
        window(expected),
        window(actual)
    )
}

fn describe(index: usize, row: &Value) -> String {
    format!(
        "row {index} [{} | {} | {} | {} | {}]",
        s(row, "integration"),
        s(row, "template"),
        s(row, "context"),
        s(row, "variant"),
        row["contextMode"].as_str().unwrap_or("endpoint"),
    )
}

fn is_edge_grid_row(row: &Value) -> bool {
    s(row, "error").contains("edgeGridAuth") || s(row, "strictError").contains("edgeGridAuth")
}

/// The header our helper must produce for an akamai-edgeworkers row: the template's method
/// and path (its `{{…}}` filled from the context), signed with the context's credentials.
fn expected_edge_grid_header(source: &str, ctx: &Value) -> String {
    let quoted: Vec<&str> = source.split('\'').skip(1).step_by(2).collect();
    let [method, path_template] = quoted[..] else {
        panic!("unexpected edgeGridAuth call: {source}")
    };
    let mut path = path_template.to_owned();
    for key in ["network", "namespaceId", "groupId", "_featureStoreKey"] {
        path = path.replace(&format!("{{{{{key}}}}}"), s(ctx, key));
    }
    assert!(!path.contains("{{"), "unfilled path {path}");
    let credentials = Credentials {
        client_token: s(ctx, "clientToken"),
        client_secret: s(ctx, "clientSecret"),
        access_token: s(ctx, "accessToken"),
    };
    let request = Request {
        method,
        scheme: "https",
        host: s(ctx, "hostname"),
        path_and_query: &path,
        headers: &[],
        body: None,
    };
    edgegrid::sign(
        &request,
        &credentials,
        &SignOptions::default(),
        &edgegrid::format_timestamp(CLOCK.unix_seconds),
        CLOCK.nonce,
    )
    .authorization
}

fn well_formed_edge_grid_header(header: &str) -> bool {
    let Some(rest) = header.strip_prefix("EG1-HMAC-SHA256 ") else {
        return false;
    };
    let fields: Vec<(&str, &str)> = rest.split(';').filter_map(|f| f.split_once('=')).collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    names
        == [
            "client_token",
            "access_token",
            "timestamp",
            "nonce",
            "signature",
        ]
        && fields.iter().all(|(_, v)| !v.is_empty())
        && fields[4].1.len() == 44
        && fields[2].1.len() == "20200204T00:54:45+0000".len()
        && fields[2].1.ends_with("+0000")
}

#[derive(Default)]
struct Tally {
    passed: usize,
    total: usize,
    shown: Vec<String>,
}

impl Tally {
    fn record(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.total += 1;
        if ok {
            self.passed += 1;
        } else if self.shown.len() < SHOW {
            self.shown.push(what());
        }
    }
}

#[test]
fn golden_renders() {
    let conformance = conformance_dir();
    let mut corpus = Corpus::new(&conformance);
    let rows: Vec<Value> = read_text(&conformance.join("golden/golden.jsonl"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden row"))
        .collect();

    let js = RenderOptions {
        strict: false,
        compat: Compat::Js,
    };
    let js_strict = RenderOptions { strict: true, ..js };
    let go = RenderOptions {
        compat: Compat::Go,
        ..js
    };

    // Engine panics are reported per row; keep the default hook from printing each one.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));

    let mut js_tally = Tally::default();
    let mut strict_tally = Tally::default();
    let mut go_tally = Tally::default();
    let mut go_mismatches = Vec::new();
    let mut edge_grid_total = 0;
    let mut edge_grid_ok = 0;
    let mut edge_grid_problems = Vec::new();

    for (index, row) in rows.iter().enumerate() {
        let source = corpus.source(row);
        let ctx = corpus.context(row);
        let name = s(row, "template");

        if is_edge_grid_row(row) {
            edge_grid_total += 1;
            let expected = expected_edge_grid_header(&source, &ctx);
            let results: Vec<(&str, Result<String, String>)> = [
                ("js", js),
                ("js strict", js_strict),
                ("go", go),
                ("go strict", RenderOptions { strict: true, ..go }),
            ]
            .into_iter()
            .map(|(label, options)| (label, render(&source, name, &ctx, options)))
            .collect();
            let mut problems = Vec::new();
            for (label, result) in results {
                match result {
                    Ok(header) if well_formed_edge_grid_header(&header) && header == expected => {}
                    Ok(header) => {
                        problems.push(format!("{label}: {header:?}, expected {expected:?}"))
                    }
                    Err(e) => problems.push(format!("{label}: error {e}")),
                }
            }
            if problems.is_empty() {
                edge_grid_ok += 1;
            } else {
                edge_grid_problems.push(format!(
                    "{}: edgeGridAuth: {}",
                    describe(index, row),
                    problems.join("; ")
                ));
            }
            continue;
        }

        // JS, non-strict: byte-exact output, or an error where the reference failed.
        let actual = render(&source, name, &ctx, js);
        let reference_ok = row["ok"] == json!(true);
        let expected = s(row, "output");
        js_tally.record(
            match &actual {
                Ok(out) => reference_ok && out == expected,
                Err(_) => !reference_ok,
            },
            || match (&actual, reference_ok) {
                (Ok(out), true) => {
                    format!("{}: {}", describe(index, row), compact_diff(expected, out))
                }
                (Ok(out), false) => format!(
                    "{}: expected error {:?}, rendered {:?}",
                    describe(index, row),
                    s(row, "error"),
                    out
                ),
                (Err(e), _) => format!("{}: unexpected error {e}", describe(index, row)),
            },
        );

        // JS, strict: same verdict.
        let strict = render(&source, name, &ctx, js_strict);
        let strict_ok = row["strictOk"] == json!(true);
        strict_tally.record(strict.is_ok() == strict_ok, || {
            format!(
                "{}: strictOk={strict_ok} (reference: {:?}), ours: {}",
                describe(index, row),
                s(row, "strictError"),
                match &strict {
                    Ok(_) => "rendered".to_owned(),
                    Err(e) => format!("error {e}"),
                }
            )
        });

        // Go compat: reported only.
        if reference_ok {
            let expected = row["outputGoCompat"].as_str().unwrap_or(expected);
            let actual = render(&source, name, &ctx, go);
            let matched = actual.as_deref() == Ok(expected);
            if !matched {
                go_mismatches.push(index);
            }
            go_tally.record(matched, || match &actual {
                Ok(out) => format!("{}: {}", describe(index, row), compact_diff(expected, out)),
                Err(e) => format!("{}: unexpected error {e}", describe(index, row)),
            });
        }
    }
    std::panic::set_hook(default_hook);

    let mut report = String::new();
    let mut line = |text: String| {
        report.push_str(&text);
        report.push('\n');
    };
    line(format!("golden rows: {}", rows.len()));
    line(format!(
        "golden js: {}/{} passed",
        js_tally.passed, js_tally.total
    ));
    line(format!(
        "strict verdicts: {}/{} matched",
        strict_tally.passed, strict_tally.total
    ));
    line(format!(
        "go-compat: {}/{} matched",
        go_tally.passed, go_tally.total
    ));
    line(format!(
        "edgeGridAuth rows (reference: missing helper; ours must sign): {edge_grid_ok}/{edge_grid_total} well-formed"
    ));
    for (title, tally) in [
        ("JS mismatches", &js_tally),
        ("strict verdict mismatches", &strict_tally),
        ("Go-compat mismatches (informational)", &go_tally),
    ] {
        let failed = tally.total - tally.passed;
        if failed > 0 {
            line(format!(
                "\n{title}: {failed} (first {}):",
                tally.shown.len()
            ));
            for shown in &tally.shown {
                line(format!("  {shown}"));
            }
        }
    }
    if !go_mismatches.is_empty() {
        line(format!("Go-compat mismatching rows: {go_mismatches:?}"));
    }
    for problem in &edge_grid_problems {
        line(format!("  {problem}"));
    }
    println!("{report}");

    if let Some(dir) = std::env::var_os("FLAGSTAFF_REPORT_DIR") {
        let counts = json!({
            "rows": rows.len(),
            "golden_js": {"passed": js_tally.passed, "total": js_tally.total},
            "strict_verdicts": {"matched": strict_tally.passed, "total": strict_tally.total},
            "go_compat": {
                "matched": go_tally.passed,
                "total": go_tally.total,
                "mismatching_rows": go_mismatches,
            },
            "edge_grid_rows": {"well_formed": edge_grid_ok, "total": edge_grid_total},
        });
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(
            Path::new(&dir).join("template-golden.json"),
            serde_json::to_string_pretty(&counts).unwrap_or_default() + "\n",
        );
        // scripts/test.sh prints the `*.txt` reports: the summary lines.
        let summary: Vec<&str> = report.lines().take(5).collect();
        let _ = std::fs::write(
            Path::new(&dir).join("template-golden.txt"),
            format!(
                "flagstaff-template golden renders (handlebars.js 4.7.7)\n{}\n",
                summary.join("\n")
            ),
        );
    }

    assert_eq!(rows.len(), 1824, "golden row count");
    assert_eq!(edge_grid_total, 2, "edgeGridAuth row count");
    assert!(
        js_tally.passed == js_tally.total
            && strict_tally.passed == strict_tally.total
            && edge_grid_problems.is_empty(),
        "golden conformance failures:\n{report}"
    );
}
