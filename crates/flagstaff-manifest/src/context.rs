//! Template contexts: what each kind of template sees when it renders.
//!
//! The shapes follow the integration framework's tests and preview (spec §3.3): body
//! templates get the event (JSON-escaped for `.json`/`.json.hbs` files) plus an unescaped
//! `formVariables` object; endpoint templates (URL, header values, `urlTemplate`) get the form
//! variables at top level, `oauth`, and the raw event as `context`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::model::{DefaultValue, FormVariable, FormVariableType};

/// `{baseURI, accessToken}` when the integration requires OAuth, else `null`.
pub fn oauth_context(requires_oauth: bool, base_uri: &str, access_token: &str) -> Value {
    if requires_oauth {
        json!({ "baseURI": base_uri, "accessToken": access_token })
    } else {
        Value::Null
    }
}

/// The placeholder OAuth context the catalogue's tests and golden renders use.
pub fn placeholder_oauth(requires_oauth: bool) -> Value {
    oauth_context(requires_oauth, "$OAUTH_BASE_URI", "$OAUTH_ACCESS_TOKEN")
}

/// Form-variable values as the catalogue's manifest tests fill them in: strings and enums get
/// their own key, URIs `https://<key>.com`, booleans `true`. Other types get no value, exactly
/// as upstream, so a template that needs one fails the strict render.
pub fn test_form_values(variables: &[FormVariable]) -> Map<String, Value> {
    let mut values = Map::new();
    for variable in variables {
        let value = match variable.kind {
            FormVariableType::String | FormVariableType::Enum | FormVariableType::DynamicEnum => {
                Value::from(variable.key.clone())
            }
            FormVariableType::Boolean => Value::Bool(true),
            FormVariableType::Uri => Value::from(format!("https://{}.com", variable.key)),
            _ => continue,
        };
        values.insert(variable.key.clone(), value);
    }
    values
}

/// The value a form variable takes when the user gave none: its `defaultValue`, else a
/// recognisable placeholder by type (`$KEY` for text, the first allowed value of an enum,
/// `https://<key>.example.com` for URIs, `false` for booleans).
pub fn placeholder_value(variable: &FormVariable) -> Value {
    if let Some(default) = &variable.default_value {
        return default.to_json();
    }
    match variable.kind {
        FormVariableType::Boolean => Value::Bool(false),
        FormVariableType::Enum => variable
            .allowed_values
            .as_ref()
            .and_then(|values| values.first())
            .map(|value| Value::from(value.clone()))
            .unwrap_or_else(|| Value::from(format!("${}", variable.key.to_uppercase()))),
        FormVariableType::Uri => Value::from(format!(
            "https://{}.example.com",
            variable.key.to_lowercase()
        )),
        FormVariableType::Multiselect => Value::Array(
            variable
                .multiselect_default_options
                .iter()
                .flatten()
                .map(|value| Value::from(value.clone()))
                .collect(),
        ),
        _ => Value::from(format!("${}", variable.key.to_uppercase())),
    }
}

/// Form values for rendering: the given values where present, else `placeholder_value`.
pub fn form_values_with_defaults(
    variables: &[FormVariable],
    given: &Map<String, Value>,
) -> Map<String, Value> {
    let mut values = Map::new();
    for variable in variables {
        let value = given
            .get(&variable.key)
            .cloned()
            .unwrap_or_else(|| placeholder_value(variable));
        values.insert(variable.key.clone(), value);
    }
    // Values for keys the manifest does not declare are kept: approval forms may allow
    // additional variables, and a preview user may pass extra keys on purpose.
    for (key, value) in given {
        values.entry(key.clone()).or_insert_with(|| value.clone());
    }
    values
}

/// Only the declared `defaultValue`s, for contexts where placeholders would mislead.
pub fn declared_defaults(variables: &[FormVariable]) -> Map<String, Value> {
    variables
        .iter()
        .filter_map(|variable| {
            variable
                .default_value
                .as_ref()
                .map(|default: &DefaultValue| (variable.key.clone(), default.to_json()))
        })
        .collect()
}

