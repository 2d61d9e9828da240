//! Reading a partner's alert with a trigger capability's `parser`: the event name, value and
//! link that flow into the audit entry, and whether the alert is the partner's test event.

use serde::Serialize;
use serde_json::Value;

use crate::jsregex;
use crate::model::Trigger;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerEvent {
    pub event_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The name matches `testEventNameRegexp`: accept the request, change nothing.
    pub is_test: bool,
}

/// Why a trigger body does not parse (the client's fault, HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TriggerParseError(pub String);

fn string_at(body: &Value, pointer: Option<&str>) -> Result<Option<String>, TriggerParseError> {
    let Some(pointer) = pointer else {
        return Ok(None);
    };
    match body.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TriggerParseError(format!(
            "the value at {pointer} in the request body must be a string"
        ))),
    }
}

/// Parses `body` (any JSON; an empty body is `null`) with the capability's parser.
pub fn parse_event(trigger: &Trigger, body: &Value) -> Result<TriggerEvent, TriggerParseError> {
    let parser = trigger.parser.clone().unwrap_or_default();
    let event_name = string_at(body, parser.event_name.as_deref())?.unwrap_or_else(|| {
        trigger
            .default_event_name
            .clone()
            .unwrap_or_else(|| Trigger::DEFAULT_EVENT_NAME.to_string())
    });
    let url = string_at(body, parser.url.as_deref())?;
    let value = parser
        .value
        .as_deref()
        .and_then(|p| body.pointer(p))
        .filter(|v| !v.is_null())
        .cloned();
    let pattern = trigger
        .test_event_name_regexp
        .as_deref()
        .unwrap_or(Trigger::DEFAULT_TEST_EVENT_NAME_REGEXP);
    let is_test = jsregex::compile(pattern)
        .map_err(|e| {
            TriggerParseError(format!(
                "the integration's testEventNameRegexp is unusable: {e}"
            ))
        })?
        .is_match(&event_name);
    Ok(TriggerEvent {
        event_name,
        value,
        url,
        is_test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn generic() -> Trigger {
        serde_json::from_value(json!({
            "documentation": "https://example.com/docs",
            "defaultEventName": "An event",
            "parser": {"eventName": "/eventName", "value": "/value", "url": "/url"}
        }))
        .unwrap()
    }

    #[test]
    fn missing_name_falls_back_and_default_regexp_spots_tests() {
        let event = parse_event(&generic(), &Value::Null).unwrap();
        assert_eq!(event.event_name, "An event");
        assert!(!event.is_test);
        let event = parse_event(
            &generic(),
            &json!({"eventName": "A Test alert", "value": 3}),
        )
        .unwrap();
        assert!(event.is_test);
        assert_eq!(event.value, Some(json!(3)));
    }

    #[test]
    fn a_non_string_name_is_refused() {
        let err = parse_event(&generic(), &json!({"eventName": 5})).unwrap_err();
        assert_eq!(
            err.0,
            "the value at /eventName in the request body must be a string"
        );
    }
}
