//! Flagstaff as an OAuth client of partners (`requiresOAuth` integrations), end to end against
//! a loopback OAuth provider written here (authorize with PKCE, token endpoint with client
//! authentication, authorization_code / refresh_token with rotation / client_credentials) and
//! a loopback partner API (`Receiver`): connect, deliver with the real token, refresh after
//! expiry, refusal of a refresh, bad states, and no secret or token in any response.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use flagstaff_server::AppState;
use flagstaff_server::integrations::oauth_client::OAuthSettings;
use flagstaff_server::integrations::{DeliverySettings, Integrations};
use flagstaff_testkit::app::{Backend, TestApp};
use flagstaff_testkit::integrations::{Outbound, catalogue_integrations, quick_retries};
use flagstaff_testkit::receiver::Receiver;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "flagstaff-client";
const CLIENT_SECRET: &str = "client-secret-xyz-42";
const HOUR_MS: i64 = 3_600_000;

// -- the loopback OAuth provider ----------------------------------------------------------

#[derive(Default)]
struct ProviderState {
    /// code → (PKCE challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// Refresh tokens still valid (rotated on every use).
    refresh_tokens: Vec<String>,
    /// Every grant the token endpoint accepted: (grant_type, refresh token used).
    grants: Vec<(String, Option<String>)>,
    /// Refresh requests, accepted or not.
    refresh_requests: usize,
}

struct Provider {
    base_url: String,
    state: Mutex<ProviderState>,
    issued: AtomicUsize,
    refuse_refresh: AtomicBool,
    /// Which client authentication the token endpoint requires: Basic, or id+secret in the body.
    post_auth: bool,
}

impl Provider {
    async fn start(post_auth: bool) -> Arc<Provider> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = Arc::new(Provider {
            base_url: format!("http://{}", listener.local_addr().unwrap()),
            state: Mutex::default(),
            issued: AtomicUsize::new(0),
            refuse_refresh: AtomicBool::new(false),
            post_auth,
        });
        let app = axum::Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        provider
    }

    fn grants(&self) -> Vec<(String, Option<String>)> {
        self.state.lock().unwrap().grants.clone()
    }
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"error": error}))).into_response()
}

