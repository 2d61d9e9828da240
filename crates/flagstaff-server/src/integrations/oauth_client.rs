//! Flagstaff as an OAuth 2.0 client of partners, for integrations whose manifest sets
//! `requiresOAuth`: the stored documents (provider registration, connection with sealed
//! tokens), PKCE and `state`, the token endpoint exchange, and the `oauth` template context
//! deliveries use. The writes live in `services/integration_oauth.rs`.
//!
//! ```text
//! POST …/connections/{key}/connect ─► state + PKCE (S256) kept sealed in the connection doc
//!      ─► browser → partner /authorize ─► GET /trust/integration-oauth/callback?code&state
//!      ─► token endpoint (SafeClient) ─► access + refresh token sealed ─► Services::commit
//! delivery ─► credentials(): fresh token, or refresh (one in flight per key) ─► oauth.*
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use flagstaff_manifest::Integration;
use flagstaff_outbound::{OutboundRequest, SafeClient};
use flagstaff_store::Store;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Integrations;
use super::delivery::NotSent;

/// Where partners send the browser back to, below the server's public base URL.
pub const CALLBACK_PATH: &str = "/trust/integration-oauth/callback";

/// Unix milliseconds; replaceable so tests can move time forward instead of waiting.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
pub struct OAuthSettings {
    /// A token that expires within this margin is refreshed before it is used.
    pub refresh_margin: Duration,
    /// How often the background task looks for tokens expiring within twice the margin.
    pub refresh_interval: Duration,
    /// How long a `state` handed out by "connect" stays usable.
    pub state_ttl: Duration,
    pub clock: Clock,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            refresh_margin: Duration::from_secs(120),
            refresh_interval: Duration::from_secs(30),
            state_ttl: Duration::from_secs(600),
            clock: Arc::new(crate::services::wall_millis),
        }
    }
}

/// Runtime state of the OAuth client: settings and one lock per `oauthIntegrationKey`, so
/// concurrent refreshes (and callbacks) of one connection run one at a time and the later
/// ones find the fresh token instead of spending the refresh token again.
pub struct OAuthClient {
    pub settings: OAuthSettings,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl OAuthClient {
    pub fn new(settings: OAuthSettings) -> Self {
        Self {
            settings,
            locks: Mutex::default(),
        }
    }

    pub fn now(&self) -> i64 {
        (self.settings.clock)()
    }

    pub fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Flow {
    /// The browser is sent to the partner, which redirects back with a code (RFC 6749 §4.1
    /// with PKCE, RFC 7636).
    #[default]
    AuthorizationCode,
    /// Flagstaff authenticates as itself (§4.4); "connect" fetches the token at once.
    ClientCredentials,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum TokenAuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1, what servers must accept).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A partner's OAuth client registration, made out of band and entered by an admin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderDoc {
    pub key: String,
    pub flow: Flow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    pub token_url: String,
    pub client_id: String,
    /// Sealed with the secret box.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub token_auth_method: TokenAuthMethod,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// What templates see as `oauth.baseURI`.
    pub base_uri: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Tokens issued to Flagstaff; both tokens sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenSet {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// `None`: the provider gave no `expires_in`; the token is used until refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub issued_at: i64,
}

impl TokenSet {
    /// Usable without a refresh for at least `margin` more.
    pub fn fresh(&self, now: i64, margin: Duration) -> bool {
        self.expires_at
            .is_none_or(|at| at - margin.as_millis() as i64 > now)
    }
}

/// An authorization started by "connect" and not yet completed by the callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAuthorization {
    /// Hex SHA-256 of the `state`; the state itself is only in the authorization URL.
    pub state_hash: String,
    /// The PKCE code verifier, sealed.
    pub verifier: String,
    pub expires_at: i64,
    /// The API token that started it: the callback acts (and is audited) as this token.
    pub token_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionError {
    pub at: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionDoc {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ConnectionError>,
    #[serde(default)]
    pub pending: Vec<PendingAuthorization>,
}

impl ConnectionDoc {
    pub fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            tokens: None,
            connected_at: None,
            connected_by: None,
            last_refresh_at: None,
            last_error: None,
            pending: Vec::new(),
        }
    }

    /// `notConnected`, `pending` (an authorization was started), `connected`, or `error`
    /// (tokens exist but the last refresh failed).
    pub fn status(&self) -> &'static str {
        match (&self.tokens, &self.last_error) {
            (Some(_), Some(_)) => "error",
            (Some(_), None) => "connected",
            (None, _) if !self.pending.is_empty() => "pending",
            (None, _) => "notConnected",
        }
    }
}

