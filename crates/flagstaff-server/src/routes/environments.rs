use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::environment::EnvironmentPost;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{mask_keys_unless_allowed, paging, parse_filter, viewable_project};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_environments_by_project, post_environment))
        .routes(routes!(
            get_environment,
            patch_environment,
            delete_environment
        ))
        .routes(routes!(reset_environment_sdk_key))
        .routes(routes!(reset_environment_mobile_key))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EnvironmentsQuery {
    limit: Option<i64>,
    offset: Option<i64>,
    /// `query:text`, `tags:a+b`.
    filter: Option<String>,
    /// `name`, `-name`, `createdOn`, `-createdOn`, `critical`, `-critical`.
    sort: Option<String>,
}

/// List a project's environments.
#[utoipa::path(get, path = "/api/v2/projects/{projectKey}/environments", tag = "Environments",
    operation_id = "getEnvironmentsByProject", params(("projectKey" = String, Path), EnvironmentsQuery),
    responses((status = 200, description = "Environments collection")), security(("ApiKey" = [])))]
async fn get_environments_by_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdQuery(q): LdQuery<EnvironmentsQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    let context = viewable_project(&state, &caller, &project).await?;
    let mut envs = context.environments.clone();
    if let Some(filter) = &q.filter {
        for (field, value) in parse_filter(filter, &["query", "tags"])? {
            let value = value.to_lowercase();
            envs.retain(|e| match field {
                "query" => {
                    e.key.to_lowercase().contains(&value) || e.name.to_lowercase().contains(&value)
                }
                _ => value
                    .split('+')
                    .all(|t| e.tags.iter().any(|et| et.to_lowercase() == t)),
            });
        }
    }
    match q.sort.as_deref() {
        None | Some("createdOn") => envs.sort_by_key(|e| (e.creation_date, e.key.clone())),
        Some("-createdOn") => {
            envs.sort_by_key(|e| std::cmp::Reverse((e.creation_date, e.key.clone())))
        }
        Some("name") => envs.sort_by_key(|e| e.name.to_lowercase()),
        Some("-name") => envs.sort_by_key(|e| std::cmp::Reverse(e.name.to_lowercase())),
        Some("critical") => envs.sort_by_key(|e| (e.critical, e.key.clone())),
        Some("-critical") => envs.sort_by_key(|e| std::cmp::Reverse((e.critical, e.key.clone()))),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unsupported sort \"{other}\": use name, createdOn or critical, optionally prefixed with -"
            )));
        }
    }
    let total = envs.len();
    let items = paging
        .slice(envs)
        .iter()
        .map(|e| {
            let mut rendered = render::environment(&project, e);
            mask_keys_unless_allowed(&caller, &context.project, e, &mut rendered);
            rendered
        })
        .collect();
    let mut query = Vec::new();
    for (k, v) in [("filter", &q.filter), ("sort", &q.sort)] {
        if let Some(v) = v {
            query.push((k.to_string(), v.clone()));
        }
    }
    Ok(Json(render::page(
        &format!("/api/v2/projects/{project}/environments"),
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create an environment; `source` copies flag targeting from another environment.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/environments", tag = "Environments",
    operation_id = "postEnvironment", params(("projectKey" = String, Path)), request_body = EnvironmentPost,
    responses((status = 201, description = "The new environment")), security(("ApiKey" = [])))]
async fn post_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdJson(body): LdJson<EnvironmentPost>,
) -> ApiResult<impl IntoResponse> {
    let env = state
        .services
        .create_environment(&caller, &project, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(rendered(&state, &caller, &project, &env).await?),
    ))
}

/// Get an environment.
#[utoipa::path(get, path = "/api/v2/projects/{projectKey}/environments/{environmentKey}", tag = "Environments",
    operation_id = "getEnvironment", params(("projectKey" = String, Path), ("environmentKey" = String, Path)),
    responses((status = 200, description = "Environment")), security(("ApiKey" = [])))]
async fn get_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let (env, _) = state.services.get_environment(&project, &env).await?;
    Ok(Json(rendered(&state, &caller, &project, &env).await?))
}

/// Update an environment with a JSON Patch.
#[utoipa::path(patch, path = "/api/v2/projects/{projectKey}/environments/{environmentKey}", tag = "Environments",
    operation_id = "patchEnvironment", params(("projectKey" = String, Path), ("environmentKey" = String, Path)),
    request_body(content = Vec<Object>, description = "JSON Patch"),
    responses((status = 200, description = "The updated environment")), security(("ApiKey" = [])))]
async fn patch_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let env = state
        .services
        .patch_environment(&caller, &project, &env, body.value()?, body.semantic_patch)
        .await?;
    Ok(Json(rendered(&state, &caller, &project, &env).await?))
}

/// Delete an environment with its segments and flag targeting.
#[utoipa::path(delete, path = "/api/v2/projects/{projectKey}/environments/{environmentKey}", tag = "Environments",
    operation_id = "deleteEnvironment", params(("projectKey" = String, Path), ("environmentKey" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_environment(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_environment(&caller, &project, &env)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyResetQuery {
    /// Unix time (ms) until which the old SDK key keeps working; it stops at once without it.
    expiry: Option<i64>,
}

/// Reset the SDK key; with `expiry` the old key keeps working until then.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/environments/{environmentKey}/apiKey", tag = "Environments",
    operation_id = "resetEnvironmentSDKKey", params(("projectKey" = String, Path), ("environmentKey" = String, Path), KeyResetQuery),
    responses((status = 200, description = "The environment with its new SDK key")), security(("ApiKey" = [])))]
async fn reset_environment_sdk_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
    LdQuery(q): LdQuery<KeyResetQuery>,
) -> ApiResult<Json<Value>> {
    let env = state
        .services
        .reset_sdk_key(&caller, &project, &env, q.expiry)
        .await?;
    Ok(Json(rendered(&state, &caller, &project, &env).await?))
}

/// Reset the mobile key; the old key stops working at once.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/environments/{environmentKey}/mobileKey", tag = "Environments",
    operation_id = "resetEnvironmentMobileKey", params(("projectKey" = String, Path), ("environmentKey" = String, Path)),
    responses((status = 200, description = "The environment with its new mobile key")), security(("ApiKey" = [])))]
async fn reset_environment_mobile_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, env)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let env = state
        .services
        .reset_mobile_key(&caller, &project, &env)
        .await?;
    Ok(Json(rendered(&state, &caller, &project, &env).await?))
}

/// One environment as the caller may see it (keys masked without `viewSdkKey`).
async fn rendered(
    state: &AppState,
    caller: &Caller,
    project: &str,
    env: &flagstaff_model::environment::Environment,
) -> ApiResult<Value> {
    let (project_entity, _) = state.services.get_project(project).await?;
    let mut value = render::environment(project, env);
    mask_keys_unless_allowed(caller, &project_entity, env, &mut value);
    Ok(value)
}
