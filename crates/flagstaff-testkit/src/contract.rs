//! Contract checks against LaunchDarkly's published OpenAPI 3.0.3 description of REST API v2
//! (`<conformance>/ld-openapi/ld-openapi.json`, read in place).
//!
//! [`OpenApiContract::check`] maps a concrete request (`GET /api/v2/flags/default/my-flag?env=x`)
//! to the spec operation (`getFeatureFlag`), picks the response declared for the status code and
//! validates the body against its `application/json` schema, converted from OpenAPI 3.0 to JSON
//! Schema (draft 7):
//!
//! * `#/components/schemas/X` references become `#/definitions/X`; only the definitions reachable
//!   from the response schema are put into the compiled root (recursive schemas are fine);
//! * `nullable: true` adds `null` to `type` (and `enum`), or wraps the schema in
//!   `anyOf: [{type: null}, ...]` when it has no `type`;
//! * OpenAPI-only keywords are dropped: `example`, `discriminator`, `xml`, `externalDocs`,
//!   `readOnly`, `writeOnly`, `deprecated`, `x-*`. Conversion follows the schema structure, so a
//!   *property* named `example` or `xml` is kept;
//! * draft 7 ignores the siblings of `$ref`, as OpenAPI 3.0 does;
//! * additional properties are allowed unless the schema says `additionalProperties: false`;
//! * `format` is checked for the formats the validator knows (`date-time`, `uuid`, …); the
//!   OpenAPI-only formats (`int64`, `double`, `float`, …) are ignored.
//!
//! Each response schema is compiled once per process and cached by operation id and status key.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::conformance::conformance_path;

/// Relative location of the OpenAPI description inside the conformance directory.
pub const OPENAPI_RELATIVE_PATH: &str = "ld-openapi/ld-openapi.json";

/// Environment variable naming the directory that receives contract coverage files.
pub const COVERAGE_DIR_ENV: &str = "FLAGSTAFF_CONTRACT_COVERAGE_DIR";

const MAX_ERRORS: usize = 50;
const MAX_MESSAGE_CHARS: usize = 400;
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Result of checking one response against the OpenAPI description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractOutcome {
    /// The operation and status are documented and the body matches the declared schema
    /// (or the spec declares no body for this status and none was sent).
    Valid { operation_id: String },
    /// The body does not match the declared schema; one message per problem, each starting with
    /// the JSON pointer of the offending value.
    Invalid {
        operation_id: String,
        errors: Vec<String>,
    },
    /// No operation in the spec has this method and path (Flagstaff has non-spec routes).
    UndocumentedOperation,
    /// The operation exists but declares neither this status code nor a `default` response.
    UndocumentedStatus { operation_id: String },
}

impl ContractOutcome {
    /// The matched operation id, if any.
    pub fn operation_id(&self) -> Option<&str> {
        match self {
            ContractOutcome::Valid { operation_id }
            | ContractOutcome::Invalid { operation_id, .. }
            | ContractOutcome::UndocumentedStatus { operation_id } => Some(operation_id),
            ContractOutcome::UndocumentedOperation => None,
        }
    }

    /// `true` for [`ContractOutcome::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, ContractOutcome::Valid { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug)]
struct Operation {
    id: String,
    /// Status key (`"200"`, `"4XX"`, `"default"`) → raw OpenAPI `application/json` schema
    /// (`None` when the response declares no JSON content).
    responses: HashMap<String, Option<Value>>,
}

#[derive(Debug)]
struct Route {
    template: String,
    segments: Vec<Segment>,
    /// Lower-case method → operation.
    operations: HashMap<String, Operation>,
}

/// A compiled response schema (or the reason it could not be compiled).
enum Compiled {
    NoSchema,
    Schema(Box<jsonschema::Validator>),
    Broken(String),
}

/// The LaunchDarkly OpenAPI description, indexed for response checks.
pub struct OpenApiContract {
    source: PathBuf,
    routes: Vec<Route>,
    /// Converted component schemas, keyed by component name.
    definitions: Map<String, Value>,
    cache: Mutex<HashMap<String, Arc<Compiled>>>,
}

impl std::fmt::Debug for OpenApiContract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApiContract")
            .field("source", &self.source)
            .field("paths", &self.routes.len())
            .field("operations", &self.operation_count())
            .field("schemas", &self.definitions.len())
            .finish_non_exhaustive()
    }
}

