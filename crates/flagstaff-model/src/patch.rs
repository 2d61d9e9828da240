//! The three PATCH formats LaunchDarkly accepts and the generic machinery to apply JSON Patch
//! (RFC 6902) and JSON Merge Patch (RFC 7396) to any typed entity without ever producing an
//! entity that does not deserialize or that changed a read-only field.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ModelError;
use crate::semantic::SemanticPatch;

/// A parsed PATCH request body.
#[derive(Debug, Clone)]
pub enum PatchRequest {
    Json {
        comment: Option<String>,
        patch: json_patch::Patch,
    },
    Merge {
        comment: Option<String>,
        merge: Value,
    },
    Semantic(SemanticPatch),
}

impl PatchRequest {
    pub fn comment(&self) -> Option<&str> {
        match self {
            PatchRequest::Json { comment, .. } | PatchRequest::Merge { comment, .. } => {
                comment.as_deref()
            }
            PatchRequest::Semantic(s) => s.comment.as_deref(),
        }
    }

    /// The JSON recorded as the audit entry's `delta` (LaunchDarkly records the JSON Patch body;
    /// we record the merge document and the semantic instructions the same way).
    pub fn delta(&self) -> Value {
        match self {
            PatchRequest::Json { patch, .. } => serde_json::to_value(patch).unwrap_or(Value::Null),
            PatchRequest::Merge { merge, .. } => merge.clone(),
            PatchRequest::Semantic(s) => Value::Array(
                s.instructions
                    .iter()
                    .map(|i| Value::Object(i.clone()))
                    .collect(),
            ),
        }
    }
}

/// Which PATCH formats an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormats {
    /// JSON Patch (bare or `{comment, patch}`), merge patch and semantic patch: flags, segments.
    All,
    /// JSON Patch only, as a bare array or `{comment, patch}`: projects, environments.
    JsonPatchOnly,
}

/// Parses a PATCH body. `semantic` is true when the request's Content-Type carries
/// `domain-model=launchdarkly.semanticpatch`.
pub fn parse_patch_request(
    body: Value,
    semantic: bool,
    formats: PatchFormats,
) -> Result<PatchRequest, ModelError> {
    if semantic {
        if formats != PatchFormats::All {
            return Err(ModelError::invalid(
                "this resource does not accept semantic patch: send a JSON Patch array",
            ));
        }
        let patch: SemanticPatch = serde_json::from_value(body).map_err(|e| {
            ModelError::invalid(format!(
                "invalid semantic patch: {e}. Expected {{\"comment\"?, \"environmentKey\"?, \"instructions\": [{{\"kind\": ...}}]}}"
            ))
        })?;
        if patch.instructions.is_empty() {
            return Err(ModelError::invalid(
                "semantic patch needs at least one instruction",
            ));
        }
        return Ok(PatchRequest::Semantic(patch));
    }
    match body {
        Value::Array(_) => Ok(PatchRequest::Json {
            comment: None,
            patch: parse_json_patch(body)?,
        }),
        Value::Object(mut map) => {
            let comment = match map.remove("comment") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(ModelError::invalid("comment must be a string")),
            };
            if let Some(patch) = map.remove("patch") {
                if let Some(extra) = map.keys().next() {
                    return Err(ModelError::invalid(format!(
                        "unknown field `{extra}` next to `patch`: expected {{\"comment\"?, \"patch\": [...]}}"
                    )));
                }
                return Ok(PatchRequest::Json {
                    comment,
                    patch: parse_json_patch(patch)?,
                });
            }
            if map.contains_key("instructions") {
                return Err(ModelError::invalid(
                    "this body looks like a semantic patch: send it with Content-Type: application/json; domain-model=launchdarkly.semanticpatch",
                ));
            }
            if formats == PatchFormats::JsonPatchOnly {
                return Err(ModelError::invalid(
                    "expected a JSON Patch array, e.g. [{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"New name\"}]",
                ));
            }
            let merge = match map.remove("merge") {
                Some(m) => {
                    if let Some(extra) = map.keys().next() {
                        return Err(ModelError::invalid(format!(
                            "unknown field `{extra}` next to `merge`: expected {{\"comment\"?, \"merge\": {{...}}}}"
                        )));
                    }
                    m
                }
                None => Value::Object(map),
            };
            if !merge.is_object() {
                return Err(ModelError::invalid("a merge patch must be a JSON object"));
            }
            Ok(PatchRequest::Merge { comment, merge })
        }
        _ => Err(ModelError::invalid(
            "a PATCH body must be a JSON Patch array or an object",
        )),
    }
}

fn parse_json_patch(value: Value) -> Result<json_patch::Patch, ModelError> {
    let ops = value
        .as_array()
        .ok_or_else(|| ModelError::invalid("`patch` must be an array of JSON Patch operations"))?;
    if ops.is_empty() {
        return Err(ModelError::invalid("the JSON Patch has no operations"));
    }
    for (i, op) in ops.iter().enumerate() {
        serde_json::from_value::<json_patch::PatchOperation>(op.clone()).map_err(|e| {
            ModelError::invalid(format!(
                "JSON Patch operation {i} is invalid: {e}. Each operation is {{\"op\": add|remove|replace|move|copy|test, \"path\": \"/...\", \"value\"?}}"
            ))
        })?;
    }
    serde_json::from_value(value)
        .map_err(|e| ModelError::invalid(format!("invalid JSON Patch: {e}")))
}

