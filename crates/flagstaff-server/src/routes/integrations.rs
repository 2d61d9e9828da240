//! Integrations: the manifest catalogue, webhooks, audit-log subscriptions
//! (`/api/v2/integrations/{integrationKey}`), integration configurations, and Flagstaff's
//! delivery log (list, inspect, redeliver) and "validate connection".

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::audit::AuditEntry;
use flagstaff_model::patch::{PatchFormats, PatchRequest, parse_patch_request};
use flagstaff_policy::Resource;
use flagstaff_store::DeliveryRecord;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::integrations::delivery::{DELIVERY_HEADER, NotSent, open_config};
use crate::integrations::{
    SubscriptionDoc, WebhookDoc, integration_destination, webhook_destination,
};
use crate::render::link;
use crate::services::webhooks::{SECRET_MASK, SubscriptionFields, WebhookFields, masked_config};
use crate::services::{decode, wall_millis};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_integration_manifests))
        .routes(routes!(get_integration_manifest))
        .routes(routes!(get_webhooks, post_webhook))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(get_webhook_deliveries))
        .routes(routes!(get_subscriptions, create_subscription))
        .routes(routes!(
            get_subscription,
            patch_subscription,
            delete_subscription
        ))
        .routes(routes!(get_subscription_deliveries))
        .routes(routes!(validate_subscription))
        .routes(routes!(get_configurations, post_configuration))
        .routes(routes!(
            get_configuration,
            patch_configuration,
            delete_configuration
        ))
        .routes(routes!(get_delivery))
        .routes(routes!(redeliver))
        .routes(routes!(get_integration_context))
}

// -- manifests ---------------------------------------------------------------------------

/// List the integration manifests this server loaded (built-in and `--integrations-dir`),
/// plus those that failed to load with their lint errors.
#[utoipa::path(get, path = "/api/v2/integration-manifests", tag = "Integrations (beta)",
    operation_id = "getIntegrationManifests",
    responses((status = 200, description = "Integration manifests")), security(("ApiKey" = [])))]
async fn get_integration_manifests(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let catalogue = state.integrations.catalogue.current();
    let items: Vec<Value> = catalogue
        .iter()
        .filter(|i| caller.can("viewIntegration", &Resource::integration(&i.key, &[])))
        .map(|i| manifest_rep(&i.key, &i.raw))
        .collect();
    let may_view_all = !items.is_empty();
    let rejected: Vec<Value> = catalogue
        .rejected
        .iter()
        .filter(|_| may_view_all)
        .map(|report| {
            json!({
                "key": report.key,
                "errors": report
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .map(|d| json!({"rule": d.rule, "pointer": d.pointer, "message": d.message}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "items": items, "_rejected": rejected })))
}

fn manifest_rep(key: &str, raw: &Value) -> Value {
    let mut rep = raw.clone();
    if let Value::Object(map) = &mut rep {
        map.insert("key".into(), Value::from(key));
        map.insert(
            "_links".into(),
            json!({"self": link(format!("/api/v2/integration-manifests/{key}"))}),
        );
    }
    rep
}

/// Get one integration manifest.
#[utoipa::path(get, path = "/api/v2/integration-manifests/{integrationKey}",
    tag = "Integrations (beta)", operation_id = "getIntegrationManifest",
    params(("integrationKey" = String, Path, description = "The integration key")),
    responses((status = 200, description = "Integration manifest")), security(("ApiKey" = [])))]
async fn get_integration_manifest(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require("viewIntegration", &Resource::integration(&key, &[]))?;
    let integration = state.services.integration(&state.integrations, &key)?;
    Ok(Json(manifest_rep(&integration.key, &integration.raw)))
}

// -- webhooks ----------------------------------------------------------------------------

fn webhook_rep(doc: &WebhookDoc) -> Value {
    let mut rep = json!({
        "_links": {"self": link(format!("/api/v2/webhooks/{}", doc.id))},
        "_id": doc.id,
        "url": doc.url,
        "on": doc.on,
        "sign": doc.sign,
        "tags": doc.tags,
    });
    if let Some(name) = &doc.name {
        rep["name"] = Value::from(name.clone());
    }
    if doc.secret.is_some() {
        rep["secret"] = Value::from(SECRET_MASK);
    }
    if let Some(statements) = &doc.statements {
        rep["statements"] = statements.clone();
    }
    if let Some(reason) = &doc.disabled_reason {
        rep["_disabledReason"] = Value::from(reason.clone());
    }
    rep
}