impl OpenApiContract {
    /// The process-wide contract, loaded on first use from
    /// `<conformance dir>/ld-openapi/ld-openapi.json`.
    ///
    /// # Panics
    ///
    /// When the file is missing or is not a usable OpenAPI document.
    pub fn global() -> &'static OpenApiContract {
        static GLOBAL: OnceLock<OpenApiContract> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let path = conformance_path(OPENAPI_RELATIVE_PATH);
            OpenApiContract::from_path(&path).unwrap_or_else(|e| panic!("{e}"))
        })
    }

    /// Load an OpenAPI 3.0 JSON document from a file.
    pub fn from_path(path: &Path) -> Result<OpenApiContract, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read OpenAPI description {}: {e}", path.display()))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("cannot parse OpenAPI description {}: {e}", path.display()))?;
        let mut contract = OpenApiContract::from_document(&doc)
            .map_err(|e| format!("unusable OpenAPI description {}: {e}", path.display()))?;
        contract.source = path.to_path_buf();
        Ok(contract)
    }

    /// Index an already parsed OpenAPI 3.0 document.
    pub fn from_document(doc: &Value) -> Result<OpenApiContract, String> {
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("no `paths` object")?;
        let mut routes = Vec::with_capacity(paths.len());
        for (template, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let mut operations = HashMap::new();
            for (method, op) in item {
                let method = method.to_ascii_lowercase();
                if !HTTP_METHODS.contains(&method.as_str()) {
                    continue;
                }
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{} {template}", method.to_ascii_uppercase()));
                let mut responses = HashMap::new();
                if let Some(rs) = op.get("responses").and_then(Value::as_object) {
                    for (status, resp) in rs {
                        let resp = resolve_local_ref(doc, resp);
                        let schema = resp
                            .get("content")
                            .and_then(Value::as_object)
                            .and_then(json_content)
                            .and_then(|c| c.get("schema"))
                            .cloned();
                        let status = if status.eq_ignore_ascii_case("default") {
                            "default".to_owned()
                        } else {
                            status.to_ascii_uppercase()
                        };
                        responses.insert(status, schema);
                    }
                }
                operations.insert(method, Operation { id, responses });
            }
            routes.push(Route {
                template: template.clone(),
                segments: split_segments(template)
                    .into_iter()
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_owned())
                        }
                    })
                    .collect(),
                operations,
            });
        }
        let mut definitions = Map::new();
        if let Some(schemas) = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
        {
            for (name, schema) in schemas {
                definitions.insert(name.clone(), convert_schema(schema));
            }
        }
        Ok(OpenApiContract {
            source: PathBuf::new(),
            routes,
            definitions,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Number of operations (method + path) in the description.
    pub fn operation_count(&self) -> usize {
        self.routes.iter().map(|r| r.operations.len()).sum()
    }

    /// All operation ids, sorted.
    pub fn operation_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .routes
            .iter()
            .flat_map(|r| r.operations.values().map(|o| o.id.as_str()))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The operation id a request maps to (`None` when undocumented).
    pub fn operation_id(&self, method: &str, path_and_query: &str) -> Option<&str> {
        self.find_operation(method, path_and_query)
            .map(|(_, op)| op.id.as_str())
    }

    /// The path template a request path maps to, e.g. `/api/v2/flags/{projectKey}/{featureFlagKey}`
    /// (regardless of method).
    pub fn path_template(&self, path_and_query: &str) -> Option<&str> {
        self.find_route(path_and_query).map(|r| r.template.as_str())
    }

    /// Check one response against the description.
    pub fn check(
        &self,
        method: &str,
        path_and_query: &str,
        status: u16,
        body: Option<&Value>,
    ) -> ContractOutcome {
        let Some((_, op)) = self.find_operation(method, path_and_query) else {
            return ContractOutcome::UndocumentedOperation;
        };
        let operation_id = op.id.clone();
        let Some((status_key, schema)) = select_response(op, status) else {
            return ContractOutcome::UndocumentedStatus { operation_id };
        };
        let compiled = self.compiled(op, status_key, schema.as_ref());
        match (&*compiled, body) {
            (Compiled::NoSchema, Some(b)) if status == 204 && !b.is_null() => {
                ContractOutcome::Invalid {
                    operation_id,
                    errors: vec![format!(
                        "status 204 must not carry a body, got {}",
                        truncate(&b.to_string(), MAX_MESSAGE_CHARS)
                    )],
                }
            }
            // The spec documents no JSON body for this status: nothing to check.
            (Compiled::NoSchema, _) => ContractOutcome::Valid { operation_id },
            (Compiled::Broken(why), _) => ContractOutcome::Invalid {
                operation_id,
                errors: vec![format!(
                    "contract checker could not compile the response schema for status {status_key}: {why}"
                )],
            },
            (Compiled::Schema(_), None) => ContractOutcome::Invalid {
                operation_id,
                errors: vec![format!(
                    "the spec declares an application/json body for status {status_key}, but the response has none"
                )],
            },
            (Compiled::Schema(validator), Some(body)) => {
                let errors = collect_errors(validator, body);
                if errors.is_empty() {
                    ContractOutcome::Valid { operation_id }
                } else {
                    ContractOutcome::Invalid {
                        operation_id,
                        errors,
                    }
                }
            }
        }
    }

    fn find_route(&self, path_and_query: &str) -> Option<&Route> {
        let path = strip_query(path_and_query);
        let segments = split_segments(path);
        self.routes
            .iter()
            .filter(|r| route_matches(&r.segments, &segments))
            // Prefer literal segments over parameters, leftmost first.
            .max_by(|a, b| specificity(&a.segments).cmp(&specificity(&b.segments)))
    }

    fn find_operation(&self, method: &str, path_and_query: &str) -> Option<(&Route, &Operation)> {
        let route = self.find_route(path_and_query)?;
        let op = route.operations.get(&method.to_ascii_lowercase())?;
        Some((route, op))
    }

    fn compiled(&self, op: &Operation, status_key: &str, schema: Option<&Value>) -> Arc<Compiled> {
        let key = format!("{} {status_key}", op.id);
        if let Some(hit) = self.lock_cache().get(&key) {
            return Arc::clone(hit);
        }
        // Compile outside the lock; a concurrent duplicate compile is harmless.
        let compiled = Arc::new(match schema {
            None => Compiled::NoSchema,
            Some(schema) => match self.compile(schema) {
                Ok(v) => Compiled::Schema(Box::new(v)),
                Err(e) => Compiled::Broken(e),
            },
        });
        Arc::clone(self.lock_cache().entry(key).or_insert(compiled))
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Compiled>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The draft-7 root schema used to validate a response declared with `schema`.
    fn root_schema(&self, schema: &Value) -> Value {
        let converted = convert_schema(schema);
        let mut needed: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        collect_refs(&converted, &mut needed);
        let mut defs = Map::new();
        while let Some(name) = needed.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(def) = self.definitions.get(&name) {
                collect_refs(def, &mut needed);
                defs.insert(name, def.clone());
            }
        }
        let mut root = Map::new();
        root.insert("definitions".into(), Value::Object(defs));
        root.insert("allOf".into(), Value::Array(vec![converted]));
        Value::Object(root)
    }

    fn compile(&self, schema: &Value) -> Result<jsonschema::Validator, String> {
        let root = self.root_schema(schema);
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&root)
            .map_err(|e| e.to_string())
    }
}

