//! Flagstaff as an OAuth 2.0 authorization server, against a running server: the full flow
//! driven by the `oauth2` crate (browser steps by a cookie-keeping HTTP client that reads
//! the CSRF tokens from the pages), and one test per attack or failure the server must
//! refuse. Every test runs on SQLite and on Postgres.

mod support;

use flagstaff_server::services::oauth::OAuthSettings;
use flagstaff_testkit::app::{Backend, TestApp, TestResponse};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
    Scope, TokenResponse, TokenUrl,
};
use reqwest::Method;
use serde_json::{Value, json};
use support::oauth::{Browser, PASSWORD, authorize_url, hidden, query};
use support::{add_member, call};

const OWNER_EMAIL: &str = "owner@flagstaff.local";
const REDIRECT: &str = "http://127.0.0.1:1/callback";

fn settings(code_ttl_ms: i64) -> OAuthSettings {
    OAuthSettings {
        // Cheap hashing keeps the tests fast; production uses OWASP's parameters.
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        code_ttl_ms,
        ..Default::default()
    }
}

/// Declares a test run once per backend over a server with test OAuth settings.
macro_rules! oauth_test {
    ($name:ident, $ttl:expr, |$app:ident| $body:expr) => {
        mod $name {
            use super::*;

            async fn run(backend: Backend) {
                let Some($app) = TestApp::on_with(backend, |s| s.with_oauth(settings($ttl))).await
                else {
                    eprintln!("skipping: no Postgres test database");
                    return;
                };
                set_password(&$app, OWNER_EMAIL).await;
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                run(Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres).await
            }
        }
    };
    ($name:ident, |$app:ident| $body:expr) => {
        oauth_test!($name, 60_000, |$app| $body);
    };
}

async fn set_password(app: &TestApp, email: &str) {
    flagstaff_server::services::oauth::set_password_offline(
        app.store.clone(),
        email,
        PASSWORD,
        &settings(60_000),
    )
    .await
    .expect("set password");
}

/// A registered client: `(client id, secret)`; public clients have no secret.
async fn register(app: &TestApp, public: bool) -> (String, Option<String>) {
    let body = app
        .post(
            "/api/v2/oauth/clients",
            json!({"name": "Partner App", "redirectUri": REDIRECT, "description": "Does partner things", "public": public}),
        )
        .await
        .expect(201);
    (
        body["_clientId"].as_str().unwrap().to_string(),
        body["_clientSecret"].as_str().map(str::to_string),
    )
}

fn pkce() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (
        challenge.as_str().to_string(),
        verifier.secret().to_string(),
    )
}

/// Consent for `client_id` with `scope` and PKCE; returns `(code, verifier)`.
async fn code_for(
    browser: &mut Browser,
    client_id: &str,
    scope: &str,
    email: &str,
) -> (String, String) {
    let (challenge, verifier) = pkce();
    let location = browser
        .consent(
            &authorize_url(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("scope", scope),
                ("state", "st-1"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ]),
            email,
            "allow",
        )
        .await;
    let q = query(&location);
    assert_eq!(q["state"], "st-1");
    (q["code"].clone(), verifier)
}

/// A raw token-endpoint request with client_secret_post; returns status and JSON.
async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/trust/oauth/token", app.base_url))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    (status, response.json().await.unwrap())
}

async fn exchange(
    app: &TestApp,
    client: &(String, Option<String>),
    code: &str,
    verifier: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client.0.as_str()),
    ];
    if let Some(secret) = &client.1 {
        form.push(("client_secret", secret));
    }
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    token_request(app, &form).await
}

async fn refresh(
    app: &TestApp,
    client: &(String, Option<String>),
    refresh_token: &str,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", client.0.as_str()),
    ];
    if let Some(secret) = &client.1 {
        form.push(("client_secret", secret));
    }
    token_request(app, &form).await
}

async fn bearer(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    call(app, &format!("Bearer {token}"), method, path, body).await
}