/// Body-template context: the event, JSON-escaped for JSON templates, plus `formVariables`
/// (the form values and `oauth`), which is never escaped.
pub fn body_context(
    event: &Value,
    json_template: bool,
    form_values: &Map<String, Value>,
    oauth: &Value,
) -> Value {
    let mut context = if json_template {
        flagstaff_template::json_escape_context(event)
    } else {
        event.clone()
    };
    let mut form = form_values.clone();
    form.insert("oauth".into(), oauth.clone());
    if let Value::Object(object) = &mut context {
        object.insert("formVariables".into(), Value::Object(form));
    }
    context
}

/// Endpoint-template context: form values at top level, `oauth`, and the raw event.
pub fn endpoint_context(form_values: &Map<String, Value>, oauth: &Value, event: &Value) -> Value {
    let mut context = form_values.clone();
    context.insert("oauth".into(), oauth.clone());
    context.insert("context".into(), event.clone());
    Value::Object(context)
}

/// The audit-event contexts templates are linted and previewed against, by name
/// (`flag/update-all-environments`, `project/update`, ...).
#[derive(Debug, Clone, Default)]
pub struct SampleContexts {
    by_name: BTreeMap<String, Value>,
    /// Where they were read from, `None` for Flagstaff's built-in set.
    pub source: Option<PathBuf>,
}

