//! Flag links (beta): `/api/v2/flag-links/projects/{projectKey}/flags/{flagKey}[/{id}]`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview};
use flagstaff_template::Compat;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::segment_targets::find_integration;
use super::viewable_project;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, LdJson};
use crate::integrations::event::timestamps;
use crate::render::link;
use crate::services::flag_links::{FlagLink, FlagLinkPost};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_flag_links, create_flag_link))
        .routes(routes!(get_flag_link, update_flag_link, delete_flag_link))
}

/// `FlagLinkRep`, plus `uiBlocks` rendered from the integration's templates with
/// `{deepLink, metadata}`.
fn render(state: &AppState, project: &str, flag: &str, l: &FlagLink) -> Value {
    let base = format!("/api/v2/flag-links/projects/{project}/flags/{flag}");
    let mut body = json!({
        "_links": {"self": link(format!("{base}/{}", l.id)), "parent": link(base)},
        "_id": l.id,
        "_deepLink": l.deep_link,
        "_timestamp": timestamps(l.timestamp),
        "_createdAt": l.created_at,
        "_metadata": l.metadata,
        "_member": {"_id": l.member_id, "_links": {"self": link(format!("/api/v2/members/{}", l.member_id))}},
    });
    for (field, value) in [
        ("_key", &l.key),
        ("_integrationKey", &l.integration_key),
        ("title", &l.title),
        ("description", &l.description),
    ] {
        if let Some(v) = value {
            body[field] = json!(v);
        }
    }
    if let Some(key) = &l.integration_key
        && let Ok(integration) = find_integration(state, key)
        && let Ok(Preview::Rendered(blocks)) = preview(
            &integration,
            &Target::FlagLink,
            &json!({"deepLink": l.deep_link, "metadata": l.metadata}),
            &PreviewInput {
                compat: Compat::Go,
                ..PreviewInput::default()
            },
        )
    {
        body["uiBlocks"] = blocks;
    }
    body
}

/// The integration a link names, which must have the flagLink capability.
fn link_integration(
    state: &AppState,
    key: &str,
) -> ApiResult<std::sync::Arc<flagstaff_manifest::Integration>> {
    let integration = find_integration(state, key).ok().filter(|i| {
        i.manifest
            .capabilities
            .as_ref()
            .is_some_and(|c| c.flag_link.is_some())
    });
    integration.ok_or_else(|| {
        ApiError::invalid(format!(
            "integrationKey \"{key}\" is not an integration with the flagLink capability: \
             omit it for a plain URL link"
        ))
    })
}

/// List a flag's links.
#[utoipa::path(get, path = "/api/v2/flag-links/projects/{projectKey}/flags/{featureFlagKey}", tag = "Flag links (beta)", operation_id = "getFlagLinks",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path)),
    responses((status = 200, description = "Flag links")), security(("ApiKey" = [])))]
async fn get_flag_links(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let links = state.services.list_flag_links(&project, &flag).await?;
    Ok(Json(json!({
        "items": links.iter().map(|l| render(&state, &project, &flag, l)).collect::<Vec<_>>(),
        "_links": {"self": link(format!("/api/v2/flag-links/projects/{project}/flags/{flag}"))},
    })))
}

/// Attach a link to a flag.
#[utoipa::path(post, path = "/api/v2/flag-links/projects/{projectKey}/flags/{featureFlagKey}", tag = "Flag links (beta)", operation_id = "createFlagLink",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path)),
    request_body = FlagLinkPost, responses((status = 201, description = "The new link")), security(("ApiKey" = [])))]
async fn create_flag_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag)): Path<(String, String)>,
    LdJson(post): LdJson<FlagLinkPost>,
) -> ApiResult<impl IntoResponse> {
    let integration = match &post.integration_key {
        Some(key) => Some(link_integration(&state, key)?),
        None => None,
    };
    let created = state
        .services
        .create_flag_link(&caller, &project, &flag, post, integration.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(render(&state, &project, &flag, &created)),
    ))
}

/// Get one link (Flagstaff extension; LaunchDarkly lists only).
#[utoipa::path(get, path = "/api/v2/flag-links/projects/{projectKey}/flags/{featureFlagKey}/{id}", tag = "Flag links (beta)", operation_id = "getFlagLink",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "Flag link")), security(("ApiKey" = [])))]
async fn get_flag_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let (l, _) = state.services.get_flag_link(&project, &flag, &id).await?;
    Ok(Json(render(&state, &project, &flag, &l)))
}

/// Update a link (JSON Patch).
#[utoipa::path(patch, path = "/api/v2/flag-links/projects/{projectKey}/flags/{featureFlagKey}/{id}", tag = "Flag links (beta)", operation_id = "updateFlagLink",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "JSON Patch"),
    responses((status = 200, description = "The updated link")), security(("ApiKey" = [])))]
async fn update_flag_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, id)): Path<(String, String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let updated = state
        .services
        .patch_flag_link(&caller, &project, &flag, &id, body.value()?, |key| {
            link_integration(&state, key).ok()
        })
        .await?;
    Ok(Json(render(&state, &project, &flag, &updated)))
}

/// Remove a link.
#[utoipa::path(delete, path = "/api/v2/flag-links/projects/{projectKey}/flags/{featureFlagKey}/{id}", tag = "Flag links (beta)", operation_id = "deleteFlagLink",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_flag_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, id)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    state
        .services
        .delete_flag_link(&caller, &project, &flag, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