/// The partner's consent page, already approved: redirects back with a code.
async fn authorize(
    State(provider): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("scope").map(String::as_str) == Some("events:write offline");
    let (Some(challenge), Some(redirect), Some(state)) = (
        q.get("code_challenge"),
        q.get("redirect_uri"),
        q.get("state"),
    ) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if !ok {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    provider
        .state
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), (challenge.clone(), redirect.clone()));
    let location = format!(
        "{redirect}?code={code}&state={}",
        percent_encoding::utf8_percent_encode(state, percent_encoding::NON_ALPHANUMERIC)
    );
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn client_authenticated(
    provider: &Provider,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> bool {
    if provider.post_auth {
        return headers.get(header::AUTHORIZATION).is_none()
            && form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
            && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    }
    let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let decoded = String::from_utf8(STANDARD.decode(basic).unwrap_or_default()).unwrap_or_default();
    let Some((id, secret)) = decoded.split_once(':') else {
        return false;
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    decode(id) == CLIENT_ID
        && decode(secret) == CLIENT_SECRET
        && !form.contains_key("client_secret")
}

fn issue(
    provider: &Provider,
    state: &mut ProviderState,
    grant: &str,
    used: Option<String>,
    refresh: bool,
) -> Response {
    let n = provider.issued.fetch_add(1, Ordering::SeqCst) + 1;
    state.grants.push((grant.to_string(), used));
    let mut body = json!({
        "access_token": format!("tok-access-{n}-zq"),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "events:write offline",
    });
    if refresh {
        let refresh_token = format!("tok-refresh-{n}-zq");
        state.refresh_tokens.push(refresh_token.clone());
        body["refresh_token"] = json!(refresh_token);
    }
    axum::Json(body).into_response()
}

async fn token(
    State(provider): State<Arc<Provider>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_authenticated(&provider, &headers, &form) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut state = provider.state.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some((challenge, redirect)) = form.get("code").and_then(|c| state.codes.remove(c))
            else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if computed != challenge || form.get("redirect_uri") != Some(&redirect) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            issue(&provider, &mut state, "authorization_code", None, true)
        }
        Some("refresh_token") => {
            state.refresh_requests += 1;
            let used = form.get("refresh_token").cloned().unwrap_or_default();
            if provider.refuse_refresh.load(Ordering::SeqCst) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            let Some(index) = state.refresh_tokens.iter().position(|t| *t == used) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            state.refresh_tokens.remove(index);
            issue(&provider, &mut state, "refresh_token", Some(used), true)
        }
        Some("client_credentials") => {
            issue(&provider, &mut state, "client_credentials", None, false)
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

// -- Flagstaff under test -------------------------------------------------------------------

/// The server's OAuth clock runs `offset` ms ahead of the wall clock, so tests expire tokens
/// by moving it instead of waiting.
async fn app_on(backend: Backend, offset: Arc<AtomicI64>) -> Option<TestApp> {
    TestApp::on_with(backend, move |state: AppState| {
        state.with_integrations(integrations(offset))
    })
    .await
}

/// The integrations runtime of the test server (also used to run its background refresh
/// directly). The background task itself waits a day: tests never race it.
fn integrations(offset: Arc<AtomicI64>) -> Integrations {
    catalogue_integrations(
        Outbound::Loopback,
        DeliverySettings {
            max_attempts: 1000,
            disable_after_failures: 0,
            ..quick_retries()
        },
    )
    .with_oauth_settings(OAuthSettings {
        refresh_margin: Duration::from_secs(60),
        refresh_interval: Duration::from_secs(24 * 3600),
        state_ttl: Duration::from_secs(600),
        clock: Arc::new(move || {
            flagstaff_server::services::wall_millis() + offset.load(Ordering::SeqCst)
        }),
    })
}

macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body(Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body(Backend::Postgres).await;
            }
        }
    };
}

const PROVIDERS: &str = "/api/v2/integration-oauth/providers";
const CONNECTIONS: &str = "/api/v2/integration-oauth/connections";

