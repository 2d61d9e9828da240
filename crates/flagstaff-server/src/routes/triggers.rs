//! Flag triggers: the REST resource, and the unauthenticated trigger URL partners post to.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::segment_targets::find_integration;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson};
use crate::render::link;
use crate::services::triggers::{FlagTrigger, TriggerPost, TriggerWithSecret, unknown_trigger};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_trigger_workflows, create_trigger_workflow))
        .routes(routes!(
            get_trigger_workflow_by_id,
            patch_trigger_workflow,
            delete_trigger_workflow
        ))
}

/// The trigger URL (not part of the REST API description).
pub fn webhook_router() -> axum::Router<AppState> {
    axum::Router::new().route("/webhook/triggers/{id}/{secret}", post(invoke_trigger))
}

fn render(state: &AppState, t: &TriggerWithSecret) -> Value {
    let trigger: &FlagTrigger = &t.trigger;
    let base = format!(
        "/api/v2/flags/{}/{}/triggers/{}",
        trigger.project, trigger.flag, trigger.environment
    );
    let mut body = json!({
        "_id": trigger.id,
        "_version": trigger.version,
        "_creationDate": trigger.creation_date,
        "_maintainerId": trigger.maintainer_id,
        "enabled": trigger.enabled,
        "_integrationKey": trigger.integration_key,
        "instructions": trigger.instructions,
        "_recentTriggerBodies": trigger.recent_trigger_bodies,
        "_triggerCount": trigger.trigger_count,
        "_links": {"self": link(format!("{base}/{}", trigger.id)), "parent": link(base)},
    });
    if let Some(at) = trigger.last_triggered_at {
        body["_lastTriggeredAt"] = json!(at);
    }
    // The full URL exists only in this response; afterwards only its id part is shown.
    body["triggerURL"] = match &t.secret {
        Some(secret) => json!(format!(
            "{}/webhook/triggers/{}/{secret}",
            state.integrations.settings.base_url, trigger.id
        )),
        None => json!(format!(
            "{}/webhook/triggers/{}/********",
            state.integrations.settings.base_url, trigger.id
        )),
    };
    body
}

fn shown(trigger: FlagTrigger) -> TriggerWithSecret {
    TriggerWithSecret {
        trigger,
        secret: None,
    }
}

/// List a flag's triggers in an environment.
#[utoipa::path(get, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/triggers/{environmentKey}", tag = "Flag triggers", operation_id = "getTriggerWorkflows",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path)),
    responses((status = 200, description = "Triggers")), security(("ApiKey" = [])))]
async fn get_trigger_workflows(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let list = state
        .services
        .list_triggers(&caller, &project, &flag, &env)
        .await?;
    let items: Vec<Value> = list
        .into_iter()
        .map(|t| render(&state, &shown(t)))
        .collect();
    Ok(Json(json!({
        "items": items,
        "totalCount": items.len(),
        "_links": {"self": link(format!("/api/v2/flags/{project}/{flag}/triggers/{env}"))},
    })))
}

/// Create a trigger; the response carries the trigger URL, shown only this once.
#[utoipa::path(post, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/triggers/{environmentKey}", tag = "Flag triggers", operation_id = "createTriggerWorkflow",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path)),
    request_body = TriggerPost, responses((status = 201, description = "The new trigger")), security(("ApiKey" = [])))]
async fn create_trigger_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env)): Path<(String, String, String)>,
    LdJson(post): LdJson<TriggerPost>,
) -> ApiResult<impl IntoResponse> {
    let integration = find_integration(&state, &post.integration_key)
        .map_err(|_| unknown_integration(&post.integration_key))?;
    if integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.trigger.as_ref())
        .is_none()
    {
        return Err(unknown_integration(&post.integration_key));
    }
    let post = TriggerPost {
        integration_key: integration.key.clone(),
        ..post
    };
    let created = state
        .services
        .create_trigger(&caller, &project, &flag, &env, post)
        .await?;
    Ok((StatusCode::CREATED, Json(render(&state, &created))))
}

fn unknown_integration(key: &str) -> ApiError {
    ApiError::invalid(format!(
        "integrationKey \"{key}\" is not an integration with the trigger capability: use \
         generic-trigger or a partner's key"
    ))
}

/// Get a trigger.
#[utoipa::path(get, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/triggers/{environmentKey}/{id}", tag = "Flag triggers", operation_id = "getTriggerWorkflowById",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Trigger")), security(("ApiKey" = [])))]
async fn get_trigger_workflow_by_id(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env, id)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    state
        .services
        .require_view_project(&caller, &project)
        .await?;
    let (trigger, _) = state
        .services
        .get_trigger(&project, &flag, &env, &id)
        .await?;
    Ok(Json(render(&state, &shown(trigger))))
}

/// Update a trigger (semantic patch): enable, disable, reset the URL, replace the action.
#[utoipa::path(patch, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/triggers/{environmentKey}/{id}", tag = "Flag triggers", operation_id = "patchTriggerWorkflow",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "{comment, instructions}"),
    responses((status = 200, description = "The updated trigger")), security(("ApiKey" = [])))]
async fn patch_trigger_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env, id)): Path<(String, String, String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let updated = state
        .services
        .patch_trigger(&caller, &project, &flag, &env, &id, body.value()?)
        .await?;
    Ok(Json(render(&state, &updated)))
}

/// Delete a trigger.
#[utoipa::path(delete, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/triggers/{environmentKey}/{id}", tag = "Flag triggers", operation_id = "deleteTriggerWorkflow",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_trigger_workflow(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env, id)): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_trigger(&caller, &project, &flag, &env, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A partner's alert. Unknown, disabled and wrong-secret URLs all get the same 404; each
/// trigger id is rate-limited like a token.
async fn invoke_trigger(
    State(state): State<AppState>,
    Path((id, secret)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let now = crate::services::wall_millis();
    if let Some(rate) = state.rate_limiter.check(&format!("trigger:{id}"), now)
        && !rate.allowed
    {
        return Err(ApiError::RateLimited(rate.limit));
    }
    let (trigger, _) = state.services.authenticate_trigger(&id, &secret).await?;
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("Invalid request body: malformed JSON: {e}")))?
    };
    let integration = find_integration(&state, &trigger.integration_key).map_err(|_| {
        ApiError::invalid(format!(
            "the trigger's integration \"{}\" is no longer installed",
            trigger.integration_key
        ))
    })?;
    let capability = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.trigger.clone())
        .ok_or_else(|| unknown_integration(&trigger.integration_key))?;
    let event = flagstaff_manifest::trigger::parse_event(&capability, &body)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let changed = state
        .services
        .fire_trigger(trigger, &event, body)
        .await
        .map_err(|e| match e {
            // The flag or environment went away: the trigger no longer exists either.
            ApiError::NotFound(_) => unknown_trigger(),
            other => other,
        })?;
    Ok(Json(json!({
        "eventName": event.event_name,
        "testEvent": event.is_test,
        "changed": changed,
    })))
}
