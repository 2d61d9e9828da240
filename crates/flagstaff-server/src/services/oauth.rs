//! Flagstaff as an OAuth 2.0 authorization server: client registration, member passwords and
//! sign-in sessions, consent, authorization codes with PKCE, rotating refresh tokens with
//! reuse detection, revocation, and the callers OAuth access tokens resolve to.
//!
//! Clients, consents (grants) and passwords are entities: every change to them is committed
//! through [`Services::commit`] with an audit entry. Sessions, codes and tokens are rows of
//! `oauth_secrets` (store `oauth.rs`), written per sign-in and per token request; they only
//! ever point at a grant, and a token is honoured only while its grant, client and member
//! exist, so revoking an authorization (deleting its grant) is immediate and audited.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flagstaff_model::account::{AccessToken, Member, secret_ending};
use flagstaff_model::oauth::{
    Credential, OAuthClient, OAuthGrant, Scope, constant_time_eq, pkce_matches,
    validate_redirect_uri,
};
use flagstaff_model::patch::{PatchFormats, apply_document_patch, parse_patch_request};
use flagstaff_policy::{Permissions, Resource};
use flagstaff_store::{
    EntityKind, EntityRef, EntityWrite, OAuthSecret, OAuthSecretKind, RevokeScope, Store,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    AuditDraft, CommitError, PendingChange, Services, changed_fields, encode, now_millis, to_value,
    wall_millis,
};
use crate::auth::{AuthKind, Caller, OAuthAccess, hash_secret, member_permissions};
use crate::error::{ApiError, ApiResult, OAuthError};

/// Access tokens start with this, so the REST API can tell them from API tokens.
pub const ACCESS_TOKEN_PREFIX: &str = "fso_at_";
pub const REFRESH_TOKEN_PREFIX: &str = "fso_rt_";
const CODE_PREFIX: &str = "fso_code_";
const CLIENT_SECRET_PREFIX: &str = "fso_cs_";

/// `acct` actions that manage OAuth clients (Flagstaff's names; LaunchDarkly requires an
/// admin). Reading the registrations needs `updateOAuthClient` too: they are admin data.
pub const CLIENT_ACTIONS: &[&str] = &[
    "createOAuthClient",
    "updateOAuthClient",
    "deleteOAuthClient",
];

/// Lifetimes and password-hashing cost. Defaults: codes 60 s, access tokens 1 h, refresh
/// tokens 30 days, sessions 12 h, argon2id with OWASP's parameters (19 MiB, 2 passes).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    pub code_ttl_ms: i64,
    pub access_ttl_ms: i64,
    pub refresh_ttl_ms: i64,
    pub session_ttl_ms: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// The issuer (this server's public base URL). `None`: taken from the request's `Host`,
    /// which suits loopback development only.
    pub issuer: Option<String>,
    /// Sign-in attempts per e-mail address per 10-second window.
    pub signin_attempts_per_window: u32,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            code_ttl_ms: 60_000,
            access_ttl_ms: 3_600_000,
            refresh_ttl_ms: 30 * 24 * 3_600_000,
            session_ttl_ms: 12 * 3_600_000,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            issuer: None,
            signin_attempts_per_window: 10,
        }
    }
}

impl OAuthSettings {
    fn argon2(&self) -> ApiResult<Argon2<'static>> {
        let params = Params::new(self.argon2_memory_kib, self.argon2_iterations, 1, None)
            .map_err(|e| ApiError::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// `POST /api/v2/oauth/clients`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OAuthClientPost {
    pub name: Option<String>,
    pub redirect_uri: Option<String>,
    pub description: Option<String>,
    /// Flagstaff extension: a public client (native or browser app) gets no secret and must
    /// use PKCE (`token_endpoint_auth_method` `none`).
    pub public: Option<bool>,
}

/// The patchable view of a client: only `name`, `description` and `redirectUri` change.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientView {
    #[serde(rename = "_clientId")]
    client_id: String,
    name: String,
    #[serde(default)]
    description: String,
    redirect_uri: String,
}

const CLIENT_READ_ONLY: &[&str] = &["/_clientId"];

/// What the token endpoint answers (RFC 6749 §5.1).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub refresh_token: String,
    pub scope: String,
}

/// A signed-in browser session.
#[derive(Debug, Clone)]
pub struct Session {
    pub hash: String,
    pub member: Member,
    pub csrf: String,
}

/// A validated authorization request, ready for consent.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: OAuthClient,
    pub redirect_uri: String,
    /// Whether `redirect_uri` was sent (then the token request must repeat it).
    pub redirect_given: bool,
    pub scope: Scope,
    pub code_challenge: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CodeData {
    redirect_uri: String,
    redirect_given: bool,
    #[serde(default)]
    code_challenge: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionData {
    csrf: String,
}

/// A random secret with a recognisable prefix: 256 bits, base64url.
pub fn random_secret(prefix: &str) -> ApiResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

pub fn client_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::OAuthClient, "", id)
}

pub fn grant_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::OAuthGrant, "", id)
}

