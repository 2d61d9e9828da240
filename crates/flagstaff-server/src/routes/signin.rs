//! Member sign-in: a small server-rendered page (`/trust/signin`), a session cookie
//! (`HttpOnly; SameSite=Lax; Path=/`, `Secure` when the issuer is https), sign-out, and the
//! HTML and cookie helpers the consent page shares.
//!
//! Forms carry CSRF tokens: the sign-in form a double-submit token (a cookie scoped to the
//! sign-in path and a hidden field that must match it), every form after sign-in the
//! session's own token, compared in constant time.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, COOKIE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flagstaff_model::oauth::{constant_time_eq, is_local_path};
use serde::Deserialize;

use crate::services::oauth::{Session, random_secret};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "flagstaff_session";
const SIGNIN_CSRF_COOKIE: &str = "flagstaff_signin_csrf";
const SIGNIN_PATH: &str = "/trust/signin";

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(SIGNIN_PATH, get(signin_page).post(signin))
        .route("/trust/signout", axum::routing::post(signout))
}

/// HTML-escapes text for element content and attribute values.
pub fn escape(text: &str) -> String {
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

/// A complete page with the headers every `/trust` page gets: never cached, never framed
/// (clickjacking a consent button), no scripts, no referrer leaking codes.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Flagstaff</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}label{{display:block;\
         margin:.75rem 0}}input{{display:block;width:100%;padding:.4rem;box-sizing:border-box}}\
         button{{padding:.5rem 1rem;margin-right:.5rem}}.error{{color:#a00}}</style></head>\
         <body><h1>{title}</h1>\n{body}\n</body></html>\n",
        title = escape(title)
    );
    let mut response = (status, axum::response::Html(html)).into_response();
    secure_headers(response.headers_mut());
    response
}

fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// An error page (never a redirect: used where the redirect target cannot be trusted).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "Something is wrong",
        &format!("<p class=\"error\">{}</p>", escape(message)),
    )
}

/// `303 See Other` to `location` with the `/trust` headers.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    secure_headers(response.headers_mut());
    response
}

/// The value of one cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

fn secure_attr(state: &AppState) -> &'static str {
    if state
        .oauth
        .issuer
        .as_deref()
        .is_some_and(|i| i.starts_with("https://"))
    {
        "; Secure"
    } else {
        ""
    }
}

/// The signed-in member's session, if the request has a live one.
pub async fn current_session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let secret = cookie(headers, SESSION_COOKIE)?;
    if secret.is_empty() || secret.len() > 128 {
        return None;
    }
    match state.services.session(secret).await {
        Ok(session) => session,
        Err(e) => {
            tracing::error!("session lookup failed: {e}");
            None
        }
    }
}

/// Whether a submitted CSRF token is the session's.
pub fn csrf_matches(session: &Session, submitted: &str) -> bool {
    !submitted.is_empty() && constant_time_eq(session.csrf.as_bytes(), submitted.as_bytes())
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn local_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| is_local_path(n))
}

fn signin_form(csrf: &str, next: Option<&str>, email: &str, error: Option<&str>) -> String {
    format!(
        "{error}<form method=\"post\" action=\"{SIGNIN_PATH}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label>E-mail<input type=\"email\" name=\"email\" value=\"{email}\" autocomplete=\"username\" required></label>\
         <label>Password<input type=\"password\" name=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form>",
        error = error
            .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
            .unwrap_or_default(),
        csrf = escape(csrf),
        next = escape(next.unwrap_or("")),
        email = escape(email),
    )
}

/// The sign-in form with a fresh double-submit CSRF token.
fn signin_response(
    state: &AppState,
    status: StatusCode,
    next: Option<&str>,
    email: &str,
    error: Option<&str>,
) -> Response {
    let csrf = match random_secret("") {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let mut response = page(
        status,
        "Sign in to Flagstaff",
        &signin_form(&csrf, next, email, error),
    );
    set_cookie(
        &mut response,
        format!(
            "{SIGNIN_CSRF_COOKIE}={csrf}; Path={SIGNIN_PATH}; HttpOnly; SameSite=Strict; Max-Age=3600{}",
            secure_attr(state)
        ),
    );
    response
}

async fn signin_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<NextQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query
        .as_ref()
        .ok()
        .and_then(|q| local_next(q.next.as_deref()));
    match current_session(&state, &headers).await {
        Some(session) => match next {
            Some(next) => see_other(next),
            None => page(
                StatusCode::OK,
                "Signed in",
                &format!(
                    "<p>You are signed in as {}.</p>\
                     <form method=\"post\" action=\"/trust/signout\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button type=\"submit\">Sign out</button></form>",
                    escape(&session.member.email),
                    escape(&session.csrf)
                ),
            ),
        },
        None => signin_response(&state, StatusCode::OK, next, "", None),
    }
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SigninForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "The sign-in form could not be read: submit it from the sign-in page.",
        );
    };
    let next = local_next(Some(form.next.as_str()).filter(|n| !n.is_empty()));
    let expected = cookie(&headers, SIGNIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return signin_response(
            &state,
            StatusCode::FORBIDDEN,
            next,
            &form.email,
            Some("The form expired or did not come from this page. Please sign in again."),
        );
    }
    let email = form.email.trim().to_lowercase();
    if let Some(rate) = state
        .signin_limiter
        .check(&format!("signin:{email}"), crate::services::wall_millis())
        && !rate.allowed
    {
        return signin_response(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            &form.email,
            Some("Too many sign-in attempts for this address. Wait a few seconds and try again."),
        );
    }
    let member = match state
        .services
        .verify_password(&email, &form.password, &state.oauth)
        .await
    {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let Some(member) = member else {
        tracing::info!("failed sign-in attempt");
        return signin_response(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            &form.email,
            Some("The e-mail address or the password is wrong."),
        );
    };
    // A new session id at every sign-in (no session fixation); the old one ends.
    if let Some(old) = current_session(&state, &headers).await
        && let Err(e) = state.services.end_session(&old).await
    {
        return e.into_response();
    }
    let secret = match state.services.create_session(&member, &state.oauth).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let mut response = see_other(next.unwrap_or(SIGNIN_PATH));
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            state.oauth.session_ttl_ms / 1000,
            secure_attr(&state)
        ),
    );
    set_cookie(
        &mut response,
        format!("{SIGNIN_CSRF_COOKIE}=; Path={SIGNIN_PATH}; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(session) = current_session(&state, &headers).await else {
        return see_other(SIGNIN_PATH);
    };
    let submitted = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf_matches(&session, &submitted) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form expired or did not come from Flagstaff.",
        );
    }
    if let Err(e) = state.services.end_session(&session).await {
        return e.into_response();
    }
    let mut response = see_other(SIGNIN_PATH);
    set_cookie(
        &mut response,
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            secure_attr(&state)
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn reads_one_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; flagstaff_session=s3; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("s3"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
