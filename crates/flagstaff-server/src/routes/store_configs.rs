//! Persistent-store configurations in LaunchDarkly's shapes: featureStore delivery
//! configurations (`IntegrationDeliveryConfiguration`) and big-segment stores
//! (`BigSegmentStoreIntegration`), each with the sync status (`_status`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_manifest::preview::Preview;
use flagstaff_model::patch::{PatchFormats, parse_patch_request};
use flagstaff_policy::Resource;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson};
use crate::integrations::stores::{StoreCapability, StoreConfigDoc, StoreSync, plan};
use crate::render::link;
use crate::services::store_configs::StoreConfigFields;
use crate::services::wall_millis;
use crate::state::AppState;

const FEATURE_STORE: &str = "/api/v2/integration-capabilities/featureStore";
const BIG_SEGMENT_STORE: &str = "/api/v2/integration-capabilities/big-segment-store";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_delivery_configurations))
        .routes(routes!(get_delivery_configurations_by_environment))
        .routes(routes!(create_delivery_configuration))
        .routes(routes!(
            get_delivery_configuration,
            patch_delivery_configuration,
            delete_delivery_configuration
        ))
        .routes(routes!(validate_delivery_configuration))
        .routes(routes!(get_big_segment_stores))
        .routes(routes!(create_big_segment_store))
        .routes(routes!(
            get_big_segment_store,
            patch_big_segment_store,
            delete_big_segment_store
        ))
}

fn base(capability: StoreCapability) -> &'static str {
    match capability {
        StoreCapability::FeatureStore => FEATURE_STORE,
        StoreCapability::BigSegmentStore => BIG_SEGMENT_STORE,
    }
}

/// Where the store's sync stands: the environment version it holds, the last push and the
/// last error (`BigSegmentStoreStatus` fields plus `syncedVersion`).
async fn status_rep(state: &AppState, doc: &StoreConfigDoc) -> ApiResult<Value> {
    let sync = state
        .store
        .store_sync_get(&doc.id)
        .await?
        .unwrap_or_default();
    let failing = sync.failures > 0;
    let mut status = json!({
        "available": doc.on && sync.pushed_at.is_some() && !failing,
        "potentiallyStale": failing || sync.pushed_at.is_none(),
        "syncedVersion": sync.pushed_version,
        "errors": match (&sync.last_error, sync.last_error_at) {
            // `statusCode` is optional in LaunchDarkly's schema, and a connection
            // failure has none.
            (Some(message), Some(at)) if failing => vec![json!({"message": message, "timestamp": at})],
            _ => vec![],
        },
    });
    if let Some(at) = sync.pushed_at {
        status["lastSync"] = Value::from(at);
    }
    if let Some(at) = sync.last_error_at {
        status["lastError"] = Value::from(at);
    }
    if let Some(at) = sync.next_retry_at.filter(|_| failing) {
        status["nextRetry"] = Value::from(at);
    }
    Ok(status)
}

async fn config_rep(state: &AppState, doc: &StoreConfigDoc, version: i64) -> ApiResult<Value> {
    let (project, env, key) = (&doc.project_key, &doc.environment_key, &doc.integration_key);
    let parent = format!("{}/{project}/{env}", base(doc.capability));
    Ok(json!({
        "_links": {
            "self": link(format!("{parent}/{key}/{}", doc.id)),
            "parent": link(parent),
            "project": link(format!("/api/v2/projects/{project}")),
            "environment": link(format!("/api/v2/projects/{project}/environments/{env}")),
        },
        "_id": doc.id,
        "integrationKey": key,
        "projectKey": project,
        "environmentKey": env,
        "config": state.services.masked_store_config(&state.integrations, doc),
        "on": doc.on,
        "tags": doc.tags,
        "name": doc.name,
        "version": version,
        "_status": status_rep(state, doc).await?,
    }))
}

async fn collection(
    state: &AppState,
    caller: &Caller,
    self_path: String,
    docs: Vec<(StoreConfigDoc, i64)>,
) -> ApiResult<Json<Value>> {
    let mut items = Vec::new();
    for (doc, version) in docs {
        if caller.can(
            "viewIntegration",
            &Resource::integration(&doc.integration_key, &doc.tags),
        ) && caller.can("viewProject", &Resource::project(&doc.project_key, &[]))
        {
            items.push(config_rep(state, &doc, version).await?);
        }
    }
    Ok(Json(
        json!({"_links": {"self": link(self_path)}, "items": items}),
    ))
}