fn credential_ref(member_id: &str) -> EntityRef {
    EntityRef::new(EntityKind::Credential, "", member_id)
}

/// One consent per (member, client).
fn grant_alias(member_id: &str, client_id: &str) -> String {
    format!("oauth-grant:{member_id}:{client_id}")
}

/// The audit form of a client: no secret hash.
fn client_audit_json(c: &OAuthClient) -> Value {
    let mut v = to_value(c);
    if let Some(map) = v.as_object_mut() {
        map.remove("secretHash");
        map.remove("version");
    }
    v
}

fn validate_client_text(field: &str, value: &str, required: bool) -> ApiResult<()> {
    if required && value.trim().is_empty() {
        return Err(ApiError::invalid(format!("{field} is required")));
    }
    if value.chars().count() > 256 {
        return Err(ApiError::invalid(format!(
            "{field} must be at most 256 characters long"
        )));
    }
    Ok(())
}

fn display_name(m: &Member) -> String {
    match (&m.first_name, &m.last_name) {
        (Some(f), Some(l)) => format!("{f} {l}"),
        (Some(f), None) => f.clone(),
        (None, Some(l)) => l.clone(),
        (None, None) => m.email.clone(),
    }
}

fn site_path(client_id: &str) -> String {
    format!("/settings/authorization/oauth/{client_id}")
}

impl Services {
    fn require_client_admin(&self, caller: &Caller, action: &str) -> ApiResult<()> {
        caller.require(action, &Resource::account())
    }

    /// The client, without any authorization check (the protocol endpoints use it).
    pub async fn oauth_client(&self, id: &str) -> ApiResult<Option<(OAuthClient, i64)>> {
        if id.is_empty() || id.len() > 128 {
            return Ok(None);
        }
        self.load(&client_ref(id)).await
    }

    pub async fn list_oauth_clients(&self, caller: &Caller) -> ApiResult<Vec<OAuthClient>> {
        self.require_client_admin(caller, "updateOAuthClient")?;
        let mut clients: Vec<OAuthClient> = self
            .load_all::<OAuthClient>(EntityKind::OAuthClient, "")
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        clients
            .sort_by(|a, b| (a.creation_date, &a.client_id).cmp(&(b.creation_date, &b.client_id)));
        Ok(clients)
    }

    pub async fn get_oauth_client(&self, caller: &Caller, id: &str) -> ApiResult<OAuthClient> {
        self.require_client_admin(caller, "updateOAuthClient")?;
        self.oauth_client(id)
            .await?
            .map(|(c, _)| c)
            .ok_or_else(|| ApiError::not_found(format!("OAuth client \"{id}\"")))
    }

