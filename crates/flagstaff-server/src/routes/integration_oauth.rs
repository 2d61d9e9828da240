//! OAuth for `requiresOAuth` integrations (Flagstaff extension): provider registrations
//! (`/api/v2/integration-oauth/providers/{oauthIntegrationKey}`), connections
//! (`/api/v2/integration-oauth/connections/{oauthIntegrationKey}[/connect]`), and the browser
//! callback partners redirect to (`GET /trust/integration-oauth/callback`, not part of the
//! REST API). Client secrets and tokens are never part of a response.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::LdJson;
use crate::integrations::oauth_client::{CALLBACK_PATH, ConnectionDoc, ProviderDoc};
use crate::render::link;
use crate::services::integration_oauth::{
    CallbackParams, ConnectStarted, ProviderFields, redirect_uri, used_by,
};
use crate::services::webhooks::SECRET_MASK;
use crate::state::AppState;

const TAG: &str = "Integration OAuth (Flagstaff)";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_integration_oauth_providers))
        .routes(routes!(
            get_integration_oauth_provider,
            put_integration_oauth_provider,
            delete_integration_oauth_provider
        ))
        .routes(routes!(
            get_integration_oauth_connection,
            delete_integration_oauth_connection
        ))
        .routes(routes!(connect_integration_oauth))
}

/// The browser callback; outside the REST API and its OpenAPI document.
pub fn callback_router() -> Router<AppState> {
    Router::new().route(CALLBACK_PATH, get(callback))
}

fn provider_rep(state: &AppState, doc: &ProviderDoc) -> Value {
    let key = &doc.key;
    json!({
        "_links": {"self": link(format!("/api/v2/integration-oauth/providers/{key}")),
                   "connection": link(format!("/api/v2/integration-oauth/connections/{key}"))},
        "key": key,
        "flow": doc.flow,
        "authorizationUrl": doc.authorization_url,
        "tokenUrl": doc.token_url,
        "clientId": doc.client_id,
        "clientSecret": doc.client_secret.as_ref().map(|_| SECRET_MASK),
        "tokenAuthMethod": doc.token_auth_method,
        "scopes": doc.scopes,
        "baseUri": doc.base_uri,
        "redirectUri": redirect_uri(&state.integrations),
        "_usedBy": used_by(&state.integrations, key),
        "_createdAt": doc.created_at,
        "_updatedAt": doc.updated_at,
    })
}

fn connection_rep(doc: &ConnectionDoc) -> Value {
    let tokens = doc.tokens.as_ref();
    json!({
        "_links": {"self": link(format!("/api/v2/integration-oauth/connections/{}", doc.key))},
        "key": doc.key,
        "status": doc.status(),
        "connected": tokens.is_some(),
        "connectedAt": doc.connected_at,
        "connectedBy": doc.connected_by,
        "expiresAt": tokens.and_then(|t| t.expires_at),
        "scope": tokens.and_then(|t| t.scope.clone()),
        "hasRefreshToken": tokens.is_some_and(|t| t.refresh_token.is_some()),
        "lastRefreshAt": doc.last_refresh_at,
        "lastError": doc.last_error.as_ref().map(|e| json!({"at": e.at, "message": e.message})),
        "pendingAuthorizations": doc.pending.len(),
    })
}

/// List OAuth provider registrations (admins: `updateIntegrationOAuthProvider` on `acct`).
#[utoipa::path(get, path = "/api/v2/integration-oauth/providers", tag = TAG,
    operation_id = "getIntegrationOAuthProviders",
    responses((status = 200, description = "Provider registrations")), security(("ApiKey" = [])))]
async fn get_integration_oauth_providers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let items: Vec<Value> = state
        .services
        .list_oauth_providers(&caller)
        .await?
        .iter()
        .map(|doc| provider_rep(&state, doc))
        .collect();
    Ok(Json(json!({
        "_links": {"self": link("/api/v2/integration-oauth/providers")},
        "items": items,
    })))
}

/// Get the OAuth client registration for an `oauthIntegrationKey` (the secret is masked).
#[utoipa::path(get, path = "/api/v2/integration-oauth/providers/{oauthIntegrationKey}", tag = TAG,
    operation_id = "getIntegrationOAuthProvider",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    responses((status = 200, description = "Provider registration")), security(("ApiKey" = [])))]
