//! Approval requests: the account-wide routes and LaunchDarkly's flag-scoped ones. Every
//! decision (binding, reviews, self-review, apply) is in `services/approvals.rs`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{paging, viewable_project};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{LdJson, LdQuery};
use crate::render::{self, link};
use crate::services::approvals::{
    ApplyBody, ApprovalFilter, ApprovalRequestDoc, CreateApprovalRequestBody,
    CreateFlagApprovalRequestBody, ReviewBody, render_value,
};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_approval_requests, post_approval_request))
        .routes(routes!(get_approval_request, delete_approval_request))
        .routes(routes!(post_approval_request_review))
        .routes(routes!(post_approval_request_apply))
        .routes(routes!(
            get_approvals_for_flag,
            post_approval_request_for_flag
        ))
        .routes(routes!(
            get_approval_for_flag,
            delete_approval_request_for_flag
        ))
        .routes(routes!(post_flag_approval_request_review))
        .routes(routes!(post_flag_approval_request_apply))
        .routes(routes!(
            get_approval_request_settings,
            patch_approval_request_settings
        ))
}

/// The request with its partner's status (`integrationMetadata`) when an approval
/// integration decides it.
async fn approval(state: &AppState, doc: &ApprovalRequestDoc) -> Value {
    let mut value = approval_links(doc);
    if let Some((metadata, job)) = state.services.approval_integration_view(&doc.id).await {
        value["integrationMetadata"] = metadata;
        value["_integrationStatus"] = job;
    }
    value
}

fn approval_links(doc: &ApprovalRequestDoc) -> Value {
    let mut value = render_value(doc);
    let b = &doc.binding;
    value["_links"] = json!({
        "self": link(format!("/api/v2/approval-requests/{}", doc.id)),
        "parent": link(if b.kind == "flag" {
            format!("/api/v2/flags/{}/{}", b.project, b.key)
        } else {
            format!("/api/v2/segments/{}/{}/{}", b.project, b.environment, b.key)
        }),
    });
    value
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalRequestsQuery {
    /// `field equals value`, comma-separated; fields: status, reviewStatus, requestorId,
    /// resourceId, resourceKind, serviceKind, projectKey, environmentKey.
    filter: Option<String>,
    /// Accepted for compatibility; nothing is expanded.
    expand: Option<String>,
    /// Page size, 1-100 (default 20).
    limit: Option<i64>,
    offset: Option<i64>,
}

/// List approval requests.
#[utoipa::path(get, path = "/api/v2/approval-requests", tag = "Approvals", operation_id = "getApprovalRequests",
    params(ApprovalRequestsQuery), responses((status = 200, description = "Approval requests")),
    security(("ApiKey" = [])))]
async fn get_approval_requests(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<ApprovalRequestsQuery>,
) -> ApiResult<Json<Value>> {
    let _ = &q.expand;
    let paging = paging(q.limit, q.offset, 20)?;
    let filter = ApprovalFilter::parse(q.filter.as_deref())?;
    let all = state
        .services
        .list_approval_requests(&caller, &filter)
        .await?;
    let total = all.len();
    let mut items = Vec::new();
    for doc in paging.slice(all).iter() {
        items.push(approval(&state, doc).await);
    }
    let query: Vec<(String, String)> = q
        .filter
        .iter()
        .map(|f| ("filter".to_string(), f.clone()))
        .collect();
    Ok(Json(render::page(
        "/api/v2/approval-requests",
        &query,
        items,
        total,
        paging.limit,
        paging.offset,
    )))
}

/// Create an approval request for a change to a flag or segment in one environment.
#[utoipa::path(post, path = "/api/v2/approval-requests", tag = "Approvals", operation_id = "postApprovalRequest",
    request_body = CreateApprovalRequestBody,
    responses((status = 201, description = "The new approval request")), security(("ApiKey" = [])))]
async fn post_approval_request(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<CreateApprovalRequestBody>,
) -> ApiResult<impl IntoResponse> {
    let doc = state
        .services
        .create_approval_request(&caller, body)
        .await?;
    Ok((StatusCode::CREATED, Json(approval(&state, &doc).await)))
}

/// Get an approval request.
#[utoipa::path(get, path = "/api/v2/approval-requests/{id}", tag = "Approvals", operation_id = "getApprovalRequest",
    params(("id" = String, Path)), responses((status = 200, description = "The approval request")),
    security(("ApiKey" = [])))]
