use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::flag::{FeatureFlag, FeatureFlagBody};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{paging, parse_filter, viewable_project};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::{self, FlagView};
use crate::services::flags::FlagCopyBody;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_feature_flags, post_feature_flag))
        .routes(routes!(
            get_feature_flag,
            patch_feature_flag,
            delete_feature_flag
        ))
        .routes(routes!(copy_feature_flag))
}

async fn environment_names(state: &AppState, project: &str) -> ApiResult<BTreeMap<String, String>> {
    Ok(state
        .services
        .list_environments(project)
        .await?
        .into_iter()
        .map(|e| (e.key, e.name))
        .collect())
}

fn environment_filter(
    env: Option<&str>,
    names: &BTreeMap<String, String>,
) -> ApiResult<Option<Vec<String>>> {
    let Some(env) = env else { return Ok(None) };
    let wanted: Vec<String> = env
        .split(',')
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
        .collect();
    for e in &wanted {
        if !names.contains_key(e) {
            return Err(ApiError::invalid(format!(
                "env \"{e}\" is not an environment of this project"
            )));
        }
    }
    Ok(Some(wanted))
}

fn parse_bool(name: &str, value: Option<&str>) -> ApiResult<Option<bool>> {
    match value {
        None => Ok(None),
        Some("1" | "true") => Ok(Some(true)),
        Some("0" | "false") => Ok(Some(false)),
        Some(other) => Err(ApiError::invalid(format!(
            "{name}={other}: use true or false"
        ))),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// Include these environments' configurations (comma-separated keys).
    env: Option<String>,
    /// Only flags with this tag.
    tag: Option<String>,
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
    /// Deprecated: `true` lists only archived flags.
    archived: Option<String>,
    /// Leave out targets, rules and prerequisites (default true; `0` includes them).
    summary: Option<String>,
    /// `query:text`, `tags:a+b`, `state:live|deprecated|archived`, `type:temporary|permanent`, `maintainerId:id`.
    filter: Option<String>,
    /// `key`, `name`, `creationDate`, each optionally prefixed with `-` (default `-creationDate`).
    sort: Option<String>,
}

/// List a project's flags.
#[utoipa::path(get, path = "/api/v2/flags/{projectKey}", tag = "Feature flags", operation_id = "getFeatureFlags",
    params(("projectKey" = String, Path), FlagsQuery), responses((status = 200, description = "Flags collection")),
    security(("ApiKey" = [])))]
async fn get_feature_flags(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdQuery(q): LdQuery<FlagsQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    let names = viewable_project(&state, &caller, &project)
        .await?
        .environment_names();
    let envs = environment_filter(q.env.as_deref(), &names)?;
    let summary = parse_bool("summary", q.summary.as_deref())?.unwrap_or(true);
    let mut state_filter = match parse_bool("archived", q.archived.as_deref())? {
        Some(true) => "archived".to_string(),
        _ => "live".to_string(),
    };
    let mut flags = state.services.list_flags(&project).await?;
    if let Some(tag) = &q.tag {
        flags.retain(|f| f.tags.iter().any(|t| t == tag));
    }
    if let Some(filter) = &q.filter {
        for (field, value) in parse_filter(
            filter,
            &[
                "query",
                "tags",
                "state",
                "type",
                "maintainerId",
                "maintainerTeamKey",
            ],
        )? {
            match field {
                "state" => state_filter = value.to_string(),
                "query" => {
                    let v = value.to_lowercase();
                    flags.retain(|f| {
                        f.key.to_lowercase().contains(&v)
                            || f.name.to_lowercase().contains(&v)
                            || f.description.to_lowercase().contains(&v)
                    });
                }
                "tags" => {
                    flags.retain(|f| value.split('+').all(|t| f.tags.iter().any(|ft| ft == t)))
                }
                "type" => match value {
                    "temporary" => flags.retain(|f| f.temporary),
                    "permanent" => flags.retain(|f| !f.temporary),
                    other => {
                        return Err(ApiError::invalid(format!(
                            "filter type:{other}: use temporary or permanent"
                        )));
                    }
                },
                "maintainerId" => flags.retain(|f| f.maintainer_id.as_deref() == Some(value)),
                _ => flags.retain(|f| f.maintainer_team_key.as_deref() == Some(value)),
            }
        }
    }
    let wanted_states: Vec<&str> = state_filter.split('|').collect();
    for s in &wanted_states {
        if !["live", "deprecated", "archived", "any"].contains(s) {
            return Err(ApiError::invalid(format!(
                "filter state:{s}: use live, deprecated, archived or any"
            )));
        }
    }
    flags.retain(|f| {
        let state = if f.archived {
            "archived"
        } else if f.deprecated {
            "deprecated"
        } else {
            "live"
        };
        wanted_states
            .iter()
            .any(|w| *w == "any" || *w == state || (*w == "live" && state == "deprecated"))
    });
    sort_flags(&mut flags, q.sort.as_deref())?;
    let total = flags.len();
    let view = FlagView {
        environments: envs.as_deref(),
        omit_environments: envs.is_none(),
        summary,
    };
    let items = paging
        .slice(flags)
        .iter()
        .map(|f| render::flag(&project, f, &names, &view))
        .collect();
    let mut query = Vec::new();
    for (k, v) in [
        ("env", &q.env),
        ("tag", &q.tag),
        ("summary", &q.summary),
        ("filter", &q.filter),
        ("sort", &q.sort),
        ("archived", &q.archived),
    ] {
        if let Some(v) = v {
            query.push((k.to_string(), v.clone()));
        }
    }
    Ok(Json(render::page(
        &format!("/api/v2/flags/{project}"),
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

fn sort_flags(flags: &mut [FeatureFlag], sort: Option<&str>) -> ApiResult<()> {
    let spec = sort.unwrap_or("-creationDate");
    let (descending, field) = match spec.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, spec),
    };
    match field {
        "key" => flags.sort_by(|a, b| a.key.cmp(&b.key)),
        "name" => flags.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.key.cmp(&b.key))
        }),
        "creationDate" => flags.sort_by(|a, b| {
            a.creation_date
                .cmp(&b.creation_date)
                .then(a.key.cmp(&b.key))
        }),
        other => {
            return Err(ApiError::invalid(format!(
                "unsupported sort \"{other}\": use key, name or creationDate, optionally prefixed with -"
            )));
        }
    }
    if descending {
        flags.reverse();
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateFlagQuery {
    /// Key of a flag to clone: the new flag copies its variations, settings and targeting.
    clone: Option<String>,
}

/// Create a flag (or clone one with `?clone=`).
#[utoipa::path(post, path = "/api/v2/flags/{projectKey}", tag = "Feature flags", operation_id = "postFeatureFlag",
    params(("projectKey" = String, Path), CreateFlagQuery), request_body = FeatureFlagBody,
    responses((status = 201, description = "The new flag")), security(("ApiKey" = [])))]