/// List webhooks.
#[utoipa::path(get, path = "/api/v2/webhooks", tag = "Webhooks", operation_id = "getAllWebhooks",
    responses((status = 200, description = "Webhooks collection")), security(("ApiKey" = [])))]
async fn get_webhooks(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = state
        .services
        .list_webhooks()
        .await?
        .iter()
        .filter(|doc| caller.can("viewWebhook", &Resource::webhook(&doc.id, &doc.tags)))
        .map(webhook_rep)
        .collect();
    Ok(Json(
        json!({"_links": {"self": link("/api/v2/webhooks")}, "items": items}),
    ))
}

/// Create a webhook: every change its statements select is POSTed to `url` as the audit
/// entry; with `sign`, `X-LD-Signature` carries the hex HMAC-SHA256 of the body (a secret is
/// generated when none is given). The secret is never shown again.
#[utoipa::path(post, path = "/api/v2/webhooks", tag = "Webhooks", operation_id = "postWebhook",
    request_body(content = Object, description = "{url, sign, on, name?, secret?, statements?, tags?}"),
    responses((status = 200, description = "The new webhook")), security(("ApiKey" = [])))]
async fn post_webhook(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(fields): LdJson<WebhookFields>,
) -> ApiResult<Json<Value>> {
    let doc = state
        .services
        .create_webhook(&caller, &state.integrations, fields)
        .await?;
    Ok(Json(webhook_rep(&doc)))
}

/// Get a webhook.
#[utoipa::path(get, path = "/api/v2/webhooks/{id}", tag = "Webhooks", operation_id = "getWebhook",
    params(("id" = String, Path, description = "The webhook ID")),
    responses((status = 200, description = "Webhook")), security(("ApiKey" = [])))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.get_webhook(&id).await?;
    caller.require("viewWebhook", &Resource::webhook(&doc.id, &doc.tags))?;
    let mut rep = webhook_rep(&doc);
    rep["_status"] = status_rep(&state, &webhook_destination(&id)).await?;
    Ok(Json(rep))
}

/// Update a webhook with a JSON Patch (`/name`, `/url`, `/secret`, `/sign`, `/on`, `/tags`,
/// `/statements`).
#[utoipa::path(patch, path = "/api/v2/webhooks/{id}", tag = "Webhooks", operation_id = "patchWebhook",
    params(("id" = String, Path, description = "The webhook ID")),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "The updated webhook")), security(("ApiKey" = [])))]
async fn patch_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let request = parse_patch_request(
        body.value()?,
        body.semantic_patch,
        PatchFormats::JsonPatchOnly,
    )?;
    let doc = state
        .services
        .patch_webhook(&caller, &state.integrations, &id, &request)
        .await?;
    Ok(Json(webhook_rep(&doc)))
}

