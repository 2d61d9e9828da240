//! OAuth connections for `requiresOAuth` integrations: provider registrations (admin-only,
//! the partner's client id and secret entered out of band), connecting (authorization code
//! with PKCE, or client credentials), the callback, disconnecting, and the token refresh
//! deliveries rely on. Tokens and client secrets are sealed before they are stored and never
//! returned, logged or written to an audit entry.

use std::time::Duration;

use flagstaff_manifest::Integration;
use flagstaff_model::account::AccessToken;
use flagstaff_policy::Resource;
use flagstaff_store::{ChangeSet, EntityKind, EntityRef, EntityWrite, Store, StoreError};
use serde::Deserialize;

use super::{AuditDraft, CommitError, PendingChange, Services, decode, encode, now_millis};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::integrations::Integrations;
use crate::integrations::oauth_client::{
    CALLBACK_PATH, ConnectionDoc, ConnectionError, Flow, Grant, PendingAuthorization, ProviderDoc,
    TokenAuthMethod, TokenSet, authorization_url, oauth_aad, oauth_key, open, pkce_challenge,
    random_token, request_token, seal_tokens, state_hash, state_key,
};
use crate::services::webhooks::SECRET_MASK;

/// Registering, changing, viewing and removing provider registrations: an `acct` action, so
/// admins and owners have it and writers do not.
pub const MANAGE_PROVIDERS: &str = "updateIntegrationOAuthProvider";
pub const DELETE_PROVIDER: &str = "deleteIntegrationOAuthProvider";
/// Connecting and disconnecting, on `integration/<oauthIntegrationKey>`.
pub const CONNECT: &str = "connectIntegrationOAuth";
pub const DISCONNECT: &str = "disconnectIntegrationOAuth";

/// Pending authorizations kept per connection (older ones are dropped).
const MAX_PENDING: usize = 10;

pub fn provider_ref(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::IntegrationOAuthProvider, "", key)
}

pub fn connection_ref(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::IntegrationOAuthConnection, "", key)
}

fn connection_resource(key: &str) -> Resource {
    Resource::integration(key, &[])
}

/// The body of `PUT /api/v2/integration-oauth/providers/{oauthIntegrationKey}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderFields {
    #[serde(default)]
    pub flow: Flow,
    #[serde(default)]
    pub authorization_url: Option<String>,
    pub token_url: String,
    pub client_id: String,
    /// Absent or the mask: keep the stored one; empty: none (a public client).
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub base_uri: String,
}

/// What "connect" answers.
pub enum ConnectStarted {
    /// Send the browser here; the partner redirects it back to the callback.
    Authorize { url: String, expires_at: i64 },
    /// Client credentials: connected at once.
    Connected(ConnectionDoc),
}

/// Query of the partner's redirect to the callback.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