async fn get_approval_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = state.services.view_approval_request(&caller, &id).await?;
    Ok(Json(approval(&state, &doc).await))
}

/// Delete an approval request.
#[utoipa::path(delete, path = "/api/v2/approval-requests/{id}", tag = "Approvals", operation_id = "deleteApprovalRequest",
    params(("id" = String, Path)), responses((status = 204, description = "Deleted")),
    security(("ApiKey" = [])))]
async fn delete_approval_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_approval_request(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Review an approval request: approve, decline or comment.
#[utoipa::path(post, path = "/api/v2/approval-requests/{id}/reviews", tag = "Approvals", operation_id = "postApprovalRequestReview",
    params(("id" = String, Path)), request_body = ReviewBody,
    responses((status = 200, description = "The reviewed approval request")), security(("ApiKey" = [])))]
async fn post_approval_request_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LdJson(body): LdJson<ReviewBody>,
) -> ApiResult<Json<Value>> {
    let doc = state
        .services
        .review_approval_request(&caller, &id, body)
        .await?;
    Ok(Json(approval(&state, &doc).await))
}

/// Apply an approved request's change, exactly as it was approved.
#[utoipa::path(post, path = "/api/v2/approval-requests/{id}/apply", tag = "Approvals", operation_id = "postApprovalRequestApply",
    params(("id" = String, Path)), request_body = ApplyBody,
    responses((status = 200, description = "The applied approval request")), security(("ApiKey" = [])))]
async fn post_approval_request_apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    LdJson(body): LdJson<ApplyBody>,
) -> ApiResult<Json<Value>> {
    let doc = state
        .services
        .apply_approval_request(&caller, &id, body)
        .await?;
    Ok(Json(approval(&state, &doc).await))
}

/// A request the caller may see that belongs to this flag and environment (404 otherwise,
/// so a flag-scoped route cannot act on another resource's request).
async fn flag_request(
    state: &AppState,
    caller: &Caller,
    (project, flag, env, id): &(String, String, String, String),
) -> ApiResult<ApprovalRequestDoc> {
    let doc = state.services.view_approval_request(caller, id).await?;
    let b = &doc.binding;
    if b.kind != "flag" || b.project != *project || b.key != *flag || b.environment != *env {
        return Err(ApiError::not_found(format!(
            "approval request \"{id}\" for flag \"{flag}\" in environment \"{env}\""
        )));
    }
    Ok(doc)
}

/// List a flag's approval requests in one environment.
#[utoipa::path(get, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests",
    tag = "Approvals", operation_id = "getApprovalsForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path)),
    responses((status = 200, description = "The flag's approval requests")), security(("ApiKey" = [])))]
async fn get_approvals_for_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    state.services.get_flag(&project, &flag).await?;
    let filter = ApprovalFilter::parse(Some(&format!(
        "resourceId equals proj/{project}:env/{env}:flag/{flag}"
    )))?;
    let mut items: Vec<Value> = Vec::new();
    for doc in state
        .services
        .list_approval_requests(&caller, &filter)
        .await?
    {
        items.push(approval(&state, &doc).await);
    }
    Ok(Json(json!({
        "items": items,
        "_links": {"self": link(format!("/api/v2/projects/{project}/flags/{flag}/environments/{env}/approval-requests"))},
    })))
}

/// Create an approval request for a change to a flag in one environment.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests",
    tag = "Approvals", operation_id = "postApprovalRequestForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path)),
    request_body = CreateFlagApprovalRequestBody,
    responses((status = 201, description = "The new approval request")), security(("ApiKey" = [])))]
async fn post_approval_request_for_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path((project, flag, env)): Path<(String, String, String)>,
    LdJson(body): LdJson<CreateFlagApprovalRequestBody>,
) -> ApiResult<impl IntoResponse> {
    let doc = state
        .services
        .create_approval_request(&caller, body.for_flag(&project, &env, &flag))
        .await?;
    Ok((StatusCode::CREATED, Json(approval(&state, &doc).await)))
}

/// Get a flag's approval request.
#[utoipa::path(get, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests/{id}",
    tag = "Approvals", operation_id = "getApprovalForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    responses((status = 200, description = "The approval request")), security(("ApiKey" = [])))]
async fn get_approval_for_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String, String)>,
) -> ApiResult<Json<Value>> {
    let doc = flag_request(&state, &caller, &path).await?;
    Ok(Json(approval(&state, &doc).await))
}