/// Delete a webhook; its pending deliveries are dropped.
#[utoipa::path(delete, path = "/api/v2/webhooks/{id}", tag = "Webhooks", operation_id = "deleteWebhook",
    params(("id" = String, Path, description = "The webhook ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_webhook(&caller, &state.integrations, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// -- audit-log subscriptions ------------------------------------------------------------

fn subscription_rep(state: &AppState, doc: &SubscriptionDoc) -> Value {
    let config = match state
        .integrations
        .catalogue
        .current()
        .get(&doc.integration_key)
    {
        Some(integration) => masked_config(integration, &doc.config),
        None => Map::new(),
    };
    let key = &doc.integration_key;
    let mut rep = json!({
        "_links": {
            "self": link(format!("/api/v2/integrations/{key}/{}", doc.id)),
            "parent": link(format!("/api/v2/integrations/{key}")),
        },
        "_id": doc.id,
        "kind": key,
        "name": doc.name,
        "config": config,
        "on": doc.on,
        "tags": doc.tags,
    });
    if let Some(statements) = &doc.statements {
        rep["statements"] = statements.clone();
    }
    if let Some(reason) = &doc.disabled_reason {
        rep["_disabledReason"] = Value::from(reason.clone());
    }
    rep
}

async fn status_rep(state: &AppState, destination: &str) -> ApiResult<Value> {
    let recent = state
        .store
        .deliveries_list(destination, i64::MAX, 100)
        .await?;
    let delivered: Vec<&DeliveryRecord> =
        recent.iter().filter(|d| d.state == "delivered").collect();
    let failed: Vec<&DeliveryRecord> = recent
        .iter()
        .filter(|d| d.state != "delivered" && d.last_error.is_some())
        .collect();
    let mut status = json!({
        "successCount": delivered.len(),
        "errorCount": failed.len(),
        "pendingCount": state.store.deliveries_pending(destination).await?,
        "errors": failed.iter().take(10).map(|d| json!({
            "statusCode": d.last_status,
            "responseBody": d.last_error,
            "timestamp": d.updated_at,
        })).collect::<Vec<_>>(),
    });
    if let Some(last) = delivered.first() {
        status["lastSuccess"] = Value::from(last.updated_at);
    }
    if let Some(last) = failed.first() {
        status["lastError"] = Value::from(last.updated_at);
    }
    Ok(status)
}

/// The integration's configurations the caller may view, in one representation.
async fn visible_subscriptions(
    state: &AppState,
    caller: &Caller,
    key: &str,
    represent: fn(&AppState, &SubscriptionDoc) -> Value,
) -> ApiResult<Vec<Value>> {
    state.services.integration(&state.integrations, key)?;
    Ok(state
        .services
        .list_subscriptions(key)
        .await?
        .iter()
        .filter(|doc| caller.can("viewIntegration", &Resource::integration(key, &doc.tags)))
        .map(|doc| represent(state, doc))
        .collect())
}

/// List a catalogue integration's audit-log subscriptions.
#[utoipa::path(get, path = "/api/v2/integrations/{integrationKey}", tag = "Integration audit log subscriptions",
    operation_id = "getSubscriptions",
    params(("integrationKey" = String, Path, description = "The integration key")),
    responses((status = 200, description = "Integrations collection")), security(("ApiKey" = [])))]
async fn get_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let items = visible_subscriptions(&state, &caller, &key, subscription_rep).await?;
    Ok(Json(json!({
        "_links": {"self": link(format!("/api/v2/integrations/{key}"))},
        "items": items,
        "key": key,
    })))
}

/// Create an audit-log subscription: `config` holds the manifest's form variables (validated
/// per field; secrets encrypted at rest and shown masked), `statements` filters the changes
/// sent (default: the manifest's `defaultPolicy`).
#[utoipa::path(post, path = "/api/v2/integrations/{integrationKey}", tag = "Integration audit log subscriptions",
    operation_id = "createSubscription",
    params(("integrationKey" = String, Path, description = "The integration key")),
    request_body(content = Object, description = "{name, config, on?, tags?, statements?}"),
    responses((status = 201, description = "The new subscription")), security(("ApiKey" = [])))]
async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdJson(fields): LdJson<SubscriptionFields>,
) -> ApiResult<impl IntoResponse> {
    let doc = state
        .services
        .create_subscription(&caller, &state.integrations, &key, fields)
        .await?;
    Ok((StatusCode::CREATED, Json(subscription_rep(&state, &doc))))
}

/// Get an audit-log subscription, with its delivery status.
#[utoipa::path(get, path = "/api/v2/integrations/{integrationKey}/{id}", tag = "Integration audit log subscriptions",
    operation_id = "getSubscriptionByID",
    params(("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The subscription ID")),
    responses((status = 200, description = "Integration")), security(("ApiKey" = [])))]
async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.get_subscription(&key, &id).await?;
    caller.require("viewIntegration", &Resource::integration(&key, &doc.tags))?;
    let mut rep = subscription_rep(&state, &doc);
    rep["_status"] = status_rep(&state, &integration_destination(&key, &id)).await?;
    Ok(Json(rep))
}

