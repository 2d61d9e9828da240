//! The `approval` capability's runtime logic, without I/O: which request each lifecycle step
//! sends, and what a partner's answer means (external id, status, approved or rejected, the
//! link to the external record, the member list).
//!
//! Two contexts meet here. Body templates (`jsonBody`) see the approval event, where
//! `approvalId` is Flagstaff's own request id (custom-approvals sends it as `_id`). Endpoint
//! templates (URL, headers, `urlTemplate`) see the event as `context`, where
//! `context.approvalId` is the partner's id taken from the creation response with
//! `parser.approvalId`. [`build_request`] takes both events so each template sees its own.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Integration;
use crate::context::{endpoint_context, form_values_with_defaults, oauth_context};
use crate::jsregex;
use crate::model::{Approval, ApprovalParser, Endpoint};
use crate::preview::{PreviewError, PreviewInput, RenderedRequest};

/// The lifecycle requests of the capability, by their manifest names.
pub const STEPS: &[&str] = &[
    "creationRequest",
    "statusRequest",
    "postApplyRequest",
    "deletionRequest",
    "memberListRequest",
];

/// What the partner says of a change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Approved,
    Rejected,
    /// Neither matcher matched: keep polling.
    Pending,
}

/// A parsed partner answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParsedStatus {
    /// The external id (`parser.approvalId`), when the parser names one and it is present.
    pub approval_id: Option<String>,
    /// The raw status (`parser.statusValue`), as text.
    pub value: String,
    /// `parser.statusDisplay`, falling back to the value.
    pub display: String,
    pub outcome: Outcome,
}

/// Why an answer cannot be read. The partner's fault: the step is retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn capability(integration: &Integration) -> Result<&Approval, PreviewError> {
    integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.approval.as_ref())
        .ok_or_else(|| {
            PreviewError::Unsupported(format!(
                "integration `{}` has no approval capability",
                integration.key
            ))
        })
}

/// The parser of a step: `creationRequest` may have none (then the answer is only checked
/// for success), the other status-bearing steps always have one.
pub fn parser<'a>(approval: &'a Approval, step: &str) -> Option<&'a ApprovalParser> {
    match step {
        "creationRequest" => approval.creation_request.parser.as_ref(),
        "statusRequest" => Some(&approval.status_request.parser),
        "postApplyRequest" => Some(&approval.post_apply_request.parser),
        "deletionRequest" => Some(&approval.deletion_request.parser),
        _ => None,
    }
}

/// A JSON value at `pointer` as text: strings as they are, numbers and booleans printed
/// (ServiceNow states are numbers in some instances and strings in others).
fn text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Reads a partner's answer with a step's parser. Matchers use JavaScript `RegExp.test`
/// semantics (unanchored); a rejection match wins over an approval match, so an ambiguous
/// status never applies a change.
pub fn parse_status(parser: &ApprovalParser, body: &Value) -> Result<ParsedStatus, ParseError> {
    let approval_id = match &parser.approval_id {
        Some(pointer) => Some(
            text_at(body, pointer)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    ParseError(format!(
                        "the response has no approval id at {pointer} (parser.approvalId)"
                    ))
                })?,
        ),
        None => None,
    };
    let value = text_at(body, &parser.status_value).ok_or_else(|| {
        ParseError(format!(
            "the response has no status at {} (parser.statusValue)",
            parser.status_value
        ))
    })?;
    let display = parser
        .status_display
        .as_deref()
        .and_then(|p| text_at(body, p))
        .unwrap_or_else(|| value.clone());
    let matches = |pattern: &str, what: &str| {
        jsregex::compile(pattern)
            .map(|re| re.is_match(&value))
            .map_err(|e| ParseError(format!("parser.{what} `{pattern}` is not usable: {e}")))
    };
    let rejected = match &parser.rejection_matcher {
        Some(pattern) => matches(pattern, "rejectionMatcher")?,
        None => false,
    };
    let outcome = if rejected {
        Outcome::Rejected
    } else if matches(&parser.approval_matcher, "approvalMatcher")? {
        Outcome::Approved
    } else {
        Outcome::Pending
    };
    Ok(ParsedStatus {
        approval_id,
        value,
        display,
        outcome,
    })
}

/// One external user of a member list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMember {
    pub email: String,
    pub member_id: String,
}