async fn get_integration_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = state.services.get_oauth_provider(&caller, &key).await?;
    Ok(Json(provider_rep(&state, &doc)))
}

/// Register or replace the OAuth client Flagstaff uses with a partner: `{flow
/// (authorizationCode | clientCredentials), authorizationUrl, tokenUrl, clientId,
/// clientSecret, tokenAuthMethod (clientSecretBasic | clientSecretPost), scopes, baseUri}`.
/// `clientSecret` absent or masked keeps the stored one. Register `redirectUri` from the
/// answer with the partner.
#[utoipa::path(put, path = "/api/v2/integration-oauth/providers/{oauthIntegrationKey}", tag = TAG,
    operation_id = "putIntegrationOAuthProvider",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    request_body(content = Object, description = "The provider registration"),
    responses((status = 200, description = "Provider registration")), security(("ApiKey" = [])))]
async fn put_integration_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
    LdJson(fields): LdJson<ProviderFields>,
) -> ApiResult<Json<Value>> {
    let (doc, _) = state
        .services
        .put_oauth_provider(&caller, &state.integrations, &key, fields)
        .await?;
    Ok(Json(provider_rep(&state, &doc)))
}

/// Remove a provider registration and its connection (the tokens are deleted).
#[utoipa::path(delete, path = "/api/v2/integration-oauth/providers/{oauthIntegrationKey}", tag = TAG,
    operation_id = "deleteIntegrationOAuthProvider",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    responses((status = 204, description = "Deleted")), security(("ApiKey" = [])))]
async fn delete_integration_oauth_provider(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state.services.delete_oauth_provider(&caller, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connection status: `status` (notConnected, pending, connected, error), `expiresAt`,
/// `lastError`; never the tokens.
#[utoipa::path(get, path = "/api/v2/integration-oauth/connections/{oauthIntegrationKey}", tag = TAG,
    operation_id = "getIntegrationOAuthConnection",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    responses((status = 200, description = "Connection status")), security(("ApiKey" = [])))]
async fn get_integration_oauth_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    let doc = state.services.oauth_connection(&caller, &key).await?;
    Ok(Json(connection_rep(&doc)))
}

/// Disconnect: delete the tokens and pending authorizations.
#[utoipa::path(delete, path = "/api/v2/integration-oauth/connections/{oauthIntegrationKey}", tag = TAG,
    operation_id = "deleteIntegrationOAuthConnection",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    responses((status = 204, description = "Disconnected")), security(("ApiKey" = [])))]
async fn delete_integration_oauth_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .disconnect_oauth(&caller, &state.integrations, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connect. Authorization code: answers `authorizationUrl` (single-use `state`, PKCE S256)
/// to open in a browser; the partner redirects to `/trust/integration-oauth/callback`.
/// Client credentials: fetches the token now and answers the connection.
#[utoipa::path(post, path = "/api/v2/integration-oauth/connections/{oauthIntegrationKey}/connect",
    tag = TAG, operation_id = "connectIntegrationOAuth",
    params(("oauthIntegrationKey" = String, Path, description = "The manifests' oauthIntegrationKey")),
    responses((status = 200, description = "Authorization URL or connection")), security(("ApiKey" = [])))]
async fn connect_integration_oauth(
    State(state): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        match state
            .services
            .start_oauth_connect(&caller, &state.integrations, &key)
            .await?
        {
            ConnectStarted::Authorize { url, expires_at } => json!({
                "authorizationUrl": url,
                "expiresAt": expires_at,
                "redirectUri": redirect_uri(&state.integrations),
            }),
            ConnectStarted::Connected(doc) => json!({"connection": connection_rep(&doc)}),
        },
    ))
}

/// Where the partner sends the browser back: a small page saying what happened.
async fn callback(State(state): State<AppState>, Query(params): Query<CallbackParams>) -> Response {
    match state
        .services
        .complete_oauth_connect(&state.integrations, params)
        .await
    {
        Ok(key) => page(
            StatusCode::OK,
            "Connected",
            &format!("Flagstaff is now connected to `{key}`. You can close this window."),
        ),
        Err(error) => {
            let (status, _) = error.status_and_code();
            page(status, "Not connected", &error.to_string())
        }
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Flagstaff: {title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>",
        escape_html(message)
    );
    (status, Html(body)).into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_are_escaped() {
        assert_eq!(
            super::escape_html("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