    /// Registers a client; returns it with its secret (shown once; `None` for public clients).
    pub async fn create_oauth_client(
        &self,
        caller: &Caller,
        body: OAuthClientPost,
    ) -> ApiResult<(OAuthClient, Option<String>)> {
        let name = body.name.unwrap_or_default();
        let description = body.description.unwrap_or_default();
        let redirect_uri = body.redirect_uri.unwrap_or_default();
        validate_client_text("name", &name, true)?;
        validate_client_text("description", &description, false)?;
        validate_redirect_uri(&redirect_uri).map_err(ApiError::invalid)?;
        let public = body.public.unwrap_or(false);
        let secret = if public {
            None
        } else {
            Some(random_secret(CLIENT_SECRET_PREFIX)?)
        };
        let now = now_millis();
        let client = OAuthClient {
            client_id: flagstaff_model::new_uuid(),
            name,
            description,
            redirect_uri,
            public,
            secret_hash: secret.as_deref().map(hash_secret),
            creation_date: now,
            created_by: caller.member.id.clone(),
            version: 1,
        };
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: client_ref(&client.client_id),
                version: 1,
                doc: encode(&client)?,
                aliases: Vec::new(),
            }],
            audit: AuditDraft {
                current_version: Some(client_audit_json(&client)),
                ..AuditDraft::single(
                    "oauthClient",
                    client.name.clone(),
                    "createOAuthClient",
                    &Resource::account(),
                    "registered the OAuth client",
                    format!(
                        "Registered the {} OAuth client *{}* redirecting to {}",
                        if public { "public" } else { "confidential" },
                        client.name,
                        client.redirect_uri
                    ),
                    site_path(&client.client_id),
                )
            },
            outbox: Vec::new(),
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(commit_error)?;
        Ok((client, secret))
    }

    /// JSON Patch of `name`, `description` and `redirectUri`.
    pub async fn patch_oauth_client(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
    ) -> ApiResult<OAuthClient> {
        self.require_client_admin(caller, "updateOAuthClient")?;
        let request = parse_patch_request(body, false, PatchFormats::JsonPatchOnly)?;
        let target = client_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (before, version) = self
                .oauth_client(id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("OAuth client \"{id}\"")))?;
            let view = ClientView {
                client_id: before.client_id.clone(),
                name: before.name.clone(),
                description: before.description.clone(),
                redirect_uri: before.redirect_uri.clone(),
            };
            let patched: ClientView =
                apply_document_patch(&view, &request, version, CLIENT_READ_ONLY)?;
            validate_client_text("name", &patched.name, true)?;
            validate_client_text("description", &patched.description, false)?;
            validate_redirect_uri(&patched.redirect_uri).map_err(ApiError::invalid)?;
            let mut after = before.clone();
            after.name = patched.name;
            after.description = patched.description;
            after.redirect_uri = patched.redirect_uri;
            let fields = changed_fields(&client_audit_json(&before), &client_audit_json(&after));
            if fields.is_empty() {
                return Ok(before);
            }
            after.version = version + 1;
            let change = PendingChange {
                writes: vec![EntityWrite::Update {
                    target: client_ref(id),
                    expected_version: version,
                    version: version + 1,
                    doc: encode(&after)?,
                    aliases: None,
                }],
                audit: AuditDraft {
                    delta: Some(request.delta()),
                    comment: request.comment().map(str::to_string),
                    previous_version: Some(client_audit_json(&before)),
                    current_version: Some(client_audit_json(&after)),
                    ..AuditDraft::single(
                        "oauthClient",
                        after.name.clone(),
                        "updateOAuthClient",
                        &Resource::account(),
                        "updated the OAuth client",
                        format!(
                            "Changed {} of the OAuth client *{}*",
                            fields.join(", "),
                            after.name
                        ),
                        site_path(id),
                    )
                },
                outbox: Vec::new(),
            };
            self.commit(Some(caller), now, change).await?;
            Ok(after)
        })
        .await
    }

    /// Deletes a client and every consent to it, in one change; its tokens stop working.
    pub async fn delete_oauth_client(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        self.require_client_admin(caller, "deleteOAuthClient")?;
        let target = client_ref(id);
        let _guard = self.lock(&target).await;
        let grants = self
            .with_retries(|| async {
                let now = now_millis();
                let (client, version) = self
                    .oauth_client(id)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("OAuth client \"{id}\"")))?;
                let grants: Vec<(OAuthGrant, i64)> = self
                    .load_all::<OAuthGrant>(EntityKind::OAuthGrant, "")
                    .await?
                    .into_iter()
                    .filter(|(g, _)| g.client_id == id)
                    .collect();
                let mut writes = vec![EntityWrite::Delete {
                    target: client_ref(id),
                    expected_version: version,
                }];
                writes.extend(grants.iter().map(|(g, v)| EntityWrite::Delete {
                    target: grant_ref(&g.id),
                    expected_version: *v,
                }));
                let change = PendingChange {
                    writes,
                    audit: AuditDraft {
                        previous_version: Some(client_audit_json(&client)),
                        ..AuditDraft::single(
                            "oauthClient",
                            client.name.clone(),
                            "deleteOAuthClient",
                            &Resource::account(),
                            "deleted the OAuth client",
                            format!(
                                "Deleted the OAuth client *{}* and {} authorization(s) of it",
                                client.name,
                                grants.len()
                            ),
                            site_path(id),
                        )
                    },
                    outbox: Vec::new(),
                };
                self.commit(Some(caller), now, change).await?;
                Ok(grants)
            })
            .await?;
        for (g, _) in grants {
            self.store
                .oauth_revoke(RevokeScope::Grant(&g.id), wall_millis())
                .await?;
        }
        Ok(())
    }

    // ---- passwords and sessions -------------------------------------------------------

    /// Sets a member's sign-in password (argon2id). `caller` is `None` for the CLI.
    pub async fn set_password(
        &self,
        caller: Option<&Caller>,
        email: &str,
        password: &str,
        settings: &OAuthSettings,
    ) -> ApiResult<Member> {
        if password.chars().count() < 12 {
            return Err(ApiError::invalid(
                "the password must be at least 12 characters long",
            ));
        }
        if password.len() > 1024 {
            return Err(ApiError::invalid(
                "the password must be at most 1024 bytes long",
            ));
        }
        let member = self
            .member_by_email(email)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member with e-mail \"{email}\"")))?;
        let argon2 = settings.argon2()?;
        let password = password.to_string();
        let phc = tokio::task::spawn_blocking(move || -> ApiResult<String> {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt)
                .map_err(|e| ApiError::Internal(format!("no randomness available: {e}")))?;
            let salt = SaltString::encode_b64(&salt)
                .map_err(|e| ApiError::Internal(format!("salt: {e}")))?;
            argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))??;
        let target = credential_ref(&member.id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let credential = Credential {
                member_id: member.id.clone(),
                password_hash: phc.clone(),
                last_modified: now,
            };
            let write = match self.store.get(&target).await? {
                Some(stored) => EntityWrite::Update {
                    target: target.clone(),
                    expected_version: stored.version,
                    version: stored.version + 1,
                    doc: encode(&credential)?,
                    aliases: None,
                },
                None => EntityWrite::Insert {
                    target: target.clone(),
                    version: 1,
                    doc: encode(&credential)?,
                    aliases: Vec::new(),
                },
            };
            let change = PendingChange {
                writes: vec![write],
                audit: AuditDraft::single(
                    "member",
                    display_name(&member),
                    "updateMemberPassword",
                    &Resource::member(&member.id),
                    "set the sign-in password of",
                    format!("Set the sign-in password of {}", member.email),
                    format!("/settings/members/{}", member.id),
                ),
                outbox: Vec::new(),
            };
            self.commit(caller, now, change).await?;
            Ok(())
        })
        .await?;
        Ok(member)
    }

    /// The member with this address, compared case-insensitively. (A scan: the bootstrap
    /// owner has no e-mail alias, and sign-in is rare.)
    async fn member_by_email(&self, email: &str) -> ApiResult<Option<Member>> {
        let email = email.trim();
        Ok(self
            .list_members()
            .await?
            .into_iter()
            .find(|m| m.email.eq_ignore_ascii_case(email)))
    }

    /// The member whose password this is, or `None`. Unknown addresses cost a hash as well,
    /// so the response time does not reveal which addresses are members.
    pub async fn verify_password(
        &self,
        email: &str,
        password: &str,
        settings: &OAuthSettings,
    ) -> ApiResult<Option<Member>> {
        let member = self.member_by_email(email).await?;
        let credential = match &member {
            Some(m) => self
                .load::<Credential>(&credential_ref(&m.id))
                .await?
                .map(|(c, _)| c),
            None => None,
        };
        let argon2 = settings.argon2()?;
        let stored = credential.map(|c| c.password_hash);
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(phc) => PasswordHash::new(&phc)
                .is_ok_and(|h| argon2.verify_password(password.as_bytes(), &h).is_ok()),
            None => {
                let salt = SaltString::encode_b64(&[0u8; 16]).ok();
                if let Some(salt) = salt {
                    let _ = argon2.hash_password(password.as_bytes(), &salt);
                }
                false
            }
        })
        .await
        .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
        Ok(if ok { member } else { None })
    }

    /// Starts a session for `member`; returns the cookie secret.
    pub async fn create_session(
        &self,
        member: &Member,
        settings: &OAuthSettings,
    ) -> ApiResult<String> {
        let secret = random_secret("")?;
        let csrf = random_secret("")?;
        let now = wall_millis();
        let hash = hash_secret(&secret);
        // Expired rows are dead weight; sign-in is rare enough to carry the clean-up.
        self.store.oauth_purge(now).await?;
        let row = OAuthSecret {
            hash: hash.clone(),
            kind: OAuthSecretKind::Session,
            family: hash,
            member_id: member.id.clone(),
            client_id: String::new(),
            grant_id: String::new(),
            scope: String::new(),
            data: encode(&SessionData { csrf })?,
            created_at: now,
            expires_at: now + settings.session_ttl_ms,
            used_at: None,
            revoked_at: None,
        };
        self.store.oauth_exchange(None, now, &[row]).await?;
        Ok(secret)
    }

    /// The live session a cookie secret names.
    pub async fn session(&self, secret: &str) -> ApiResult<Option<Session>> {
        let hash = hash_secret(secret);
        let Some(row) = self.store.oauth_get(&hash).await? else {
            return Ok(None);
        };
        if row.kind != OAuthSecretKind::Session
            || row.revoked_at.is_some()
            || row.expires_at <= wall_millis()
        {
            return Ok(None);
        }
        let Some((member, _)) = self
            .load::<Member>(&super::members::member_ref(&row.member_id))
            .await?
        else {
            return Ok(None);
        };
        let data: SessionData = super::decode(&row.data)?;
        Ok(Some(Session {
            hash,
            member,
            csrf: data.csrf,
        }))
    }

    pub async fn end_session(&self, session: &Session) -> ApiResult<()> {
        self.store
            .oauth_revoke(RevokeScope::Hash(&session.hash), wall_millis())
            .await?;
        Ok(())
    }

    /// The member of a session as a caller: their own current permissions.
    pub async fn session_caller(&self, member: &Member) -> ApiResult<Caller> {
        let permissions = member_permissions(self.store.as_ref(), member).await?;
        Ok(Caller {
            token: stand_in_token(member, "sign-in session", "session", String::new()),
            member: member.clone(),
            permissions: Arc::new(permissions),
            auth: AuthKind::Session,
        })
    }

    // ---- consent and codes --------------------------------------------------------------

    /// Records the member's consent (one audited change: the grant is created or its scope
    /// replaced) and issues a single-use authorization code for it.
    pub async fn authorize(
        &self,
        member: &Member,
        request: &AuthorizationRequest,
        settings: &OAuthSettings,
    ) -> ApiResult<String> {
        let caller = self.session_caller(member).await?;
        let client = &request.client;
        let alias = grant_alias(&member.id, &client.client_id);
        let lock_target = EntityRef::new(EntityKind::OAuthGrant, "", alias.clone());
        let _guard = self.lock(&lock_target).await;
        let grant = self
            .with_retries(|| async {
                let now = now_millis();
                let existing = match self.store.resolve_alias(&alias).await? {
                    Some(target) => self.load::<OAuthGrant>(&target).await?,
                    None => None,
                };
                let (grant, write, verb) = match existing {
                    Some((mut g, v)) => {
                        g.scope = request.scope;
                        g.last_modified = now;
                        g.version = v + 1;
                        let write = EntityWrite::Update {
                            target: grant_ref(&g.id),
                            expected_version: v,
                            version: v + 1,
                            doc: encode(&g)?,
                            aliases: None,
                        };
                        (g, write, "renewed the authorization of")
                    }
                    None => {
                        let g = OAuthGrant {
                            id: flagstaff_model::new_object_id(),
                            client_id: client.client_id.clone(),
                            member_id: member.id.clone(),
                            scope: request.scope,
                            creation_date: now,
                            last_modified: now,
                            version: 1,
                        };
                        let write = EntityWrite::Insert {
                            target: grant_ref(&g.id),
                            version: 1,
                            doc: encode(&g)?,
                            aliases: vec![alias.clone()],
                        };
                        (g, write, "authorized")
                    }
                };
                let change = PendingChange {
                    writes: vec![write],
                    audit: AuditDraft {
                        current_version: Some(to_value(&grant)),
                        ..AuditDraft::single(
                            "oauthAuthorization",
                            client.name.clone(),
                            "createOAuthAuthorization",
                            &Resource::member(&member.id),
                            format!("{verb} the OAuth app"),
                            format!(
                                "Authorized the OAuth app *{}* ({}) with scope {}",
                                client.name,
                                client.client_id,
                                request.scope.as_str()
                            ),
                            site_path(&client.client_id),
                        )
                    },
                    outbox: Vec::new(),
                };
                // A member may always authorize an app for themselves: what the app can do is
                // bounded by their own permissions at every request.
                self.commit_authorized(&caller, now, change).await?;
                Ok(grant)
            })
            .await?;
        let code = random_secret(CODE_PREFIX)?;
        let now = wall_millis();
        let hash = hash_secret(&code);
        let row = OAuthSecret {
            hash: hash.clone(),
            kind: OAuthSecretKind::Code,
            family: hash,
            member_id: member.id.clone(),
            client_id: client.client_id.clone(),
            grant_id: grant.id.clone(),
            scope: request.scope.as_str().to_string(),
            data: encode(&CodeData {
                redirect_uri: request.redirect_uri.clone(),
                redirect_given: request.redirect_given,
                code_challenge: request.code_challenge.clone(),
            })?,
            created_at: now,
            expires_at: now + settings.code_ttl_ms,
            used_at: None,
            revoked_at: None,
        };
        self.store.oauth_exchange(None, now, &[row]).await?;
        Ok(code)
    }

    /// The access and refresh token rows for one issuance, and the response.
    fn issue(
        &self,
        family: &str,
        member_id: &str,
        client_id: &str,
        grant_id: &str,
        scope: Scope,
        settings: &OAuthSettings,
    ) -> ApiResult<(Vec<OAuthSecret>, TokenResponse)> {
        let access = random_secret(ACCESS_TOKEN_PREFIX)?;
        let refresh = random_secret(REFRESH_TOKEN_PREFIX)?;
        let now = wall_millis();
        let row = |secret: &str, kind, ttl: i64| OAuthSecret {
            hash: hash_secret(secret),
            kind,
            family: family.to_string(),
            member_id: member_id.to_string(),
            client_id: client_id.to_string(),
            grant_id: grant_id.to_string(),
            scope: scope.as_str().to_string(),
            data: "{}".into(),
            created_at: now,
            expires_at: now + ttl,
            used_at: None,
            revoked_at: None,
        };
        let rows = vec![
            row(&access, OAuthSecretKind::Access, settings.access_ttl_ms),
            row(&refresh, OAuthSecretKind::Refresh, settings.refresh_ttl_ms),
        ];
        Ok((
            rows,
            TokenResponse {
                access_token: access,
                token_type: "Bearer",
                expires_in: settings.access_ttl_ms / 1000,
                refresh_token: refresh,
                scope: scope.as_str().to_string(),
            },
        ))
    }

    /// Whether the grant a secret was issued under still stands for this client and member.
    async fn grant_stands(&self, row: &OAuthSecret) -> ApiResult<bool> {
        Ok(self
            .load::<OAuthGrant>(&grant_ref(&row.grant_id))
            .await?
            .is_some_and(|(g, _)| g.client_id == row.client_id && g.member_id == row.member_id))
    }

    /// Revokes everything issued from one code: the answer to a replayed code or refresh
    /// token (RFC 6749 §4.1.2, OAuth 2.0 Security BCP §4.14).
    async fn revoke_family(&self, family: &str, why: &str) -> ApiResult<()> {
        let n = self
            .store
            .oauth_revoke(RevokeScope::Family(family), wall_millis())
            .await?;
        tracing::warn!(revoked = n, "{why}: revoked the token family");
        Ok(())
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(
        &self,
        client: &OAuthClient,
        code: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        settings: &OAuthSettings,
    ) -> Result<TokenResponse, OAuthError> {
        let hash = hash_secret(code);
        let row = self
            .store
            .oauth_get(&hash)
            .await
            .map_err(ApiError::from)?
            .filter(|r| r.kind == OAuthSecretKind::Code)
            .ok_or_else(|| OAuthError::InvalidGrant("the authorization code is invalid".into()))?;
        if row.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the authorization code was issued to another client".into(),
            ));
        }
        if row.used_at.is_some() || row.revoked_at.is_some() {
            self.revoke_family(&row.family, "authorization code reused")
                .await?;
            return Err(OAuthError::InvalidGrant(
                "the authorization code was already used; the tokens issued for it are revoked"
                    .into(),
            ));
        }
        if row.expires_at <= wall_millis() {
            return Err(OAuthError::InvalidGrant(
                "the authorization code has expired".into(),
            ));
        }
        let data: CodeData = super::decode(&row.data)?;
        match redirect_uri {
            Some(uri) if uri != data.redirect_uri => {
                return Err(OAuthError::InvalidGrant(
                    "redirect_uri differs from the one in the authorization request".into(),
                ));
            }
            None if data.redirect_given => {
                return Err(OAuthError::InvalidGrant(
                    "redirect_uri is required: the authorization request had one".into(),
                ));
            }
            _ => {}
        }
        match (&data.code_challenge, code_verifier) {
            (Some(challenge), Some(verifier)) => {
                if !pkce_matches(verifier, challenge) {
                    return Err(OAuthError::InvalidGrant(
                        "code_verifier does not match the code_challenge".into(),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::InvalidGrant(
                    "code_verifier is required: the authorization request had a code_challenge"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(OAuthError::InvalidGrant(
                    "code_verifier was sent but the authorization request had no code_challenge"
                        .into(),
                ));
            }
            (None, None) => {}
        }
        let scope = Scope::parse(Some(&row.scope)).map_err(ApiError::Internal)?;
        self.redeem(&row, &hash, scope, settings, "authorization code")
            .await
    }

    /// Issues new tokens for a code or refresh token `row` (whose secret hashes to `hash`),
    /// consuming it in the same transaction. Losing that race to another request is a
    /// replay: the family is revoked.
    async fn redeem(
        &self,
        row: &OAuthSecret,
        hash: &str,
        scope: Scope,
        settings: &OAuthSettings,
        what: &str,
    ) -> Result<TokenResponse, OAuthError> {
        if !self.grant_stands(row).await? {
            return Err(OAuthError::InvalidGrant(
                "the authorization was revoked".into(),
            ));
        }
        let (rows, response) = self.issue(
            &row.family,
            &row.member_id,
            &row.client_id,
            &row.grant_id,
            scope,
            settings,
        )?;
        if !self
            .store
            .oauth_exchange(Some(hash), wall_millis(), &rows)
            .await
            .map_err(ApiError::from)?
        {
            self.revoke_family(&row.family, &format!("{what} reused"))
                .await?;
            return Err(OAuthError::InvalidGrant(format!(
                "the {what} was already used"
            )));
        }
        Ok(response)
    }

    /// `grant_type=refresh_token`: rotates the refresh token. A rotated-out refresh token
    /// presented again revokes its whole family.
    pub async fn refresh(
        &self,
        client: &OAuthClient,
        refresh_token: &str,
        scope: Option<&str>,
        settings: &OAuthSettings,
    ) -> Result<TokenResponse, OAuthError> {
        let hash = hash_secret(refresh_token);
        let row = self
            .store
            .oauth_get(&hash)
            .await
            .map_err(ApiError::from)?
            .filter(|r| r.kind == OAuthSecretKind::Refresh)
            .ok_or_else(|| OAuthError::InvalidGrant("the refresh token is invalid".into()))?;
        if row.client_id != client.client_id {
            return Err(OAuthError::InvalidGrant(
                "the refresh token was issued to another client".into(),
            ));
        }
        if row.revoked_at.is_some() {
            return Err(OAuthError::InvalidGrant(
                "the refresh token was revoked".into(),
            ));
        }
        if row.used_at.is_some() {
            self.revoke_family(&row.family, "refresh token reused")
                .await?;
            return Err(OAuthError::InvalidGrant(
                "the refresh token was already used; every token of this authorization is revoked"
                    .into(),
            ));
        }
        if row.expires_at <= wall_millis() {
            return Err(OAuthError::InvalidGrant(
                "the refresh token has expired".into(),
            ));
        }
        let granted = Scope::parse(Some(&row.scope)).map_err(ApiError::Internal)?;
        let scope = match scope {
            None => granted,
            Some(s) => {
                let requested = Scope::parse(Some(s)).map_err(OAuthError::InvalidScope)?;
                if !granted.covers(requested) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {} exceeds the granted scope {}",
                        requested.as_str(),
                        granted.as_str()
                    )));
                }
                requested
            }
        };
        self.redeem(&row, &hash, scope, settings, "refresh token")
            .await
    }

    /// RFC 7009: revokes an access or refresh token of `client` and every token issued
    /// alongside it. Unknown tokens and other clients' tokens are ignored (§2.2).
    pub async fn revoke_token(&self, client: &OAuthClient, token: &str) -> ApiResult<bool> {
        let hash = hash_secret(token);
        let Some(row) = self.store.oauth_get(&hash).await? else {
            return Ok(false);
        };
        if !matches!(row.kind, OAuthSecretKind::Access | OAuthSecretKind::Refresh)
            || row.client_id != client.client_id
        {
            return Ok(false);
        }
        Ok(self
            .store
            .oauth_revoke(RevokeScope::Family(&row.family), wall_millis())
            .await?
            > 0)
    }

    // ---- authorized apps ------------------------------------------------------------------

    /// Consents visible to the caller: their own; admins (anyone allowed
    /// `deleteOAuthAuthorization` on `member/*`) every member's, optionally of one member.
    pub async fn list_oauth_grants(
        &self,
        caller: &Caller,
        member_id: Option<&str>,
    ) -> ApiResult<Vec<(OAuthGrant, Option<OAuthClient>)>> {
        let all = caller.can("deleteOAuthAuthorization", &Resource::member("*"));
        if let Some(id) = member_id
            && id != caller.member.id
            && !all
        {
            return Err(ApiError::Forbidden(format!(
                "Forbidden: listing the authorized apps of member \"{id}\" needs deleteOAuthAuthorization on member/{id}"
            )));
        }
        let clients: std::collections::HashMap<String, OAuthClient> = self
            .load_all::<OAuthClient>(EntityKind::OAuthClient, "")
            .await?
            .into_iter()
            .map(|(c, _)| (c.client_id.clone(), c))
            .collect();
        let mut grants: Vec<OAuthGrant> = self
            .load_all::<OAuthGrant>(EntityKind::OAuthGrant, "")
            .await?
            .into_iter()
            .map(|(g, _)| g)
            .filter(|g| match member_id {
                Some(id) => g.member_id == id,
                None => all || g.member_id == caller.member.id,
            })
            .collect();
        grants.sort_by(|a, b| (a.creation_date, &a.id).cmp(&(b.creation_date, &b.id)));
        Ok(grants
            .into_iter()
            .map(|g| {
                let c = clients.get(&g.client_id).cloned();
                (g, c)
            })
            .collect())
    }

    /// Revokes an authorized app: its grant goes (audited) and with it every token issued
    /// under it. Members revoke their own; admins anyone's. Apps cannot revoke through the
    /// API (they have RFC 7009).
    pub async fn delete_oauth_grant(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        if caller.oauth().is_some() {
            return Err(ApiError::Forbidden(
                "Forbidden: an OAuth app cannot revoke authorizations; use the revocation endpoint /trust/oauth/revoke".into(),
            ));
        }
        let target = grant_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (grant, version) = self
                .load::<OAuthGrant>(&target)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("OAuth authorization \"{id}\"")))?;
            let resource = Resource::member(&grant.member_id);
            if grant.member_id != caller.member.id {
                caller.require("deleteOAuthAuthorization", &resource)?;
            }
            let client = self.oauth_client(&grant.client_id).await?.map(|(c, _)| c);
            let name = client
                .as_ref()
                .map_or_else(|| grant.client_id.clone(), |c| c.name.clone());
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: target.clone(),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    previous_version: Some(to_value(&grant)),
                    ..AuditDraft::single(
                        "oauthAuthorization",
                        name.clone(),
                        "deleteOAuthAuthorization",
                        &resource,
                        "revoked the OAuth app",
                        format!(
                            "Revoked the OAuth app *{name}* ({}) authorized by member {}",
                            grant.client_id, grant.member_id
                        ),
                        site_path(&grant.client_id),
                    )
                },
                outbox: Vec::new(),
            };
            // Authorized above: by ownership, or by the admin's permission on the member.
            self.commit_authorized(caller, now, change).await?;
            Ok(())
        })
        .await?;
        self.store
            .oauth_revoke(RevokeScope::Grant(id), wall_millis())
            .await?;
        Ok(())
    }

    // ---- bearer authentication --------------------------------------------------------------

    /// The caller an OAuth access token stands for: `None` unless the token is live and its
    /// grant, client and member still exist. Permissions are the scope's ceiling bounded by
    /// the member's current permissions.
    pub async fn oauth_caller(&self, hash: &str, secret: &str) -> ApiResult<Option<Caller>> {
        let Some(row) = self.store.oauth_get(hash).await? else {
            return Ok(None);
        };
        if row.kind != OAuthSecretKind::Access
            || row.revoked_at.is_some()
            || row.expires_at <= wall_millis()
            || !self.grant_stands(&row).await?
        {
            return Ok(None);
        }
        let Some((client, _)) = self.oauth_client(&row.client_id).await? else {
            return Ok(None);
        };
        let Some((member, _)) = self
            .load::<Member>(&super::members::member_ref(&row.member_id))
            .await?
        else {
            return Ok(None);
        };
        let scope = Scope::parse(Some(&row.scope)).map_err(ApiError::Internal)?;
        let maintainer = self
            .load::<Member>(&super::members::member_ref(&client.created_by))
            .await?
            .map_or_else(|| client.created_by.clone(), |(m, _)| display_name(&m));
        let permissions: Permissions =
            crate::auth::oauth_permissions(self.store.as_ref(), &member, scope).await?;
        let mut token = stand_in_token(
            &member,
            &format!("OAuth app {}", client.name),
            // Rate limits count per authorization (every token of one code).
            &format!("oauth-{}", row.family.get(..16).unwrap_or(&row.family)),
            hash.to_string(),
        );
        token.ending = secret_ending(secret);
        Ok(Some(Caller {
            token,
            member,
            permissions: Arc::new(permissions),
            auth: AuthKind::OAuth(Arc::new(OAuthAccess {
                client_id: client.client_id,
                client_name: client.name,
                maintainer_name: maintainer,
                grant_id: row.grant_id,
                scope,
                expires_at: row.expires_at,
            })),
        }))
    }
}