fn validate_key(key: &str) -> ApiResult<()> {
    let valid = !key.is_empty()
        && key.len() <= 64
        && !key.starts_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "`{key}` is not a valid oauthIntegrationKey: use 1-64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// The callback URL partners redirect to; registered with the partner by the admin.
pub fn redirect_uri(integrations: &Integrations) -> String {
    format!(
        "{}{CALLBACK_PATH}",
        integrations.settings.base_url.trim_end_matches('/')
    )
}

/// Integrations of the loaded catalogue whose credentials are stored under `key`.
pub fn used_by(integrations: &Integrations, key: &str) -> Vec<String> {
    integrations
        .catalogue
        .current()
        .iter()
        .filter(|i| i.manifest.requires_oauth && oauth_key(i) == key)
        .map(|i| i.key.clone())
        .collect()
}

async fn load_doc<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    target: &EntityRef,
) -> Result<Option<(T, i64)>, String> {
    match store.get(target).await {
        Ok(Some(stored)) => serde_json::from_str(&stored.doc)
            .map(|doc| Some((doc, stored.version)))
            .map_err(|e| format!("corrupt stored {}: {e}", target.kind.as_str())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", target.kind.as_str())),
    }
}

impl Services {
    pub async fn list_oauth_providers(&self, caller: &Caller) -> ApiResult<Vec<ProviderDoc>> {
        caller.require(MANAGE_PROVIDERS, &Resource::account())?;
        Ok(self
            .load_all::<ProviderDoc>(EntityKind::IntegrationOAuthProvider, "")
            .await?
            .into_iter()
            .map(|(doc, _)| doc)
            .collect())
    }

    pub async fn get_oauth_provider(&self, caller: &Caller, key: &str) -> ApiResult<ProviderDoc> {
        caller.require(MANAGE_PROVIDERS, &Resource::account())?;
        self.load_provider(key).await.map(|(doc, _)| doc)
    }

    async fn load_provider(&self, key: &str) -> ApiResult<(ProviderDoc, i64)> {
        self.load(&provider_ref(key)).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "No OAuth provider is registered for `{key}`: register one with PUT /api/v2/integration-oauth/providers/{key}"
            ))
        })
    }

    /// Registers or replaces the OAuth client registration for `key`. Returns the stored
    /// document and whether it is new.
    pub async fn put_oauth_provider(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        key: &str,
        fields: ProviderFields,
    ) -> ApiResult<(ProviderDoc, bool)> {
        caller.require(MANAGE_PROVIDERS, &Resource::account())?;
        validate_key(key)?;
        let target = provider_ref(key);
        let _guard = self.lock(&target).await;
        let existing = self.load::<ProviderDoc>(&target).await?;
        let authorization_url = match (fields.flow, fields.authorization_url) {
            (Flow::AuthorizationCode, Some(url)) => {
                if !flagstaff_manifest::config::is_absolute_http_url(&url) {
                    return Err(ApiError::invalid(format!(
                        "authorizationUrl `{url}` is not an absolute http(s) URL"
                    )));
                }
                Some(url)
            }
            (Flow::AuthorizationCode, None) => {
                return Err(ApiError::invalid(
                    "authorizationUrl is required for the authorizationCode flow",
                ));
            }
            (Flow::ClientCredentials, _) => None,
        };
        self.check_outbound_url(integrations, &fields.token_url)
            .await
            .map_err(|e| ApiError::invalid(format!("tokenUrl: {e}")))?;
        let base_uri = fields.base_uri.trim_end_matches('/').to_string();
        self.check_outbound_url(integrations, &base_uri)
            .await
            .map_err(|e| ApiError::invalid(format!("baseUri: {e}")))?;
        if fields.client_id.trim().is_empty() || fields.client_id.len() > 512 {
            return Err(ApiError::invalid(
                "clientId is required (at most 512 bytes)",
            ));
        }
        if let Some(scope) = fields
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            return Err(ApiError::invalid(format!(
                "scope `{scope}` is invalid: scopes are non-empty and without spaces or quotes"
            )));
        }
        let previous_secret = existing.as_ref().and_then(|(p, _)| p.client_secret.clone());
        let client_secret = match fields.client_secret.as_deref() {
            None | Some(SECRET_MASK) => previous_secret.clone(),
            Some("") => None,
            Some(secret) => Some(
                integrations
                    .secrets
                    .seal_for(oauth_aad(key, "clientSecret").as_bytes(), secret)
                    .map_err(|e| ApiError::Internal(format!("cannot encrypt a secret: {e}")))?,
            ),
        };
        if fields.flow == Flow::ClientCredentials && client_secret.is_none() {
            return Err(ApiError::invalid(
                "clientSecret is required for the clientCredentials flow",
            ));
        }
        let now = now_millis();
        let doc = ProviderDoc {
            key: key.to_string(),
            flow: fields.flow,
            authorization_url,
            token_url: fields.token_url,
            client_id: fields.client_id,
            client_secret,
            token_auth_method: fields.token_auth_method,
            scopes: fields.scopes,
            base_uri,
            created_at: existing.as_ref().map_or(now, |(p, _)| p.created_at),
            updated_at: now,
        };
        let (write, verb, description) = match &existing {
            None => (
                EntityWrite::Insert {
                    target,
                    version: 1,
                    doc: encode(&doc)?,
                    aliases: vec![],
                },
                "registered the OAuth provider",
                format!("registered OAuth provider `{key}` ({:?} flow)", doc.flow),
            ),
            Some((before, version)) => {
                // Field names only: values may be secret.
                let mut changed = super::changed_fields(
                    &super::to_value(&ProviderDoc {
                        updated_at: 0,
                        ..before.clone()
                    }),
                    &super::to_value(&ProviderDoc {
                        updated_at: 0,
                        ..doc.clone()
                    }),
                );
                if changed.is_empty() {
                    return Ok((before.clone(), false));
                }
                changed.sort();
                (
                    EntityWrite::Update {
                        target,
                        expected_version: *version,
                        version: version + 1,
                        doc: encode(&doc)?,
                        aliases: None,
                    },
                    "updated the OAuth provider",
                    format!("changed {}", changed.join(", ")),
                )
            }
        };
        let change = PendingChange {
            writes: vec![write],
            audit: AuditDraft::single(
                "integration",
                key,
                MANAGE_PROVIDERS,
                &Resource::account(),
                verb,
                description,
                format!("/settings/integrations/oauth/{key}"),
            ),
            outbox: vec![],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(CommitError::concurrent_change)?;
        Ok((doc, existing.is_none()))
    }

    /// Removes a provider registration and its connection (tokens included).
    pub async fn delete_oauth_provider(&self, caller: &Caller, key: &str) -> ApiResult<()> {
        caller.require(DELETE_PROVIDER, &Resource::account())?;
        let target = provider_ref(key);
        let _guard = self.lock(&target).await;
        let (_, version) = self.load_provider(key).await?;
        let mut writes = vec![EntityWrite::Delete {
            target,
            expected_version: version,
        }];
        if let Some(stored) = self.store.get(&connection_ref(key)).await? {
            writes.push(EntityWrite::Delete {
                target: connection_ref(key),
                expected_version: stored.version,
            });
        }
        let change = PendingChange {
            writes,
            audit: AuditDraft::single(
                "integration",
                key,
                DELETE_PROVIDER,
                &Resource::account(),
                "removed the OAuth provider",
                format!("removed OAuth provider `{key}` and its connection"),
                format!("/settings/integrations/oauth/{key}"),
            ),
            outbox: vec![],
        };
        self.commit(Some(caller), now_millis(), change)
            .await
            .map_err(CommitError::concurrent_change)?;
        Ok(())
    }

    /// The connection of `key` (a fresh, unconnected one when there is none yet).
    pub async fn oauth_connection(&self, caller: &Caller, key: &str) -> ApiResult<ConnectionDoc> {
        caller.require("viewIntegration", &connection_resource(key))?;
        self.load_provider(key).await?;
        Ok(self
            .load::<ConnectionDoc>(&connection_ref(key))
            .await?
            .map_or_else(|| ConnectionDoc::new(key), |(doc, _)| doc))
    }

    /// Starts connecting `key`: an authorization URL with a single-use `state` and a PKCE
    /// challenge, or, for client credentials, the token itself.
    pub async fn start_oauth_connect(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        key: &str,
    ) -> ApiResult<ConnectStarted> {
        caller.require(CONNECT, &connection_resource(key))?;
        let (provider, _) = self.load_provider(key).await?;
        let now = integrations.oauth.now();
        if provider.flow == Flow::ClientCredentials {
            let lock = integrations.oauth.lock_for(key);
            let _serial = lock.lock().await;
            let secret = provider_secret(integrations, &provider).map_err(ApiError::Internal)?;
            let response = request_token(
                &integrations.outbound,
                &provider,
                secret.as_deref(),
                Grant::ClientCredentials,
            )
            .await
            .map_err(|e| ApiError::invalid(format!("connecting `{key}` failed: {e}")))?;
            let tokens =
                seal_tokens(integrations, key, &response, None, now).map_err(ApiError::Internal)?;
            let doc = self
                .commit_connection(caller, key, "connected (client credentials)", |doc| {
                    connected(doc, tokens.clone(), caller, now);
                    Ok(())
                })
                .await?;
            return Ok(ConnectStarted::Connected(doc));
        }
        let state = format!("{key}.{}", random_token().map_err(ApiError::Internal)?);
        let verifier = random_token().map_err(ApiError::Internal)?;
        let hash = state_hash(&state);
        let expires_at = now + integrations.oauth.settings.state_ttl.as_millis() as i64;
        let pending = PendingAuthorization {
            verifier: integrations
                .secrets
                .seal_for(
                    oauth_aad(key, &format!("pkceVerifier/{hash}")).as_bytes(),
                    &verifier,
                )
                .map_err(|e| ApiError::Internal(format!("cannot encrypt a secret: {e}")))?,
            state_hash: hash,
            expires_at,
            token_id: caller.token.id.clone(),
        };
        self.commit_connection(
            caller,
            key,
            "started connecting (authorization requested from the partner)",
            |doc| {
                doc.pending.retain(|p| p.expires_at > now);
                doc.pending.push(pending.clone());
                let excess = doc.pending.len().saturating_sub(MAX_PENDING);
                doc.pending.drain(..excess);
                Ok(())
            },
        )
        .await?;
        Ok(ConnectStarted::Authorize {
            url: authorization_url(
                &provider,
                &redirect_uri(integrations),
                &state,
                &pkce_challenge(&verifier),
            ),
            expires_at,
        })
    }

    /// Completes an authorization when the partner redirects the browser back: the state
    /// must be known, unused and unexpired; the code is exchanged (with the PKCE verifier) and
    /// the tokens stored, as the API token that started the authorization. Returns the key.
    pub async fn complete_oauth_connect(
        &self,
        integrations: &Integrations,
        params: CallbackParams,
    ) -> ApiResult<String> {
        let unknown = || {
            ApiError::invalid(
                "This authorization is unknown or was already completed: start connecting again",
            )
        };
        let state = params.state.as_deref().ok_or_else(unknown)?;
        let key = state_key(state).ok_or_else(unknown)?.to_string();
        let lock = integrations.oauth.lock_for(&key);
        let _serial = lock.lock().await;
        let hash = state_hash(state);
        let (doc, _) = self
            .load::<ConnectionDoc>(&connection_ref(&key))
            .await?
            .ok_or_else(unknown)?;
        let pending = doc
            .pending
            .iter()
            .find(|p| p.state_hash == hash)
            .cloned()
            .ok_or_else(unknown)?;
        let now = integrations.oauth.now();
        if pending.expires_at <= now {
            return Err(ApiError::invalid(
                "This authorization expired: start connecting again",
            ));
        }
        let token: Option<(AccessToken, i64)> = self
            .load(&super::tokens::token_ref(&pending.token_id))
            .await?;
        let caller = match token {
            Some((token, _)) => crate::auth::caller_of_token(self.store.as_ref(), token).await?,
            None => None,
        }
        .ok_or_else(|| {
            ApiError::invalid(
                "The API token that started this authorization no longer exists: start connecting again",
            )
        })?;
        caller.require(CONNECT, &connection_resource(&key))?;
        let outcome = self
            .exchange_partner_code(integrations, &key, &pending, &params, now)
            .await;
        let summary = match &outcome {
            Ok(_) => "connected (authorization code)".to_string(),
            Err(message) => format!("failed to connect: {message}"),
        };
        self.commit_connection(&caller, &key, &summary, |doc| {
            let before = doc.pending.len();
            doc.pending.retain(|p| p.state_hash != hash);
            if doc.pending.len() == before {
                return Err(unknown());
            }
            match &outcome {
                Ok(tokens) => connected(doc, tokens.clone(), &caller, now),
                Err(message) => {
                    doc.last_error = Some(ConnectionError {
                        at: now,
                        message: message.clone(),
                    })
                }
            }
            Ok(())
        })
        .await?;
        outcome.map(|_| key).map_err(ApiError::invalid)
    }

    async fn exchange_partner_code(
        &self,
        integrations: &Integrations,
        key: &str,
        pending: &PendingAuthorization,
        params: &CallbackParams,
        now: i64,
    ) -> Result<TokenSet, String> {
        if let Some(error) = &params.error {
            let description = params
                .error_description
                .as_deref()
                .map(|d| format!(" ({})", d.chars().take(200).collect::<String>()))
                .unwrap_or_default();
            return Err(format!(
                "the partner refused the authorization: {}{description}",
                error.chars().take(100).collect::<String>()
            ));
        }
        let code = params
            .code
            .as_deref()
            .ok_or("the partner's redirect has neither a code nor an error")?;
        let (provider, _) = self.load_provider(key).await.map_err(|e| e.to_string())?;
        let verifier = open(
            integrations,
            key,
            &format!("pkceVerifier/{}", pending.state_hash),
            &pending.verifier,
        )?;
        let secret = provider_secret(integrations, &provider)?;
        let response = request_token(
            &integrations.outbound,
            &provider,
            secret.as_deref(),
            Grant::AuthorizationCode {
                code,
                verifier: &verifier,
                redirect_uri: &redirect_uri(integrations),
            },
        )
        .await?;
        seal_tokens(integrations, key, &response, None, now)
    }

    /// Forgets the tokens (and pending authorizations) of `key`.
    pub async fn disconnect_oauth(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        key: &str,
    ) -> ApiResult<()> {
        caller.require(DISCONNECT, &connection_resource(key))?;
        let lock = integrations.oauth.lock_for(key);
        let _serial = lock.lock().await;
        let (_, version) = self
            .load::<ConnectionDoc>(&connection_ref(key))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("`{key}` is not connected")))?;
        let change = PendingChange {
            writes: vec![EntityWrite::Delete {
                target: connection_ref(key),
                expected_version: version,
            }],
            audit: AuditDraft::single(
                "integration",
                key,
                DISCONNECT,
                &connection_resource(key),
                "disconnected the OAuth integration",
                format!("disconnected `{key}`: its tokens were deleted"),
                format!("/settings/integrations/oauth/{key}"),
            ),
            outbox: vec![],
        };
        self.commit(Some(caller), now_millis(), change)
            .await
            .map_err(CommitError::concurrent_change)?;
        Ok(())
    }

    /// Read-modify-write of a connection document with an audit entry describing `summary`
    /// (never a token).
    async fn commit_connection(
        &self,
        caller: &Caller,
        key: &str,
        summary: &str,
        edit: impl Fn(&mut ConnectionDoc) -> ApiResult<()>,
    ) -> ApiResult<ConnectionDoc> {
        let target = connection_ref(key);
        let resource = connection_resource(key);
        self.with_retries(|| async {
            let existing = self.load::<ConnectionDoc>(&target).await?;
            let mut doc = existing
                .as_ref()
                .map_or_else(|| ConnectionDoc::new(key), |(doc, _)| doc.clone());
            edit(&mut doc)?;
            let write = match &existing {
                None => EntityWrite::Insert {
                    target: target.clone(),
                    version: 1,
                    doc: encode(&doc)?,
                    aliases: vec![],
                },
                Some((_, version)) => EntityWrite::Update {
                    target: target.clone(),
                    expected_version: *version,
                    version: version + 1,
                    doc: encode(&doc)?,
                    aliases: None,
                },
            };
            let change = PendingChange {
                writes: vec![write],
                audit: AuditDraft::single(
                    "integration",
                    key,
                    CONNECT,
                    &resource,
                    format!("{summary}:"),
                    format!("`{key}` {summary}"),
                    format!("/settings/integrations/oauth/{key}"),
                ),
                outbox: vec![],
            };
            self.commit(Some(caller), now_millis(), change).await?;
            Ok(doc)
        })
        .await
    }
}