/// Reads a `memberListRequest` answer. Items without an email or id are skipped (a partner's
/// service accounts often have no email); a missing array is an error.
pub fn parse_member_list(
    approval: &Approval,
    body: &Value,
) -> Result<Vec<ExternalMember>, ParseError> {
    let list = approval
        .member_list_request
        .as_ref()
        .ok_or_else(|| ParseError("the integration has no memberListRequest".into()))?;
    let parser = &list.parser;
    let items = body
        .pointer(&parser.member_array_path)
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ParseError(format!(
                "the response has no member array at {} (parser.memberArrayPath)",
                parser.member_array_path
            ))
        })?;
    Ok(items
        .iter()
        .filter_map(|item| {
            Some(ExternalMember {
                email: text_at(item, &parser.member_items.email)?
                    .trim()
                    .to_string(),
                member_id: text_at(item, &parser.member_items.member_id)?,
            })
        })
        .filter(|m| !m.email.is_empty() && !m.member_id.is_empty())
        .collect())
}

/// The external id of the member with this email (case-insensitive, as emails compare).
pub fn external_id_for<'a>(members: &'a [ExternalMember], email: &str) -> Option<&'a str> {
    members
        .iter()
        .find(|m| m.email.eq_ignore_ascii_case(email.trim()))
        .map(|m| m.member_id.as_str())
}

/// Builds a step's request. `body_event` is what `jsonBody` sees (with
/// `environmentFormVariables`, `approvalFormVariables` and `formVariables` added);
/// `endpoint_event` is `context` for the URL and headers. Form values as in
/// [`PreviewInput::form_values`]: environment values under `environment`, approval form
/// values under `approval`.
pub fn build_request(
    integration: &Integration,
    step: &str,
    body_event: &Value,
    endpoint_event: &Value,
    input: &PreviewInput,
) -> Result<RenderedRequest, PreviewError> {
    let approval = capability(integration)?;
    let (endpoint, json_body): (&Endpoint, &Option<String>) = match step {
        "creationRequest" => (
            &approval.creation_request.endpoint,
            &approval.creation_request.json_body,
        ),
        "statusRequest" => (
            &approval.status_request.endpoint,
            &approval.status_request.json_body,
        ),
        "postApplyRequest" => (
            &approval.post_apply_request.endpoint,
            &approval.post_apply_request.json_body,
        ),
        "deletionRequest" => (
            &approval.deletion_request.endpoint,
            &approval.deletion_request.json_body,
        ),
        "memberListRequest" => {
            let list = approval.member_list_request.as_ref().ok_or_else(|| {
                PreviewError::Unsupported(format!(
                    "integration `{}` has no approval memberListRequest",
                    integration.key
                ))
            })?;
            (&list.endpoint, &list.json_body)
        }
        other => {
            return Err(PreviewError::Unsupported(format!(
                "unknown approval request `{other}`: use {}",
                STEPS.join(", ")
            )));
        }
    };
    let Values {
        oauth,
        form,
        environment,
    } = values(integration, approval, input);
    let approval_values = form_values_with_defaults(
        &approval.approval_form_variables,
        &nested(input, "approval"),
    );
    let at = format!("/capabilities/approval/{step}");
    let body = match json_body {
        None => String::new(),
        Some(_) => {
            let pointer = format!("{at}/jsonBody");
            let template = integration.templates.inline.get(&pointer).ok_or_else(|| {
                PreviewError::Unsupported(format!(
                    "integration `{}` has no approval jsonBody",
                    integration.key
                ))
            })?;
            let mut context = flagstaff_template::json_escape_context(body_event);
            if let Value::Object(object) = &mut context {
                object.insert(
                    "environmentFormVariables".into(),
                    Value::Object(environment.clone()),
                );
                object.insert(
                    "approvalFormVariables".into(),
                    flagstaff_template::json_escape_context(&Value::Object(approval_values)),
                );
                let mut form = form.clone();
                form.insert("oauth".into(), oauth.clone());
                object.insert("formVariables".into(), Value::Object(form));
            }
            crate::preview::render_template(template, &pointer, &context, input.compat)?
        }
    };
    let context = endpoint_values(&form, environment, &oauth, endpoint_event);
    crate::preview::build_request(
        integration,
        &format!("{at}/endpoint"),
        endpoint,
        &context,
        body,
        &form,
        input.compat,
    )
}

/// The values every template of the capability draws on: `oauth`, the top-level form
/// values and the environment's (`environment.*`), with the manifest's defaults.
struct Values {
    oauth: Value,
    form: Map<String, Value>,
    environment: Map<String, Value>,
}

