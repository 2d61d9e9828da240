//! `/api/v2/tokens`: API access tokens. The secret appears in full only in the responses to
//! create and reset; everywhere else `token` is its last four characters.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::account::{AccessToken, AccessTokenPost, Member};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paging;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::{self, account as rep};
use crate::services::tokens::{manages_all_tokens, token_visible};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_tokens, post_token))
        .routes(routes!(get_token, patch_token, delete_token))
        .routes(routes!(reset_token))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct TokensQuery {
    /// With an admin's token (anyone allowed every action on `member/*:token/*`): every
    /// member's personal tokens too.
    show_all: Option<bool>,
    /// Page size, 1-100 (default 25).
    limit: Option<i64>,
    offset: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResetQuery {
    /// Unix milliseconds until which the old secret keeps working; without it (or in the past)
    /// the old secret stops working at once.
    expiry: Option<i64>,
}

async fn members_by_id(state: &AppState) -> ApiResult<HashMap<String, Member>> {
    Ok(state
        .services
        .list_members()
        .await?
        .into_iter()
        .map(|m| (m.id.clone(), m))
        .collect())
}

fn render_token(
    state: &AppState,
    t: &AccessToken,
    members: &HashMap<String, Member>,
    secret: Option<&str>,
) -> Value {
    rep::token(
        t,
        members.get(&t.member_id),
        state.tokens.last_used(&t.id),
        secret,
    )
}

async fn render_one(state: &AppState, t: &AccessToken, secret: Option<&str>) -> ApiResult<Value> {
    let member = state
        .services
        .get_member(&t.member_id)
        .await
        .ok()
        .map(|(m, _)| m);
    Ok(rep::token(
        t,
        member.as_ref(),
        state.tokens.last_used(&t.id),
        secret,
    ))
}

/// List access tokens: the caller's member's personal tokens and every service token; with
/// `showAll=true`, admins also see every other member's personal tokens.
#[utoipa::path(get, path = "/api/v2/tokens", tag = "Access tokens", operation_id = "getTokens",
    params(TokensQuery), responses((status = 200, description = "Tokens collection")),
    security(("ApiKey" = [])))]
async fn get_tokens(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<TokensQuery>,
) -> ApiResult<Json<Value>> {
    let paging = paging(q.limit, q.offset, 25)?;
    let show_all = q.show_all.unwrap_or(false) && manages_all_tokens(&caller);
    let mut tokens = state.services.list_tokens().await?;
    tokens.retain(|t| {
        show_all
            || (t.service_token
                && caller.can(
                    "viewToken",
                    &flagstaff_policy::Resource::service_token(&t.id),
                ))
            || t.member_id == caller.member.id
    });
    let total = tokens.len();
    let members = members_by_id(&state).await?;
    let items = paging
        .slice(tokens)
        .iter()
        .map(|t| render_token(&state, t, &members, None))
        .collect();
    let query: Vec<(String, String)> = q
        .show_all
        .map(|s| vec![("showAll".to_string(), s.to_string())])
        .unwrap_or_default();
    Ok(Json(render::page(
        "/api/v2/tokens",
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create an access token, scoped by exactly one of `role`, `customRoleIds` or `inlineRole`.
/// The response carries the secret in `token`: it is shown this once.
#[utoipa::path(post, path = "/api/v2/tokens", tag = "Access tokens", operation_id = "postToken",
    request_body = AccessTokenPost, responses((status = 201, description = "The new token, with its secret")),
    security(("ApiKey" = [])))]
async fn post_token(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<AccessTokenPost>,
) -> ApiResult<impl IntoResponse> {
    let (token, secret) = state.services.create_token(&caller, body).await?;
    state.tokens.clear();
    Ok((
        StatusCode::CREATED,
        Json(render_one(&state, &token, Some(&secret)).await?),
    ))
}

/// Get an access token (the caller's own personal tokens, service tokens, or — for admins —
/// any token).
#[utoipa::path(get, path = "/api/v2/tokens/{id}", tag = "Access tokens", operation_id = "getToken",
    params(("id" = String, Path, description = "The ID of the access token")),
    responses((status = 200, description = "Token")), security(("ApiKey" = [])))]
async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (token, _) = state.services.get_token(&id).await?;
    if !token_visible(&caller, &token) {
        return Err(ApiError::Forbidden(format!(
            "Forbidden. Access to the requested resource was denied: the access token {id} is another member's personal token; only admins (every action on \"member/*:token/*\") can read it"
        )));
    }
    Ok(Json(render_one(&state, &token, None).await?))
}

/// Update an access token with a JSON Patch of `name`, `description`, `role`,
/// `customRoleIds`, `inlineRole` or `defaultApiVersion`.
#[utoipa::path(patch, path = "/api/v2/tokens/{id}", tag = "Access tokens", operation_id = "patchToken",
    params(("id" = String, Path, description = "The ID of the access token to update")),
    request_body(content = Vec<Object>, description = "JSON Patch"),
    responses((status = 200, description = "The updated token")), security(("ApiKey" = [])))]
async fn patch_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let token = state
        .services
        .patch_token(&caller, &id, body.value()?, body.semantic_patch)
        .await?;
    state.tokens.clear();
    Ok(Json(render_one(&state, &token, None).await?))
}

/// Delete an access token; it stops working at once.
#[utoipa::path(delete, path = "/api/v2/tokens/{id}", tag = "Access tokens", operation_id = "deleteToken",
    params(("id" = String, Path, description = "The ID of the access token to delete")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_token(&caller, &id).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Replace an access token's secret. The response carries the new secret (shown once); the
/// old one keeps working until `expiry`, or stops at once without it.
#[utoipa::path(post, path = "/api/v2/tokens/{id}/reset", tag = "Access tokens", operation_id = "resetToken",
    params(("id" = String, Path, description = "The ID of the access token to reset"), ResetQuery),
    responses((status = 200, description = "The token, with its new secret")), security(("ApiKey" = [])))]
async fn reset_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LdQuery(q): LdQuery<ResetQuery>,
) -> ApiResult<Json<Value>> {
    let (token, secret) = state.services.reset_token(&caller, &id, q.expiry).await?;
    state.tokens.clear();
    Ok(Json(render_one(&state, &token, Some(&secret)).await?))
}