async fn get_one(
    state: &AppState,
    caller: &Caller,
    capability: StoreCapability,
    path: (&str, &str, &str, &str),
) -> ApiResult<Json<Value>> {
    let (doc, version) = state.services.get_store_config(capability, path).await?;
    caller.require(
        "viewIntegration",
        &Resource::integration(&doc.integration_key, &doc.tags),
    )?;
    Ok(Json(config_rep(state, &doc, version).await?))
}

async fn create(
    state: &AppState,
    caller: &Caller,
    capability: StoreCapability,
    path: (&str, &str, &str),
    fields: StoreConfigFields,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let doc = state
        .services
        .create_store_config(caller, &state.integrations, capability, path, fields)
        .await?;
    let mut rep = config_rep(state, &doc, 1).await?;
    if capability == StoreCapability::FeatureStore {
        rep["_validation"] = validation(state, &doc).await?;
    }
    Ok((StatusCode::CREATED, Json(rep)))
}

async fn patch(
    state: &AppState,
    caller: &Caller,
    capability: StoreCapability,
    path: (&str, &str, &str, &str),
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let request = parse_patch_request(body.value()?, false, PatchFormats::JsonPatchOnly)?;
    state
        .services
        .patch_store_config(caller, &state.integrations, capability, path, &request)
        .await?;
    let (doc, version) = state.services.get_store_config(capability, path).await?;
    let mut rep = config_rep(state, &doc, version).await?;
    if capability == StoreCapability::FeatureStore {
        rep["_validation"] = validation(state, &doc).await?;
    }
    Ok(Json(rep))
}

async fn delete_one(
    state: &AppState,
    caller: &Caller,
    capability: StoreCapability,
    path: (&str, &str, &str, &str),
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_store_config(caller, &state.integrations, capability, path)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs the manifest's `validationRequest` (`IntegrationDeliveryConfigurationResponse`
/// plus `success` and `errors` read with the manifest's parser pointers); `null` when the
/// integration has none.
async fn validation(state: &AppState, doc: &StoreConfigDoc) -> ApiResult<Value> {
    let integration = state
        .services
        .integration(&state.integrations, &doc.integration_key)?;
    let Some(feature_store) = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.feature_store.as_ref())
    else {
        return Ok(Value::Null);
    };
    let Some(parser) = feature_store.validation_request.as_ref().map(|v| &v.parser) else {
        return Ok(Value::Null);
    };
    let values = crate::integrations::delivery::open_values(
        &state.integrations,
        &feature_store.form_variables,
        &doc.integration_key,
        &doc.id,
        &doc.config,
    )
    .map_err(|_| ApiError::invalid("a secret of this configuration cannot be decrypted"))?;
    let (environment, _) = state
        .services
        .get_environment(&doc.project_key, &doc.environment_key)
        .await?;
    let rendered = match plan::render(&integration, true, &values, &environment.id, &Value::Null)
        .map_err(|e| ApiError::invalid(e.to_string()))?
    {
        Preview::Request(request) => request,
        _ => return Ok(Value::Null),
    };
    let timestamp = wall_millis();
    Ok(
        match state
            .integrations
            .outbound
            .send(crate::integrations::stores::outbound_request(rendered))
            .await
        {
            Ok(response) => {
                let (success, errors) = plan::validation_outcome(
                    &response.body,
                    &parser.success,
                    parser.errors.as_deref(),
                );
                let mut rep = json!({
                    "statusCode": response.status,
                    "timestamp": timestamp,
                    "responseBody": String::from_utf8_lossy(&response.body),
                    "success": success && (200..300).contains(&response.status),
                    "errors": errors,
                });
                if !errors.is_empty() {
                    rep["error"] = Value::from(errors.join("; "));
                }
                rep
            }
            Err(error) => json!({
                "timestamp": timestamp,
                "success": false,
                "error": error.to_string(),
                "errors": [error.to_string()],
            }),
        },
    )
}

// -- featureStore ------------------------------------------------------------------------

