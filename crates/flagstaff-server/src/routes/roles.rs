//! `/api/v2/roles`: custom roles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::account::{CustomRole, CustomRolePost, Member, Team};
use flagstaff_policy::Resource;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::{self, account as rep};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_custom_roles, post_custom_role))
        .routes(routes!(
            get_custom_role,
            patch_custom_role,
            delete_custom_role
        ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolesQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The members and teams roles can be assigned to, read once per request.
struct Assignees {
    members: Vec<Member>,
    teams: Vec<Team>,
}

impl Assignees {
    async fn load(state: &AppState) -> ApiResult<Self> {
        Ok(Self {
            members: state.services.list_members().await?,
            teams: state.services.list_teams().await?,
        })
    }

    /// Renders a role with how many members and teams it is assigned to.
    fn render(&self, role: &CustomRole) -> Value {
        let names = |k: &String| *k == role.key || *k == role.id;
        let members = self
            .members
            .iter()
            .filter(|m| m.custom_roles.iter().any(names))
            .count();
        let teams = self
            .teams
            .iter()
            .filter(|t| t.custom_role_keys.iter().any(names))
            .count();
        rep::custom_role(role, Some((members, teams)))
    }
}

async fn rendered(state: &AppState, role: &CustomRole) -> ApiResult<Value> {
    Ok(Assignees::load(state).await?.render(role))
}

/// List custom roles (those the caller may view), ordered by key.
#[utoipa::path(get, path = "/api/v2/roles", tag = "Custom roles", operation_id = "getCustomRoles",
    params(RolesQuery), responses((status = 200, description = "Custom roles collection")),
    security(("ApiKey" = [])))]
async fn get_custom_roles(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<RolesQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    let mut roles = state.services.list_roles().await?;
    roles.retain(|r| caller.can("viewRole", &Resource::role(&r.key)));
    let total = roles.len();
    let assignees = Assignees::load(&state).await?;
    let items = paging
        .slice(roles)
        .iter()
        .map(|r| assignees.render(r))
        .collect();
    Ok(Json(render::page(
        "/api/v2/roles",
        &[],
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create a custom role. The policy is validated statement by statement; errors name the
/// statement, the field and the character position.
#[utoipa::path(post, path = "/api/v2/roles", tag = "Custom roles", operation_id = "postCustomRole",
    request_body = CustomRolePost, responses((status = 201, description = "The new custom role")),
    security(("ApiKey" = [])))]
async fn post_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<CustomRolePost>,
) -> ApiResult<impl IntoResponse> {
    let role = state.services.create_role(&caller, body).await?;
    state.tokens.clear();
    Ok((StatusCode::CREATED, Json(rendered(&state, &role).await?)))
}

/// Get a custom role by key or `_id`.
#[utoipa::path(get, path = "/api/v2/roles/{customRoleKey}", tag = "Custom roles", operation_id = "getCustomRole",
    params(("customRoleKey" = String, Path, description = "The custom role key or ID")),
    responses((status = 200, description = "Custom role")), security(("ApiKey" = [])))]
async fn get_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let (role, _) = state.services.get_role(&key).await?;
    caller.require("viewRole", &Resource::role(&role.key))?;
    Ok(Json(rendered(&state, &role).await?))
}

/// Update a custom role with a JSON Patch (bare or `{comment, patch}`) or a JSON merge patch.
#[utoipa::path(patch, path = "/api/v2/roles/{customRoleKey}", tag = "Custom roles", operation_id = "patchCustomRole",
    params(("customRoleKey" = String, Path, description = "The custom role key or ID")),
    request_body(content = Object, description = "JSON Patch, optionally with a comment, or a merge patch"),
    responses((status = 200, description = "The updated custom role")), security(("ApiKey" = [])))]
async fn patch_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let role = state
        .services
        .patch_role(&caller, &key, body.value()?, body.semantic_patch)
        .await?;
    state.tokens.clear();
    Ok(Json(rendered(&state, &role).await?))
}

/// Delete a custom role. Refused (400) while members, teams or tokens still use it.
#[utoipa::path(delete, path = "/api/v2/roles/{customRoleKey}", tag = "Custom roles", operation_id = "deleteCustomRole",
    params(("customRoleKey" = String, Path, description = "The custom role key or ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_custom_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_role(&caller, &key).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
