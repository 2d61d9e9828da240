//! Parsing a synced-segment request (a CDP's cohort update) with an integration's
//! `requestParser`, and the response context its `jsonResponseBody` template sees.
//!
//! Behaviour follows the reference validation server (`server/src/capabilities/syncedSegment.ts`)
//! in the three payload modes, except where that server has a documented bug: it tests
//! "required" with JavaScript falsiness, so `"value": false` (a removal in boolean mode), a
//! member id `0` or an explicit empty array are refused there. Here a value is missing only
//! when the pointer resolves to nothing or `null`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::jsregex;
use crate::model::{MemberArrayParser, SyncedSegmentRequestParser};

pub const DEFAULT_CONTEXT_KIND: &str = "user";

/// One member change of a batch, in the reference server's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberChange {
    pub user_id: String,
    pub cohort_id: String,
    pub cohort_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort_url: Option<String>,
    /// `true`: add to the cohort; `false`: remove from it.
    pub value: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedSync {
    pub environment_id: String,
    pub context_kind: String,
    pub batch: Vec<MemberChange>,
}

/// The members of one cohort: a batch may name several when members override the cohort.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CohortChanges<'a> {
    pub cohort_id: &'a str,
    pub cohort_name: &'a str,
    pub cohort_url: Option<&'a str>,
    pub add: Vec<&'a str>,
    pub remove: Vec<&'a str>,
}

impl ParsedSync {
    /// The segment key the reference server derives: `<integrationKey>-<batch[0].cohortId>`.
    pub fn segment_key(&self, integration_key: &str) -> Option<String> {
        self.batch
            .first()
            .map(|m| segment_key(integration_key, &m.cohort_id))
    }

    /// Changes grouped by cohort, in order of first appearance. A member listed twice in one
    /// cohort ends in the state of its last entry. Linear in the batch (batches hold
    /// thousands of members).
    pub fn cohorts(&self) -> Vec<CohortChanges<'_>> {
        let mut out: Vec<CohortChanges<'_>> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for m in &self.batch {
            index.entry(m.cohort_id.as_str()).or_insert_with(|| {
                out.push(CohortChanges {
                    cohort_id: &m.cohort_id,
                    cohort_name: &m.cohort_name,
                    cohort_url: m.cohort_url.as_deref(),
                    add: Vec::new(),
                    remove: Vec::new(),
                });
                out.len() - 1
            });
        }
        // From the end, the first entry seen of a member is its last: that one counts.
        let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(self.batch.len());
        for m in self.batch.iter().rev() {
            if !seen.insert((&m.cohort_id, &m.user_id)) {
                continue;
            }
            let cohort = &mut out[index[m.cohort_id.as_str()]];
            if m.value {
                cohort.add.push(&m.user_id);
            } else {
                cohort.remove.push(&m.user_id);
            }
        }
        for cohort in &mut out {
            cohort.add.reverse();
            cohort.remove.reverse();
        }
        out
    }
}

pub fn segment_key(integration_key: &str, cohort_id: &str) -> String {
    format!("{integration_key}-{cohort_id}")
}

/// Why a request does not parse; every variant is the client's fault (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncParseError {
    /// Nothing (or `null`) at a required pointer. The message is the reference server's.
    Missing {
        pointer: String,
    },
    WrongType {
        pointer: String,
        expected: &'static str,
        found: &'static str,
    },
    Empty {
        pointer: String,
    },
    /// The manifest's own pointers or matcher are unusable (a lint-clean manifest has none).
    Manifest(String),
}

impl fmt::Display for SyncParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncParseError::Missing { pointer } => {
                write!(f, "could not find path {pointer} in request payload")
            }
            SyncParseError::WrongType {
                pointer,
                expected,
                found,
            } => write!(
                f,
                "the value at {pointer} in the request payload must be {expected}, found {found}"
            ),
            SyncParseError::Empty { pointer } => {
                write!(
                    f,
                    "the value at {pointer} in the request payload must not be empty"
                )
            }
            SyncParseError::Manifest(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SyncParseError {}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value at `pointer` (relative to `root`; `shown` is the pointer as reported), `None`
/// when absent or `null`.
fn lookup<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a Value>, SyncParseError> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return Err(SyncParseError::Manifest(format!(
            "the integration's requestParser pointer `{pointer}` is not a JSON pointer"
        )));
    }
    Ok(root.pointer(pointer).filter(|v| !v.is_null()))
}