/// List every featureStore delivery configuration.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/featureStore",
    tag = "Integration delivery configurations (beta)",
    operation_id = "getIntegrationDeliveryConfigurations",
    responses((status = 200, description = "Integration delivery configuration collection")),
    security(("ApiKey" = [])))]
async fn get_delivery_configurations(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let docs = StoreSync::list_all(state.store.as_ref(), StoreCapability::FeatureStore).await?;
    collection(&state, &caller, FEATURE_STORE.to_string(), docs).await
}

/// List an environment's featureStore delivery configurations.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}",
    tag = "Integration delivery configurations (beta)",
    operation_id = "getIntegrationDeliveryConfigurationByEnvironment",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key")),
    responses((status = 200, description = "Integration delivery configuration collection")),
    security(("ApiKey" = [])))]
async fn get_delivery_configurations_by_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require("viewProject", &Resource::project(&project, &[]))?;
    let docs = state
        .services
        .list_store_configs(StoreCapability::FeatureStore, &project, &env)
        .await?;
    collection(
        &state,
        &caller,
        format!("{FEATURE_STORE}/{project}/{env}"),
        docs,
    )
    .await
}

/// Create a featureStore delivery configuration: Flagstaff pushes the environment's SDK
/// payload to the integration's rendered endpoint (or, for `redis-feature-store`, writes it
/// into Redis in the Relay Proxy layout) after every change. The manifest's
/// `validationRequest` runs at once; its outcome is in `_validation`.
#[utoipa::path(post, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}/{integrationKey}",
    tag = "Integration delivery configurations (beta)",
    operation_id = "createIntegrationDeliveryConfiguration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key")),
    request_body(content = Object, description = "{config, on?, name?, tags?}"),
    responses((status = 201, description = "Integration delivery configuration response")),
    security(("ApiKey" = [])))]
async fn create_delivery_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key)): Path<(String, String, String)>,
    LdJson(fields): LdJson<StoreConfigFields>,
) -> ApiResult<impl IntoResponse> {
    create(
        &state,
        &caller,
        StoreCapability::FeatureStore,
        (&project, &env, &key),
        fields,
    )
    .await
}

/// Get a featureStore delivery configuration with its sync status.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}/{integrationKey}/{id}",
    tag = "Integration delivery configurations (beta)",
    operation_id = "getIntegrationDeliveryConfigurationById",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The configuration ID")),
    responses((status = 200, description = "Integration delivery configuration response")),
    security(("ApiKey" = [])))]
async fn get_delivery_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    get_one(
        &state,
        &caller,
        StoreCapability::FeatureStore,
        (&project, &env, &key, &id),
    )
    .await
}

/// Update a featureStore delivery configuration with a JSON Patch (`/name`, `/on`, `/tags`,
/// `/config/<field>`; a secret left masked keeps its stored value).
#[utoipa::path(patch, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}/{integrationKey}/{id}",
    tag = "Integration delivery configurations (beta)",
    operation_id = "patchIntegrationDeliveryConfiguration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The configuration ID")),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "Integration delivery configuration response")),
    security(("ApiKey" = [])))]
async fn patch_delivery_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    patch(
        &state,
        &caller,
        StoreCapability::FeatureStore,
        (&project, &env, &key, &id),
        body,
    )
    .await
}

/// Delete a featureStore delivery configuration (the store's data is left as it is).
#[utoipa::path(delete, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}/{integrationKey}/{id}",
    tag = "Integration delivery configurations (beta)",
    operation_id = "deleteIntegrationDeliveryConfiguration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The configuration ID")),
    responses((status = 204, description = "Action succeeded")), security(("ApiKey" = [])))]
async fn delete_delivery_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    delete_one(
        &state,
        &caller,
        StoreCapability::FeatureStore,
        (&project, &env, &key, &id),
    )
    .await
}

/// Send the manifest's `validationRequest` now and report the partner's answer.
#[utoipa::path(post, path = "/api/v2/integration-capabilities/featureStore/{projectKey}/{environmentKey}/{integrationKey}/{id}/validate",
    tag = "Integration delivery configurations (beta)",
    operation_id = "validateIntegrationDeliveryConfiguration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key"),
        ("id" = String, Path, description = "The configuration ID")),
    responses((status = 200, description = "Integration delivery configuration validation response")),
    security(("ApiKey" = [])))]