async fn register(app: &TestApp, provider: &Provider, partner: &Receiver, flow: &str) -> Value {
    app.request(
        reqwest::Method::PUT,
        &format!("{PROVIDERS}/appdynamics"),
        Some(
            json!({
                "flow": flow,
                "authorizationUrl": format!("{}/authorize", provider.base_url),
                "tokenUrl": format!("{}/token", provider.base_url),
                "clientId": CLIENT_ID,
                "clientSecret": CLIENT_SECRET,
                "tokenAuthMethod": if provider.post_auth { "clientSecretPost" } else { "clientSecretBasic" },
                "scopes": ["events:write", "offline"],
                "baseUri": format!("{}/", partner.base_url),
            })
            .to_string(),
        ),
        None,
    )
    .await
    .expect(200)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What the partner redirects the browser to, on this test server's address (the configured
/// public base URL is not the loopback port).
fn on_app(app: &TestApp, url: &str) -> String {
    let path = url
        .find("/trust/")
        .map(|i| &url[i..])
        .expect("callback URL");
    format!("{}{path}", app.base_url)
}

/// Plays the browser: opens the authorization URL and follows the partner's redirect to the
/// callback. Returns the callback URL and Flagstaff's answer.
async fn authorize_in_browser(app: &TestApp, authorization_url: &str) -> (String, u16, String) {
    let consent = browser().get(authorization_url).send().await.unwrap();
    assert_eq!(
        consent.status(),
        302,
        "the provider refused the authorization request"
    );
    let location = consent.headers()[header::LOCATION.as_str()]
        .to_str()
        .unwrap()
        .to_string();
    let callback = on_app(app, &location);
    let (status, page) = open_callback(&callback).await;
    (callback, status, page)
}

async fn open_callback(url: &str) -> (u16, String) {
    let response = browser().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn connect(app: &TestApp) -> String {
    let started = app
        .post(&format!("{CONNECTIONS}/appdynamics/connect"), json!({}))
        .await
        .expect(200);
    started["authorizationUrl"].as_str().unwrap().to_string()
}

async fn toggle(app: &TestApp, on: bool) {
    app.semantic_patch(
        "/api/v2/flags/shop/checkout",
        json!({"environmentKey": "production",
               "instructions": [{"kind": if on { "turnFlagOn" } else { "turnFlagOff" }}]}),
    )
    .await
    .expect(200);
}

async fn connection(app: &TestApp) -> Value {
    app.get(&format!("{CONNECTIONS}/appdynamics"))
        .await
        .expect(200)
}

/// Polls `probe` (up to `WAIT`) until it yields a value.
async fn eventually<'a, F, Fut>(app: &'a TestApp, probe: F) -> Value
where
    F: Fn(&'a TestApp) -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe(app).await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expected state was not reached within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the connection status satisfies `done`.
async fn wait_for_connection(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    eventually(app, |app| async {
        let status = connection(app).await;
        done(&status).then_some(status)
    })
    .await
}

fn bearer(request: &flagstaff_testkit::receiver::Received) -> String {
    request
        .header("authorization")
        .unwrap_or_default()
        .to_string()
}

async fn connects_delivers_and_refreshes(backend: Backend) {
    let offset = Arc::new(AtomicI64::new(0));
    let Some(app) = app_on(backend, offset.clone()).await else {
        return;
    };
    let provider = Provider::start(false).await;
    let partner = Receiver::start().await;
    app.post("/api/v2/projects", json!({"key": "shop", "name": "Shop"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/shop",
        json!({"key": "checkout", "name": "Checkout"}),
    )
    .await
    .expect(201);
    let subscription = json!({
        "name": "appd",
        "config": {"account": "acme", "applicationID": "shop app"},
        // One delivery per toggle in production.
        "statements": [{"effect": "allow", "actions": ["updateOn"], "resources": ["proj/*:env/production:flag/*"]}],
    });

    // Not connected: configuring is refused, saying what to do.
    let refused = app
        .post("/api/v2/integrations/appdynamics", subscription.clone())
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.message().contains("requires OAuth"),
        "{}",
        refused.message()
    );
    assert!(
        refused
            .message()
            .contains("/api/v2/integration-oauth/providers/appdynamics")
    );

    let registered = register(&app, &provider, &partner, "authorizationCode").await;
    assert_eq!(registered["clientSecret"], "**********");
    assert_eq!(registered["baseUri"], partner.base_url.as_str());
    assert_eq!(registered["_usedBy"], json!(["appdynamics"]));
    assert!(
        registered["redirectUri"]
            .as_str()
            .unwrap()
            .ends_with("/trust/integration-oauth/callback")
    );
    assert_eq!(connection(&app).await["status"], "notConnected");
    let still_refused = app
        .post("/api/v2/integrations/appdynamics", subscription.clone())
        .await;
    assert_eq!(still_refused.status, 400);
    assert!(
        still_refused.message().contains("is not connected"),
        "{}",
        still_refused.message()
    );

    // Authorization code with PKCE, through a browser.
    let url = connect(&app).await;
    assert!(
        url.starts_with(&format!("{}/authorize?", provider.base_url)),
        "{url}"
    );
    assert!(url.contains("code_challenge_method=S256"));
    assert_eq!(connection(&app).await["status"], "pending");
    let (callback, status, page) = authorize_in_browser(&app, &url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("connected to `appdynamics`"), "{page}");
    // The state is single-use.
    let (replayed, page) = open_callback(&callback).await;
    assert_eq!(replayed, 400, "{page}");
    assert!(page.contains("unknown or was already completed"), "{page}");
    let status = connection(&app).await;
    assert_eq!(status["status"], "connected", "{status}");
    assert_eq!(status["connectedBy"], "owner@flagstaff.local");
    assert_eq!(status["hasRefreshToken"], true);
    assert_eq!(status["pendingAuthorizations"], 0);
    assert!(status["expiresAt"].as_i64().unwrap() > flagstaff_server::services::wall_millis());
    assert_eq!(provider.grants()[0].0, "authorization_code");

    // Deliveries carry the real base URI and access token.
    let created = app
        .post("/api/v2/integrations/appdynamics", subscription.clone())
        .await
        .expect(201);
    let sub_id = created["_id"].as_str().unwrap().to_string();
    toggle(&app, true).await;
    let first = partner.wait_for(1, WAIT).await;
    assert_eq!(bearer(&first[0]), "Bearer tok-access-1-zq");
    assert!(
        first[0]
            .uri
            .starts_with("/controller/rest/applications/shop%20app/events?"),
        "{}",
        first[0].uri
    );

    // The token expires: the next delivery refreshes it first (and stores the rotated
    // refresh token, which the one after that must use).
    offset.fetch_add(2 * HOUR_MS, Ordering::SeqCst);
    toggle(&app, false).await;
    let second = partner.wait_for(2, WAIT).await;
    assert_eq!(bearer(&second[1]), "Bearer tok-access-2-zq");
    offset.fetch_add(2 * HOUR_MS, Ordering::SeqCst);
    toggle(&app, true).await;
    let third = partner.wait_for(3, WAIT).await;
    assert_eq!(bearer(&third[2]), "Bearer tok-access-3-zq");
    let grants = provider.grants();
    assert_eq!(
        grants[1..],
        [
            (
                "refresh_token".to_string(),
                Some("tok-refresh-1-zq".to_string())
            ),
            (
                "refresh_token".to_string(),
                Some("tok-refresh-2-zq".to_string())
            ),
        ]
    );
    let status = connection(&app).await;
    assert!(status["lastRefreshAt"].is_i64(), "{status}");

    // The provider refuses the refresh: the error is visible, nothing is sent (no stale or
    // placeholder token), and the delivery is retried.
    provider.refuse_refresh.store(true, Ordering::SeqCst);
    offset.fetch_add(2 * HOUR_MS, Ordering::SeqCst);
    toggle(&app, false).await;
    let failed = wait_for_connection(&app, |s| s["status"] == "error").await;
    assert!(
        failed["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{failed}"
    );
    // The delivery's attempt log says why (recorded just after the attempt).
    let list = format!("/api/v2/integrations/appdynamics/{sub_id}/deliveries");
    let detail = eventually(&app, |app| {
        let list = list.clone();
        async move {
            let deliveries = app.get(&list).await.expect(200);
            let newest = deliveries["items"][0]["_id"].as_str().unwrap().to_string();
            let detail = app
                .get(&format!("/api/v2/deliveries/{newest}"))
                .await
                .expect(200);
            detail
                .to_string()
                .contains("refreshing the OAuth token")
                .then_some(detail)
        }
    })
    .await;
    assert!(detail.to_string().contains("invalid_grant"), "{detail}");
    assert_eq!(
        partner.received().len(),
        3,
        "nothing is sent without a fresh token"
    );
    // The provider recovers: the retried delivery goes out with a new token.
    provider.refuse_refresh.store(false, Ordering::SeqCst);
    let fourth = partner.wait_for(4, WAIT).await;
    assert_eq!(bearer(&fourth[3]), "Bearer tok-access-4-zq");
    let recovered = connection(&app).await;
    assert_eq!(recovered["status"], "connected", "{recovered}");
    assert!(recovered["lastError"].is_null());
    for request in &fourth {
        assert!(!request.uri.contains("OAUTH") && !bearer(request).contains("OAUTH"));
    }

    // No client secret or token in any response, audit entry, delivery log or stored document.
    let mut texts = vec![
        app.get(PROVIDERS).await.expect(200).to_string(),
        app.get(&format!("{PROVIDERS}/appdynamics"))
            .await
            .expect(200)
            .to_string(),
        connection(&app).await.to_string(),
        app.get(&format!("/api/v2/integrations/appdynamics/{sub_id}"))
            .await
            .expect(200)
            .to_string(),
    ];
    let log = app.get("/api/v2/auditlog?limit=20").await.expect(200);
    for entry in log["items"].as_array().unwrap() {
        let id = entry["_id"].as_str().unwrap();
        texts.push(
            app.get(&format!("/api/v2/auditlog/{id}"))
                .await
                .expect(200)
                .to_string(),
        );
    }
    let deliveries = app
        .get(&format!(
            "/api/v2/integrations/appdynamics/{sub_id}/deliveries"
        ))
        .await
        .expect(200);
    assert_eq!(deliveries["items"].as_array().unwrap().len(), 4);
    for item in deliveries["items"].as_array().unwrap() {
        let id = item["_id"].as_str().unwrap();
        texts.push(
            app.get(&format!("/api/v2/deliveries/{id}"))
                .await
                .expect(200)
                .to_string(),
        );
    }
    for kind in [
        flagstaff_store::EntityKind::IntegrationOAuthProvider,
        flagstaff_store::EntityKind::IntegrationOAuthConnection,
    ] {
        texts.push(format!("{:?}", app.store.list(kind, "").await.unwrap()));
    }
    assert!(log.to_string().contains("connected (authorization code)"));
    for text in &texts {
        for secret in [CLIENT_SECRET, "tok-access-", "tok-refresh-", "code-"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    // Disconnecting forgets the tokens; turning the configuration back on then needs a
    // connection again.
    app.patch(
        &format!("/api/v2/integrations/appdynamics/{sub_id}"),
        json!([{"op": "replace", "path": "/on", "value": false}]),
    )
    .await
    .expect(200);
    app.delete(&format!("{CONNECTIONS}/appdynamics"))
        .await
        .expect(204);
    assert_eq!(connection(&app).await["status"], "notConnected");
    let enable = app
        .patch(
            &format!("/api/v2/integrations/appdynamics/{sub_id}"),
            json!([{"op": "replace", "path": "/on", "value": true}]),
        )
        .await;
    assert_eq!(enable.status, 400, "{}", enable.body);
    assert!(enable.message().contains("is not connected"));
}

both_backends!(
    connects_delivers_and_refreshes_tokens,
    connects_delivers_and_refreshes
);

async fn bad_states_are_refused(backend: Backend) {
    let offset = Arc::new(AtomicI64::new(0));
    let Some(app) = app_on(backend, offset.clone()).await else {
        return;
    };
    let provider = Provider::start(false).await;
    let partner = Receiver::start().await;
    register(&app, &provider, &partner, "authorizationCode").await;
    let audit_before = app.audit_count().await;
    let callback = format!("{}/trust/integration-oauth/callback", app.base_url);
    let forged = format!("appdynamics.{}", "A".repeat(43));
    for query in [
        String::new(),
        "?code=x".to_string(),
        format!("?code=x&state={forged}"),
        "?code=x&state=appdynamics.short".to_string(),
        format!("?code=x&state=other.{}", "B".repeat(43)),
    ] {
        let (status, page) = open_callback(&format!("{callback}{query}")).await;
        assert_eq!(status, 400, "{query}: {page}");
        assert!(page.contains("unknown or was already completed"), "{page}");
    }
    assert_eq!(
        app.audit_count().await,
        audit_before,
        "refused callbacks write nothing"
    );

    // An expired state.
    let url = connect(&app).await;
    offset.fetch_add(11 * 60 * 1000, Ordering::SeqCst);
    let (_, status, page) = authorize_in_browser(&app, &url).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("expired"), "{page}");
    offset.store(0, Ordering::SeqCst);

    // The partner refuses (the user said no): visible on the connection, state used up.
    let url = connect(&app).await;
    let state = url
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let denied =
        format!("{callback}?error=access_denied&error_description=the+user+declined&state={state}");
    let (status, page) = open_callback(&denied).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("access_denied"), "{page}");
    let status = connection(&app).await;
    assert_eq!(status["connected"], false);
    assert!(
        status["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );
    let (again, _) = open_callback(&denied).await;
    assert_eq!(again, 400);

    // A wrong PKCE verifier cannot be forced: a code minted for another challenge is refused
    // by the provider, and the connection stays unconnected.
    let url = connect(&app).await;
    let tampered = url.replace("code_challenge=", "code_challenge=x");
    let (_, status, page) = authorize_in_browser(&app, &tampered).await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    assert_eq!(connection(&app).await["connected"], false);
    assert!(provider.grants().is_empty());

    // Writers may connect but not register providers; readers may do neither.
    let writer = support_token(&app, "writer").await;
    let reader = support_token(&app, "reader").await;
    let put = call(&app, &writer, reqwest::Method::PUT, &format!("{PROVIDERS}/other"), Some(json!({"tokenUrl": "http://127.0.0.1:1/t", "clientId": "c", "baseUri": "http://127.0.0.1:1", "flow": "clientCredentials", "clientSecret": "s"}))).await;
    assert_eq!(put.status, 403, "{}", put.body);
    let get = call(
        &app,
        &writer,
        reqwest::Method::GET,
        &format!("{PROVIDERS}/appdynamics"),
        None,
    )
    .await;
    assert_eq!(get.status, 403);
    let connect_as_writer = call(
        &app,
        &writer,
        reqwest::Method::POST,
        &format!("{CONNECTIONS}/appdynamics/connect"),
        None,
    )
    .await;
    assert_eq!(connect_as_writer.status, 200, "{}", connect_as_writer.body);
    let connect_as_reader = call(
        &app,
        &reader,
        reqwest::Method::POST,
        &format!("{CONNECTIONS}/appdynamics/connect"),
        None,
    )
    .await;
    assert_eq!(connect_as_reader.status, 403);
    let status_as_reader = call(
        &app,
        &reader,
        reqwest::Method::GET,
        &format!("{CONNECTIONS}/appdynamics"),
        None,
    )
    .await;
    assert_eq!(status_as_reader.status, 200);
}

both_backends!(
    bad_or_replayed_or_expired_states_are_refused,
    bad_states_are_refused
);

async fn client_credentials(backend: Backend) {
    let offset = Arc::new(AtomicI64::new(0));
    let Some(app) = app_on(backend, offset.clone()).await else {
        return;
    };
    let provider = Provider::start(true).await;
    let partner = Receiver::start().await;
    let registered = register(&app, &provider, &partner, "clientCredentials").await;
    assert!(registered["authorizationUrl"].is_null());
    let connected = app
        .post(&format!("{CONNECTIONS}/appdynamics/connect"), json!({}))
        .await
        .expect(200);
    assert_eq!(
        connected["connection"]["status"], "connected",
        "{connected}"
    );
    assert_eq!(connected["connection"]["hasRefreshToken"], false);
    app.post("/api/v2/projects", json!({"key": "shop", "name": "Shop"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/shop",
        json!({"key": "checkout", "name": "Checkout"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v2/integrations/appdynamics",
        json!({"name": "appd", "config": {"account": "acme", "applicationID": "app"},
               "statements": [{"effect": "allow", "actions": ["updateOn"], "resources": ["proj/*:env/production:flag/*"]}]}),
    )
    .await
    .expect(201);
    toggle(&app, true).await;
    let first = partner.wait_for(1, WAIT).await;
    assert_eq!(bearer(&first[0]), "Bearer tok-access-1-zq");
    // Expired: a client-credentials connection simply fetches a new token.
    offset.fetch_add(2 * HOUR_MS, Ordering::SeqCst);
    toggle(&app, false).await;
    let second = partner.wait_for(2, WAIT).await;
    assert_eq!(bearer(&second[1]), "Bearer tok-access-2-zq");
    let grants: Vec<String> = provider.grants().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["client_credentials", "client_credentials"]);
    // Removing the provider removes the connection with it.
    app.delete(&format!("{PROVIDERS}/appdynamics"))
        .await
        .expect(204);
    app.get(&format!("{CONNECTIONS}/appdynamics"))
        .await
        .expect(404);
    assert!(
        app.store
            .list(flagstaff_store::EntityKind::IntegrationOAuthConnection, "")
            .await
            .unwrap()
            .is_empty()
    );
}

both_backends!(client_credentials_connect_and_renew, client_credentials);

async fn registrations_are_validated(backend: Backend) {
    let offset = Arc::new(AtomicI64::new(0));
    let Some(app) = app_on(backend, offset).await else {
        return;
    };
    let audit_before = app.audit_count().await;
    let put = |key: &str, body: Value| {
        let path = format!("{PROVIDERS}/{key}");
        let app = &app;
        async move {
            app.request(reqwest::Method::PUT, &path, Some(body.to_string()), None)
                .await
        }
    };
    let valid = json!({"authorizationUrl": "https://p.example/authorize", "tokenUrl": "https://p.example/token",
                       "clientId": "c", "clientSecret": "s", "baseUri": "https://api.p.example"});
    for (key, body, expected) in [
        ("bad key!", valid.clone(), "not a valid oauthIntegrationKey"),
        (
            "sentry",
            json!({"tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "https://a.example"}),
            "authorizationUrl is required",
        ),
        (
            "sentry",
            json!({"flow": "clientCredentials", "tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "https://a.example"}),
            "clientSecret is required",
        ),
        (
            "sentry",
            json!({"authorizationUrl": "https://p.example/authorize", "tokenUrl": "http://169.254.169.254/token", "clientId": "c", "baseUri": "https://a.example"}),
            "tokenUrl",
        ),
        (
            "sentry",
            json!({"authorizationUrl": "https://p.example/authorize", "tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "not a url"}),
            "baseUri",
        ),
        (
            "sentry",
            json!({"authorizationUrl": "https://p.example/authorize", "tokenUrl": "https://p.example/token", "clientId": "", "baseUri": "https://a.example"}),
            "clientId is required",
        ),
        (
            "sentry",
            json!({"authorizationUrl": "https://p.example/authorize", "tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "https://a.example", "scopes": ["a b"]}),
            "scope `a b` is invalid",
        ),
        (
            "sentry",
            json!({"flow": "implicit", "tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "https://a.example"}),
            "flow",
        ),
        (
            "sentry",
            json!({"tokenUrl": "https://p.example/token", "clientId": "c", "baseUri": "https://a.example", "extra": 1}),
            "extra",
        ),
    ] {
        let response = put(key, body).await;
        assert_eq!(response.status, 400, "{key}: {}", response.body);
        assert!(
            response.message().contains(expected),
            "{}",
            response.message()
        );
    }
    assert_eq!(
        app.audit_count().await,
        audit_before,
        "refused registrations write nothing"
    );
    // A masked or absent secret keeps the stored one; an unchanged registration writes nothing.
    put("sentry", valid.clone()).await.expect(200);
    let mut masked = valid.clone();
    masked["clientSecret"] = json!("**********");
    put("sentry", masked).await.expect(200);
    assert_eq!(app.audit_count().await, audit_before + 1);
    let mut renamed = valid.clone();
    renamed.as_object_mut().unwrap().remove("clientSecret");
    renamed["clientId"] = json!("c2");
    let shown = put("sentry", renamed).await.expect(200);
    assert_eq!(shown["clientSecret"], "**********");
    let entry = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    assert!(entry.to_string().contains("clientId"), "{entry}");
    app.get(&format!("{PROVIDERS}/nope")).await.expect(404);
    app.get(&format!("{CONNECTIONS}/nope")).await.expect(404);
    app.delete(&format!("{CONNECTIONS}/sentry"))
        .await
        .expect(404);
}

both_backends!(
    provider_registrations_are_validated,
    registrations_are_validated
);

// -- other callers ----------------------------------------------------------------------------

async fn support_token(app: &TestApp, role: &str) -> String {
    let member = app
        .post(
            "/api/v2/members",
            json!([{"email": format!("{role}@oauth.test"), "role": role}]),
        )
        .await
        .expect(201);
    let id = member["items"][0]["_id"].as_str().unwrap();
    let token = app
        .post(
            "/api/v2/tokens",
            json!({"name": role, "memberId": id, "role": role}),
        )
        .await
        .expect(201);
    token["token"].as_str().unwrap().to_string()
}

async fn call(
    app: &TestApp,
    secret: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> flagstaff_testkit::app::TestResponse {
    let mut req = app
        .raw(method.clone(), path)
        .header("Authorization", secret);
    if let Some(body) = body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    app.send(method.as_str(), path, req).await
}

/// Several deliveries need the expired token at once: one refresh, and every delivery (and
/// "validate connection") uses its result. A second refresh would spend the rotated-away
/// refresh token and be refused by the provider.
async fn concurrent_refreshes(backend: Backend) {
    let offset = Arc::new(AtomicI64::new(0));
    let Some(app) = app_on(backend, offset.clone()).await else {
        return;
    };
    let provider = Provider::start(false).await;
    let partner = Receiver::start().await;
    register(&app, &provider, &partner, "authorizationCode").await;
    let url = connect(&app).await;
    let (_, status, page) = authorize_in_browser(&app, &url).await;
    assert_eq!(status, 200, "{page}");
    app.post("/api/v2/projects", json!({"key": "shop", "name": "Shop"}))
        .await
        .expect(201);
    app.post(
        "/api/v2/flags/shop",
        json!({"key": "checkout", "name": "Checkout"}),
    )
    .await
    .expect(201);
    let mut ids = Vec::new();
    for n in 0..4 {
        let created = app
            .post(
                "/api/v2/integrations/appdynamics",
                json!({"name": format!("appd {n}"), "config": {"account": "acme", "applicationID": format!("app{n}")},
                       "statements": [{"effect": "allow", "actions": ["updateOn"], "resources": ["proj/*:env/production:flag/*"]}]}),
            )
            .await
            .expect(201);
        ids.push(created["_id"].as_str().unwrap().to_string());
    }
    offset.fetch_add(2 * HOUR_MS, Ordering::SeqCst);
    toggle(&app, true).await;
    let delivered = partner.wait_for(4, WAIT).await;
    for request in &delivered {
        assert_eq!(bearer(request), "Bearer tok-access-2-zq", "{}", request.uri);
    }
    let validated = app
        .post(
            &format!("/api/v2/integrations/appdynamics/{}/validate", ids[0]),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(validated["ok"], true, "{validated}");
    let all = partner.wait_for(5, WAIT).await;
    assert_eq!(bearer(&all[4]), "Bearer tok-access-2-zq");
    let grants: Vec<String> = provider.grants().into_iter().map(|(g, _)| g).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    assert_eq!(provider.state.lock().unwrap().refresh_requests, 1);

    // Ninety seconds before expiry: outside the delivery margin (60 s), inside the background
    // task's (120 s). The background pass refreshes; the next delivery just uses the token.
    offset.fetch_add(3_510_000, Ordering::SeqCst);
    flagstaff_server::services::integration_oauth::refresh_expiring(
        app.store.as_ref(),
        &integrations(offset.clone()),
    )
    .await;
    assert_eq!(provider.state.lock().unwrap().refresh_requests, 2);
    toggle(&app, false).await;
    let after = partner.wait_for(9, WAIT).await;
    for request in &after[5..] {
        assert_eq!(bearer(request), "Bearer tok-access-3-zq");
    }
    assert_eq!(provider.state.lock().unwrap().refresh_requests, 2);
}

both_backends!(concurrent_refreshes_coalesce, concurrent_refreshes);