impl SampleContexts {
    /// Reads every `*.json` under `dir` (the catalogue's `sample-context/` layout:
    /// `<group>/<name>.json`), keyed by `<group>/<name>`.
    pub fn load(dir: &Path) -> std::io::Result<SampleContexts> {
        let mut by_name = BTreeMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current)? {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|ext| ext == "json") {
                    let text = std::fs::read_to_string(&path)?;
                    let value: Value = serde_json::from_str(&text).map_err(|error| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("{}: {error}", path.display()),
                        )
                    })?;
                    let relative = path.strip_prefix(dir).unwrap_or(&path);
                    let name = relative
                        .with_extension("")
                        .to_string_lossy()
                        .replace('\\', "/");
                    by_name.insert(name, value);
                }
            }
        }
        Ok(SampleContexts {
            by_name,
            source: Some(dir.to_path_buf()),
        })
    }

    /// Finds the catalogue's `sample-context/` next to an integrations directory (the
    /// upstream repository layout), falling back to Flagstaff's built-in contexts.
    pub fn discover(catalogue_dir: &Path) -> SampleContexts {
        let candidates = [
            catalogue_dir.join("sample-context"),
            catalogue_dir.join("../sample-context"),
            catalogue_dir.join("../../sample-context"),
        ];
        for candidate in candidates {
            if candidate.is_dir()
                && let Ok(contexts) = SampleContexts::load(&candidate)
                && !contexts.by_name.is_empty()
            {
                return contexts;
            }
        }
        SampleContexts::builtin()
    }

    /// Flagstaff's own sample events, one per kind the dispatcher routes on, in the shape the
    /// platform sends (spec §4). Used when no catalogue `sample-context/` is available.
    pub fn builtin() -> SampleContexts {
        let mut by_name = BTreeMap::new();
        for (name, kind, key, verb, title_verb, environment) in [
            (
                "flag/update-all-environments",
                "flag",
                "checkout-redesign",
                "updateOn",
                "turned on the flag",
                ("~", "All environments"),
            ),
            (
                "flag/toggle",
                "flag",
                "checkout-redesign",
                "updateOn",
                "turned on the flag",
                ("production", "Production"),
            ),
            (
                "project/update",
                "project",
                "storefront",
                "updateTags",
                "updated the project",
                ("", ""),
            ),
            (
                "environment/update",
                "environment",
                "staging",
                "updateName",
                "updated the environment",
                ("staging", "Staging"),
            ),
            (
                "member/update",
                "member",
                "",
                "updateRole",
                "updated the role of",
                ("", ""),
            ),
        ] {
            by_name.insert(
                name.to_string(),
                builtin_event(kind, key, verb, title_verb, environment),
            );
        }
        SampleContexts {
            by_name,
            source: None,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.by_name
            .iter()
            .map(|(name, value)| (name.as_str(), value))
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The context the catalogue's tests render a template key against: flag and default
    /// templates get an all-environments flag change, validation the environment update.
    pub fn for_template_key(&self, key: &str) -> Option<(&str, &Value)> {
        let name = match key {
            "project" => "project/update",
            "environment" | "validation" => "environment/update",
            "member" => "member/update",
            _ => "flag/update-all-environments",
        };
        self.by_name
            .get_key_value(name)
            .map(|(name, value)| (name.as_str(), value))
    }
}

fn builtin_event(
    kind: &str,
    key: &str,
    verb: &str,
    title_verb: &str,
    (env_key, env_name): (&str, &str),
) -> Value {
    let base = "http://localhost:8030";
    let id = "65f0c0ffee0000000000a001";
    let name = match kind {
        "flag" => "Checkout redesign",
        "project" => "Storefront",
        "environment" => "Staging",
        _ => "Ada Lovelace",
    };
    let where_ = if env_name.is_empty() {
        String::new()
    } else {
        format!(" in '{env_name}'")
    };
    let title = format!("Grace Hopper {title_verb} {name}{where_}");
    let mut event = json!({
        "_links": {
            "self": {"href": format!("{base}/api/v2/auditlog/{id}"), "type": "application/json"},
            "parent": {"href": format!("{base}/api/v2/auditlog"), "type": "application/json"},
            "details": {"href": format!("{base}/settings/history/{id}/details"), "type": "text/html"},
            "site": {"href": format!("{base}/storefront/{kind}s/{key}"), "type": "text/html"},
            "canonical": {"href": format!("{base}/api/v2/{kind}s/storefront/{key}"), "type": "application/json"}
        },
        "baseURL": base,
        "_id": id,
        "_accountId": "flagstaff",
        "timestamp": {
            "milliseconds": 1_767_225_600_000_u64,
            "seconds": 1_767_225_600_u64,
            "rfc3339": "2026-01-01T00:00:00Z",
            "simple": "2026-01-01 00:00:00"
        },
        "kind": kind,
        "name": name,
        "details": {
            "plainText": format!("{title}."),
            "markdown": format!("{title}."),
            "html": format!("<p>{title}.</p>")
        },
        "project": {
            "name": if kind == "member" { "" } else { "Storefront" },
            "key": if kind == "member" { "" } else { "storefront" },
            "tags": ["web"],
            "environment": {"name": env_name, "key": env_key, "tags": null}
        },
        "tags": ["checkout"],
        "member": {
            "_links": {
                "parent": {"href": format!("{base}/api/v2/members"), "type": "application/json"},
                "self": {"href": format!("{base}/api/v2/members/65f0c0ffee0000000000b001"), "type": "application/json"}
            },
            "_id": "65f0c0ffee0000000000b001",
            "email": "grace@example.com",
            "emailLocalPart": "grace",
            "firstName": "Grace",
            "lastName": "Hopper",
            "displayName": "Grace Hopper"
        },
        "titleVerb": title_verb,
        "verbKind": verb,
        "title": {"plainText": title.clone(), "markdown": title.clone(), "html": title},
        "target": {"_links": {}, "name": name, "_id": "65f0c0ffee0000000000c001"},
        "comment": "Rolled out after the review."
    });
    if !key.is_empty() {
        event["key"] = Value::from(key);
    }
    if kind == "flag" {
        event["customProperties"] = json!({
            "jira": {"name": "Jira issues", "values": ["SHOP-42"]}
        });
    }
    event
}
