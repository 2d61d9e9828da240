//! `/api/v2/teams`: teams.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::account::{Team, TeamPost};
use flagstaff_policy::Resource;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{paging, parse_filter};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::account::{self as rep, TeamExpand};
use crate::render::{self};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_teams, post_team))
        .routes(routes!(get_team, patch_team, delete_team))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamsQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
    /// `query:text` (name or key), `nomembers:true|false`.
    filter: Option<String>,
    /// `members`, `roles`, `roleAttributes`, `maintainers`.
    expand: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TeamQuery {
    /// `members`, `roles`, `roleAttributes`, `maintainers`.
    expand: Option<String>,
}

fn expand(q: Option<&str>) -> ApiResult<TeamExpand> {
    TeamExpand::parse(q).map_err(ApiError::invalid)
}

async fn rendered(state: &AppState, team: &Team, expand: TeamExpand) -> ApiResult<Value> {
    let roles = if expand.roles {
        state.services.list_roles().await?
    } else {
        Vec::new()
    };
    Ok(rep::team(team, expand, &roles))
}

/// List teams (those the caller may view, `viewTeam` on `team/<key>`), ordered by key.
#[utoipa::path(get, path = "/api/v2/teams", tag = "Teams", operation_id = "getTeams",
    params(TeamsQuery), responses((status = 200, description = "Teams collection")),
    security(("ApiKey" = [])))]
async fn get_teams(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<TeamsQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    let expand = expand(q.expand.as_deref())?;
    let mut teams = state.services.list_teams().await?;
    teams.retain(|t| caller.can("viewTeam", &Resource::team(&t.key)));
    if let Some(filter) = &q.filter {
        for (field, value) in parse_filter(filter, &["query", "nomembers"])? {
            let lower = value.to_lowercase();
            if field == "query" {
                teams.retain(|t| {
                    t.key.to_lowercase().contains(&lower) || t.name.to_lowercase().contains(&lower)
                });
            } else {
                let empty = match lower.as_str() {
                    "true" => true,
                    "false" => false,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "filter nomembers:{other} must be nomembers:true or nomembers:false"
                        )));
                    }
                };
                teams.retain(|t| t.member_ids.is_empty() == empty);
            }
        }
    }
    let total = teams.len();
    let roles = if expand.roles {
        state.services.list_roles().await?
    } else {
        Vec::new()
    };
    let items = paging
        .slice(teams)
        .iter()
        .map(|t| rep::team(t, expand, &roles))
        .collect();
    let mut query = Vec::new();
    for (k, v) in [("filter", &q.filter), ("expand", &q.expand)] {
        if let Some(v) = v {
            query.push((k.to_string(), v.clone()));
        }
    }
    Ok(Json(render::page(
        "/api/v2/teams",
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create a team.
#[utoipa::path(post, path = "/api/v2/teams", tag = "Teams", operation_id = "postTeam",
    params(TeamQuery), request_body = TeamPost, responses((status = 201, description = "The new team")),
    security(("ApiKey" = [])))]
async fn post_team(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<TeamQuery>,
    LdJson(body): LdJson<TeamPost>,
) -> ApiResult<impl IntoResponse> {
    let expand = expand(q.expand.as_deref())?;
    let team = state.services.create_team(&caller, body).await?;
    state.tokens.clear();
    Ok((
        StatusCode::CREATED,
        Json(rendered(&state, &team, expand).await?),
    ))
}

/// Get a team.
#[utoipa::path(get, path = "/api/v2/teams/{teamKey}", tag = "Teams", operation_id = "getTeam",
    params(("teamKey" = String, Path, description = "The team key"), TeamQuery),
    responses((status = 200, description = "Team")), security(("ApiKey" = [])))]
async fn get_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdQuery(q): LdQuery<TeamQuery>,
) -> ApiResult<Json<Value>> {
    let expand = expand(q.expand.as_deref())?;
    caller.require("viewTeam", &Resource::team(&key))?;
    let (team, _) = state.services.get_team(&key).await?;
    Ok(Json(rendered(&state, &team, expand).await?))
}

/// Update a team with semantic patch instructions (`addMembers`, `addCustomRoles`,
/// `updateRoleAttribute`, `updateName`, …), applied all or nothing. The body is accepted with
/// the semantic-patch content type and with plain `application/json`.
#[utoipa::path(patch, path = "/api/v2/teams/{teamKey}", tag = "Teams", operation_id = "patchTeam",
    params(("teamKey" = String, Path, description = "The team key"), TeamQuery),
    request_body(content = Object, description = "{comment?, instructions: [{kind, ...}]}"),
    responses((status = 200, description = "The updated team")), security(("ApiKey" = [])))]
async fn patch_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdQuery(q): LdQuery<TeamQuery>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let expand = expand(q.expand.as_deref())?;
    let team = state
        .services
        .patch_team(&caller, &key, body.value()?)
        .await?;
    state.tokens.clear();
    Ok(Json(rendered(&state, &team, expand).await?))
}

/// Delete a team; its members lose the team's roles.
#[utoipa::path(delete, path = "/api/v2/teams/{teamKey}", tag = "Teams", operation_id = "deleteTeam",
    params(("teamKey" = String, Path, description = "The team key")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_team(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_team(&caller, &key).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
