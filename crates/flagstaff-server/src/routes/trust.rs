//! The OAuth 2.0 protocol endpoints (not REST API v2, so not in its OpenAPI document):
//!
//! * `GET|POST /trust/oauth/authorize` — the consent page (needs a signed-in member);
//! * `POST /trust/oauth/token` — authorization code (+PKCE) and refresh token grants;
//! * `POST /trust/oauth/revoke` — RFC 7009;
//! * `GET /.well-known/oauth-authorization-server` — RFC 8414 metadata.
//!
//! The authorize endpoint never redirects to a URI that is not the client's registered one:
//! errors found before the client and its redirect URI are established are shown as a page;
//! after, they are sent to the redirect URI (`error=`, `state` echoed, RFC 6749 §4.1.2.1).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HOST, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flagstaff_model::oauth::{Scope, is_pkce_string};
use serde::Deserialize;

use super::signin::{csrf_matches, current_session, error_page, escape, page, see_other};
use crate::error::OAuthError;
use crate::services::oauth::{AuthorizationRequest, check_client_secret, metadata};
use crate::state::AppState;

const AUTHORIZE_PATH: &str = "/trust/oauth/authorize";

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(AUTHORIZE_PATH, get(authorize_page).post(authorize_decision))
        .route("/trust/oauth/token", post(token))
        .route("/trust/oauth/revoke", post(revoke))
        .route(
            "/.well-known/oauth-authorization-server",
            get(authorization_server_metadata),
        )
}

/// This server's issuer identifier: the configured base URL, else `http://<Host>`.
fn issuer(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(issuer) = &state.oauth.issuer {
        return issuer.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

type Params = Vec<(String, String)>;

/// The value of a parameter that must occur at most once (RFC 6749 §3.1).
fn single<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, String> {
    let mut values = params.iter().filter(|(k, _)| k == name);
    let first = values.next().map(|(_, v)| v.as_str());
    if values.next().is_some() {
        return Err(format!("the parameter {name} was given more than once"));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// Why an authorization request failed.
enum AuthorizeFailure {
    /// Before the redirect URI is trusted: shown to the user, never redirected.
    Page(String),
    /// Sent back to the client's registered redirect URI.
    Redirect {
        redirect_uri: String,
        error: &'static str,
        description: String,
        state: Option<String>,
    },
}

/// Validates an authorization request (the GET, and again the consent form's POST).
async fn validate_request(
    state: &AppState,
    params: &Params,
) -> Result<(AuthorizationRequest, Option<String>), AuthorizeFailure> {
    let page_err = AuthorizeFailure::Page;
    let client_id = single(params, "client_id")
        .map_err(page_err)?
        .ok_or_else(|| AuthorizeFailure::Page("client_id is missing from the request.".into()))?;
    let client = match state.services.oauth_client(client_id).await {
        Ok(Some((c, _))) => c,
        Ok(None) => {
            return Err(AuthorizeFailure::Page(
                "This application is not registered with Flagstaff (unknown client_id).".into(),
            ));
        }
        Err(e) => return Err(AuthorizeFailure::Page(format!("{e}"))),
    };
    let given = single(params, "redirect_uri").map_err(AuthorizeFailure::Page)?;
    if let Some(uri) = given
        && uri != client.redirect_uri
    {
        return Err(AuthorizeFailure::Page(
            "The redirect_uri is not the one registered for this application.".into(),
        ));
    }
    let redirect_uri = client.redirect_uri.clone();
    let app_state = single(params, "state")
        .map_err(AuthorizeFailure::Page)?
        .map(str::to_string);
    let fail = |error: &'static str, description: String| AuthorizeFailure::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description,
        state: app_state.clone(),
    };
    let get = |name: &str| single(params, name).map_err(|e| fail("invalid_request", e));
    match get("response_type")? {
        Some("code") => {}
        None => return Err(fail("invalid_request", "response_type is required".into())),
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported".into(),
            ));
        }
    }
    let scope = Scope::parse(get("scope")?).map_err(|e| fail("invalid_scope", e))?;
    let challenge = get("code_challenge")?;
    match (get("code_challenge_method")?, challenge) {
        (Some(m), _) if m != "S256" => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)".into(),
            ));
        }
        (Some(_), None) => {
            return Err(fail(
                "invalid_request",
                "code_challenge is required with code_challenge_method".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method=S256 is required with code_challenge".into(),
            ));
        }
        _ => {}
    }
    if let Some(c) = challenge
        && !(is_pkce_string(c) && c.len() == 43)
    {
        return Err(fail(
            "invalid_request",
            "code_challenge must be the 43-character base64url SHA-256 of the verifier".into(),
        ));
    }
    if client.public && challenge.is_none() {
        return Err(fail(
            "invalid_request",
            "PKCE (code_challenge with S256) is required for public clients".into(),
        ));
    }
    Ok((
        AuthorizationRequest {
            client,
            redirect_uri,
            redirect_given: given.is_some(),
            scope,
            code_challenge: challenge.map(str::to_string),
        },
        app_state,
    ))
}

