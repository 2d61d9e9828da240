//! The synced-segment inbound endpoint: a partner (CDP) posts cohort changes, parsed with its
//! integration's `syncedSegment.requestParser`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flagstaff_manifest::Integration;
use flagstaff_manifest::synced_segment::{
    ResponseTarget, parse_request, render_response, response_context,
};
use flagstaff_template::Compat;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::viewable_project;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::services::segment_targets::SyncedTarget;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_segment_targets))
        .routes(routes!(get_segment_membership_for_context))
}

/// The integration by key; the reference server matches keys case-insensitively.
pub fn find_integration(state: &AppState, key: &str) -> ApiResult<std::sync::Arc<Integration>> {
    let catalogue = state.integrations.catalogue.current();
    catalogue
        .get(key)
        .or_else(|| catalogue.iter().find(|i| i.key.eq_ignore_ascii_case(key)))
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("integration \"{key}\"")))
}

/// Sync a partner cohort into a segment.
#[utoipa::path(post, path = "/api/v2/segment-targets/{integrationKey}", tag = "Synced segments", operation_id = "postSegmentTargets",
    params(("integrationKey" = String, Path, description = "An integration with the syncedSegment capability")),
    request_body(content = Object, description = "The partner's payload, read with the integration's requestParser"),
    responses((status = 204, description = "Synced"), (status = 200, description = "Synced; body from the integration's jsonResponseBody")),
    security(("ApiKey" = [])))]
async fn post_segment_targets(
    State(state): State<AppState>,
    caller: Caller,
    Path(integration_key): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let integration = find_integration(&state, &integration_key)?;
    let Some(capability) = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.synced_segment.as_ref())
    else {
        return Err(ApiError::invalid(format!(
            "integration \"{}\" does not support the syncedSegment capability",
            integration.key
        )));
    };
    let request = body.value()?;
    let mut environment_id = String::new();
    let result = async {
        let parsed = parse_request(&capability.request_parser, &request)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        environment_id = parsed.environment_id.clone();
        state
            .services
            .sync_segments(&caller, &integration.key, &parsed)
            .await
    }
    .await;
    respond(&state, &integration, &request, &environment_id, result)
}

/// 204 (or the error), or the integration's `jsonResponseBody` with the same status.
fn respond(
    state: &AppState,
    integration: &Integration,
    request: &Value,
    environment_id: &str,
    result: ApiResult<Vec<SyncedTarget>>,
) -> ApiResult<Response> {
    let has_template = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.synced_segment.as_ref())
        .is_some_and(|s| s.json_response_body.is_some());
    if !has_template {
        return result.map(|_| StatusCode::NO_CONTENT.into_response());
    }
    let (status, error, target) = match &result {
        Ok(targets) => (StatusCode::OK, None, targets.first()),
        Err(e) => (e.status_and_code().0, Some(e.to_string()), None),
    };
    let target = match target {
        Some(t) => ResponseTarget {
            project_key: t.project.clone(),
            environment_key: t.environment.clone(),
            segment_key: t.segment_key.clone(),
            segment_url: format!(
                "{}/{}/{}/segments/{}/targeting",
                state.integrations.settings.base_url, t.project, t.environment, t.segment_key
            ),
        },
        None => ResponseTarget {
            environment_key: environment_id.to_string(),
            ..ResponseTarget::default()
        },
    };
    let context = response_context(request, status.as_u16(), error.as_deref(), &target);
    match render_response(integration, &context, Compat::Go) {
        Ok(Some(body)) => Ok((status, Json(body)).into_response()),
        // A response template that fails to render must not hide the outcome.
        Ok(None) | Err(_) => result.map(|_| StatusCode::NO_CONTENT.into_response()),
    }
}

/// A context's membership of a segment: for a synced (big) segment from its member rows,
/// otherwise from the segment's target lists.
#[utoipa::path(get, path = "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}/contexts/{contextKey}", tag = "Segments", operation_id = "getSegmentMembershipForContext",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path), ("segmentKey" = String, Path), ("contextKey" = String, Path)),
    responses((status = 200, description = "Segment membership for context response")),
    security(("ApiKey" = [])))]
async fn get_segment_membership_for_context(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key, context_key)): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let (included, excluded) = state
        .services
        .segment_membership(&project, &env, &key, &context_key)
        .await?;
    Ok(Json(json!({
        "userKey": context_key,
        "included": included,
        "excluded": excluded,
    })))
}