/// Signs in, consents and exchanges: `(client, access token, refresh token)`.
async fn tokens_for(
    app: &TestApp,
    scope: &str,
    email: &str,
) -> ((String, Option<String>), String, String) {
    let client = register(app, false).await;
    let mut browser = Browser::new(app);
    let (code, verifier) = code_for(&mut browser, &client.0, scope, email).await;
    let (status, body) = exchange(app, &client, &code, Some(&verifier)).await;
    assert_eq!(status, 200, "{body}");
    (
        client,
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

// ---- the full flow ------------------------------------------------------------------------

oauth_test!(full_flow_with_the_oauth2_crate, |app| async move {
    let (client_id, secret) = register(&app, false).await;
    let secret = secret.unwrap();
    let client = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_auth_uri(AuthUrl::new(format!("{}/trust/oauth/authorize", app.base_url)).unwrap())
        .set_token_uri(TokenUrl::new(format!("{}/trust/oauth/token", app.base_url)).unwrap())
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // The metadata document names the endpoints the client uses.
    let metadata: Value = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["token_endpoint"],
        format!("{}/trust/oauth/token", app.base_url)
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );

    // Sign in and consent.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("writer".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut browser = Browser::new(&app);
    let location = browser.consent(url.as_str(), OWNER_EMAIL, "allow").await;
    let session_cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("flagstaff_session="))
        .expect("session cookie");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session_cookie.contains(attribute), "{session_cookie}");
    }
    let q = query(&location);
    assert!(location.starts_with(REDIRECT));
    assert_eq!(&q["state"], state.secret());
    assert_eq!(q["iss"], app.base_url);

    // Code for tokens (client_secret_basic, PKCE).
    let token = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token response");
    assert_eq!(token.scopes().unwrap()[0].as_str(), "writer");
    let access = token.access_token().secret().clone();
    let refresh_token = token.refresh_token().expect("refresh token").clone();

    // The access token works on the REST API and names the app.
    let me = bearer(&app, &access, Method::GET, "/api/v2/caller-identity", None)
        .await
        .expect(200);
    assert_eq!(me["authKind"], "oauth");
    assert_eq!(me["clientId"], client_id);
    assert_eq!(me["scopes"], json!(["writer"]));
    bearer(
        &app,
        &access,
        Method::POST,
        "/api/v2/projects",
        Some(json!({"key": "via-app", "name": "Via app"})),
    )
    .await
    .expect(201);
    let log = app.get("/api/v2/auditlog?limit=1").await.expect(200);
    let entry = &log["items"][0];
    assert_eq!(entry["app"]["name"], "Partner App");
    assert_eq!(entry["app"]["_id"], client_id);
    assert!(entry.get("token").is_none(), "{entry}");
    assert_eq!(entry["member"]["email"], OWNER_EMAIL);

    // Refresh rotates: a new pair, and the new access token works.
    let refreshed = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&http)
        .await
        .expect("refresh");
    let access2 = refreshed.access_token().secret().clone();
    let refresh2 = refreshed.refresh_token().unwrap().clone();
    assert_ne!(refresh2.secret(), refresh_token.secret());
    bearer(&app, &access2, Method::GET, "/api/v2/projects", None)
        .await
        .expect(200);

    // Revocation (RFC 7009) of the refresh token ends the whole authorization's tokens.
    // (oauth2 5 sends revocations only to https URLs and the test server is loopback http,
    // so this one request is made by hand, as the crate would: Basic auth, form body.)
    let revoked = http
        .post(format!("{}/trust/oauth/revoke", app.base_url))
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("token", refresh2.secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    bearer(&app, &access2, Method::GET, "/api/v2/projects", None)
        .await
        .expect(401);
    assert!(
        client
            .exchange_refresh_token(&refresh2)
            .request_async(&http)
            .await
            .is_err()
    );
});

// ---- the negative cases ---------------------------------------------------------------------

oauth_test!(
    wrong_or_extra_redirect_uri_is_refused_without_redirecting,
    |app| async move {
        let client = register(&app, false).await;
        let mut browser = Browser::new(&app);
        browser.sign_in("/trust/signin", OWNER_EMAIL).await;
        for bad in [
            "http://127.0.0.1:1/other",
            "http://127.0.0.1:1/callback?extra=1",
            "http://127.0.0.1:1/callback/",
            "https://evil.example/callback",
        ] {
            let page = browser
                .get(&authorize_url(&[
                    ("response_type", "code"),
                    ("client_id", &client.0),
                    ("redirect_uri", bad),
                    ("state", "s"),
                ]))
                .await;
            assert_eq!(page.status, 400, "{bad}");
            assert!(page.location.is_none(), "{bad} redirected");
            assert!(page.html.contains("redirect_uri"), "{}", page.html);
        }
        // A redirect_uri given twice is refused as well.
        let page = browser
            .get(&format!(
                "{}&redirect_uri={}",
                authorize_url(&[
                    ("response_type", "code"),
                    ("client_id", &client.0),
                    ("redirect_uri", REDIRECT),
                ]),
                "https%3A%2F%2Fevil.example%2Fcb"
            ))
            .await;
        assert_eq!(page.status, 400);
        assert!(page.location.is_none());
        // At the token endpoint, a code must be redeemed with the redirect URI it was issued for.
        let (code, verifier) = code_for(&mut browser, &client.0, "reader", OWNER_EMAIL).await;
        let (status, body) = token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:1/other"),
                ("code_verifier", &verifier),
                ("client_id", &client.0),
                ("client_secret", client.1.as_deref().unwrap()),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
    }
);