/// A redirect back to the client with `pairs`, `state` and the issuer (RFC 9207).
fn redirect_to_client(
    redirect_uri: &str,
    mut pairs: Vec<(&str, String)>,
    app_state: Option<String>,
    iss: String,
) -> Response {
    if let Some(s) = app_state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", iss));
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    see_other(&format!("{redirect_uri}?{query}"))
}

fn failure_response(failure: AuthorizeFailure, iss: String) -> Response {
    match failure {
        AuthorizeFailure::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeFailure::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => redirect_to_client(
            &redirect_uri,
            vec![("error", error.into()), ("error_description", description)],
            state,
            iss,
        ),
    }
}

fn parse_params(raw: &str) -> Option<Params> {
    serde_urlencoded::from_str::<Params>(raw).ok()
}

fn unreadable_request() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "The authorization request is not a valid query string.",
    )
}

async fn authorize_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let raw = raw.unwrap_or_default();
    let Some(params) = parse_params(&raw) else {
        return unreadable_request();
    };
    let iss = issuer(&state, &headers);
    let (request, _) = match validate_request(&state, &params).await {
        Ok(v) => v,
        Err(f) => return failure_response(f, iss),
    };
    let Some(session) = current_session(&state, &headers).await else {
        let next = format!("{AUTHORIZE_PATH}?{raw}");
        let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
        return see_other(&format!("/trust/signin?{query}"));
    };
    let client = &request.client;
    let body = format!(
        "<p><strong>{name}</strong> wants to use Flagstaff as <strong>{email}</strong>.</p>\
         {description}\
         <p>With the scope <strong>{scope}</strong> it may {what}. It can never do more than \
         you can, and if your access is reduced, so is the app's.</p>\
         <p>You will be sent back to <code>{redirect}</code>.</p>\
         <form method=\"post\" action=\"{AUTHORIZE_PATH}\">\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
         <form method=\"post\" action=\"/trust/signout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p>Not you? <button type=\"submit\">Sign out</button></p></form>",
        name = escape(&client.name),
        email = escape(&session.member.email),
        description = if client.description.is_empty() {
            String::new()
        } else {
            format!("<p>{}</p>", escape(&client.description))
        },
        scope = request.scope.as_str(),
        what = request.scope.describe(),
        redirect = escape(&request.redirect_uri),
        request = escape(&raw),
        csrf = escape(&session.csrf),
    );
    page(StatusCode::OK, &format!("Authorize {}", client.name), &body)
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    #[serde(default)]
    request: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
}