/// Applies a JSON or merge patch to `entity`.
///
/// * `test` operations on `/version` or `/_version` compare against `version` and fail with
///   [`ModelError::VersionConflict`]; any other failing `test` is a conflict too.
/// * `read_only` lists JSON pointers whose values must not change.
/// * The result must deserialize back into `T` (unknown or wrong-typed fields are rejected).
pub fn apply_document_patch<T: Serialize + DeserializeOwned>(
    entity: &T,
    request: &PatchRequest,
    version: i64,
    read_only: &[&str],
) -> Result<T, ModelError> {
    let before = serde_json::to_value(entity)
        .map_err(|e| ModelError::invalid(format!("cannot serialize entity: {e}")))?;
    let mut doc = before.clone();
    match request {
        PatchRequest::Json { patch, .. } => {
            let mut rest = Vec::with_capacity(patch.0.len());
            for op in &patch.0 {
                if let json_patch::PatchOperation::Test(test) = op {
                    let path = test.path.to_string();
                    if path == "/version" || path == "/_version" {
                        if test.value.as_i64() != Some(version) {
                            return Err(ModelError::VersionConflict(format!(
                                "version test failed: expected version {}, current version is {version}",
                                test.value
                            )));
                        }
                        continue;
                    }
                }
                rest.push(op.clone());
            }
            json_patch::patch(&mut doc, &rest).map_err(|e| match e.kind {
                json_patch::PatchErrorKind::TestFailed => ModelError::VersionConflict(format!(
                    "JSON Patch test failed at operation {}: {}",
                    e.operation, e.path
                )),
                _ => ModelError::patch_failed(format!(
                    "could not apply JSON Patch operation {} at {}: {}",
                    e.operation, e.path, e.kind
                )),
            })?;
        }
        PatchRequest::Merge { merge, .. } => json_patch::merge(&mut doc, merge),
        PatchRequest::Semantic(_) => {
            return Err(ModelError::invalid(
                "semantic patch cannot be applied as a document patch",
            ));
        }
    }
    for pointer in read_only {
        if before.pointer(pointer) != doc.pointer(pointer) {
            return Err(ModelError::invalid(format!(
                "{pointer} is read-only and cannot be changed by a patch"
            )));
        }
    }
    // The error names the field at fault, e.g. `temporary: invalid type: string "x", …`.
    serde_path_to_error::deserialize(doc)
        .map_err(|e| ModelError::invalid(format!("the patched document is invalid: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Thing {
        key: String,
        name: String,
        n: i64,
    }

    fn thing() -> Thing {
        Thing {
            key: "k".into(),
            name: "a".into(),
            n: 1,
        }
    }

    #[test]
    fn json_patch_with_version_test() {
        let req = parse_patch_request(
            json!([{"op":"test","path":"/version","value":3},{"op":"replace","path":"/name","value":"b"}]),
            false,
            PatchFormats::All,
        )
        .unwrap();
        let t = apply_document_patch(&thing(), &req, 3, &["/key"]).unwrap();
        assert_eq!(t.name, "b");
        let err = apply_document_patch(&thing(), &req, 4, &["/key"]).unwrap_err();
        assert!(matches!(err, ModelError::VersionConflict(_)));
    }

    #[test]
    fn read_only_and_types() {
        let req = parse_patch_request(
            json!({"comment":"c","patch":[{"op":"replace","path":"/key","value":"z"}]}),
            false,
            PatchFormats::All,
        )
        .unwrap();
        assert_eq!(req.comment(), Some("c"));
        assert!(apply_document_patch(&thing(), &req, 1, &["/key"]).is_err());
        let wrong_type = parse_patch_request(
            json!([{"op":"replace","path":"/n","value":"x"}]),
            false,
            PatchFormats::All,
        )
        .unwrap();
        let err = apply_document_patch(&thing(), &wrong_type, 1, &[]).unwrap_err();
        assert!(matches!(err, ModelError::Invalid(_)));
        let unknown = parse_patch_request(
            json!([{"op":"add","path":"/colour","value":"x"}]),
            false,
            PatchFormats::All,
        )
        .unwrap();
        let err = apply_document_patch(&thing(), &unknown, 1, &[]).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn missing_path_is_patch_failed() {
        let req = parse_patch_request(
            json!([{"op":"remove","path":"/nope"}]),
            false,
            PatchFormats::All,
        )
        .unwrap();
        let err = apply_document_patch(&thing(), &req, 1, &[]).unwrap_err();
        assert!(matches!(err, ModelError::PatchFailed(_)), "{err:?}");
    }

    #[test]
    fn merge_and_formats() {
        let req =
            parse_patch_request(json!({"merge":{"name":"m"}}), false, PatchFormats::All).unwrap();
        assert_eq!(
            apply_document_patch(&thing(), &req, 1, &[]).unwrap().name,
            "m"
        );
        assert!(
            parse_patch_request(json!({"name":"m"}), false, PatchFormats::JsonPatchOnly).is_err()
        );
        assert!(
            parse_patch_request(
                json!([{"op":"bogus","path":"/a"}]),
                false,
                PatchFormats::All
            )
            .is_err()
        );
        assert!(parse_patch_request(json!({"instructions":[]}), false, PatchFormats::All).is_err());
        assert!(parse_patch_request(json!({"instructions":[]}), true, PatchFormats::All).is_err());
        assert!(parse_patch_request(json!("x"), false, PatchFormats::All).is_err());
    }
}