/// Check a response against [`OpenApiContract::global`].
pub fn check(
    method: &str,
    path_and_query: &str,
    status: u16,
    body: Option<&Value>,
) -> ContractOutcome {
    OpenApiContract::global().check(method, path_and_query, status, body)
}

/// Record coverage for a [`ContractOutcome::Valid`] outcome: appends its operation id as one
/// line to `$FLAGSTAFF_CONTRACT_COVERAGE_DIR/<pid>.txt` (when the variable is set). Other
/// outcomes record nothing. Each id is written at most once per process.
pub fn record(outcome: &ContractOutcome) {
    let ContractOutcome::Valid { operation_id } = outcome else {
        return;
    };
    if let Some(dir) = std::env::var_os(COVERAGE_DIR_ENV).filter(|d| !d.is_empty()) {
        record_in(Path::new(&dir), operation_id);
    }
}

/// Append `operation_id` to `<dir>/<pid>.txt` unless this process already did.
fn record_in(dir: &Path, operation_id: &str) {
    static RECORDED: OnceLock<Mutex<HashSet<(PathBuf, String)>>> = OnceLock::new();
    let mut recorded = RECORDED
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = (dir.to_path_buf(), operation_id.to_owned());
    if recorded.contains(&key) {
        return;
    }
    let file = dir.join(format!("{}.txt", std::process::id()));
    let written = std::fs::create_dir_all(dir).and_then(|()| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)?;
        f.write_all(format!("{operation_id}\n").as_bytes())
    });
    match written {
        Ok(()) => {
            recorded.insert(key);
        }
        Err(e) => eprintln!(
            "flagstaff-testkit: cannot record contract coverage in {}: {e}",
            file.display()
        ),
    }
}