oauth_test!(reused_code_fails_and_revokes_its_tokens, |app| async move {
    let client = register(&app, false).await;
    let mut browser = Browser::new(&app);
    let (code, verifier) = code_for(&mut browser, &client.0, "reader", OWNER_EMAIL).await;
    let (status, first) = exchange(&app, &client, &code, Some(&verifier)).await;
    assert_eq!(status, 200);
    let access = first["access_token"].as_str().unwrap();
    bearer(&app, access, Method::GET, "/api/v2/projects", None)
        .await
        .expect(200);
    let (status, second) = exchange(&app, &client, &code, Some(&verifier)).await;
    assert_eq!(
        (status, second["error"].as_str()),
        (400, Some("invalid_grant")),
        "{second}"
    );
    // RFC 6749 §4.1.2: the tokens issued for the code are revoked.
    bearer(&app, access, Method::GET, "/api/v2/projects", None)
        .await
        .expect(401);
    let (status, body) = refresh(&app, &client, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
});

oauth_test!(expired_code_is_refused, 1_000, |app| async move {
    let client = register(&app, false).await;
    let mut browser = Browser::new(&app);
    let (code, verifier) = code_for(&mut browser, &client.0, "reader", OWNER_EMAIL).await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (status, body) = exchange(&app, &client, &code, Some(&verifier)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
});

oauth_test!(
    pkce_verifier_wrong_or_missing_is_refused,
    |app| async move {
        let client = register(&app, false).await;
        let mut browser = Browser::new(&app);
        let (code, verifier) = code_for(&mut browser, &client.0, "reader", OWNER_EMAIL).await;
        let (_, wrong) = pkce();
        let (status, body) = exchange(&app, &client, &code, Some(&wrong)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let (status, body) = exchange(&app, &client, &code, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        // Failed attempts do not use the code up; the right verifier still redeems it.
        let (status, _) = exchange(&app, &client, &code, Some(&verifier)).await;
        assert_eq!(status, 200);

        // A public client must use PKCE: without a challenge the app gets invalid_request.
        let public = register(&app, true).await;
        assert!(public.1.is_none(), "public clients get no secret");
        let page = browser
            .get(&authorize_url(&[
                ("response_type", "code"),
                ("client_id", &public.0),
                ("redirect_uri", REDIRECT),
                ("state", "p"),
            ]))
            .await;
        assert_eq!(page.status, 303);
        let q = query(page.location.as_deref().unwrap());
        assert_eq!(q["error"], "invalid_request");
        assert_eq!(q["state"], "p");
        // `plain` is not accepted either.
        let page = browser
            .get(&authorize_url(&[
                ("response_type", "code"),
                ("client_id", &public.0),
                ("code_challenge", &"a".repeat(43)),
                ("code_challenge_method", "plain"),
            ]))
            .await;
        assert_eq!(
            query(page.location.as_deref().unwrap())["error"],
            "invalid_request"
        );
        // With PKCE a public client redeems its code with client_id alone.
        let (code, verifier) = code_for(&mut browser, &public.0, "reader", OWNER_EMAIL).await;
        let (status, body) = exchange(&app, &public, &code, Some(&verifier)).await;
        assert_eq!(status, 200, "{body}");
    }
);

oauth_test!(reader_token_cannot_write, |app| async move {
    let (_, access, _) = tokens_for(&app, "reader", OWNER_EMAIL).await;
    bearer(&app, &access, Method::GET, "/api/v2/projects", None)
        .await
        .expect(200);
    let denied = bearer(
        &app,
        &access,
        Method::POST,
        "/api/v2/projects",
        Some(json!({"key": "nope", "name": "Nope"})),
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.message().contains("createProject"),
        "{}",
        denied.body
    );
    // Neither scope may mint API tokens (they would outlive the consent).
    let (_, writer, _) = tokens_for(&app, "writer", OWNER_EMAIL).await;
    let denied = bearer(
        &app,
        &writer,
        Method::POST,
        "/api/v2/tokens",
        Some(json!({"name": "escape", "role": "reader"})),
    )
    .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
});

oauth_test!(
    member_downgraded_after_consent_loses_the_apps_rights,
    |app| async move {
        let member = add_member(&app, "writer@example.com", "writer").await;
        set_password(&app, "writer@example.com").await;
        let (_, access, _) = tokens_for(&app, "writer", "writer@example.com").await;
        bearer(
            &app,
            &access,
            Method::POST,
            "/api/v2/projects",
            Some(json!({"key": "before", "name": "Before"})),
        )
        .await
        .expect(201);
        app.patch(
            &format!("/api/v2/members/{member}"),
            json!([{"op": "replace", "path": "/role", "value": "reader"}]),
        )
        .await
        .expect(200);
        let denied = bearer(
            &app,
            &access,
            Method::POST,
            "/api/v2/projects",
            Some(json!({"key": "after", "name": "After"})),
        )
        .await;
        assert_eq!(denied.status, 403, "{}", denied.body);
        bearer(&app, &access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(200);
        // A removed member's app stops working altogether.
        app.delete(&format!("/api/v2/members/{member}"))
            .await
            .expect(204);
        bearer(&app, &access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(401);
    }
);

oauth_test!(reused_refresh_token_revokes_the_family, |app| async move {
    let (client, access1, refresh1) = tokens_for(&app, "reader", OWNER_EMAIL).await;
    let (status, second) = refresh(&app, &client, &refresh1).await;
    assert_eq!(status, 200, "{second}");
    let access2 = second["access_token"].as_str().unwrap();
    let refresh2 = second["refresh_token"].as_str().unwrap();
    bearer(&app, access2, Method::GET, "/api/v2/projects", None)
        .await
        .expect(200);
    // The rotated-out token again: refused, and everything of the family is revoked.
    let (status, body) = refresh(&app, &client, &refresh1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = refresh(&app, &client, refresh2).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for access in [access1.as_str(), access2] {
        bearer(&app, access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(401);
    }
});

oauth_test!(
    consent_form_without_the_sessions_csrf_token_is_refused,
    |app| async move {
        let client = register(&app, false).await;
        let (challenge, _) = pkce();
        let url = authorize_url(&[
            ("response_type", "code"),
            ("client_id", &client.0),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        // Another member's session: its CSRF token must not work in the victim's session.
        add_member(&app, "other@example.com", "reader").await;
        set_password(&app, "other@example.com").await;
        let mut other = Browser::new(&app);
        let page = other.sign_in(&url, "other@example.com").await;
        let page = other.get(page.location.as_deref().unwrap()).await;
        let foreign_csrf = hidden(&page.html, "csrf");

        let mut victim = Browser::new(&app);
        let page = victim.sign_in(&url, OWNER_EMAIL).await;
        let page = victim.get(page.location.as_deref().unwrap()).await;
        let request = hidden(&page.html, "request");
        let audit_before = app.audit_count().await;
        for csrf in ["", "forged", foreign_csrf.as_str()] {
            let page = victim
                .post(
                    "/trust/oauth/authorize",
                    &[("request", &request), ("csrf", csrf), ("decision", "allow")],
                )
                .await;
            assert_eq!(page.status, 403, "csrf {csrf:?}");
            assert!(page.location.is_none());
        }
        assert_eq!(
            app.audit_count().await,
            audit_before,
            "nothing was authorized"
        );
        // The sign-in form has its own CSRF token (a cookie and a field that must match).
        let mut fresh = Browser::new(&app);
        let page = fresh
            .post(
                "/trust/signin",
                &[
                    ("email", OWNER_EMAIL),
                    ("password", PASSWORD),
                    ("csrf", "x"),
                    ("next", ""),
                ],
            )
            .await;
        assert_eq!(page.status, 403);
        assert!(!fresh.cookies.contains_key("flagstaff_session"));
    }
);

oauth_test!(open_redirects_are_refused, |app| async move {
    // After sign-in the browser only goes to a path on this server.
    for next in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "http:/evil.example",
    ] {
        let mut browser = Browser::new(&app);
        let start = format!(
            "/trust/signin?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap()
        );
        let page = browser.sign_in(&start, OWNER_EMAIL).await;
        assert_eq!(page.status, 303, "{next}");
        assert_eq!(page.location.as_deref(), Some("/trust/signin"), "{next}");
    }
    // An unknown client or a foreign redirect_uri: an error page, never a redirect.
    let mut browser = Browser::new(&app);
    browser.sign_in("/trust/signin", OWNER_EMAIL).await;
    let page = browser
        .get(&authorize_url(&[
            ("response_type", "code"),
            ("client_id", "no-such-client"),
            ("redirect_uri", "https://evil.example/cb"),
        ]))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location.is_none());
    // Errors after the redirect URI is validated go to the registered URI only.
    let client = register(&app, false).await;
    let page = browser
        .get(&authorize_url(&[
            ("response_type", "token"),
            ("client_id", &client.0),
            ("state", "x<y"),
        ]))
        .await;
    let location = page.location.unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let q = query(&location);
    assert_eq!(q["error"], "unsupported_response_type");
    assert_eq!(q["state"], "x<y");
    // Registration refuses redirect URIs that would make the server an open redirector.
    for bad in [
        "http://evil.example/cb",
        "https://evil.example/cb?next=x",
        "https://evil.example/cb#f",
        "javascript:alert(1)",
        "/relative",
    ] {
        let r = app
            .post(
                "/api/v2/oauth/clients",
                json!({"name": "Bad", "redirectUri": bad}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
});

// ---- clients API, authorized apps, token endpoint details --------------------------------

oauth_test!(
    clients_api_shows_the_secret_once_and_is_admin_only,
    |app| async move {
        let created = app
        .post(
            "/api/v2/oauth/clients",
            json!({"name": "App", "redirectUri": "https://app.example.com/cb", "description": "d"}),
        )
        .await
        .expect(201);
        let id = created["_clientId"].as_str().unwrap();
        assert!(
            created["_clientSecret"]
                .as_str()
                .unwrap()
                .starts_with("fso_cs_")
        );
        let got = app
            .get(&format!("/api/v2/oauth/clients/{id}"))
            .await
            .expect(200);
        assert!(got.get("_clientSecret").is_none());
        assert!(!got.to_string().contains("secretHash"));
        let list = app.get("/api/v2/oauth/clients").await.expect(200);
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert!(list["items"][0].get("_clientSecret").is_none());
        let patched = app
        .patch(
            &format!("/api/v2/oauth/clients/{id}"),
            json!([{"op": "replace", "path": "/name", "value": "Renamed"},
                   {"op": "replace", "path": "/redirectUri", "value": "https://app.example.com/cb2"}]),
        )
        .await
        .expect(200);
        assert_eq!(patched["name"], "Renamed");
        assert_eq!(patched["redirectUri"], "https://app.example.com/cb2");
        for (patch, status) in [
            (
                json!([{"op": "replace", "path": "/_clientId", "value": "x"}]),
                400,
            ),
            (
                json!([{"op": "replace", "path": "/redirectUri", "value": "http://app.example.com/cb"}]),
                400,
            ),
            (
                json!([{"op": "add", "path": "/secretHash", "value": "x"}]),
                400,
            ),
        ] {
            let r = app
                .patch(&format!("/api/v2/oauth/clients/{id}"), patch.clone())
                .await;
            assert_eq!(r.status, status, "{patch}: {}", r.body);
        }
        let log = app.get("/api/v2/auditlog?limit=5").await.expect(200);
        assert!(
            !log.to_string().contains("fso_cs_"),
            "no secrets in the audit log"
        );
        let (_, reader) = support::member_with_token(&app, "reader@example.com", "reader").await;
        let r = call(&app, &reader, Method::GET, "/api/v2/oauth/clients", None).await;
        assert_eq!(r.status, 403);
        let (_, writer) = support::member_with_token(&app, "writer@example.com", "writer").await;
        let r = call(
            &app,
            &writer,
            Method::POST,
            "/api/v2/oauth/clients",
            Some(json!({"name": "W", "redirectUri": "https://w.example.com/cb"})),
        )
        .await;
        assert_eq!(r.status, 403);
        app.delete(&format!("/api/v2/oauth/clients/{id}"))
            .await
            .expect(204);
        app.get(&format!("/api/v2/oauth/clients/{id}"))
            .await
            .expect(404);
    }
);

oauth_test!(
    members_list_and_revoke_their_authorized_apps,
    |app| async move {
        let member = add_member(&app, "m@example.com", "writer").await;
        set_password(&app, "m@example.com").await;
        let (_, member_token) =
            support::personal_token(&app, &member, json!({"role": "writer"})).await;
        let (_, access, _) = tokens_for(&app, "reader", "m@example.com").await;
        let (_, owner_access, _) = tokens_for(&app, "reader", OWNER_EMAIL).await;
        // The consent was audited and names the app.
        let log = app.get("/api/v2/auditlog?q=authorized").await.expect(200);
        assert!(
            log["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "Partner App" && e["member"]["email"] == OWNER_EMAIL),
            "{log}"
        );
        let mine = call(
            &app,
            &member_token,
            Method::GET,
            "/api/v2/oauth/authorizations",
            None,
        )
        .await
        .expect(200);
        let items = mine["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "a member sees only their own: {mine}");
        assert_eq!(items[0]["clientName"], "Partner App");
        assert_eq!(items[0]["scopes"], json!(["reader"]));
        let all = app.get("/api/v2/oauth/authorizations").await.expect(200);
        assert_eq!(all["items"].as_array().unwrap().len(), 2);
        let r = call(
            &app,
            &member_token,
            Method::GET,
            "/api/v2/oauth/authorizations?memberId=someone-else",
            None,
        )
        .await;
        assert_eq!(r.status, 403);
        // A member cannot revoke someone else's app.
        let owner_grant = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["memberId"] != member.as_str())
            .unwrap()["_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = call(
            &app,
            &member_token,
            Method::DELETE,
            &format!("/api/v2/oauth/authorizations/{owner_grant}"),
            None,
        )
        .await;
        assert_eq!(r.status, 403);
        // Revoking their own: the app's tokens stop at once.
        let grant = items[0]["_id"].as_str().unwrap();
        bearer(&app, &access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(200);
        call(
            &app,
            &member_token,
            Method::DELETE,
            &format!("/api/v2/oauth/authorizations/{grant}"),
            None,
        )
        .await
        .expect(204);
        bearer(&app, &access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(401);
        let entry = support::latest_audit(&app).await;
        assert_eq!(entry["accesses"][0]["action"], "deleteOAuthAuthorization");
        // An admin revokes anyone's; deleting the client ends every authorization of it.
        app.delete(&format!("/api/v2/oauth/authorizations/{owner_grant}"))
            .await
            .expect(204);
        bearer(&app, &owner_access, Method::GET, "/api/v2/projects", None)
            .await
            .expect(401);
    }
);

oauth_test!(
    token_endpoint_authenticates_clients_per_rfc6749,
    |app| async move {
        let client = register(&app, false).await;
        let mut browser = Browser::new(&app);
        let (code, verifier) = code_for(&mut browser, &client.0, "reader", OWNER_EMAIL).await;
        // Wrong secret: 401 invalid_client, and the code is not used up.
        let (status, body) = token_request(
            &app,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", &client.0),
                ("client_secret", "fso_cs_wrong"),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        // Another client cannot redeem it.
        let other = register(&app, false).await;
        let (status, body) = exchange(&app, &other, &code, Some(&verifier)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let (status, body) = token_request(
            &app,
            &[
                ("grant_type", "password"),
                ("client_id", &client.0),
                ("client_secret", client.1.as_deref().unwrap()),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );
        // client_secret_basic.
        let response = reqwest::Client::new()
            .post(format!("{}/trust/oauth/token", app.base_url))
            .basic_auth(&client.0, client.1.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        // Denying consent sends access_denied back with the state.
        let (challenge, _) = pkce();
        let location = browser
            .consent(
                &authorize_url(&[
                    ("response_type", "code"),
                    ("client_id", &client.0),
                    ("state", "d"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ]),
                OWNER_EMAIL,
                "deny",
            )
            .await;
        let q = query(&location);
        assert_eq!(
            (q["error"].as_str(), q["state"].as_str()),
            ("access_denied", "d")
        );
        assert!(!q.contains_key("code"));
    }
);