/// An identifier: a non-empty string, or a number written as JSON writes it (CDPs send
/// numeric ids).
fn id_at(root: &Value, pointer: &str, shown: &str) -> Result<Option<String>, SyncParseError> {
    let text = match lookup(root, pointer)? {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            return Err(SyncParseError::WrongType {
                pointer: shown.to_string(),
                expected: "a string or a number",
                found: type_name(other),
            });
        }
    };
    if text.is_empty() {
        return Err(SyncParseError::Empty {
            pointer: shown.to_string(),
        });
    }
    Ok(Some(text))
}

fn required_id(root: &Value, pointer: &str) -> Result<String, SyncParseError> {
    id_at(root, pointer, pointer)?.ok_or_else(|| SyncParseError::Missing {
        pointer: pointer.to_string(),
    })
}

fn array_at<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a [Value]>, SyncParseError> {
    match lookup(root, pointer)? {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(SyncParseError::WrongType {
            pointer: pointer.to_string(),
            expected: "an array",
            found: type_name(other),
        }),
    }
}

struct Cohort {
    id: String,
    name: String,
    url: Option<String>,
}

fn member(
    parser: &MemberArrayParser,
    array_pointer: &str,
    index: usize,
    element: &Value,
    cohort: &Cohort,
    value: Option<bool>,
) -> Result<MemberChange, SyncParseError> {
    let shown = |p: &str| format!("{array_pointer}/{index}{p}");
    let user_id = id_at(
        element,
        &parser.member_id_path,
        &shown(&parser.member_id_path),
    )?
    .ok_or_else(|| SyncParseError::Missing {
        pointer: shown(&parser.member_id_path),
    })?;
    let value = match value {
        Some(v) => v,
        None => {
            let path = parser.boolean_membership_path.as_deref().ok_or_else(|| {
                SyncParseError::Manifest(
                    "the integration's memberArrayParser has no booleanMembershipPath".into(),
                )
            })?;
            match lookup(element, path)? {
                Some(Value::Bool(b)) => *b,
                None => {
                    return Err(SyncParseError::Missing {
                        pointer: shown(path),
                    });
                }
                Some(other) => {
                    return Err(SyncParseError::WrongType {
                        pointer: shown(path),
                        expected: "a boolean",
                        found: type_name(other),
                    });
                }
            }
        }
    };
    let cohort_id = match &parser.cohort_id_path {
        Some(p) => id_at(element, p, &shown(p))?,
        None => None,
    };
    let cohort_name = match &parser.cohort_name_path {
        Some(p) => id_at(element, p, &shown(p))?,
        None => None,
    };
    Ok(MemberChange {
        user_id,
        cohort_id: cohort_id.unwrap_or_else(|| cohort.id.clone()),
        cohort_name: cohort_name.unwrap_or_else(|| cohort.name.clone()),
        cohort_url: cohort.url.clone(),
        value,
    })
}