/// Check a response against the LaunchDarkly OpenAPI description, record coverage, and panic
/// with every error on [`ContractOutcome::Invalid`] or [`ContractOutcome::UndocumentedStatus`].
/// Undocumented operations (Flagstaff's non-spec routes) pass and record nothing.
///
/// # Panics
///
/// When the response does not conform.
pub fn assert_conforms(method: &str, path_and_query: &str, status: u16, body: Option<&Value>) {
    let outcome = check(method, path_and_query, status, body);
    record(&outcome);
    let method = method.to_ascii_uppercase();
    match outcome {
        ContractOutcome::Valid { .. } | ContractOutcome::UndocumentedOperation => {}
        ContractOutcome::Invalid {
            operation_id,
            errors,
        } => {
            let mut msg = format!(
                "{method} {path_and_query} -> {status}: response does not conform to LaunchDarkly's OpenAPI \
                 description (operation {operation_id}):\n"
            );
            for e in &errors {
                let _ = writeln!(msg, "  - {e}");
            }
            let _ = write!(msg, "body: {}", describe_body(body));
            panic!("{msg}");
        }
        ContractOutcome::UndocumentedStatus { operation_id } => {
            let declared = declared_statuses(&operation_id);
            panic!(
                "{method} {path_and_query} -> {status}: LaunchDarkly's OpenAPI description declares no \
                 {status} (nor default) response for operation {operation_id}; declared: {declared}\nbody: {}",
                describe_body(body)
            );
        }
    }
}

fn declared_statuses(operation_id: &str) -> String {
    let contract = OpenApiContract::global();
    let mut statuses: Vec<&str> = contract
        .routes
        .iter()
        .flat_map(|r| r.operations.values())
        .filter(|o| o.id == operation_id)
        .flat_map(|o| o.responses.keys().map(String::as_str))
        .collect();
    statuses.sort_unstable();
    statuses.join(", ")
}

