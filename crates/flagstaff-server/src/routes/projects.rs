use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::project::ProjectPost;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ExpandQuery, mask_project_keys, paging, parse_filter, viewable_project};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::{self, ProjectEnvironments};
use crate::state::AppState;
use flagstaff_policy::Resource;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_projects, post_project))
        .routes(routes!(get_project, patch_project, delete_project))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProjectsQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
    /// `query:text`, `tags:a+b`, `keys:a|b`.
    filter: Option<String>,
    /// `name`, `-name`, `createdOn`, `-createdOn`.
    sort: Option<String>,
    /// `environments` to include each project's environments.
    expand: Option<String>,
}

/// List projects.
#[utoipa::path(get, path = "/api/v2/projects", tag = "Projects", operation_id = "getProjects",
    params(ProjectsQuery), responses((status = 200, description = "Projects collection")),
    security(("ApiKey" = [])))]
async fn get_projects(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<ProjectsQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    let mut projects = state.services.list_projects().await?;
    // Only the projects the caller may view are listed (and counted).
    projects.retain(|p| caller.can("viewProject", &Resource::project(&p.key, &p.tags)));
    if let Some(filter) = &q.filter {
        for (field, value) in parse_filter(filter, &["query", "tags", "keys"])? {
            let value = value.to_lowercase();
            projects.retain(|p| match field {
                "query" => {
                    p.key.to_lowercase().contains(&value) || p.name.to_lowercase().contains(&value)
                }
                "tags" => value
                    .split('+')
                    .all(|t| p.tags.iter().any(|pt| pt.to_lowercase() == t)),
                _ => value.split('|').any(|k| p.key.to_lowercase() == k),
            });
        }
    }
    match q.sort.as_deref() {
        None | Some("name") => projects.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.key.cmp(&b.key))
        }),
        Some("-name") => projects.sort_by(|a, b| {
            b.name
                .to_lowercase()
                .cmp(&a.name.to_lowercase())
                .then(b.key.cmp(&a.key))
        }),
        Some("createdOn") => projects.sort_by_key(|p| (p.creation_date, p.key.clone())),
        Some("-createdOn") => {
            projects.sort_by_key(|p| std::cmp::Reverse((p.creation_date, p.key.clone())))
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unsupported sort \"{other}\": use name, -name, createdOn or -createdOn"
            )));
        }
    }
    let expand = ExpandQuery {
        expand: q.expand.clone(),
    };
    let total = projects.len();
    let mut items = Vec::new();
    for p in paging.slice(projects) {
        let envs = if expand.has("environments") {
            Some(state.services.list_environments(&p.key).await?)
        } else {
            None
        };
        let mut rendered = render::project(
            &p,
            envs.as_deref().map_or(
                ProjectEnvironments::Omitted,
                ProjectEnvironments::Collection,
            ),
        );
        mask_project_keys(&caller, &p, envs.as_deref().unwrap_or(&[]), &mut rendered);
        items.push(rendered);
    }
    let mut query = Vec::new();
    for (k, v) in [
        ("filter", &q.filter),
        ("sort", &q.sort),
        ("expand", &q.expand),
    ] {
        if let Some(v) = v {
            query.push((k.to_string(), v.clone()));
        }
    }
    Ok(Json(render::page(
        "/api/v2/projects",
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create a project with its environments (`production` and `test` unless given).
#[utoipa::path(post, path = "/api/v2/projects", tag = "Projects", operation_id = "postProject",
    request_body = ProjectPost, responses((status = 201, description = "The new project (ProjectRep)")),
    security(("ApiKey" = [])))]
async fn post_project(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<ProjectPost>,
) -> ApiResult<impl IntoResponse> {
    let (project, environments) = state.services.create_project(&caller, body).await?;
    let mut rendered = render::project(&project, ProjectEnvironments::Array(&environments));
    mask_project_keys(&caller, &project, &environments, &mut rendered);
    Ok((StatusCode::CREATED, Json(rendered)))
}

/// Get a project.
#[utoipa::path(get, path = "/api/v2/projects/{projectKey}", tag = "Projects", operation_id = "getProject",
    params(("projectKey" = String, Path), ExpandQuery), responses((status = 200, description = "Project")),
    security(("ApiKey" = [])))]
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdQuery(q): LdQuery<ExpandQuery>,
) -> ApiResult<Json<Value>> {
    let context = viewable_project(&state, &caller, &key).await?;
    let envs = q
        .has("environments")
        .then_some(context.environments.as_slice());
    let mut rendered = render::project(
        &context.project,
        envs.map_or(
            ProjectEnvironments::Omitted,
            ProjectEnvironments::Collection,
        ),
    );
    mask_project_keys(
        &caller,
        &context.project,
        &context.environments,
        &mut rendered,
    );
    Ok(Json(rendered))
}

/// Update a project with a JSON Patch.
#[utoipa::path(patch, path = "/api/v2/projects/{projectKey}", tag = "Projects", operation_id = "patchProject",
    params(("projectKey" = String, Path)), request_body(content = Vec<Object>, description = "JSON Patch"),
    responses((status = 200, description = "The updated project (ProjectRep)")), security(("ApiKey" = [])))]
async fn patch_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let project = state
        .services
        .patch_project(&caller, &key, body.value()?, body.semantic_patch)
        .await?;
    let envs = state.services.list_environments(&key).await?;
    let mut rendered = render::project(&project, ProjectEnvironments::Array(&envs));
    mask_project_keys(&caller, &project, &envs, &mut rendered);
    Ok(Json(rendered))
}

/// Delete a project with its environments, flags and segments.
#[utoipa::path(delete, path = "/api/v2/projects/{projectKey}", tag = "Projects", operation_id = "deleteProject",
    params(("projectKey" = String, Path)), responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_project(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_project(&caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