async fn authorize_decision(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<DecisionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The consent form could not be read: submit it from the consent page.",
        );
    };
    let Some(session) = current_session(&state, &headers).await else {
        return error_page(
            StatusCode::UNAUTHORIZED,
            "You are not signed in (or your session ended). Start again from the application.",
        );
    };
    if !csrf_matches(&session, &form.csrf) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The consent form expired or did not come from Flagstaff. Nothing was authorized.",
        );
    }
    let Some(params) = parse_params(&form.request) else {
        return unreadable_request();
    };
    let iss = issuer(&state, &headers);
    let (request, app_state) = match validate_request(&state, &params).await {
        Ok(v) => v,
        Err(f) => return failure_response(f, iss),
    };
    match form.decision.as_str() {
        "allow" => {
            match state
                .services
                .authorize(&session.member, &request, &state.oauth)
                .await
            {
                Ok(code) => {
                    redirect_to_client(&request.redirect_uri, vec![("code", code)], app_state, iss)
                }
                Err(e) => e.into_response(),
            }
        }
        "deny" => redirect_to_client(
            &request.redirect_uri,
            vec![
                ("error", "access_denied".into()),
                ("error_description", "the member denied the request".into()),
            ],
            app_state,
            iss,
        ),
        _ => error_page(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
}

/// The form body of a token or revocation request.
fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if !form {
        return Err(OAuthError::InvalidRequest(
            "send the parameters as application/x-www-form-urlencoded".into(),
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::InvalidRequest("the form body is not valid".into()))
}

fn form_single<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, OAuthError> {
    single(params, name).map_err(OAuthError::InvalidRequest)
}

/// Authenticates the client: `client_secret_basic`, `client_secret_post` or (public
/// clients) just `client_id`. Exactly one method per request (RFC 6749 §2.3).
async fn authenticate_client(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<flagstaff_model::oauth::OAuthClient, OAuthError> {
    let body_id = form_single(params, "client_id")?;
    let body_secret = form_single(params, "client_secret")?;
    let basic = match headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(h) => {
            let encoded = h
                .strip_prefix("Basic ")
                .or_else(|| h.strip_prefix("basic "))
                .ok_or_else(|| {
                    OAuthError::InvalidClient(
                        "only Basic client authentication is supported".into(),
                    )
                })?;
            let decoded = STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::InvalidClient("malformed Basic credentials".into()))?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
            let decode = |s: &str| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                    .ok()
                    .and_then(|v| v.into_iter().next().map(|(_, v)| v))
                    .unwrap_or_default()
            };
            Some((decode(id), decode(secret)))
        }
        None => None,
    };
    let (client_id, secret) = match (&basic, body_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method: Basic or client_secret, not both".into(),
            ));
        }
        (Some((id, secret)), None) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the Basic credentials".into(),
                ));
            }
            (id.as_str(), Some(secret.as_str()))
        }
        (None, secret) => (
            body_id.ok_or_else(|| OAuthError::InvalidClient("client_id is required".into()))?,
            secret,
        ),
    };
    let client = state
        .services
        .oauth_client(client_id)
        .await?
        .map(|(c, _)| c)
        .ok_or_else(|| OAuthError::InvalidClient("unknown client".into()))?;
    check_client_secret(&client, secret)?;
    Ok(client)
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match token_inner(&state, &headers, &body).await {
        Ok(response) => no_store(Json(response).into_response()),
        Err(e) => {
            if matches!(e, OAuthError::InvalidGrant(_)) {
                // A replay may have revoked a token family: no cached caller outlives it.
                state.tokens.clear();
            }
            e.into_response()
        }
    }
}

async fn token_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<crate::services::oauth::TokenResponse, OAuthError> {
    let params = form_params(headers, body)?;
    let client = authenticate_client(state, headers, &params).await?;
    match form_single(&params, "grant_type")? {
        Some("authorization_code") => {
            let code = form_single(&params, "code")?
                .ok_or_else(|| OAuthError::InvalidRequest("code is required".into()))?;
            state
                .services
                .exchange_code(
                    &client,
                    code,
                    form_single(&params, "redirect_uri")?,
                    form_single(&params, "code_verifier")?,
                    &state.oauth,
                )
                .await
        }
        Some("refresh_token") => {
            let refresh = form_single(&params, "refresh_token")?
                .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".into()))?;
            state
                .services
                .refresh(
                    &client,
                    refresh,
                    form_single(&params, "scope")?,
                    &state.oauth,
                )
                .await
        }
        Some(other) => Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type {} is not supported: use authorization_code or refresh_token",
            other.chars().take(64).collect::<String>()
        ))),
        None => Err(OAuthError::InvalidRequest("grant_type is required".into())),
    }
}

async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = authenticate_client(&state, &headers, &params).await?;
        let token = form_single(&params, "token")?
            .ok_or_else(|| OAuthError::InvalidRequest("token is required".into()))?;
        Ok::<_, OAuthError>(state.services.revoke_token(&client, token).await?)
    }
    .await;
    match result {
        Ok(revoked) => {
            if revoked {
                state.tokens.clear();
            }
            no_store(StatusCode::OK.into_response())
        }
        Err(e) => e.into_response(),
    }
}

async fn authorization_server_metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    Json(metadata(&issuer(&state, &headers))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_given_twice_are_refused() {
        let params: Params = vec![
            ("client_id".into(), "a".into()),
            ("redirect_uri".into(), "x".into()),
            ("redirect_uri".into(), "y".into()),
            ("state".into(), String::new()),
        ];
        assert_eq!(single(&params, "client_id"), Ok(Some("a")));
        assert!(single(&params, "redirect_uri").is_err());
        assert_eq!(single(&params, "state"), Ok(None), "empty means absent");
        assert_eq!(single(&params, "scope"), Ok(None));
    }
}