fn describe_body(body: Option<&Value>) -> String {
    match body {
        None => "(none)".into(),
        Some(b) => truncate(
            &serde_json::to_string_pretty(b).unwrap_or_else(|_| b.to_string()),
            4000,
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Path matching

/// The path part of `path_and_query` (which may also be an absolute `http(s)://host/...` URL).
fn strip_query(path_and_query: &str) -> &str {
    let mut s = path_and_query;
    for scheme in ["http://", "https://"] {
        if let Some(rest) = s.strip_prefix(scheme) {
            s = rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    let end = s.find(['?', '#']).unwrap_or(s.len());
    &s[..end]
}

/// Path segments without empty ones (so `/api/v2/` equals `/api/v2`).
fn split_segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn route_matches(template: &[Segment], concrete: &[&str]) -> bool {
    template.len() == concrete.len()
        && template.iter().zip(concrete).all(|(t, c)| match t {
            Segment::Literal(l) => l == c,
            Segment::Param => true,
        })
}

fn specificity(segments: &[Segment]) -> Vec<bool> {
    segments
        .iter()
        .map(|s| matches!(s, Segment::Literal(_)))
        .collect()
}

fn select_response(op: &Operation, status: u16) -> Option<(&str, Option<Value>)> {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    [exact.as_str(), range.as_str(), "default"]
        .into_iter()
        .find_map(|k| op.responses.get_key_value(k))
        .map(|(k, v)| (k.as_str(), v.clone()))
}

fn json_content(content: &Map<String, Value>) -> Option<&Value> {
    content.get("application/json").or_else(|| {
        content
            .iter()
            .find(|(ct, _)| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json") || ct.ends_with("+json")
            })
            .map(|(_, v)| v)
    })
}

/// Follow a local `$ref` (e.g. `#/components/responses/X`) once.
fn resolve_local_ref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    v.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|p| doc.pointer(p))
        .unwrap_or(v)
}

// ---------------------------------------------------------------------------------------------
// OpenAPI 3.0 schema → JSON Schema draft 7

const COMPONENT_PREFIX: &str = "#/components/schemas/";
const DEFINITION_PREFIX: &str = "#/definitions/";

/// Keywords whose value is a map of name → schema.
const SCHEMA_MAP_KEYWORDS: [&str; 3] = ["properties", "patternProperties", "definitions"];
/// Keywords whose value is a schema (or, for `items`, possibly an array of schemas).
const SCHEMA_KEYWORDS: [&str; 5] = [
    "items",
    "additionalProperties",
    "not",
    "additionalItems",
    "propertyNames",
];
/// Keywords whose value is an array of schemas.
const SCHEMA_ARRAY_KEYWORDS: [&str; 3] = ["allOf", "anyOf", "oneOf"];
/// OpenAPI-only keywords that have no (or an unwanted) JSON Schema meaning.
const DROPPED_KEYWORDS: [&str; 9] = [
    "example",
    "examples",
    "discriminator",
    "xml",
    "externalDocs",
    "readOnly",
    "writeOnly",
    "deprecated",
    "nullable",
];

fn convert_schema(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        // Booleans (and anything unexpected) are kept as they are.
        return schema.clone();
    };
    let mut out = Map::with_capacity(map.len());
    for (k, v) in map {
        let k = k.as_str();
        if DROPPED_KEYWORDS.contains(&k) || k.starts_with("x-") {
            continue;
        }
        let converted = if SCHEMA_MAP_KEYWORDS.contains(&k) {
            match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .map(|(name, s)| (name.clone(), convert_schema(s)))
                        .collect(),
                ),
                other => other.clone(),
            }
        } else if SCHEMA_KEYWORDS.contains(&k) || SCHEMA_ARRAY_KEYWORDS.contains(&k) {
            match v {
                Value::Array(items) => Value::Array(items.iter().map(convert_schema).collect()),
                other => convert_schema(other),
            }
        } else if k == "$ref" {
            match v.as_str() {
                Some(r) => Value::String(rewrite_ref(r)),
                None => v.clone(),
            }
        } else {
            v.clone()
        };
        out.insert(k.to_owned(), converted);
    }
    if map.get("nullable").and_then(Value::as_bool) == Some(true) {
        make_nullable(out)
    } else {
        Value::Object(out)
    }
}

fn rewrite_ref(r: &str) -> String {
    match r.strip_prefix(COMPONENT_PREFIX) {
        Some(name) => format!("{DEFINITION_PREFIX}{name}"),
        None => r.to_owned(),
    }
}

fn make_nullable(mut out: Map<String, Value>) -> Value {
    let null = Value::String("null".into());
    if let Some(Value::Array(values)) = out.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    let has_composition = out.contains_key("$ref")
        || SCHEMA_ARRAY_KEYWORDS.iter().any(|k| out.contains_key(*k))
        || out.contains_key("not");
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = Value::String(std::mem::take(t));
            if t != null {
                out.insert("type".into(), Value::Array(vec![t, null.clone()]));
            } else {
                out.insert("type".into(), t);
            }
        }
        Some(Value::Array(types)) if !types.contains(&null) => types.push(null.clone()),
        _ => {}
    }
    if has_composition {
        // `$ref` / `allOf` / `oneOf` would still reject null: offer it as an alternative.
        let mut wrapper = Map::new();
        wrapper.insert(
            "anyOf".into(),
            Value::Array(vec![
                Value::Object(Map::from_iter([("type".to_owned(), null)])),
                Value::Object(out),
            ]),
        );
        Value::Object(wrapper)
    } else {
        Value::Object(out)
    }
}

