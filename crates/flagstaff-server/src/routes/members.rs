//! `/api/v2/members`: account members.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::account::{Member, NewMemberForm, Team};
use flagstaff_policy::Resource;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{paging, parse_filter};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::{self, account as rep, link};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_members, post_members))
        .routes(routes!(get_member, patch_member, delete_member))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
    /// `query:text`, `role:reader|my-custom-role` (owners count as admin), `id:a|b`,
    /// `email:a|b`, `team:key`, `noteam:true|false`.
    filter: Option<String>,
    /// `displayName`, `-displayName`, `lastSeen`, `-lastSeen` (default: oldest member first).
    sort: Option<String>,
    /// Accepted for compatibility: `customRoles` and `roleAttributes` are always included.
    expand: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// Accepted for compatibility: `customRoles` and `roleAttributes` are always included.
    expand: Option<String>,
}

fn check_expand(expand: Option<&str>) -> ApiResult<()> {
    for field in expand
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        if !matches!(field, "customRoles" | "roleAttributes") {
            return Err(ApiError::invalid(format!(
                "unknown expand field \"{field}\": use customRoles or roleAttributes"
            )));
        }
    }
    Ok(())
}

fn render_member(state: &AppState, m: &Member, teams: &[Team]) -> Value {
    rep::member(m, teams, state.tokens.last_seen(&m.id))
}

fn display_name(m: &Member) -> String {
    let name = format!(
        "{} {}",
        m.first_name.as_deref().unwrap_or(""),
        m.last_name.as_deref().unwrap_or("")
    );
    let name = name.trim();
    if name.is_empty() {
        m.email.to_lowercase()
    } else {
        name.to_lowercase()
    }
}

/// List members (those the caller may view, `viewMember` on `member/<id>`).
#[utoipa::path(get, path = "/api/v2/members", tag = "Account members", operation_id = "getMembers",
    params(MembersQuery), responses((status = 200, description = "Members collection")),
    security(("ApiKey" = [])))]
async fn get_members(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<MembersQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 20)?;
    check_expand(q.expand.as_deref())?;
    let teams = state.services.list_teams().await?;
    let mut members = state.services.list_members().await?;
    members
        .retain(|m| m.id == caller.member.id || caller.can("viewMember", &Resource::member(&m.id)));
    if let Some(filter) = &q.filter {
        for (field, value) in
            parse_filter(filter, &["query", "role", "id", "email", "team", "noteam"])?
        {
            let lower = value.to_lowercase();
            let in_team = |m: &Member, key: &str| {
                teams
                    .iter()
                    .any(|t| t.key.to_lowercase() == key && t.member_ids.contains(&m.id))
            };
            match field {
                "query" => members.retain(|m| {
                    m.email.to_lowercase().contains(&lower) || display_name(m).contains(&lower)
                }),
                "role" => {
                    let wanted: Vec<&str> = value.split('|').collect();
                    members.retain(|m| {
                        wanted.iter().any(|w| {
                            let base = if m.role == "owner" {
                                "admin"
                            } else {
                                m.role.as_str()
                            };
                            (m.custom_roles.is_empty() && (*w == base || *w == m.role))
                                || m.custom_roles.iter().any(|r| r == w)
                        })
                    });
                }
                "id" => {
                    let wanted: Vec<&str> = value.split('|').collect();
                    members.retain(|m| wanted.contains(&m.id.as_str()));
                }
                "email" => {
                    let wanted: Vec<String> = lower.split('|').map(String::from).collect();
                    members.retain(|m| wanted.contains(&m.email.to_lowercase()));
                }
                "team" => members.retain(|m| in_team(m, &lower)),
                _ => {
                    let no_team = match lower.as_str() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(ApiError::invalid(format!(
                                "filter noteam:{other} must be noteam:true or noteam:false"
                            )));
                        }
                    };
                    members
                        .retain(|m| teams.iter().any(|t| t.member_ids.contains(&m.id)) != no_team);
                }
            }
        }
    }
    match q.sort.as_deref() {
        None => {}
        Some("displayName") => members.sort_by_key(display_name),
        Some("-displayName") => members.sort_by_key(|m| std::cmp::Reverse(display_name(m))),
        Some("lastSeen") => members.sort_by_key(|m| state.tokens.last_seen(&m.id).unwrap_or(0)),
        Some("-lastSeen") => {
            members.sort_by_key(|m| std::cmp::Reverse(state.tokens.last_seen(&m.id).unwrap_or(0)))
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "unsupported sort \"{other}\": use displayName, -displayName, lastSeen or -lastSeen"
            )));
        }
    }
    let total = members.len();
    let items = paging
        .slice(members)
        .iter()
        .map(|m| render_member(&state, m, &teams))
        .collect();
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
        "/api/v2/members",
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Add members: an array of up to 50 `NewMemberForm`s, all or none. Flagstaff sends no
/// invitations: members exist at once and get access through access tokens.
#[utoipa::path(post, path = "/api/v2/members", tag = "Account members", operation_id = "postMembers",
    request_body = Vec<NewMemberForm>, responses((status = 201, description = "The new members")),
    security(("ApiKey" = [])))]
async fn post_members(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<Vec<NewMemberForm>>,
) -> ApiResult<impl IntoResponse> {
    let members = state.services.create_members(&caller, body).await?;
    state.tokens.clear();
    let teams = state.services.list_teams().await?;
    let items: Vec<Value> = members
        .iter()
        .map(|m| render_member(&state, m, &teams))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "items": items,
            "totalCount": items.len(),
            "_links": {"self": link("/api/v2/members")},
        })),
    ))
}

/// Get a member. Everyone may read their own member.
#[utoipa::path(get, path = "/api/v2/members/{id}", tag = "Account members", operation_id = "getMember",
    params(("id" = String, Path, description = "The member ID"), MemberQuery),
    responses((status = 200, description = "Member")), security(("ApiKey" = [])))]
async fn get_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LdQuery(q): LdQuery<MemberQuery>,
) -> ApiResult<Json<Value>> {
    check_expand(q.expand.as_deref())?;
    // `me` names the caller's own member, as in LaunchDarkly.
    let id = if id == "me" {
        caller.member.id.clone()
    } else {
        id
    };
    if id != caller.member.id {
        caller.require("viewMember", &Resource::member(&id))?;
    }
    let (member, _) = state.services.get_member(&id).await?;
    let teams = state.services.list_teams().await?;
    Ok(Json(render_member(&state, &member, &teams)))
}

/// Update a member with a JSON Patch of `role`, `customRoles`, `roleAttributes`, `firstName`
/// or `lastName`.
#[utoipa::path(patch, path = "/api/v2/members/{id}", tag = "Account members", operation_id = "patchMember",
    params(("id" = String, Path, description = "The member ID")),
    request_body(content = Vec<Object>, description = "JSON Patch"),
    responses((status = 200, description = "The updated member")), security(("ApiKey" = [])))]
async fn patch_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let member = state
        .services
        .patch_member(&caller, &id, body.value()?, body.semantic_patch)
        .await?;
    state.tokens.clear();
    let teams = state.services.list_teams().await?;
    Ok(Json(render_member(&state, &member, &teams)))
}

/// Remove a member, with their personal access tokens and team memberships. Service tokens
/// they created keep working and move to the member who removed them.
#[utoipa::path(delete, path = "/api/v2/members/{id}", tag = "Account members", operation_id = "deleteMember",
    params(("id" = String, Path, description = "The member ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_member(&caller, &id).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