fn connected(doc: &mut ConnectionDoc, tokens: TokenSet, caller: &Caller, now: i64) {
    doc.tokens = Some(tokens);
    doc.connected_at = Some(now);
    doc.connected_by = Some(caller.member.email.clone());
    doc.last_refresh_at = None;
    doc.last_error = None;
}

fn provider_secret(
    integrations: &Integrations,
    provider: &ProviderDoc,
) -> Result<Option<String>, String> {
    provider
        .client_secret
        .as_deref()
        .map(|sealed| open(integrations, &provider.key, "clientSecret", sealed))
        .transpose()
}

/// The base URI templates see for `integration` when it requires OAuth and is connected;
/// `None` when it does not require OAuth. Configuring or turning on a `requiresOAuth`
/// integration without a connection is refused here, so no delivery is ever queued for
/// templates that would need a placeholder.
pub async fn connected_base_uri(
    store: &dyn Store,
    integration: &Integration,
) -> ApiResult<Option<String>> {
    if !integration.manifest.requires_oauth {
        return Ok(None);
    }
    let key = oauth_key(integration);
    let not_connected = |why: &str| {
        ApiError::invalid(format!(
            "integration `{}` requires OAuth and {why}: register its provider \
             (PUT /api/v2/integration-oauth/providers/{key}) and connect \
             (POST /api/v2/integration-oauth/connections/{key}/connect) first",
            integration.key
        ))
    };
    let provider = load_doc::<ProviderDoc>(store, &provider_ref(&key))
        .await
        .map_err(ApiError::Internal)?
        .ok_or_else(|| not_connected("no OAuth provider is registered"))?;
    let connection = load_doc::<ConnectionDoc>(store, &connection_ref(&key))
        .await
        .map_err(ApiError::Internal)?;
    if connection.is_none_or(|(doc, _)| doc.tokens.is_none()) {
        return Err(not_connected("is not connected"));
    }
    Ok(Some(provider.0.base_uri))
}