async fn validate_delivery_configuration(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state
        .services
        .get_store_config(StoreCapability::FeatureStore, (&project, &env, &key, &id))
        .await?;
    caller.require(
        "updateConfiguration",
        &Resource::integration(&key, &doc.tags),
    )?;
    let outcome = validation(&state, &doc).await?;
    if outcome.is_null() {
        return Err(ApiError::invalid(format!(
            "integration `{key}` has no featureStore validationRequest"
        )));
    }
    Ok(Json(outcome))
}

// -- big-segment-store -------------------------------------------------------------------

/// List every big-segment store configuration.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/big-segment-store",
    tag = "Persistent store integrations (beta)",
    operation_id = "getBigSegmentStoreIntegrations",
    responses((status = 200, description = "Big segment store collection")),
    security(("ApiKey" = [])))]
async fn get_big_segment_stores(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let docs = StoreSync::list_all(state.store.as_ref(), StoreCapability::BigSegmentStore).await?;
    collection(&state, &caller, BIG_SEGMENT_STORE.to_string(), docs).await
}

/// Create a big-segment store configuration (the manifest's form variables: host, port,
/// credentials; secrets encrypted at rest).
#[utoipa::path(post, path = "/api/v2/integration-capabilities/big-segment-store/{projectKey}/{environmentKey}/{integrationKey}",
    tag = "Persistent store integrations (beta)",
    operation_id = "createBigSegmentStoreIntegration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key, either `redis` or `dynamodb`")),
    request_body(content = Object, description = "{config, on?, name?, tags?}"),
    responses((status = 201, description = "Big segment store")), security(("ApiKey" = [])))]
async fn create_big_segment_store(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key)): Path<(String, String, String)>,
    LdJson(fields): LdJson<StoreConfigFields>,
) -> ApiResult<impl IntoResponse> {
    create(
        &state,
        &caller,
        StoreCapability::BigSegmentStore,
        (&project, &env, &key),
        fields,
    )
    .await
}

/// Get a big-segment store configuration with its sync status.
#[utoipa::path(get, path = "/api/v2/integration-capabilities/big-segment-store/{projectKey}/{environmentKey}/{integrationKey}/{integrationId}",
    tag = "Persistent store integrations (beta)",
    operation_id = "getBigSegmentStoreIntegration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key, either `redis` or `dynamodb`"),
        ("integrationId" = String, Path, description = "The integration configuration ID")),
    responses((status = 200, description = "Big segment store")), security(("ApiKey" = [])))]
async fn get_big_segment_store(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    get_one(
        &state,
        &caller,
        StoreCapability::BigSegmentStore,
        (&project, &env, &key, &id),
    )
    .await
}

/// Update a big-segment store configuration with a JSON Patch.
#[utoipa::path(patch, path = "/api/v2/integration-capabilities/big-segment-store/{projectKey}/{environmentKey}/{integrationKey}/{integrationId}",
    tag = "Persistent store integrations (beta)",
    operation_id = "patchBigSegmentStoreIntegration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key, either `redis` or `dynamodb`"),
        ("integrationId" = String, Path, description = "The integration configuration ID")),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "Big segment store")), security(("ApiKey" = [])))]
async fn patch_big_segment_store(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    patch(
        &state,
        &caller,
        StoreCapability::BigSegmentStore,
        (&project, &env, &key, &id),
        body,
    )
    .await
}

/// Delete a big-segment store configuration.
#[utoipa::path(delete, path = "/api/v2/integration-capabilities/big-segment-store/{projectKey}/{environmentKey}/{integrationKey}/{integrationId}",
    tag = "Persistent store integrations (beta)",
    operation_id = "deleteBigSegmentStoreIntegration",
    params(("projectKey" = String, Path, description = "The project key"),
        ("environmentKey" = String, Path, description = "The environment key"),
        ("integrationKey" = String, Path, description = "The integration key, either `redis` or `dynamodb`"),
        ("integrationId" = String, Path, description = "The integration configuration ID")),
    responses((status = 204, description = "Action succeeded")), security(("ApiKey" = [])))]
async fn delete_big_segment_store(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, id)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    delete_one(
        &state,
        &caller,
        StoreCapability::BigSegmentStore,
        (&project, &env, &key, &id),
    )
    .await
}
