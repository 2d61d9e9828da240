use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::segment::SegmentBody;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{paging, parse_filter, viewable_project};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_segments, post_segment))
        .routes(routes!(get_segment, patch_segment, delete_segment))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SegmentsQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
    /// `query:text`, `tags:a+b`, `unbounded:true|false`.
    filter: Option<String>,
}

/// List an environment's segments.
#[utoipa::path(get, path = "/api/v2/segments/{projectKey}/{environmentKey}", tag = "Segments", operation_id = "getSegments",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path), SegmentsQuery),
    responses((status = 200, description = "Segments collection")), security(("ApiKey" = [])))]
async fn get_segments(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    LdQuery(q): LdQuery<SegmentsQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    viewable_project(&state, &caller, &project).await?;
    let mut segments = state.services.list_segments(&project, &env).await?;
    if let Some(filter) = &q.filter {
        for (field, value) in parse_filter(filter, &["query", "tags", "unbounded"])? {
            let v = value.to_lowercase();
            segments.retain(|s| match field {
                "query" => s.key.to_lowercase().contains(&v) || s.name.to_lowercase().contains(&v),
                "tags" => v
                    .split('+')
                    .all(|t| s.tags.iter().any(|st| st.to_lowercase() == t)),
                _ => s.unbounded == (v == "true"),
            });
        }
    }
    let total = segments.len();
    let items = paging
        .slice(segments)
        .iter()
        .map(|s| render::segment(&project, &env, s))
        .collect();
    let query: Vec<(String, String)> = q
        .filter
        .iter()
        .map(|f| ("filter".to_string(), f.clone()))
        .collect();
    Ok(Json(render::page(
        &format!("/api/v2/segments/{project}/{env}"),
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create a segment.
#[utoipa::path(post, path = "/api/v2/segments/{projectKey}/{environmentKey}", tag = "Segments", operation_id = "postSegment",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path)), request_body = SegmentBody,
    responses((status = 201, description = "The new segment")), security(("ApiKey" = [])))]
async fn post_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    LdJson(body): LdJson<SegmentBody>,
) -> ApiResult<impl IntoResponse> {
    let segment = state
        .services
        .create_segment(&caller, &project, &env, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(render::segment(&project, &env, &segment)),
    ))
}

/// Get a segment.
#[utoipa::path(get, path = "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}", tag = "Segments", operation_id = "getSegment",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path), ("segmentKey" = String, Path)),
    responses((status = 200, description = "Segment")), security(("ApiKey" = [])))]
async fn get_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let (segment, _) = state.services.get_segment(&project, &env, &key).await?;
    Ok(Json(render::segment(&project, &env, &segment)))
}

/// Update a segment: JSON Patch, merge patch or semantic patch.
#[utoipa::path(patch, path = "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}", tag = "Segments", operation_id = "patchSegment",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path), ("segmentKey" = String, Path)),
    request_body(content = Object, description = "JSON Patch, merge patch or semantic patch"),
    responses((status = 200, description = "The updated segment")), security(("ApiKey" = [])))]
async fn patch_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key)): Path<(String, String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let segment = state
        .services
        .patch_segment(
            &caller,
            &project,
            &env,
            &key,
            body.value()?,
            body.semantic_patch,
        )
        .await?;
    Ok(Json(render::segment(&project, &env, &segment)))
}

/// Delete a segment.
#[utoipa::path(delete, path = "/api/v2/segments/{projectKey}/{environmentKey}/{segmentKey}", tag = "Segments", operation_id = "deleteSegment",
    params(("projectKey" = String, Path), ("environmentKey" = String, Path), ("segmentKey" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_segment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env, key)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_segment(&caller, &project, &env, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
