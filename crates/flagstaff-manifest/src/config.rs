//! Validating a configuration's form-variable values against the manifest: the per-field
//! errors the API returns when an integration is configured.

use serde_json::{Map, Value};

use crate::model::{FormVariable, FormVariableType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Longest string value accepted for a form variable.
pub const MAX_VALUE_CHARS: usize = 8192;

/// Checks `values` against `variables` and returns them with the defaults of omitted optional
/// variables filled in. Every problem is reported, not just the first.
pub fn validate_form_values(
    variables: &[FormVariable],
    values: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = Map::new();
    for key in values.keys() {
        if !variables.iter().any(|v| &v.key == key) {
            let known: Vec<&str> = variables.iter().map(|v| v.key.as_str()).collect();
            errors.push(FieldError {
                field: key.clone(),
                message: format!(
                    "unknown field; this integration's fields are {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    for variable in variables {
        let error = |message: String| FieldError {
            field: variable.key.clone(),
            message,
        };
        let value = match values.get(&variable.key) {
            None | Some(Value::Null) => {
                if let Some(default) = &variable.default_value {
                    out.insert(variable.key.clone(), default.to_json());
                } else if !variable.is_optional
                    && !variable.is_hidden
                    && !matches!(
                        variable.kind,
                        FormVariableType::Generated
                            | FormVariableType::PublicKey
                            | FormVariableType::Oauth
                            | FormVariableType::EnvironmentSelector
                            | FormVariableType::Multiselect
                    )
                {
                    errors.push(error(format!(
                        "`{}` ({}) is required",
                        variable.key, variable.name
                    )));
                }
                continue;
            }
            Some(value) => value,
        };
        match check_value(variable, value) {
            Ok(normalized) => {
                out.insert(variable.key.clone(), normalized);
            }
            Err(message) => errors.push(error(message)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn check_value(variable: &FormVariable, value: &Value) -> Result<Value, String> {
    let as_string = |value: &Value| -> Result<String, String> {
        match value {
            Value::String(text) if text.chars().count() <= MAX_VALUE_CHARS => Ok(text.clone()),
            Value::String(_) => Err(format!("must be at most {MAX_VALUE_CHARS} characters")),
            other => Err(format!("must be a string, not {}", type_name(other))),
        }
    };
    match variable.kind {
        FormVariableType::String
        | FormVariableType::DynamicEnum
        | FormVariableType::Generated
        | FormVariableType::PublicKey
        | FormVariableType::Oauth => as_string(value).map(Value::String),
        FormVariableType::Boolean => match value {
            Value::Bool(flag) => Ok(Value::Bool(*flag)),
            Value::String(text) if text == "true" || text == "false" => {
                Ok(Value::Bool(text == "true"))
            }
            other => Err(format!("must be true or false, not {}", type_name(other))),
        },
        FormVariableType::Uri => {
            let text = as_string(value)?;
            if is_absolute_http_url(&text) {
                Ok(Value::String(text))
            } else {
                Err(format!(
                    "`{text}` is not an absolute http(s) URL (e.g. https://example.com/hook)"
                ))
            }
        }
        FormVariableType::Enum => {
            let text = as_string(value)?;
            let allowed = variable.allowed_values.as_deref().unwrap_or_default();
            if allowed.contains(&text) {
                Ok(Value::String(text))
            } else {
                Err(format!("`{text}` is not one of {}", allowed.join(", ")))
            }
        }
        FormVariableType::Multiselect => {
            let options: Vec<&str> = variable
                .multiselect_options
                .iter()
                .flatten()
                .map(|o| o.value.as_str())
                .collect();
            let Value::Array(items) = value else {
                return Err(format!("must be an array of {}", options.join(", ")));
            };
            for item in items {
                match item.as_str() {
                    Some(text) if options.contains(&text) => {}
                    _ => {
                        return Err(format!("{item} is not one of {}", options.join(", ")));
                    }
                }
            }
            Ok(value.clone())
        }
        FormVariableType::EnvironmentSelector => Ok(value.clone()),
    }
}

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

/// `http://` or `https://` followed by a non-empty host without whitespace.
pub fn is_absolute_http_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !text.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn variables() -> Vec<FormVariable> {
        serde_json::from_value(json!([
            {"key": "url", "name": "URL", "type": "uri", "description": "d"},
            {"key": "secret", "name": "Secret", "type": "string", "description": "d", "isSecret": true},
            {"key": "site", "name": "Site", "type": "enum", "description": "d", "allowedValues": ["us", "eu"], "isOptional": true, "defaultValue": "us"},
            {"key": "quiet", "name": "Quiet", "type": "boolean", "description": "d", "isOptional": true, "defaultValue": false}
        ]))
        .unwrap()
    }

    #[test]
    fn fills_defaults_and_normalizes() {
        let values = json!({"url": "https://x.example/hook", "secret": "s", "quiet": "true"});
        let out = validate_form_values(&variables(), values.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"url": "https://x.example/hook", "secret": "s", "site": "us", "quiet": true})
        );
    }

    #[test]
    fn reports_every_field() {
        let values = json!({"url": "not a url", "site": "apac", "extra": 1, "quiet": 3});
        let errors = validate_form_values(&variables(), values.as_object().unwrap()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["extra", "url", "secret", "site", "quiet"]);
        assert!(errors[1].message.contains("not an absolute http(s) URL"));
        assert!(errors[2].message.contains("is required"));
        assert!(errors[3].message.contains("not one of us, eu"));
    }
}
