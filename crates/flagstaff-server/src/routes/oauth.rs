//! `/api/v2/oauth/clients` (LaunchDarkly's OAuth2 Clients API, admins only; the secret is
//! shown once, on creation) and `/api/v2/oauth/authorizations` (Flagstaff extension: the
//! apps members authorized; members see and revoke their own, admins everyone's).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use flagstaff_model::oauth::{OAuthClient, OAuthGrant};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, LdJson, LdQuery};
use crate::render::link;
use crate::services::oauth::OAuthClientPost;
use crate::state::AppState;

const CLIENTS: &str = "/api/v2/oauth/clients";
const AUTHORIZATIONS: &str = "/api/v2/oauth/authorizations";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_oauth_clients, create_oauth_client))
        .routes(routes!(
            get_oauth_client,
            patch_oauth_client,
            delete_oauth_client
        ))
        .routes(routes!(get_oauth_authorizations))
        .routes(routes!(delete_oauth_authorization))
}

fn render_client(state: &AppState, c: &OAuthClient, secret: Option<&str>) -> Value {
    let mut v = json!({
        "_links": {
            "self": link(format!("{CLIENTS}/{}", c.client_id)),
            "parent": link(CLIENTS),
        },
        "name": c.name,
        "description": c.description,
        "_accountId": state.services.account_id,
        "_clientId": c.client_id,
        "redirectUri": c.redirect_uri,
        "_creationDate": c.creation_date,
        "public": c.public,
        "tokenEndpointAuthMethod": if c.public { "none" } else { "client_secret_basic" },
    });
    if let Some(secret) = secret {
        v["_clientSecret"] = json!(secret);
    }
    v
}

fn render_grant(g: &OAuthGrant, client: Option<&OAuthClient>) -> Value {
    json!({
        "_id": g.id,
        "_links": {"self": link(format!("{AUTHORIZATIONS}/{}", g.id))},
        "clientId": g.client_id,
        "clientName": client.map(|c| c.name.as_str()),
        "memberId": g.member_id,
        "scopes": [g.scope.as_str()],
        "creationDate": g.creation_date,
        "lastModified": g.last_modified,
    })
}

/// List the registered OAuth clients.
#[utoipa::path(get, path = "/api/v2/oauth/clients", tag = "OAuth2 Clients", operation_id = "getOAuthClients",
    responses((status = 200, description = "OAuth clients")), security(("ApiKey" = [])))]
async fn get_oauth_clients(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let clients = state.services.list_oauth_clients(&caller).await?;
    Ok(Json(json!({
        "_links": {"self": link(CLIENTS)},
        "items": clients.iter().map(|c| render_client(&state, c, None)).collect::<Vec<_>>(),
    })))
}

/// Register an OAuth client: one absolute https redirect URI without a query string (http
/// only for loopback hosts). The secret is in `_clientSecret`, shown this once. With
/// `public: true` (Flagstaff extension) the client gets no secret and must use PKCE.
#[utoipa::path(post, path = "/api/v2/oauth/clients", tag = "OAuth2 Clients", operation_id = "createOAuth2Client",
    request_body = OAuthClientPost, responses((status = 201, description = "The client, with its secret")),
    security(("ApiKey" = [])))]
async fn create_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    LdJson(body): LdJson<OAuthClientPost>,
) -> ApiResult<impl IntoResponse> {
    let (client, secret) = state.services.create_oauth_client(&caller, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(render_client(&state, &client, secret.as_deref())),
    ))
}

/// Get an OAuth client.
#[utoipa::path(get, path = "/api/v2/oauth/clients/{clientId}", tag = "OAuth2 Clients", operation_id = "getOAuthClientById",
    params(("clientId" = String, Path, description = "The client ID")),
    responses((status = 200, description = "The client")), security(("ApiKey" = [])))]
async fn get_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let client = state.services.get_oauth_client(&caller, &id).await?;
    Ok(Json(render_client(&state, &client, None)))
}

/// Update an OAuth client with a JSON Patch of `name`, `description` or `redirectUri`.
#[utoipa::path(patch, path = "/api/v2/oauth/clients/{clientId}", tag = "OAuth2 Clients", operation_id = "patchOAuthClient",
    params(("clientId" = String, Path, description = "The client ID")),
    request_body(content = Vec<Object>, description = "JSON Patch"),
    responses((status = 200, description = "The updated client")), security(("ApiKey" = [])))]
async fn patch_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let client = state
        .services
        .patch_oauth_client(&caller, &id, body.value()?)
        .await?;
    state.tokens.clear();
    Ok(Json(render_client(&state, &client, None)))
}

/// Delete an OAuth client and every authorization of it; its tokens stop working at once.
#[utoipa::path(delete, path = "/api/v2/oauth/clients/{clientId}", tag = "OAuth2 Clients", operation_id = "deleteOAuthClient",
    params(("clientId" = String, Path, description = "The client ID")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_oauth_client(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_oauth_client(&caller, &id).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationsQuery {
    /// Only this member's authorizations (admins; members may name themselves).
    member_id: Option<String>,
}

/// List authorized OAuth apps (Flagstaff extension): the caller's own; admins see every
/// member's, or one member's with `memberId`.
#[utoipa::path(get, path = "/api/v2/oauth/authorizations", tag = "OAuth2 Clients", operation_id = "getOAuthAuthorizations",
    params(AuthorizationsQuery), responses((status = 200, description = "Authorized apps")),
    security(("ApiKey" = [])))]
async fn get_oauth_authorizations(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<AuthorizationsQuery>,
) -> ApiResult<Json<Value>> {
    let grants = state
        .services
        .list_oauth_grants(&caller, q.member_id.as_deref())
        .await?;
    Ok(Json(json!({
        "_links": {"self": link(AUTHORIZATIONS)},
        "items": grants.iter().map(|(g, c)| render_grant(g, c.as_ref())).collect::<Vec<_>>(),
        "totalCount": grants.len(),
    })))
}

/// Revoke an authorized OAuth app (Flagstaff extension): every token issued under the
/// authorization stops working at once. Members revoke their own, admins anyone's.
#[utoipa::path(delete, path = "/api/v2/oauth/authorizations/{id}", tag = "OAuth2 Clients", operation_id = "deleteOAuthAuthorization",
    params(("id" = String, Path, description = "The authorization ID")),
    responses((status = 204, description = "Revoked")), security(("ApiKey" = [])))]
async fn delete_oauth_authorization(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_oauth_grant(&caller, &id).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