/// Push every `#/definitions/X` name referenced anywhere inside `v`.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if k == "$ref"
                    && let Some(name) = child
                        .as_str()
                        .and_then(|r| r.strip_prefix(DEFINITION_PREFIX))
                {
                    out.push(name.to_owned());
                } else {
                    collect_refs(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Error reporting

fn collect_errors(validator: &jsonschema::Validator, body: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for e in validator.iter_errors(body) {
        total += 1;
        if errors.len() >= MAX_ERRORS {
            continue;
        }
        let mut path = e.instance_path().to_string();
        if let jsonschema::error::ValidationErrorKind::Required { property } = e.kind() {
            let name = property
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| property.to_string());
            path.push('/');
            path.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        if path.is_empty() {
            path.push('/');
        }
        let location = e
            .absolute_keyword_location()
            .and_then(|u| u.fragment().map(|f| f.as_str().to_owned()))
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| e.schema_path().to_string());
        errors.push(format!(
            "{path}: {} (schema {location})",
            truncate(&e.to_string(), MAX_MESSAGE_CHARS)
        ));
    }
    if total > errors.len() {
        errors.push(format!("... and {} more errors", total - errors.len()));
    }
    errors
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((idx, _)) => format!("{}…", &s[..idx]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn contract() -> &'static OpenApiContract {
        OpenApiContract::global()
    }

    fn minimal_flag() -> Value {
        json!({
            "name": "My flag",
            "kind": "boolean",
            "key": "my-flag",
            "_version": 1,
            "creationDate": 1_700_000_000_000_i64,
            "variations": [{"value": true}, {"value": false}],
            "temporary": true,
            "tags": [],
            "_links": {
                "self": {"href": "/api/v2/flags/default/my-flag", "type": "application/json"},
                "parent": {"href": "/api/v2/flags/default", "type": "application/json"}
            },
            "experiments": {"baselineIdx": 0, "items": []},
            "customProperties": {},
            "archived": false
        })
    }

    fn errors_of(outcome: ContractOutcome) -> Vec<String> {
        match outcome {
            ContractOutcome::Invalid { errors, .. } => errors,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn spec_is_indexed() {
        let c = contract();
        assert_eq!(c.operation_count(), 351, "{c:?}");
        assert_eq!(c.definitions.len(), 663);
        let ids = c.operation_ids();
        let unique: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique");
    }

    #[test]
    fn minimal_feature_flag_is_valid() {
        let flag = minimal_flag();
        let outcome = contract().check(
            "GET",
            "/api/v2/flags/default/my-flag?env=production",
            200,
            Some(&flag),
        );
        assert_eq!(
            outcome,
            ContractOutcome::Valid {
                operation_id: "getFeatureFlag".into()
            }
        );
    }

    #[test]
    fn additional_properties_are_allowed() {
        let mut flag = minimal_flag();
        flag["somethingNew"] = json!({"x": 1});
        flag["_links"]["extra"] = json!({"href": "/x", "type": "text/html", "more": true});
        let outcome = contract().check("get", "/api/v2/flags/default/my-flag", 200, Some(&flag));
        assert!(outcome.is_valid(), "{outcome:?}");
    }

    #[test]
    fn enum_violation_is_reported() {
        let mut flag = minimal_flag();
        flag["kind"] = json!("weird");
        let errors =
            errors_of(contract().check("GET", "/api/v2/flags/default/my-flag", 200, Some(&flag)));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("/kind: "), "{errors:?}");
        assert!(
            errors[0].contains("weird") && errors[0].contains("multivariate"),
            "{errors:?}"
        );
    }

    #[test]
    fn missing_required_field_is_named() {
        let mut flag = minimal_flag();
        flag.as_object_mut().unwrap().remove("_version");
        let errors =
            errors_of(contract().check("GET", "/api/v2/flags/default/my-flag", 200, Some(&flag)));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("/_version: \"_version\" is a required property"),
            "{errors:?}"
        );
    }

    #[test]
    fn nested_errors_name_the_instance_path() {
        let body = json!({
            "_links": {},
            "items": [{
                "_links": {}, "_id": "abc", "key": "p1", "includeInSnippetByDefault": false,
                "name": "P1", "tags": "not-an-array"
            }, {
                "_links": {}, "_id": "def", "key": "p2", "includeInSnippetByDefault": false, "tags": []
            }]
        });
        let errors = errors_of(contract().check("GET", "/api/v2/projects", 200, Some(&body)));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("/items/0/tags: ")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("/items/1/name: \"name\" is a required property")),
            "{errors:?}"
        );
        // The schema location names the component.
        assert!(
            errors.iter().any(|e| e.contains("/definitions/Project/")),
            "{errors:?}"
        );
    }

    #[test]
    fn type_mismatch_is_reported() {
        let mut flag = minimal_flag();
        flag["creationDate"] = json!("2024-01-01T00:00:00Z");
        flag["variations"][0] = json!({"name": "no value"});
        let errors =
            errors_of(contract().check("GET", "/api/v2/flags/default/my-flag", 200, Some(&flag)));
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors.iter().any(|e| e.starts_with("/creationDate: ")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("/variations/0/value: ")),
            "{errors:?}"
        );
    }

    #[test]
    fn get_projects_path_matching() {
        let c = contract();
        assert_eq!(
            c.operation_id("GET", "/api/v2/projects"),
            Some("getProjects")
        );
        assert_eq!(
            c.operation_id("get", "/api/v2/projects/?limit=20&offset=0"),
            Some("getProjects")
        );
        assert_eq!(
            c.operation_id("POST", "/api/v2/projects"),
            Some("postProject")
        );
        assert_eq!(
            c.operation_id("GET", "http://127.0.0.1:8080/api/v2/projects?limit=1"),
            Some("getProjects")
        );
        assert_eq!(
            c.operation_id("GET", "/api/v2/projects/p1"),
            Some("getProject")
        );
        let body = json!({"_links": {"self": {"href": "/api/v2/projects", "type": "application/json"}}, "items": [], "totalCount": 0});
        assert_eq!(
            c.check("GET", "/api/v2/projects?limit=20", 200, Some(&body)),
            ContractOutcome::Valid {
                operation_id: "getProjects".into()
            }
        );
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let c = contract();
        assert_eq!(
            c.operation_id("GET", "/api/v2/projects/p1/environments"),
            Some("getEnvironmentsByProject")
        );
        assert_eq!(
            c.path_template("/api/v2/projects/p1/environments"),
            Some("/api/v2/projects/{projectKey}/environments")
        );
        assert_eq!(
            c.operation_id("POST", "/api/v2/projects/p1/environments"),
            Some("postEnvironment")
        );
        assert_eq!(
            c.operation_id("GET", "/api/v2/projects/p1/environments/production"),
            Some("getEnvironment")
        );
        // `/auditlog/counts` (literal) vs `/auditlog/{id}`.
        assert_eq!(
            c.path_template("/api/v2/auditlog/counts"),
            Some("/api/v2/auditlog/counts")
        );
        assert_eq!(
            c.operation_id("GET", "/api/v2/auditlog/abc123"),
            Some("getAuditLogEntry")
        );
        // The literal template has no GET: the operation is undocumented, not getAuditLogEntry.
        assert_eq!(c.operation_id("GET", "/api/v2/auditlog/counts"), None);
        assert_eq!(
            c.operation_id("GET", "/api/v2/flags/default/my-flag/triggers/production"),
            Some("getTriggerWorkflows")
        );
    }

    #[test]
    fn undocumented_operations() {
        let c = contract();
        assert_eq!(
            c.check("POST", "/api/v2/segment-targets/my-integration", 204, None),
            ContractOutcome::UndocumentedOperation
        );
        assert_eq!(
            c.check("GET", "/healthz", 200, None),
            ContractOutcome::UndocumentedOperation
        );
        assert_eq!(
            c.check("PUT", "/api/v2/flags/default/my-flag", 200, None),
            ContractOutcome::UndocumentedOperation
        );
    }

    #[test]
    fn undocumented_status() {
        let body = json!({"code": "teapot", "message": "I'm a teapot"});
        assert_eq!(
            contract().check("GET", "/api/v2/flags/default/my-flag", 418, Some(&body)),
            ContractOutcome::UndocumentedStatus {
                operation_id: "getFeatureFlag".into()
            }
        );
    }

    #[test]
    fn error_responses_are_validated() {
        let c = contract();
        let ok = json!({"code": "not_found", "message": "Invalid resource identifier", "id": "x"});
        assert!(
            c.check("GET", "/api/v2/flags/default/nope", 404, Some(&ok))
                .is_valid()
        );
        let bad = json!({"code": "not_found"});
        let errors = errors_of(c.check("GET", "/api/v2/flags/default/nope", 404, Some(&bad)));
        assert!(errors[0].starts_with("/message: "), "{errors:?}");
    }

    #[test]
    fn no_content_responses() {
        let c = contract();
        assert_eq!(
            c.check("DELETE", "/api/v2/flags/default/my-flag", 204, None),
            ContractOutcome::Valid {
                operation_id: "deleteFeatureFlag".into()
            }
        );
        assert!(matches!(
            c.check(
                "DELETE",
                "/api/v2/flags/default/my-flag",
                204,
                Some(&json!({"a": 1}))
            ),
            ContractOutcome::Invalid { .. }
        ));
        // A documented JSON body that is missing.
        assert!(matches!(
            c.check("GET", "/api/v2/flags/default/my-flag", 200, None),
            ContractOutcome::Invalid { .. }
        ));
        // No schema declared (getOpenapiSpec 200): any body is accepted.
        assert!(
            c.check(
                "GET",
                "/api/v2/openapi.json",
                200,
                Some(&json!({"openapi": "3.0.3"}))
            )
            .is_valid()
        );
    }

    #[test]
    fn nullable_fields_accept_null() {
        let c = contract();
        let setting = |auto: Value, kind_config: Value| {
            json!({
                "required": true,
                "bypassApprovalsForPendingChanges": false,
                "minNumApprovals": 1,
                "canReviewOwnRequest": false,
                "canApplyDeclinedChanges": true,
                "autoApplyApprovedChanges": auto,
                "serviceKind": "launchdarkly",
                "serviceConfig": {},
                "requiredApprovalTags": [],
                "serviceKindConfigurationId": kind_config
            })
        };
        let path = "/api/v2/approval-requests/projects/p1/settings";
        assert_eq!(
            c.operation_id("GET", path),
            Some("getApprovalRequestSettings")
        );
        let body = json!({"flag": {"_default": setting(Value::Null, Value::Null)}});
        let outcome = c.check("GET", path, 200, Some(&body));
        assert!(outcome.is_valid(), "{outcome:?}");
        let body = json!({"flag": {"_default": setting(json!(true), json!("cfg"))}});
        assert!(c.check("GET", path, 200, Some(&body)).is_valid());
        // Nullable keeps the type: a number is still wrong.
        let body = json!({"flag": {"_default": setting(json!(3), Value::Null)}});
        let errors = errors_of(c.check("GET", path, 200, Some(&body)));
        assert!(
            errors[0].starts_with("/flag/_default/autoApplyApprovedChanges: "),
            "{errors:?}"
        );
        // A field that is not nullable rejects null.
        let mut s = setting(Value::Null, Value::Null);
        s["canReviewOwnRequest"] = Value::Null;
        let errors = errors_of(c.check("GET", path, 200, Some(&json!({"flag": {"_default": s}}))));
        assert!(
            errors[0].starts_with("/flag/_default/canReviewOwnRequest: "),
            "{errors:?}"
        );
    }

    #[test]
    fn conversion_is_structure_aware() {
        let schema = json!({
            "type": "object",
            "example": {"a": 1},
            "x-go-type": "foo",
            "discriminator": {"propertyName": "kind"},
            "properties": {
                "example": {"type": "string", "example": "dropped", "readOnly": true},
                "xml": {"$ref": "#/components/schemas/Thing", "nullable": true},
                "n": {"type": "integer", "nullable": true, "enum": [1, 2]}
            },
            "required": ["example"]
        });
        let converted = convert_schema(&schema);
        assert_eq!(
            converted,
            json!({
                "type": "object",
                "properties": {
                    "example": {"type": "string"},
                    "xml": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/Thing"}]},
                    "n": {"type": ["integer", "null"], "enum": [1, 2, null]}
                },
                "required": ["example"]
            })
        );
    }

    #[test]
    fn every_response_schema_compiles() {
        let c = contract();
        let mut broken = Vec::new();
        let mut compiled = 0;
        for route in &c.routes {
            for op in route.operations.values() {
                for (status, schema) in &op.responses {
                    if let Compiled::Broken(why) = &*c.compiled(op, status, schema.as_ref()) {
                        broken.push(format!("{} {status}: {why}", op.id));
                    }
                    compiled += 1;
                }
            }
        }
        assert!(compiled > 1500, "{compiled}");
        assert!(broken.is_empty(), "{broken:#?}");
    }

    #[test]
    fn record_appends_each_operation_id_once() {
        let dir = std::env::temp_dir().join(format!(
            "flagstaff-contract-coverage-test-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        record_in(&dir, "getFeatureFlag");
        record_in(&dir, "getProjects");
        record_in(&dir, "getFeatureFlag");
        let text =
            std::fs::read_to_string(dir.join(format!("{}.txt", std::process::id()))).unwrap();
        assert_eq!(text, "getFeatureFlag\ngetProjects\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
