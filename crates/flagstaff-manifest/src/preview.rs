//! What the platform would send: the request an integration's capability builds for an event.
//!
//! This is the one place requests are built from manifests. The `flagstaff integrations
//! preview` CLI prints its result, and the server's delivery uses the same functions, so a
//! preview shows exactly what a partner receives.

use std::fmt;

use flagstaff_template::{Compat, RenderOptions, Template, TemplateError, is_json_template_name};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::Sha256;

use crate::Integration;
use crate::context::{body_context, endpoint_context, form_values_with_defaults, oauth_context};
use crate::model::{Endpoint, FormVariable};

/// Which request of which capability to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The change-history hook; the template is chosen by the event's `kind`.
    AuditLogEventsHook,
    /// The hook's "validate connection" request (`templates.validation`).
    AuditLogEventsHookValidation,
    /// `eventsHook`, with the template key (e.g. `measuredRolloutReverted`).
    EventsHook(String),
    /// The feature-store push; the event is the environment payload.
    FeatureStore,
    FeatureStoreValidation,
    /// An approval request (`creationRequest`, `statusRequest`, `postApplyRequest`,
    /// `deletionRequest`, `memberListRequest`).
    Approval(String),
    /// The flag-link UI blocks for a link; the event is `{deepLink, metadata}`.
    FlagLink,
    /// The synced-segment response body; the event is the response context.
    SyncedSegmentResponse,
}

impl Target {
    /// Parses the CLI's `--capability` value.
    pub fn parse(name: &str) -> Result<Target, String> {
        let (capability, detail) = match name.split_once('.') {
            Some((capability, detail)) => (capability, Some(detail)),
            None => (name, None),
        };
        Ok(match (capability, detail) {
            ("auditLogEventsHook", None) => Target::AuditLogEventsHook,
            ("auditLogEventsHook", Some("validation")) => Target::AuditLogEventsHookValidation,
            ("eventsHook", Some(template)) => Target::EventsHook(template.to_string()),
            ("eventsHook", None) => Target::EventsHook(String::new()),
            ("featureStore", None) => Target::FeatureStore,
            ("featureStore", Some("validation" | "validationRequest")) => {
                Target::FeatureStoreValidation
            }
            ("approval", None) => Target::Approval("creationRequest".into()),
            ("approval", Some(step)) => Target::Approval(step.to_string()),
            ("flagLink", None) => Target::FlagLink,
            ("syncedSegment", None) => Target::SyncedSegmentResponse,
            _ => {
                return Err(format!(
                    "unknown capability `{name}`: use auditLogEventsHook, \
                     auditLogEventsHook.validation, eventsHook[.<template>], featureStore, \
                     featureStore.validation, approval[.<request>], flagLink or syncedSegment"
                ));
            }
        })
    }

    /// The capability a manifest must have for this target.
    pub fn capability(&self) -> &'static str {
        match self {
            Target::AuditLogEventsHook | Target::AuditLogEventsHookValidation => {
                "auditLogEventsHook"
            }
            Target::EventsHook(_) => "eventsHook",
            Target::FeatureStore | Target::FeatureStoreValidation => "featureStore",
            Target::Approval(_) => "approval",
            Target::FlagLink => "flagLink",
            Target::SyncedSegmentResponse => "syncedSegment",
        }
    }
}

