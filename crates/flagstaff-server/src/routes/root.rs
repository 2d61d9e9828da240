use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::render::link;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_root))
        .routes(routes!(get_caller_identity))
        .routes(routes!(get_versions))
}

/// The API's top-level links.
#[utoipa::path(get, path = "/api/v2", tag = "Other", operation_id = "getRoot",
    responses((status = 200, description = "Links to the top-level resources")))]
async fn get_root() -> Json<Value> {
    Json(json!({
        "links": {
            "auditLog": link("/api/v2/auditlog"),
            "callerIdentity": link("/api/v2/caller-identity"),
            "openapi": link("/api/v2/openapi.json"),
            "projects": link("/api/v2/projects"),
        }
    }))
}

/// Who the access token belongs to.
#[utoipa::path(get, path = "/api/v2/caller-identity", tag = "Other", operation_id = "getCallerIdentity",
    responses((status = 200, description = "The caller")), security(("ApiKey" = [])))]
async fn get_caller_identity(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    if let Some(oauth) = caller.oauth() {
        return Ok(Json(json!({
            "accountId": state.services.account_id,
            "authKind": "oauth",
            "tokenKind": "oauth",
            "clientId": oauth.client_id,
            "tokenName": caller.token.name,
            "memberId": caller.member.id,
            "serviceToken": false,
            "scopes": [oauth.scope.as_str()],
        })));
    }
    Ok(Json(json!({
        "accountId": state.services.account_id,
        "authKind": "token",
        "tokenKind": if caller.token.service_token { "service" } else { "personal" },
        "tokenId": caller.token.id,
        "tokenName": caller.token.name,
        "memberId": caller.member.id,
        "serviceToken": caller.token.service_token,
    })))
}

/// The API versions this server understands.
#[utoipa::path(get, path = "/api/v2/versions", tag = "Other", operation_id = "getVersions",
    responses((status = 200, description = "API versions")), security(("ApiKey" = [])))]
async fn get_versions(_caller: Caller) -> Json<Value> {
    Json(json!({
        "validVersions": [20160426, 20191212, 20210729, 20220603, 20240415],
        "latestVersion": 20240415,
        "currentVersion": 20240415,
    }))
}