/// Update an audit-log subscription with a JSON Patch (`/name`, `/config/<field>`, `/on`,
/// `/tags`, `/statements`). Secret fields left masked keep their stored value.
#[utoipa::path(patch, path = "/api/v2/integrations/{integrationKey}/{id}", tag = "Integration audit log subscriptions",
    operation_id = "updateSubscription",
    params(("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The subscription ID")),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "The updated subscription")), security(("ApiKey" = [])))]
async fn patch_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, id)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let request = parse_patch_request(
        body.value()?,
        body.semantic_patch,
        PatchFormats::JsonPatchOnly,
    )?;
    let doc = state
        .services
        .patch_subscription(&caller, &state.integrations, &key, &id, &request)
        .await?;
    Ok(Json(subscription_rep(&state, &doc)))
}

/// Delete an audit-log subscription.
#[utoipa::path(delete, path = "/api/v2/integrations/{integrationKey}/{id}", tag = "Integration audit log subscriptions",
    operation_id = "deleteSubscription",
    params(("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The subscription ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_subscription(&caller, &state.integrations, &key, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// "Validate connection": sends the integration's `validation` template (or, without one,
/// the template for a sample environment change) now and reports the partner's answer.
#[utoipa::path(post, path = "/api/v2/integrations/{integrationKey}/{id}/validate",
    tag = "Integration audit log subscriptions", operation_id = "validateSubscription",
    params(("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The subscription ID")),
    responses((status = 200, description = "The partner's answer")), security(("ApiKey" = [])))]
async fn validate_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.get_subscription(&key, &id).await?;
    caller.require(
        "updateConfiguration",
        &Resource::integration(&key, &doc.tags),
    )?;
    let integration = state.services.integration(&state.integrations, &key)?;
    let form_values = open_config(&state.integrations, &integration, &doc).map_err(not_sent)?;
    let samples = flagstaff_manifest::SampleContexts::builtin();
    let event = samples
        .get("environment/update")
        .cloned()
        .unwrap_or(Value::Null);
    let oauth = crate::integrations::oauth_client::template_oauth(
        &state.store,
        &state.integrations,
        &integration,
    )
    .await
    .map_err(not_sent)?;
    let input = flagstaff_manifest::preview::PreviewInput {
        form_values,
        oauth,
        compat: flagstaff_template::Compat::Go,
        standard_payload: None,
    };
    let preview = flagstaff_manifest::preview::preview(
        &integration,
        &flagstaff_manifest::preview::Target::AuditLogEventsHookValidation,
        &event,
        &input,
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    let rendered = match preview {
        flagstaff_manifest::preview::Preview::Request(request) => request,
        flagstaff_manifest::preview::Preview::Skipped(reason) => {
            return Ok(Json(
                json!({"ok": false, "error": format!("nothing to send: {reason}")}),
            ));
        }
        flagstaff_manifest::preview::Preview::Rendered(_) => {
            return Err(ApiError::invalid(
                "this integration has no validation request",
            ));
        }
    };
    let mut request = flagstaff_outbound::OutboundRequest::new(rendered.method, rendered.url)
        .body(rendered.body.into_bytes());
    for header in rendered.headers {
        request = request.header(header.name, header.value);
    }
    request = request.header(
        DELIVERY_HEADER,
        format!("validation-{}", uuid::Uuid::new_v4()),
    );
    Ok(Json(
        match state.integrations.outbound.send(request).await {
            Ok(response) => json!({
                "ok": (200..300).contains(&response.status),
                "statusCode": response.status,
                "latencyMs": response.elapsed.as_millis() as u64,
            }),
            Err(error) => json!({"ok": false, "error": error.to_string()}),
        },
    ))
}

fn not_sent(reason: NotSent) -> ApiError {
    match reason {
        NotSent::Skipped(reason) | NotSent::Permanent(reason) | NotSent::Retry(reason) => {
            ApiError::invalid(reason)
        }
    }
}