/// Parses one synced-segment request body.
pub fn parse_request(
    parser: &SyncedSegmentRequestParser,
    body: &Value,
) -> Result<ParsedSync, SyncParseError> {
    let environment_id = required_id(body, &parser.environment_id_path)?;
    let context_kind = match &parser.context_kind_path {
        Some(p) => id_at(body, p, p)?,
        None => None,
    }
    .unwrap_or_else(|| DEFAULT_CONTEXT_KIND.to_string());
    let cohort = Cohort {
        id: required_id(body, &parser.cohort_id_path)?,
        name: required_id(body, &parser.cohort_name_path)?,
        url: match &parser.cohort_url_path {
            Some(p) => id_at(body, p, p)?,
            None => None,
        },
    };
    let members = &parser.member_array_parser;
    let mut batch = Vec::new();
    let mut push_all =
        |pointer: &str, items: &[Value], value: Option<bool>| -> Result<(), SyncParseError> {
            for (i, element) in items.iter().enumerate() {
                batch.push(member(members, pointer, i, element, &cohort, value)?);
            }
            Ok(())
        };
    if let (Some(add), Some(remove)) = (
        &parser.add_member_array_path,
        &parser.remove_member_array_path,
    ) {
        // Both lists are optional at runtime: a CDP sends only what changed.
        push_all(add, array_at(body, add)?.unwrap_or_default(), Some(true))?;
        push_all(
            remove,
            array_at(body, remove)?.unwrap_or_default(),
            Some(false),
        )?;
    } else {
        let pointer = parser.member_array_path.as_deref().ok_or_else(|| {
            SyncParseError::Manifest(
                "the integration's requestParser has neither memberArrayPath nor \
                 addMemberArrayPath/removeMemberArrayPath"
                    .into(),
            )
        })?;
        let items = array_at(body, pointer)?.ok_or_else(|| SyncParseError::Missing {
            pointer: pointer.to_string(),
        })?;
        let value = match &parser.array_inclusion {
            Some(inclusion) => {
                let matcher = jsregex::compile(&inclusion.matcher).map_err(|e| {
                    SyncParseError::Manifest(format!(
                        "the integration's arrayInclusion matcher is unusable: {e}"
                    ))
                })?;
                let action = required_id(body, &inclusion.path)?;
                Some(matcher.is_match(&action))
            }
            None => None,
        };
        push_all(pointer, items, value)?;
    }
    Ok(ParsedSync {
        environment_id,
        context_kind,
        batch,
    })
}

/// Where a synced segment lives, for the response template.
#[derive(Debug, Clone, Default)]
pub struct ResponseTarget {
    pub project_key: String,
    pub environment_key: String,
    pub segment_key: String,
    pub segment_url: String,
}

/// The context `jsonResponseBody` renders with: `{requestBody, statusCode, errorMessage,
/// projectKey, environmentKey, segmentKey, segmentUrl}`. String values are JSON-escaped,
/// because the template writes them inside JSON string literals.
pub fn response_context(
    request_body: &Value,
    status: u16,
    error_message: Option<&str>,
    target: &ResponseTarget,
) -> Value {
    let context = json!({
        "requestBody": request_body,
        "statusCode": status,
        "errorMessage": error_message.unwrap_or_default(),
        "projectKey": target.project_key,
        "environmentKey": target.environment_key,
        "segmentKey": target.segment_key,
        "segmentUrl": target.segment_url,
    });
    flagstaff_template::json_escape_context(&context)
}

/// The rendered `jsonResponseBody`, `None` when the integration has none (the response is
/// then the status alone). A render that is not JSON is returned as a JSON string.
pub fn render_response(
    integration: &crate::Integration,
    context: &Value,
    compat: flagstaff_template::Compat,
) -> Result<Option<Value>, crate::preview::PreviewError> {
    use crate::preview::{Preview, PreviewInput, Target, preview};
    let input = PreviewInput {
        compat,
        ..PreviewInput::default()
    };
    match preview(integration, &Target::SyncedSegmentResponse, context, &input)? {
        Preview::Rendered(value) => Ok(Some(value)),
        Preview::Skipped(_) | Preview::Request(_) => Ok(None),
    }
}

/// Writes `value` at `pointer`, creating objects (or arrays, for numeric tokens) on the way.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut node = root;
    for (i, token) in tokens.iter().enumerate() {
        let index = token.parse::<usize>().ok();
        if node.is_null() {
            *node = if index.is_some() {
                Value::Array(Vec::new())
            } else {
                Value::Object(serde_json::Map::new())
            };
        }
        let last = i + 1 == tokens.len();
        node = match (node, index) {
            (Value::Array(items), Some(index)) => {
                if items.len() <= index {
                    items.resize(index + 1, Value::Null);
                }
                &mut items[index]
            }
            (Value::Object(map), _) => map.entry(token.clone()).or_insert(Value::Null),
            _ => return,
        };
        if last {
            *node = value;
            return;
        }
    }
    *node = value;
}