/// `(baseURI, accessToken)` for a delivery: the stored token while it stays valid for the
/// refresh margin, else a refreshed one. Errors are retryable and never contain a token.
pub async fn credentials(
    store: &dyn Store,
    integrations: &Integrations,
    key: &str,
) -> Result<(String, String), String> {
    let margin = integrations.oauth.settings.refresh_margin;
    let (provider, _) = load_doc::<ProviderDoc>(store, &provider_ref(key))
        .await?
        .ok_or_else(|| format!("no OAuth provider is registered for `{key}`"))?;
    let tokens = load_doc::<ConnectionDoc>(store, &connection_ref(key))
        .await?
        .and_then(|(doc, _)| doc.tokens)
        .ok_or_else(|| format!("`{key}` is not connected (OAuth)"))?;
    if tokens.fresh(integrations.oauth.now(), margin) {
        let access = open(integrations, key, "accessToken", &tokens.access_token)?;
        return Ok((provider.base_uri, access));
    }
    refresh(store, integrations, key, margin).await
}

/// Refreshes the tokens of `key` unless they are (by now) valid for `within`. One refresh
/// per key runs at a time in this process; the ones that waited find the new token.
pub async fn refresh(
    store: &dyn Store,
    integrations: &Integrations,
    key: &str,
    within: Duration,
) -> Result<(String, String), String> {
    let lock = integrations.oauth.lock_for(key);
    let _serial = lock.lock().await;
    let (provider, _) = load_doc::<ProviderDoc>(store, &provider_ref(key))
        .await?
        .ok_or_else(|| format!("no OAuth provider is registered for `{key}`"))?;
    let (mut doc, version) = load_doc::<ConnectionDoc>(store, &connection_ref(key))
        .await?
        .ok_or_else(|| format!("`{key}` is not connected (OAuth)"))?;
    let tokens = doc
        .tokens
        .clone()
        .ok_or_else(|| format!("`{key}` is not connected (OAuth)"))?;
    let now = integrations.oauth.now();
    if tokens.fresh(now, within) {
        let access = open(integrations, key, "accessToken", &tokens.access_token)?;
        return Ok((provider.base_uri, access));
    }
    let refresh_token = tokens
        .refresh_token
        .as_deref()
        .map(|sealed| open(integrations, key, "refreshToken", sealed))
        .transpose()?;
    let grant = match (provider.flow, refresh_token.as_deref()) {
        (Flow::ClientCredentials, _) => Ok(Grant::ClientCredentials),
        (Flow::AuthorizationCode, Some(token)) => Ok(Grant::RefreshToken(token)),
        (Flow::AuthorizationCode, None) => Err(
            "the access token expired and the provider issued no refresh token: connect again"
                .to_string(),
        ),
    };
    let result = match grant {
        Ok(grant) => {
            let secret = provider_secret(integrations, &provider)?;
            match request_token(&integrations.outbound, &provider, secret.as_deref(), grant).await {
                Ok(response) => seal_tokens(
                    integrations,
                    key,
                    &response,
                    tokens.refresh_token.clone(),
                    now,
                )
                .map(|sealed| (sealed, response.access_token)),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok((sealed, access)) => {
            doc.tokens = Some(sealed);
            doc.last_refresh_at = Some(now);
            doc.last_error = None;
            match write_token_bookkeeping(store, key, version, &doc, now).await {
                // Another node refreshed in between: its tokens are stored, ours still work
                // for this delivery.
                Ok(()) | Err(StoreError::Conflict(_)) => Ok((provider.base_uri, access)),
                Err(e) => Err(format!("cannot store the refreshed OAuth token: {e}")),
            }
        }
        Err(message) => {
            doc.last_error = Some(ConnectionError {
                at: now,
                message: message.clone(),
            });
            if let Err(e) = write_token_bookkeeping(store, key, version, &doc, now).await {
                tracing::warn!(key, "cannot record the OAuth refresh failure: {e}");
            }
            tracing::warn!(key, "OAuth token refresh failed: {message}");
            Err(format!(
                "refreshing the OAuth token of `{key}` failed: {message}"
            ))
        }
    }
}

/// Stores refreshed tokens (or the refresh's failure) on the connection, version-guarded.
///
/// The one write outside `Services::commit`, on purpose: a refresh is machine bookkeeping of
/// a grant that was audited when it was made (connect) and is audited when it ends
/// (disconnect). An audit entry per refresh would fill the change history with entries
/// nobody acted on, and each would itself be routed to every webhook and integration. It
/// writes only this connection document: no other entity, no outbox row (nothing consumes
/// connection changes).
async fn write_token_bookkeeping(
    store: &dyn Store,
    key: &str,
    version: i64,
    doc: &ConnectionDoc,
    now: i64,
) -> Result<(), StoreError> {
    let doc = serde_json::to_string(doc)
        .map_err(|e| StoreError::Conflict(format!("unencodable connection: {e}")))?;
    store
        .commit(ChangeSet {
            writes: vec![EntityWrite::Update {
                target: connection_ref(key),
                expected_version: version,
                version: version + 1,
                doc,
                aliases: None,
            }],
            created_at: now,
            ..ChangeSet::default()
        })
        .await
        .map(|_| ())
}

/// Refreshes every connection whose token expires within twice the refresh margin (the
/// background task; deliveries refresh on their own within the margin).
pub async fn refresh_expiring(store: &dyn Store, integrations: &Integrations) {
    let connections = match store.list(EntityKind::IntegrationOAuthConnection, "").await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!("cannot list OAuth connections: {e}");
            return;
        }
    };
    let within = integrations.oauth.settings.refresh_margin * 2;
    let now = integrations.oauth.now();
    for stored in connections {
        let Ok(doc) = decode::<ConnectionDoc>(&stored.doc) else {
            continue;
        };
        let due = doc.tokens.as_ref().is_some_and(|t| !t.fresh(now, within));
        // A connection whose last refresh failed is retried by deliveries, not hammered here.
        if due && doc.last_error.is_none() {
            let _ = refresh(store, integrations, &doc.key, within).await;
        }
    }
}