// -- integration configurations (the newer API) ------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigurationPost {
    name: String,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    tags: Vec<String>,
    config_values: Map<String, Value>,
    #[serde(default)]
    capability_config: Option<CapabilityConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CapabilityConfig {
    #[serde(default)]
    audit_log_events_hook: Option<AuditLogEventsHookConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditLogEventsHookConfig {
    #[serde(default)]
    statements: Option<Value>,
}

fn configuration_rep(state: &AppState, doc: &SubscriptionDoc) -> Value {
    let config = match state
        .integrations
        .catalogue
        .current()
        .get(&doc.integration_key)
    {
        Some(integration) => masked_config(integration, &doc.config),
        None => Map::new(),
    };
    let mut hook = json!({});
    if let Some(statements) = &doc.statements {
        hook["statements"] = statements.clone();
    }
    json!({
        "_links": {"self": link(format!("/api/v2/integration-configurations/{}", doc.id))},
        "_id": doc.id,
        "name": doc.name,
        "_createdAt": doc.created_at,
        "_integrationKey": doc.integration_key,
        "tags": doc.tags,
        "enabled": doc.on,
        "configValues": config,
        "capabilityConfig": {"auditLogEventsHook": hook},
    })
}

/// List an integration's configurations.
#[utoipa::path(get, path = "/api/v2/integration-configurations/keys/{integrationKey}",
    tag = "Integrations (beta)", operation_id = "getAllIntegrationConfigurations",
    params(("integrationKey" = String, Path, description = "The integration key")),
    responses((status = 200, description = "Integration configurations")), security(("ApiKey" = [])))]
async fn get_configurations(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let items = visible_subscriptions(&state, &caller, &key, configuration_rep).await?;
    Ok(Json(json!({
        "_links": {"self": link(format!("/api/v2/integration-configurations/keys/{key}"))},
        "items": items,
    })))
}

/// Create an integration configuration (`configValues` = form variables,
/// `capabilityConfig.auditLogEventsHook.statements` = the change filter).
#[utoipa::path(post, path = "/api/v2/integration-configurations/keys/{integrationKey}",
    tag = "Integrations (beta)", operation_id = "createIntegrationConfiguration",
    params(("integrationKey" = String, Path, description = "The integration key")),
    request_body(content = Object, description = "{name, configValues, enabled?, tags?, capabilityConfig?}"),
    responses((status = 201, description = "The new configuration")), security(("ApiKey" = [])))]
async fn post_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdJson(post): LdJson<ConfigurationPost>,
) -> ApiResult<impl IntoResponse> {
    let fields = SubscriptionFields {
        name: post.name,
        config: post.config_values,
        on: post.enabled.unwrap_or(true),
        tags: post.tags,
        statements: post
            .capability_config
            .and_then(|c| c.audit_log_events_hook)
            .and_then(|h| h.statements),
    };
    let doc = state
        .services
        .create_subscription(&caller, &state.integrations, &key, fields)
        .await?;
    Ok((StatusCode::CREATED, Json(configuration_rep(&state, &doc))))
}

/// Get an integration configuration by ID.
#[utoipa::path(get, path = "/api/v2/integration-configurations/{integrationConfigurationId}",
    tag = "Integrations (beta)", operation_id = "getIntegrationConfiguration",
    params(("integrationConfigurationId" = String, Path, description = "The configuration ID")),
    responses((status = 200, description = "Integration configuration")), security(("ApiKey" = [])))]
async fn get_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.find_subscription(&id).await?;
    caller.require(
        "viewIntegration",
        &Resource::integration(&doc.integration_key, &doc.tags),
    )?;
    Ok(Json(configuration_rep(&state, &doc)))
}

/// Update an integration configuration with a JSON Patch over its representation
/// (`/name`, `/enabled`, `/tags`, `/configValues/...`, `/capabilityConfig/auditLogEventsHook/statements`).
#[utoipa::path(patch, path = "/api/v2/integration-configurations/{integrationConfigurationId}",
    tag = "Integrations (beta)", operation_id = "updateIntegrationConfiguration",
    params(("integrationConfigurationId" = String, Path, description = "The configuration ID")),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "The updated configuration")), security(("ApiKey" = [])))]
async fn patch_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.find_subscription(&id).await?;
    let request = parse_patch_request(body.value()?, false, PatchFormats::JsonPatchOnly)?;
    let request = translate_configuration_patch(request)?;
    let doc = state
        .services
        .patch_subscription(
            &caller,
            &state.integrations,
            &doc.integration_key,
            &id,
            &request,
        )
        .await?;
    Ok(Json(configuration_rep(&state, &doc)))
}