/// Requests shaped the way `parser` reads them, that add `add` and remove `remove` from the
/// cohort: one request, or two (adds, then removals) for integrations that carry one action
/// per request. What a partner would send; used by the tests and the ingestion benchmark
/// for every integration alike. Matcher-mode actions are picked from common CDP verbs.
pub fn sample_requests(
    parser: &SyncedSegmentRequestParser,
    environment_id: &str,
    context_kind: &str,
    cohort_id: &str,
    cohort_name: &str,
    add: &[String],
    remove: &[String],
) -> Vec<Value> {
    let members = &parser.member_array_parser;
    let element = |id: &str, value: Option<bool>| {
        let mut element = Value::Null;
        set_pointer(&mut element, &members.member_id_path, Value::from(id));
        if let (Some(path), Some(value)) = (&members.boolean_membership_path, value) {
            set_pointer(&mut element, path, Value::from(value));
        }
        for path in [&members.cohort_id_path, &members.cohort_name_path]
            .into_iter()
            .flatten()
        {
            let text = if Some(path) == members.cohort_id_path.as_ref() {
                cohort_id
            } else {
                cohort_name
            };
            set_pointer(&mut element, path, Value::from(text));
        }
        element
    };
    let finish = |mut body: Value| {
        set_pointer(
            &mut body,
            &parser.environment_id_path,
            environment_id.into(),
        );
        set_pointer(&mut body, &parser.cohort_id_path, cohort_id.into());
        set_pointer(&mut body, &parser.cohort_name_path, cohort_name.into());
        if let Some(path) = &parser.context_kind_path {
            set_pointer(&mut body, path, context_kind.into());
        }
        body
    };
    if let (Some(add_path), Some(remove_path)) = (
        &parser.add_member_array_path,
        &parser.remove_member_array_path,
    ) {
        let mut body = Value::Null;
        let list = |ids: &[String]| Value::Array(ids.iter().map(|id| element(id, None)).collect());
        set_pointer(&mut body, add_path, list(add));
        set_pointer(&mut body, remove_path, list(remove));
        return vec![finish(body)];
    }
    let Some(array_path) = &parser.member_array_path else {
        return Vec::new();
    };
    match &parser.array_inclusion {
        None => {
            let mut body = Value::Null;
            let items = add
                .iter()
                .map(|id| element(id, Some(true)))
                .chain(remove.iter().map(|id| element(id, Some(false))))
                .collect();
            set_pointer(&mut body, array_path, Value::Array(items));
            vec![finish(body)]
        }
        Some(inclusion) => {
            let Ok(matcher) = jsregex::compile(&inclusion.matcher) else {
                return Vec::new();
            };
            const ADD: &[&str] = &["add", "add_members", "add_member", "members", "include"];
            const REMOVE: &[&str] = &["remove", "remove_members", "delete", "exclude"];
            let mut out = Vec::new();
            for (ids, verbs, want) in [(add, ADD, true), (remove, REMOVE, false)] {
                if ids.is_empty() {
                    continue;
                }
                let Some(verb) = verbs.iter().find(|v| matcher.is_match(v) == want) else {
                    continue;
                };
                let mut body = Value::Null;
                let items = ids.iter().map(|id| element(id, None)).collect();
                set_pointer(&mut body, array_path, Value::Array(items));
                set_pointer(&mut body, &inclusion.path, Value::from(*verb));
                out.push(finish(body));
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ArrayInclusion;

    fn boolean_parser() -> SyncedSegmentRequestParser {
        serde_json::from_value(json!({
            "environmentIdPath": "/environmentId",
            "cohortIdPath": "/batch/0/cohortId",
            "cohortNamePath": "/batch/0/cohortName",
            "memberArrayPath": "/batch",
            "memberArrayParser": {"memberIdPath": "/userId", "booleanMembershipPath": "/value"}
        }))
        .unwrap()
    }

    #[test]
    fn numeric_ids_are_accepted_and_false_removes() {
        let body = json!({"environmentId": "env", "batch": [
            {"userId": 0, "cohortId": 7, "cohortName": "Seven", "value": false},
            {"userId": "u2", "cohortId": 7, "cohortName": "Seven", "value": true},
        ]});
        let parsed = parse_request(&boolean_parser(), &body).unwrap();
        assert_eq!(parsed.segment_key("amp").as_deref(), Some("amp-7"));
        let cohorts = parsed.cohorts();
        assert_eq!(cohorts.len(), 1);
        assert_eq!(cohorts[0].add, vec!["u2"]);
        assert_eq!(cohorts[0].remove, vec!["0"]);
    }

    #[test]
    fn a_member_listed_twice_ends_in_its_last_state_per_cohort() {
        let member = |id: &str, cohort: &str, value: bool| json!({"userId": id, "cohortId": cohort, "cohortName": cohort, "value": value});
        let body = json!({"environmentId": "env", "batch": [
            member("a", "c1", true), member("b", "c2", true), member("a", "c1", false),
            member("c", "c1", true), member("b", "c1", false), member("a", "c1", true),
        ]});
        // Members name their own cohort (as amplitude's parser lets them).
        let parser: SyncedSegmentRequestParser = serde_json::from_value(json!({
            "environmentIdPath": "/environmentId",
            "cohortIdPath": "/batch/0/cohortId",
            "cohortNamePath": "/batch/0/cohortName",
            "memberArrayPath": "/batch",
            "memberArrayParser": {"memberIdPath": "/userId", "booleanMembershipPath": "/value",
                                  "cohortIdPath": "/cohortId", "cohortNamePath": "/cohortName"}
        }))
        .unwrap();
        let parsed = parse_request(&parser, &body).unwrap();
        let cohorts = parsed.cohorts();
        assert_eq!(
            cohorts.iter().map(|c| c.cohort_id).collect::<Vec<_>>(),
            ["c1", "c2"]
        );
        assert_eq!(cohorts[0].add, vec!["c", "a"]);
        assert_eq!(cohorts[0].remove, vec!["b"]);
        assert_eq!(cohorts[1].add, vec!["b"]);
        assert!(cohorts[1].remove.is_empty());
    }

    #[test]
    fn wrong_types_name_the_pointer() {
        let body = json!({"environmentId": "env", "batch": [
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": "yes"}]});
        let err = parse_request(&boolean_parser(), &body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the value at /batch/0/value in the request payload must be a boolean, found a string"
        );
        let body = json!({"environmentId": {"id": 1}, "batch": []});
        let err = parse_request(&boolean_parser(), &body).unwrap_err();
        assert!(err.to_string().contains("/environmentId"), "{err}");
        let body = json!({"environmentId": "e", "batch": {"userId": "u"}});
        assert!(matches!(
            parse_request(&boolean_parser(), &body),
            Err(SyncParseError::Missing { .. } | SyncParseError::WrongType { .. })
        ));
    }

    #[test]
    fn last_entry_for_a_member_wins() {
        let body = json!({"environmentId": "env", "batch": [
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": true},
            {"userId": "u1", "cohortId": "c", "cohortName": "C", "value": false},
        ]});
        let parsed = parse_request(&boolean_parser(), &body).unwrap();
        let cohorts = parsed.cohorts();
        assert!(cohorts[0].add.is_empty());
        assert_eq!(cohorts[0].remove, vec!["u1"]);
    }

    #[test]
    fn inclusion_matcher_is_unanchored_like_regexp_test() {
        let mut parser = boolean_parser();
        parser.member_array_parser.boolean_membership_path = None;
        parser.cohort_id_path = "/cohort".into();
        parser.cohort_name_path = "/cohort".into();
        parser.array_inclusion = Some(ArrayInclusion {
            path: "/action".into(),
            matcher: "add".into(),
        });
        let body = json!({"environmentId": "e", "cohort": "c", "action": "please-add-these",
            "batch": [{"userId": "u1"}]});
        assert!(parse_request(&parser, &body).unwrap().batch[0].value);
        let body = json!({"environmentId": "e", "cohort": "c", "action": "remove",
            "batch": [{"userId": "u1"}]});
        assert!(!parse_request(&parser, &body).unwrap().batch[0].value);
    }
}