/// The key an integration's OAuth credentials are registered and stored under.
pub fn oauth_key(integration: &Integration) -> String {
    integration
        .manifest
        .oauth_integration_key
        .clone()
        .unwrap_or_else(|| integration.key.clone())
}

/// Associated data binding a sealed OAuth value to its key and field.
pub fn oauth_aad(key: &str, field: &str) -> String {
    format!("integration-oauth/{key}/{field}")
}

/// 32 random bytes, base64url: `state` values and PKCE verifiers (43 characters, RFC 7636).
pub fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// PKCE S256: base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// The OAuth key a `state` belongs to: states are `<key>.<random>` (keys may contain dots,
/// the random part never does).
pub fn state_key(state: &str) -> Option<&str> {
    let (key, random) = state.rsplit_once('.')?;
    (!key.is_empty() && random.len() >= 32).then_some(key)
}

/// `application/x-www-form-urlencoded` escaping (RFC 3986 unreserved characters stay).
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The partner URL the browser is sent to.
pub fn authorization_url(
    provider: &ProviderDoc,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> String {
    let base = provider.authorization_url.as_deref().unwrap_or_default();
    let scope = provider.scopes.join(" ");
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", redirect_uri),
        ("state", state),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    if !scope.is_empty() {
        pairs.push(("scope", scope.as_str()));
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", form(&pairs))
}

pub enum Grant<'a> {
    AuthorizationCode {
        code: &'a str,
        verifier: &'a str,
        redirect_uri: &'a str,
    },
    RefreshToken(&'a str),
    ClientCredentials,
}

/// A successful token endpoint answer (RFC 6749 §5.1).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// Calls the provider's token endpoint through the outbound-safe client. Errors name the
/// provider's `error` / `error_description` (RFC 6749 §5.2) and never a token or secret.
pub async fn request_token(
    outbound: &SafeClient,
    provider: &ProviderDoc,
    client_secret: Option<&str>,
    grant: Grant<'_>,
) -> Result<TokenResponse, String> {
    let scope = provider.scopes.join(" ");
    let mut pairs: Vec<(&str, &str)> = match &grant {
        Grant::AuthorizationCode {
            code,
            verifier,
            redirect_uri,
        } => vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
        Grant::RefreshToken(token) => {
            vec![("grant_type", "refresh_token"), ("refresh_token", token)]
        }
        Grant::ClientCredentials => {
            let mut pairs = vec![("grant_type", "client_credentials")];
            if !scope.is_empty() {
                pairs.push(("scope", scope.as_str()));
            }
            pairs
        }
    };
    let mut request = OutboundRequest::new("POST", provider.token_url.clone())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Accept", "application/json");
    match (provider.token_auth_method, client_secret) {
        (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
            // RFC 6749 §2.3.1: both parts form-encoded before base64.
            let credentials = format!(
                "{}:{}",
                utf8_percent_encode(&provider.client_id, FORM),
                utf8_percent_encode(secret, FORM)
            );
            request = request.header(
                "Authorization",
                format!("Basic {}", STANDARD.encode(credentials)),
            );
        }
        (TokenAuthMethod::ClientSecretPost, Some(secret)) => {
            pairs.push(("client_id", &provider.client_id));
            pairs.push(("client_secret", secret));
        }
        // A public client identifies itself and relies on PKCE.
        (_, None) => pairs.push(("client_id", &provider.client_id)),
    }
    let response = outbound
        .send(request.body(form(&pairs)))
        .await
        .map_err(|e| format!("the token endpoint could not be reached: {e}"))?;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !(200..300).contains(&response.status) {
        let error = body["error"].as_str().unwrap_or("no error code");
        let description = body["error_description"]
            .as_str()
            .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(format!(
            "the token endpoint answered HTTP {}: {error}{description}",
            response.status
        ));
    }
    let token: TokenResponse = serde_json::from_value(body)
        .map_err(|e| format!("the token endpoint's answer is not a token response: {e}"))?;
    if token.access_token.is_empty() {
        return Err("the token endpoint returned an empty access_token".into());
    }
    if let Some(kind) = &token.token_type
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "the token endpoint issued a `{kind}` token; only bearer tokens are supported"
        ));
    }
    Ok(token)
}