/// Delete a flag's approval request.
#[utoipa::path(delete, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests/{id}",
    tag = "Approvals", operation_id = "deleteApprovalRequestForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_approval_request_for_flag(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let doc = flag_request(&state, &caller, &path).await?;
    state
        .services
        .delete_approval_request(&caller, &doc.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Review a flag's approval request.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests/{id}/reviews",
    tag = "Approvals", operation_id = "postApprovalRequestReviewForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    request_body = ReviewBody,
    responses((status = 200, description = "The reviewed approval request")), security(("ApiKey" = [])))]
async fn post_flag_approval_request_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String, String)>,
    LdJson(body): LdJson<ReviewBody>,
) -> ApiResult<Json<Value>> {
    let doc = flag_request(&state, &caller, &path).await?;
    let doc = state
        .services
        .review_approval_request(&caller, &doc.id, body)
        .await?;
    Ok(Json(approval(&state, &doc).await))
}

/// Apply a flag's approved request.
#[utoipa::path(post, path = "/api/v2/projects/{projectKey}/flags/{featureFlagKey}/environments/{environmentKey}/approval-requests/{id}/apply",
    tag = "Approvals", operation_id = "postApprovalRequestApplyForFlag",
    params(("projectKey" = String, Path), ("featureFlagKey" = String, Path), ("environmentKey" = String, Path), ("id" = String, Path)),
    request_body = ApplyBody,
    responses((status = 200, description = "The applied approval request")), security(("ApiKey" = [])))]
async fn post_flag_approval_request_apply(
    State(state): State<AppState>,
    caller: Caller,
    Path(path): Path<(String, String, String, String)>,
    LdJson(body): LdJson<ApplyBody>,
) -> ApiResult<Json<Value>> {
    let doc = flag_request(&state, &caller, &path).await?;
    let doc = state
        .services
        .apply_approval_request(&caller, &doc.id, body)
        .await?;
    Ok(Json(approval(&state, &doc).await))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApprovalSettingsQuery {
    /// Only this environment.
    #[serde(rename = "environmentKey")]
    environment_key: Option<String>,
    /// Only this resource kind: `flag` or `segment`.
    #[serde(rename = "resourceKind")]
    resource_kind: Option<String>,
    /// `default` adds `_default`, the settings of an environment that has none.
    expand: Option<String>,
}

/// Get a project's approval request settings per resource kind and environment. Flagstaff
/// keeps one setting per environment for flags and segments, so both kinds show the same.
#[utoipa::path(get, path = "/api/v2/approval-requests/projects/{projectKey}/settings",
    tag = "Approvals (beta)", operation_id = "getApprovalRequestSettings",
    params(("projectKey" = String, Path), ApprovalSettingsQuery),
    responses((status = 200, description = "Settings by resource kind")), security(("ApiKey" = [])))]
async fn get_approval_request_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdQuery(q): LdQuery<ApprovalSettingsQuery>,
) -> ApiResult<Json<Value>> {
    viewable_project(&state, &caller, &project).await?;
    let expand_default = q
        .expand
        .as_deref()
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "default"));
    Ok(Json(
        state
            .services
            .project_approval_settings(
                &project,
                q.environment_key.as_deref(),
                q.resource_kind.as_deref(),
                expand_default,
            )
            .await?,
    ))
}

/// Update one environment's approval settings (`environmentKey`, `resourceKind` and the
/// fields to change). Audited as an environment change (`updateApprovalSettings`).
#[utoipa::path(patch, path = "/api/v2/approval-requests/projects/{projectKey}/settings",
    tag = "Approvals (beta)", operation_id = "patchApprovalRequestSettings",
    params(("projectKey" = String, Path)),
    request_body(content = Object, description = "{environmentKey, resourceKind, required?, minNumApprovals?, canReviewOwnRequest?, canApplyDeclinedChanges?, autoApplyApprovedChanges?, serviceKind?, serviceConfig?, serviceKindConfigurationId?, requiredApprovalTags?, bypassApprovalsForPendingChanges?}"),
    responses((status = 200, description = "The environment's settings by resource kind")),
    security(("ApiKey" = [])))]
async fn patch_approval_request_settings(
    State(state): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    LdJson(body): LdJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        state
            .services
            .patch_project_approval_settings(&caller, &project, body)
            .await?,
    ))
}