/// Maps the configuration representation's paths onto the stored fields.
fn translate_configuration_patch(request: PatchRequest) -> ApiResult<PatchRequest> {
    let PatchRequest::Json { comment, patch } = request else {
        return Err(ApiError::invalid("send a JSON Patch array"));
    };
    let mut value = serde_json::to_value(&patch).unwrap_or(Value::Null);
    if let Value::Array(ops) = &mut value {
        for op in ops {
            for field in ["path", "from"] {
                if let Some(Value::String(path)) = op.get(field).cloned() {
                    let mapped = [
                        ("/configValues", "/config"),
                        ("/enabled", "/on"),
                        (
                            "/capabilityConfig/auditLogEventsHook/statements",
                            "/statements",
                        ),
                        ("/name", "/name"),
                        ("/tags", "/tags"),
                    ]
                    .iter()
                    .find_map(|(from, to)| {
                        (path == *from || path.starts_with(&format!("{from}/")))
                            .then(|| format!("{to}{}", &path[from.len()..]))
                    })
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "path `{path}` cannot be patched: use /name, /enabled, /tags, \
                             /configValues/… or /capabilityConfig/auditLogEventsHook/statements"
                        ))
                    })?;
                    op[field] = Value::String(mapped);
                }
            }
        }
    }
    let patch = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("invalid JSON Patch: {e}")))?;
    Ok(PatchRequest::Json { comment, patch })
}

/// Delete an integration configuration.
#[utoipa::path(delete, path = "/api/v2/integration-configurations/{integrationConfigurationId}",
    tag = "Integrations (beta)", operation_id = "deleteIntegrationConfiguration",
    params(("integrationConfigurationId" = String, Path, description = "The configuration ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (doc, _) = state.services.find_subscription(&id).await?;
    state
        .services
        .delete_subscription(&caller, &state.integrations, &doc.integration_key, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// -- deliveries (Flagstaff) --------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    /// Only deliveries older than this sequence number (`_seq` of the last item of a page).
    before: Option<i64>,
}

fn delivery_rep(record: &DeliveryRecord) -> Value {
    json!({
        "_links": {
            "self": link(format!("/api/v2/deliveries/{}", record.id)),
            "auditLogEntry": link(format!("/api/v2/auditlog/{}", record.audit_id)),
        },
        "_id": record.id,
        "_seq": record.seq,
        "destination": record.destination,
        "auditLogEntryId": record.audit_id,
        "state": record.state,
        "attempts": record.attempts,
        "createdAt": record.created_at,
        "updatedAt": record.updated_at,
        "nextAttemptAt": if record.state == "pending" { Value::from(record.next_attempt_at) } else { Value::Null },
        "lastStatusCode": record.last_status,
        "lastError": record.last_error,
    })
}

async fn deliveries_page(
    state: &AppState,
    destination: &str,
    q: DeliveriesQuery,
) -> ApiResult<Json<Value>> {
    let limit = crate::routes::paging(q.limit, None, 20)?.limit as i64;
    let records = state
        .store
        .deliveries_list(destination, q.before.unwrap_or(i64::MAX), limit)
        .await?;
    let items: Vec<Value> = records.iter().map(delivery_rep).collect();
    Ok(Json(json!({"items": items, "destination": destination})))
}

/// Flagstaff: a webhook's deliveries, newest first.
#[utoipa::path(get, path = "/api/v2/webhooks/{id}/deliveries", tag = "Webhooks",
    operation_id = "getWebhookDeliveries",
    params(("id" = String, Path, description = "The webhook ID"), DeliveriesQuery),
    responses((status = 200, description = "Deliveries")), security(("ApiKey" = [])))]
async fn get_webhook_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LdQuery(q): LdQuery<DeliveriesQuery>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.get_webhook(&id).await?;
    caller.require("viewWebhook", &Resource::webhook(&doc.id, &doc.tags))?;
    deliveries_page(&state, &webhook_destination(&id), q).await
}