/// Seals a token response; a response without a refresh token keeps `previous_refresh`
/// (providers that do not rotate refresh tokens omit it on refresh).
pub fn seal_tokens(
    integrations: &Integrations,
    key: &str,
    response: &TokenResponse,
    previous_refresh: Option<String>,
    now: i64,
) -> Result<TokenSet, String> {
    let seal = |field: &str, value: &str| {
        integrations
            .secrets
            .seal_for(oauth_aad(key, field).as_bytes(), value)
            .map_err(|e| format!("cannot encrypt a token: {e}"))
    };
    Ok(TokenSet {
        access_token: seal("accessToken", &response.access_token)?,
        refresh_token: match &response.refresh_token {
            Some(token) => Some(seal("refreshToken", token)?),
            None => previous_refresh,
        },
        expires_at: response
            .expires_in
            .map(|seconds| now + seconds.max(0).saturating_mul(1000)),
        scope: response.scope.clone(),
        issued_at: now,
    })
}

/// Opens a sealed OAuth value.
pub fn open(
    integrations: &Integrations,
    key: &str,
    field: &str,
    sealed: &str,
) -> Result<String, String> {
    integrations
        .secrets
        .open_for(oauth_aad(key, field).as_bytes(), sealed)
        .map_err(|_| {
            format!("the OAuth {field} of `{key}` cannot be decrypted with this server's key")
        })
}

/// The `oauth` template values for a delivery to `integration`: `None` for integrations
/// without `requiresOAuth`; otherwise the connection's base URI and a fresh access token, or a
/// retryable refusal (never a placeholder).
pub async fn template_oauth(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    integration: &Integration,
) -> Result<Option<(String, String)>, NotSent> {
    if !integration.manifest.requires_oauth {
        return Ok(None);
    }
    crate::services::integration_oauth::credentials(
        store.as_ref(),
        integrations,
        &oauth_key(integration),
    )
    .await
    .map(Some)
    .map_err(NotSent::Retry)
}

/// Refreshes tokens shortly before they expire, so deliveries rarely wait for a refresh.
pub fn spawn_refresher(store: Arc<dyn Store>, integrations: Arc<Integrations>) {
    tokio::spawn(async move {
        let interval = integrations.oauth.settings.refresh_interval;
        loop {
            tokio::time::sleep(interval).await;
            crate::services::integration_oauth::refresh_expiring(store.as_ref(), &integrations)
                .await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderDoc {
        ProviderDoc {
            key: "appdynamics".into(),
            flow: Flow::AuthorizationCode,
            authorization_url: Some("https://p.example/authorize?tenant=a".into()),
            token_url: "https://p.example/token".into(),
            client_id: "client id".into(),
            client_secret: None,
            token_auth_method: TokenAuthMethod::ClientSecretBasic,
            scopes: vec!["read".into(), "write".into()],
            base_uri: "https://api.p.example".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn pkce_s256_is_base64url_sha256_without_padding() {
        // Expected value computed independently with Python's hashlib and base64.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CK-M1tAyXWwbf2B8B6iz4DxIjDkUBQMmN0"),
            "00BywBzvRPUjyqqRqi9EGyXIWJI5IN7o8r39CFnwTnk"
        );
    }

    #[test]
    fn authorization_url_keeps_the_providers_query_and_encodes_values() {
        let url = authorization_url(&provider(), "http://f.test/cb?x=1", "k.state", "ch");
        assert!(url.starts_with("https://p.example/authorize?tenant=a&response_type=code&"));
        assert!(url.contains("client_id=client%20id"));
        assert!(url.contains("redirect_uri=http%3A%2F%2Ff.test%2Fcb%3Fx%3D1"));
        assert!(url.contains("code_challenge_method=S256"));
        assert!(url.contains("scope=read%20write"));
    }

    #[test]
    fn states_name_their_key() {
        let random = random_token().unwrap();
        assert_eq!(random.len(), 43);
        assert_eq!(
            state_key(&format!("servicenow.v2.{random}")),
            Some("servicenow.v2")
        );
        assert_eq!(state_key("servicenow.short"), None);
        assert_eq!(state_key(&random), None);
    }

    #[test]
    fn freshness_honours_the_margin() {
        let tokens = TokenSet {
            access_token: String::new(),
            refresh_token: None,
            expires_at: Some(100_000),
            scope: None,
            issued_at: 0,
        };
        let margin = Duration::from_secs(60);
        assert!(tokens.fresh(39_999, margin));
        assert!(!tokens.fresh(40_000, margin));
        let forever = TokenSet {
            expires_at: None,
            ..tokens
        };
        assert!(forever.fresh(i64::MAX, margin));
    }
}