/// Authenticates the client at the token and revocation endpoints: `client_secret_basic`,
/// `client_secret_post`, or `none` for public clients.
pub fn check_client_secret(client: &OAuthClient, secret: Option<&str>) -> Result<(), OAuthError> {
    match (&client.secret_hash, secret) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::InvalidClient(
            "this is a public client: send no client secret".into(),
        )),
        (Some(_), None) => Err(OAuthError::InvalidClient(
            "client authentication is required".into(),
        )),
        (Some(expected), Some(secret)) => {
            if constant_time_eq(hash_secret(secret).as_bytes(), expected.as_bytes()) {
                Ok(())
            } else {
                Err(OAuthError::InvalidClient(
                    "client authentication failed".into(),
                ))
            }
        }
    }
}

/// An `AccessToken` that names a non-token caller; never stored.
fn stand_in_token(member: &Member, name: &str, id: &str, secret_hash: String) -> AccessToken {
    AccessToken {
        id: id.to_string(),
        name: name.to_string(),
        description: String::new(),
        owner_id: member.id.clone(),
        member_id: member.id.clone(),
        role: None,
        custom_role_ids: Vec::new(),
        inline_role: Vec::new(),
        service_token: false,
        secret_hash,
        ending: String::new(),
        default_api_version: flagstaff_model::account::CURRENT_API_VERSION,
        creation_date: 0,
        last_modified: 0,
        last_used: None,
        previous_secret: None,
        version: 0,
    }
}