/// Flagstaff: an audit-log subscription's deliveries, newest first.
#[utoipa::path(get, path = "/api/v2/integrations/{integrationKey}/{id}/deliveries",
    tag = "Integration audit log subscriptions", operation_id = "getSubscriptionDeliveries",
    params(("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The subscription ID"), DeliveriesQuery),
    responses((status = 200, description = "Deliveries")), security(("ApiKey" = [])))]
async fn get_subscription_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path((key, id)): Path<(String, String)>,
    LdQuery(q): LdQuery<DeliveriesQuery>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state.services.get_subscription(&key, &id).await?;
    caller.require("viewIntegration", &Resource::integration(&key, &doc.tags))?;
    deliveries_page(&state, &integration_destination(&key, &id), q).await
}

/// A delivery, the policy resource of its destination and the action that views it.
async fn delivery_and_destination(
    state: &AppState,
    id: &str,
) -> ApiResult<(DeliveryRecord, Resource, &'static str)> {
    let record = state
        .store
        .delivery_get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Unknown delivery: {id}")))?;
    let parts: Vec<&str> = record.destination.splitn(3, '/').collect();
    let (resource, view) = match parts.as_slice() {
        ["webhook", webhook] => {
            let (doc, _) = state.services.get_webhook(webhook).await?;
            (Resource::webhook(&doc.id, &doc.tags), "viewWebhook")
        }
        ["integration", key, sub] => {
            let (doc, _) = state.services.get_subscription(key, sub).await?;
            (Resource::integration(key, &doc.tags), "viewIntegration")
        }
        _ => return Err(ApiError::NotFound(format!("Unknown delivery: {id}"))),
    };
    Ok((record, resource, view))
}

/// Flagstaff: one delivery with every attempt (time, status, latency, error; the response
/// body only where the integration allows `includeErrorResponseBody`).
#[utoipa::path(get, path = "/api/v2/deliveries/{deliveryId}", tag = "Webhooks",
    operation_id = "getDelivery",
    params(("deliveryId" = String, Path, description = "The delivery ID")),
    responses((status = 200, description = "Delivery")), security(("ApiKey" = [])))]
async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (record, resource, view) = delivery_and_destination(&state, &id).await?;
    caller.require(view, &resource)?;
    let attempts = state.store.delivery_attempts(&id).await?;
    let mut rep = delivery_rep(&record);
    rep["attemptLog"] = Value::Array(
        attempts
            .iter()
            .map(|a| {
                json!({
                    "attempt": a.attempt,
                    "at": a.at,
                    "statusCode": a.status,
                    "latencyMs": a.latency_ms,
                    "error": a.error,
                    "responseBody": a.response_body,
                })
            })
            .collect(),
    );
    Ok(Json(rep))
}

/// Flagstaff: send a delivery again (now), whatever its state.
#[utoipa::path(post, path = "/api/v2/deliveries/{deliveryId}/redeliver", tag = "Webhooks",
    operation_id = "redeliver",
    params(("deliveryId" = String, Path, description = "The delivery ID")),
    responses((status = 202, description = "Queued")), security(("ApiKey" = [])))]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (_, resource, _) = delivery_and_destination(&state, &id).await?;
    caller.require("updateOn", &resource)?;
    state.store.delivery_requeue(&id, wall_millis()).await?;
    state.integrations.wake.notify_one();
    Ok(StatusCode::ACCEPTED)
}

/// Flagstaff: the change-history event an audit entry gives integration templates (feed it
/// to `flagstaff integrations preview --context`).
#[utoipa::path(get, path = "/api/v2/auditlog/{id}/integration-context", tag = "Audit log",
    operation_id = "getAuditLogEntryIntegrationContext",
    params(("id" = String, Path, description = "The audit log entry ID")),
    responses((status = 200, description = "Template context")), security(("ApiKey" = [])))]
async fn get_integration_context(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = state
        .store
        .audit_get(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Unknown audit log entry: {id}")))?;
    let entry: AuditEntry = decode(&doc)?;
    if !crate::routes::auditlog::entry_visible(&caller, &entry) {
        return Err(ApiError::not_found(format!("audit log entry \"{id}\"")));
    }
    Ok(Json(
        crate::integrations::event::event_context(
            state.store.as_ref(),
            &entry,
            &state.integrations.settings.base_url,
        )
        .await,
    ))
}