fn nested(input: &PreviewInput, key: &str) -> Map<String, Value> {
    input
        .form_values
        .get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn values(integration: &Integration, approval: &Approval, input: &PreviewInput) -> Values {
    let manifest = &integration.manifest;
    Values {
        oauth: match &input.oauth {
            Some((base, token)) => oauth_context(manifest.requires_oauth, base, token),
            None => crate::context::placeholder_oauth(manifest.requires_oauth),
        },
        form: form_values_with_defaults(&manifest.form_variables, &input.form_values),
        environment: form_values_with_defaults(
            &approval.environment_form_variables,
            &nested(input, "environment"),
        ),
    }
}

fn endpoint_values(
    form: &Map<String, Value>,
    environment: Map<String, Value>,
    oauth: &Value,
    event: &Value,
) -> Value {
    let mut values = form.clone();
    values.insert("environment".into(), Value::Object(environment));
    endpoint_context(&values, oauth, event)
}

/// The link to the external record: the creation parser's `urlTemplate` (or the status
/// parser's), rendered in the endpoint context. `None` when the manifest has none.
pub fn external_url(
    integration: &Integration,
    endpoint_event: &Value,
    input: &PreviewInput,
) -> Result<Option<String>, PreviewError> {
    let approval = capability(integration)?;
    let Values {
        oauth,
        form,
        environment,
    } = values(integration, approval, input);
    let context = endpoint_values(&form, environment, &oauth, endpoint_event);
    for step in ["creationRequest", "statusRequest"] {
        let pointer = format!("/capabilities/approval/{step}/parser/urlTemplate");
        if let Some(template) = integration.templates.inline.get(&pointer) {
            return crate::preview::render_template(template, &pointer, &context, input.compat)
                .map(Some);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parser(value: Value) -> ApprovalParser {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn servicenow_states() {
        let p = parser(json!({
            "approvalId": "/result/sys_id/value",
            "statusValue": "/result/state/value",
            "statusDisplay": "/result/state/display_value",
            "approvalMatcher": "^-1",
            "rejectionMatcher": "^4"
        }));
        let answer = |state: Value| json!({"result": {"sys_id": {"value": "abc"}, "state": {"value": state, "display_value": "Shown"}}});
        let approved = parse_status(&p, &answer(json!("-1"))).unwrap();
        assert_eq!(approved.outcome, Outcome::Approved);
        assert_eq!(approved.approval_id.as_deref(), Some("abc"));
        assert_eq!(approved.display, "Shown");
        // Numbers are read as their text.
        assert_eq!(
            parse_status(&p, &answer(json!(4))).unwrap().outcome,
            Outcome::Rejected
        );
        assert_eq!(
            parse_status(&p, &answer(json!("-5"))).unwrap().outcome,
            Outcome::Pending
        );
        assert!(parse_status(&p, &json!({"result": {}})).is_err());
        assert!(parse_status(&p, &json!("garbage")).is_err());
    }

    #[test]
    fn matchers_are_unanchored_and_rejection_wins() {
        let p = parser(json!({
            "statusValue": "/s",
            "approvalMatcher": "approved",
            "rejectionMatcher": "declined"
        }));
        let outcome = |s: &str| parse_status(&p, &json!({"s": s})).unwrap().outcome;
        assert_eq!(outcome("approved"), Outcome::Approved);
        assert_eq!(outcome("pre-approved-ish"), Outcome::Approved);
        assert_eq!(outcome("declined"), Outcome::Rejected);
        assert_eq!(outcome("approved then declined"), Outcome::Rejected);
        assert_eq!(outcome("pending"), Outcome::Pending);
        // Display falls back to the value.
        assert_eq!(
            parse_status(&p, &json!({"s": "pending"})).unwrap().display,
            "pending"
        );
    }

    #[test]
    fn member_lists_map_by_email() {
        let approval: Approval = serde_json::from_value(json!({
            "creationRequest": {"endpoint": {"url": "u", "method": "POST", "headers": []}},
            "statusRequest": {"endpoint": {"url": "u", "method": "GET", "headers": []},
                "parser": {"statusValue": "/s", "approvalMatcher": "x"}},
            "postApplyRequest": {"endpoint": {"url": "u", "method": "POST", "headers": []},
                "parser": {"statusValue": "/s", "approvalMatcher": "x"}},
            "deletionRequest": {"endpoint": {"url": "u", "method": "POST", "headers": []},
                "parser": {"statusValue": "/s", "approvalMatcher": "x"}},
            "memberListRequest": {"endpoint": {"url": "u", "method": "GET", "headers": []},
                "parser": {"memberArrayPath": "/result", "memberItems": {"email": "/email", "memberId": "/user_name"}}}
        }))
        .unwrap();
        let members = parse_member_list(
            &approval,
            &json!({"result": [
                {"email": "Ann@Example.com", "user_name": "ann"},
                {"email": "", "user_name": "svc"},
                {"user_name": "nomail"}
            ]}),
        )
        .unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(external_id_for(&members, "ann@example.com"), Some("ann"));
        assert_eq!(external_id_for(&members, "bob@example.com"), None);
        assert!(parse_member_list(&approval, &json!({"members": []})).is_err());
    }
}