fn commit_error(e: CommitError) -> ApiError {
    match e {
        CommitError::Api(e) => e,
        CommitError::Conflict(what) => ApiError::OptimisticLock(format!(
            "Conflict. Optimistic lock error: {what} was changed concurrently. Try again."
        )),
    }
}

/// Sets a member's password on a store without a running server (`flagstaff admin
/// set-password`): the change is committed and audited like any other.
pub async fn set_password_offline(
    store: Arc<dyn Store>,
    email: &str,
    password: &str,
    settings: &OAuthSettings,
) -> ApiResult<Member> {
    let account = store
        .list(EntityKind::Account, "")
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::invalid("the database has no account yet: start `flagstaff serve` once first")
        })?;
    let account: Value = super::decode(&account.doc)?;
    let account_id = account["_id"].as_str().unwrap_or_default().to_string();
    let services = Services::new(store, account_id, tokio::sync::broadcast::channel(1).0);
    services.set_password(None, email, password, settings).await
}

/// What the metadata document (RFC 8414) says.
pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/trust/oauth/authorize"),
        "token_endpoint": format!("{issuer}/trust/oauth/token"),
        "revocation_endpoint": format!("{issuer}/trust/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": flagstaff_model::oauth::SCOPES,
        "authorization_response_iss_parameter_supported": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: Option<&str>) -> OAuthClient {
        OAuthClient {
            client_id: "c".into(),
            name: "App".into(),
            description: String::new(),
            redirect_uri: "https://app.example.com/cb".into(),
            public: secret.is_none(),
            secret_hash: secret.map(hash_secret),
            creation_date: 0,
            created_by: "m".into(),
            version: 1,
        }
    }

    #[test]
    fn client_authentication() {
        let confidential = client(Some("fso_cs_right"));
        assert!(check_client_secret(&confidential, Some("fso_cs_right")).is_ok());
        for wrong in [Some("fso_cs_wrong"), Some(""), None] {
            assert!(matches!(
                check_client_secret(&confidential, wrong),
                Err(OAuthError::InvalidClient(_))
            ));
        }
        let public = client(None);
        assert!(check_client_secret(&public, None).is_ok());
        assert!(check_client_secret(&public, Some("anything")).is_err());
    }

    #[test]
    fn secrets_are_prefixed_and_random() {
        let a = random_secret(ACCESS_TOKEN_PREFIX).unwrap();
        let b = random_secret(ACCESS_TOKEN_PREFIX).unwrap();
        assert!(a.starts_with("fso_at_"));
        assert_eq!(a.len(), "fso_at_".len() + 43);
        assert_ne!(a, b);
    }
}