/// Inputs besides the event.
#[derive(Debug, Clone, Default)]
pub struct PreviewInput {
    /// The user's form-variable values (top-level, feature-store or approval ones by key;
    /// approval environment values under `environment`, approval form values under
    /// `approval`). Missing ones fall back to `defaultValue`, else a placeholder.
    pub form_values: Map<String, Value>,
    /// `(baseURI, accessToken)` for integrations that require OAuth.
    pub oauth: Option<(String, String)>,
    pub compat: Compat,
    /// The body sent when the hook uses `useStandardWebhookPayload` (the audit entry as the
    /// REST API shows it); the event itself when absent.
    pub standard_payload: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<HeaderValue>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Preview {
    Request(RenderedRequest),
    /// Nothing would be sent, and why.
    Skipped(String),
    /// Rendered content that is not a request (flag-link blocks, a synced-segment response).
    Rendered(Value),
}

impl Preview {
    /// The `--format json` shape: `{"method","url","headers":[{"name","value"}],"body"}`,
    /// `{"skipped": "<reason>"}` or `{"rendered": …}`.
    pub fn to_json(&self) -> Value {
        match self {
            Preview::Request(request) => json!({
                "method": request.method,
                "url": request.url,
                "headers": request.headers,
                "body": request.body,
            }),
            Preview::Skipped(reason) => json!({ "skipped": reason }),
            Preview::Rendered(value) => json!({ "rendered": value }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewError {
    /// The integration has no such capability or template.
    Unsupported(String),
    /// A template failed to render.
    Render {
        pointer: String,
        error: TemplateError,
    },
}

impl fmt::Display for PreviewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PreviewError::Unsupported(message) => f.write_str(message),
            PreviewError::Render { pointer, error } => {
                write!(f, "template {pointer} failed to render: {error}")
            }
        }
    }
}

impl std::error::Error for PreviewError {}

fn unsupported(integration: &Integration, what: &str) -> PreviewError {
    PreviewError::Unsupported(format!("integration `{}` has no {what}", integration.key))
}

/// Renders one template of an integration, naming it by its pointer when it fails.
pub fn render_template(
    template: &Template,
    pointer: &str,
    context: &Value,
    compat: Compat,
) -> Result<String, PreviewError> {
    render(template, pointer, context, compat)
}

fn render(
    template: &Template,
    pointer: &str,
    context: &Value,
    compat: Compat,
) -> Result<String, PreviewError> {
    template
        .render(
            context,
            RenderOptions {
                strict: false,
                compat,
            },
        )
        .map_err(|error| PreviewError::Render {
            pointer: pointer.to_string(),
            error,
        })
}

/// Builds what `integration` would do for `event` under `target`.
pub fn preview(
    integration: &Integration,
    target: &Target,
    event: &Value,
    input: &PreviewInput,
) -> Result<Preview, PreviewError> {
    let manifest = &integration.manifest;
    let capabilities = manifest
        .capabilities
        .as_ref()
        .ok_or_else(|| unsupported(integration, "capabilities"))?;
    let oauth = match &input.oauth {
        Some((base, token)) => oauth_context(manifest.requires_oauth, base, token),
        None => crate::context::placeholder_oauth(manifest.requires_oauth),
    };
    let form = form_values_with_defaults(&manifest.form_variables, &input.form_values);
    let compat = input.compat;
    match target {
        Target::AuditLogEventsHook | Target::AuditLogEventsHookValidation => {
            let hook = capabilities
                .audit_log_events_hook
                .as_ref()
                .ok_or_else(|| unsupported(integration, "auditLogEventsHook capability"))?;
            let Some(endpoint) = &hook.endpoint else {
                return Ok(Preview::Skipped(
                    "the integration delivers through a custom delivery method, not an HTTP \
                     endpoint"
                        .into(),
                ));
            };
            let body = if hook.use_standard_webhook_payload {
                serde_json::to_string(input.standard_payload.as_ref().unwrap_or(event))
                    .unwrap_or_default()
            } else {
                let (key, path) = match target {
                    Target::AuditLogEventsHookValidation => (
                        "validation".to_string(),
                        hook.templates.validation.as_deref(),
                    ),
                    _ => {
                        let kind = event.get("kind").and_then(Value::as_str).unwrap_or("");
                        (format!("kind `{kind}`"), hook.templates.for_kind(kind))
                    }
                };
                let Some(path) = path else {
                    return Ok(Preview::Skipped(format!(
                        "the integration has no template for {key} and no default template"
                    )));
                };
                let template =
                    integration.templates.files.get(path).ok_or_else(|| {
                        unsupported(integration, &format!("template file {path}"))
                    })?;
                let context = body_context(event, is_json_template_name(path), &form, &oauth);
                let body = render(template, path, &context, compat)?;
                if body.trim().is_empty() {
                    return Ok(Preview::Skipped(format!(
                        "{path} rendered an empty body for this event, so nothing is sent"
                    )));
                }
                body
            };
            let context = endpoint_context(&form, &oauth, event);
            let request = build_request(
                integration,
                "/capabilities/auditLogEventsHook/endpoint",
                endpoint,
                &context,
                body,
                &form,
                compat,
            )?;
            Ok(Preview::Request(request))
        }
        Target::EventsHook(key) => {
            let hook = capabilities
                .events_hook
                .as_ref()
                .ok_or_else(|| unsupported(integration, "eventsHook capability"))?;
            let entries = hook.templates.entries();
            let chosen = if key.is_empty() {
                let kind = event.get("kind").and_then(Value::as_str).unwrap_or("");
                entries.iter().find(|(name, _)| *name == kind)
            } else {
                entries.iter().find(|(name, _)| name == key)
            };
            let Some((_, path)) = chosen else {
                return Ok(Preview::Skipped(format!(
                    "the integration has no eventsHook template `{key}`; it has {}",
                    entries
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let template = integration
                .templates
                .files
                .get(*path)
                .ok_or_else(|| unsupported(integration, &format!("template file {path}")))?;
            let context = body_context(event, is_json_template_name(path), &form, &oauth);
            let body = render(template, path, &context, compat)?;
            if body.trim().is_empty() {
                return Ok(Preview::Skipped(format!(
                    "{path} rendered an empty body for this event, so nothing is sent"
                )));
            }
            let context = endpoint_context(&form, &oauth, event);
            let request = build_request(
                integration,
                "/capabilities/eventsHook/endpoint",
                &hook.endpoint,
                &context,
                body,
                &form,
                compat,
            )?;
            Ok(Preview::Request(request))
        }
        Target::FeatureStore | Target::FeatureStoreValidation => {
            let store = capabilities
                .feature_store
                .as_ref()
                .ok_or_else(|| unsupported(integration, "featureStore capability"))?;
            let context = Value::Object(feature_store_values(
                &store.form_variables,
                &input.form_values,
            ));
            if *target == Target::FeatureStoreValidation {
                let validation = store
                    .validation_request
                    .as_ref()
                    .ok_or_else(|| unsupported(integration, "featureStore validationRequest"))?;
                let request = build_request(
                    integration,
                    "/capabilities/featureStore/validationRequest/endpoint",
                    &validation.endpoint,
                    &context,
                    String::new(),
                    &Map::new(),
                    compat,
                )?;
                return Ok(Preview::Request(request));
            }
            let at = "/capabilities/featureStore/featureStoreRequest";
            let mut body = String::new();
            if let Some(template) = integration
                .templates
                .inline
                .get(&format!("{at}/payloadPrefix"))
            {
                body.push_str(&render(template, at, &context, compat)?);
            }
            body.push_str(&serde_json::to_string(event).unwrap_or_default());
            if let Some(template) = integration
                .templates
                .inline
                .get(&format!("{at}/payloadSuffix"))
            {
                body.push_str(&render(template, at, &context, compat)?);
            }
            let request = build_request(
                integration,
                &format!("{at}/endpoint"),
                &store.feature_store_request.endpoint,
                &context,
                body,
                &Map::new(),
                compat,
            )?;
            Ok(Preview::Request(request))
        }
        Target::Approval(step) => Ok(Preview::Request(crate::approval::build_request(
            integration,
            step,
            event,
            event,
            input,
        )?)),
        Target::FlagLink => {
            capabilities
                .flag_link
                .as_ref()
                .ok_or_else(|| unsupported(integration, "flagLink capability"))?;
            let mut blocks = integration
                .raw
                .pointer("/capabilities/flagLink/uiBlocks")
                .cloned()
                .unwrap_or(Value::Null);
            render_in_place(
                integration,
                &mut blocks,
                &mut "/capabilities/flagLink/uiBlocks".to_string(),
                event,
                compat,
            )?;
            Ok(Preview::Rendered(blocks))
        }
        Target::SyncedSegmentResponse => {
            let pointer = "/capabilities/syncedSegment/jsonResponseBody";
            capabilities
                .synced_segment
                .as_ref()
                .ok_or_else(|| unsupported(integration, "syncedSegment capability"))?;
            let Some(template) = integration.templates.inline.get(pointer) else {
                return Ok(Preview::Skipped(
                    "the integration has no jsonResponseBody: the response carries only the \
                     status code"
                        .into(),
                ));
            };
            let body = render(template, pointer, event, compat)?;
            let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
            Ok(Preview::Rendered(value))
        }
    }
}

/// Feature-store endpoint context: the capability's form values, `_featureStoreKey` (one per
/// environment) and `envId` (the environment's client-side id).
pub fn feature_store_values(
    variables: &[FormVariable],
    given: &Map<String, Value>,
) -> Map<String, Value> {
    let mut values = form_values_with_defaults(variables, given);
    values
        .entry("_featureStoreKey".to_string())
        .or_insert_with(|| Value::from("$_FEATURESTOREKEY"));
    values
        .entry("envId".to_string())
        .or_insert_with(|| Value::from("$ENVID"));
    values
}

fn render_in_place(
    integration: &Integration,
    value: &mut Value,
    pointer: &mut String,
    context: &Value,
    compat: Compat,
) -> Result<(), PreviewError> {
    match value {
        Value::String(text) => {
            if let Some(template) = integration.templates.inline.get(pointer.as_str()) {
                *text = render(template, pointer, context, compat)?;
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                let len = pointer.len();
                pointer.push_str(&format!("/{index}"));
                render_in_place(integration, item, pointer, context, compat)?;
                pointer.truncate(len);
            }
        }
        Value::Object(object) => {
            for (key, item) in object.iter_mut() {
                let len = pointer.len();
                pointer.push('/');
                pointer.push_str(&crate::diagnostic::pointer_token(key));
                render_in_place(integration, item, pointer, context, compat)?;
                pointer.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Renders an endpoint's URL and headers and signs the body when the endpoint asks for it.
pub fn build_request(
    integration: &Integration,
    endpoint_pointer: &str,
    endpoint: &Endpoint,
    context: &Value,
    body: String,
    form_values: &Map<String, Value>,
    compat: Compat,
) -> Result<RenderedRequest, PreviewError> {
    let url_pointer = format!("{endpoint_pointer}/url");
    let url = match integration.templates.inline.get(&url_pointer) {
        Some(template) => render(template, &url_pointer, context, compat)?,
        None => endpoint.url.clone(),
    };
    let mut headers = Vec::with_capacity(endpoint.headers.len() + 1);
    for (index, header) in endpoint.headers.iter().enumerate() {
        let pointer = format!("{endpoint_pointer}/headers/{index}/value");
        let value = match integration.templates.inline.get(&pointer) {
            Some(template) => render(template, &pointer, context, compat)?,
            None => header.value.clone(),
        };
        headers.push(HeaderValue {
            name: header.name.clone(),
            value,
        });
    }
    if let Some(hmac) = &endpoint.hmac_signature {
        let secret = form_values
            .get(&hmac.hmac_secret_form_variable_key)
            .and_then(Value::as_str)
            .unwrap_or_default();
        headers.push(HeaderValue {
            name: hmac.header_name.clone(),
            value: sign_body(secret.as_bytes(), body.as_bytes()),
        });
    }
    Ok(RenderedRequest {
        method: endpoint.method.as_str().to_string(),
        url,
        headers,
        body,
    })
}

/// LaunchDarkly's webhook signature: hex HMAC-SHA256 of the raw body.
pub fn sign_body(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A `curl` command line that sends `request` (for `--format curl`).
pub fn curl_command(request: &RenderedRequest) -> String {
    let quote = |text: &str| format!("'{}'", text.replace('\'', "'\\''"));
    let mut command = format!("curl -X {} {}", request.method, quote(&request.url));
    for header in &request.headers {
        command.push_str(&format!(
            " \\\n  -H {}",
            quote(&format!("{}: {}", header.name, header.value))
        ));
    }
    if !request.body.is_empty() {
        command.push_str(&format!(" \\\n  --data-binary {}", quote(&request.body)));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign_body(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            Target::parse("auditLogEventsHook.validation").unwrap(),
            Target::AuditLogEventsHookValidation
        );
        assert_eq!(
            Target::parse("approval.statusRequest").unwrap(),
            Target::Approval("statusRequest".into())
        );
        assert!(Target::parse("nope").is_err());
    }
}