async fn post_feature_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdQuery(q): LdQuery<CreateFlagQuery>,
    LdJson(body): LdJson<FeatureFlagBody>,
) -> ApiResult<impl IntoResponse> {
    let flag = state
        .services
        .create_flag(&caller, &project, body, q.clone.as_deref())
        .await?;
    let names = environment_names(&state, &project).await?;
    Ok((
        StatusCode::CREATED,
        Json(render::flag(&project, &flag, &names, &FlagView::default())),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagQuery {
    /// Only these environments' configurations (comma-separated keys).
    env: Option<String>,
    /// Accepted for compatibility; no optional fields are expandable yet.
    expand: Option<String>,
}

/// Get a flag with its per-environment configurations.
#[utoipa::path(get, path = "/api/v2/flags/{projectKey}/{featureFlagKey}", tag = "Feature flags", operation_id = "getFeatureFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), FlagQuery),
    responses((status = 200, description = "Flag")), security(("ApiKey" = [])))]
async fn get_feature_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(String, String)>,
    LdQuery(q): LdQuery<FlagQuery>,
) -> ApiResult<Json<Value>> {
    let _ = q.expand;
    let names = viewable_project(&state, &caller, &project)
        .await?
        .environment_names();
    let (flag, _) = state.services.get_flag(&project, &key).await?;
    let envs = environment_filter(q.env.as_deref(), &names)?;
    let view = FlagView {
        environments: envs.as_deref(),
        ..FlagView::default()
    };
    Ok(Json(render::flag(&project, &flag, &names, &view)))
}

/// Update a flag: JSON Patch (bare or `{comment, patch}`), merge patch (`{comment, merge}`), or
/// semantic patch (`Content-Type: application/json; domain-model=launchdarkly.semanticpatch`).
#[utoipa::path(patch, path = "/api/v2/flags/{projectKey}/{featureFlagKey}", tag = "Feature flags", operation_id = "patchFeatureFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path)),
    request_body(content = Object, description = "JSON Patch, merge patch or semantic patch"),
    responses((status = 200, description = "The updated flag"), (status = 409, description = "Version test failed")),
    security(("ApiKey" = [])))]
async fn patch_feature_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    // The service already read the project's environments: render from those.
    let (flag, context) = state
        .services
        .patch_flag(&caller, &project, &key, body.value()?, body.semantic_patch)
        .await?;
    let names = context.environment_names();
    Ok(Json(render::flag(
        &project,
        &flag,
        &names,
        &FlagView::default(),
    )))
}

/// Delete a flag.
#[utoipa::path(delete, path = "/api/v2/flags/{projectKey}/{featureFlagKey}", tag = "Feature flags", operation_id = "deleteFeatureFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_feature_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.services.delete_flag(&caller, &project, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Copy a flag's targeting from one environment to another.
#[utoipa::path(post, path = "/api/v2/flags/{projectKey}/{featureFlagKey}/copy", tag = "Feature flags", operation_id = "copyFeatureFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path)), request_body = FlagCopyBody,
    responses((status = 201, description = "The updated flag")), security(("ApiKey" = [])))]
async fn copy_feature_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, key)): Path<(String, String)>,
    LdJson(body): LdJson<FlagCopyBody>,
) -> ApiResult<impl IntoResponse> {
    let flag = state
        .services
        .copy_flag_config(&caller, &project, &key, body)
        .await?;
    let names = environment_names(&state, &project).await?;
    Ok((
        StatusCode::CREATED,
        Json(render::flag(&project, &flag, &names, &FlagView::default())),
    ))
}
