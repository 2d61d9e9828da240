//! Authentication of REST calls: `Authorization: <api token>` (raw, as LaunchDarkly's clients
//! send it) or `Authorization: Bearer <api token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::sync::Arc;

use flagstaff_model::account::{AccessToken, CustomRole, Member, Team};
use flagstaff_model::audit::{AuditMember, AuditToken};
use flagstaff_policy::{
    Authorizer, BasePermissions, BaseRole, CompiledPolicy, Decision, Permissions, Resource,
    parse_policy,
};
use flagstaff_store::{EntityKind, EntityRef, Store};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::services::decode;
use crate::state::AppState;

/// Who is calling: the token, the member it acts for, and what the token may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: AccessToken,
    pub member: Member,
    /// The token's effective permissions: for a personal token its own scope bounded by its
    /// member's current permissions; for a service token its own scope.
    pub permissions: Arc<Permissions>,
}

impl Caller {
    pub fn decide(&self, action: &str, resource: &Resource) -> Decision {
        self.permissions.decide(action, resource)
    }

    pub fn can(&self, action: &str, resource: &Resource) -> bool {
        self.decide(action, resource).is_allowed()
    }

    /// The one authorization check: `action` on `resource`, or a 403 that names both.
    pub fn require(&self, action: &str, resource: &Resource) -> ApiResult<()> {
        match self.decide(action, resource) {
            Decision::Allowed => Ok(()),
            decision => Err(ApiError::Forbidden(format!(
                "Forbidden. Access to the requested resource was denied: action \"{action}\" on \"{resource}\" is {} for token \"{}\"",
                if decision == Decision::Denied {
                    "denied by a policy statement"
                } else {
                    "not allowed by any role"
                },
                self.token.name
            ))),
        }
    }

    /// `action` on every resource (flag-wide changes concern every environment).
    pub fn require_all<'a>(
        &self,
        action: &str,
        resources: impl IntoIterator<Item = &'a Resource>,
    ) -> ApiResult<()> {
        resources
            .into_iter()
            .try_for_each(|r| self.require(action, r))
    }

    pub fn audit_member(&self) -> AuditMember {
        AuditMember {
            id: self.member.id.clone(),
            email: self.member.email.clone(),
            first_name: self.member.first_name.clone(),
            last_name: self.member.last_name.clone(),
        }
    }

    pub fn audit_token(&self) -> AuditToken {
        AuditToken {
            id: self.token.id.clone(),
            name: self.token.name.clone(),
            ending: self.token.ending.clone(),
            service_token: self.token.service_token,
        }
    }
}

/// Hex SHA-256 of a token secret: the only form in which secrets are stored.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The alias under which a token is found by its secret's hash.
pub fn token_alias(secret_hash: &str) -> String {
    format!("token:{secret_hash}")
}

/// Resolved callers by secret hash for a few seconds, so a burst of requests costs one
/// lookup. Short-lived so that a revoked token stops working promptly on every node; on the
/// node that made a change to members, roles, teams or tokens it is cleared at once
/// ([`TokenCache::clear`]).
///
/// It also remembers when each token was last used and each member last seen, in memory
/// only: `lastUsed` / `_lastSeen` are per node and start over when the process restarts
/// (writing them to the store would turn every read into a write).
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Instant, Caller)>>,
    last_used: Mutex<HashMap<String, i64>>,
    last_seen: Mutex<HashMap<String, i64>>,
    /// Bumped by every [`TokenCache::clear`]: a caller loaded before a clear is not cached.
    generation: std::sync::atomic::AtomicU64,
}

const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        let (at, caller) = entries.get(hash)?;
        // A caller found by a previous secret is served only until that secret expires.
        let current = caller.token.secret_hash == hash
            || caller
                .token
                .previous_secret
                .as_ref()
                .is_some_and(|old| old.expiry > crate::services::wall_millis());
        (current && at.elapsed() < TOKEN_CACHE_TTL).then(|| caller.clone())
    }

    /// Forgets every resolved caller: the next request of each token re-reads its token,
    /// member, roles and teams. Called after every change to members, roles, teams or tokens.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            entries.clear();
        }
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that `caller` made a request now.
    pub fn touch(&self, caller: &Caller) {
        let now = crate::services::wall_millis();
        if let Ok(mut used) = self.last_used.lock() {
            used.insert(caller.token.id.clone(), now);
        }
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.insert(caller.member.id.clone(), now);
        }
    }

    /// When the token was last used on this node since it started.
    pub fn last_used(&self, token_id: &str) -> Option<i64> {
        self.last_used.lock().ok()?.get(token_id).copied()
    }

    /// When the member last made a request (with any of their tokens) on this node.
    pub fn last_seen(&self, member_id: &str) -> Option<i64> {
        self.last_seen.lock().ok()?.get(member_id).copied()
    }

    /// Caches `caller` unless the cache was cleared since `generation` (the caller may have
    /// been read before the change that cleared it).
    fn put(&self, hash: String, caller: Caller, generation: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation() != generation {
                return;
            }
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| at.elapsed() < TOKEN_CACHE_TTL);
            }
            entries.insert(hash, (Instant::now(), caller));
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or(header)
            .trim();
        if secret.is_empty() {
            return Err(ApiError::Unauthorized);
        }
        let hash = hash_secret(secret);
        let caller = authenticate(state, &hash).await?;
        if let Some(rate) = state
            .rate_limiter
            .check(&caller.token.id, crate::services::wall_millis())
        {
            if let Some(slot) = parts.extensions.get::<crate::ratelimit::RateSlot>()
                && let Ok(mut s) = slot.0.lock()
            {
                *s = Some(rate);
            }
            if !rate.allowed {
                return Err(ApiError::RateLimited(rate.limit));
            }
        }
        Ok(caller)
    }
}

async fn authenticate(state: &AppState, hash: &str) -> Result<Caller, ApiError> {
    if let Some(caller) = state.tokens.get(hash) {
        state.tokens.touch(&caller);
        return Ok(caller);
    }
    let generation = state.tokens.generation();
    let caller = load_caller(state, hash)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    state
        .tokens
        .put(hash.to_string(), caller.clone(), generation);
    state.tokens.touch(&caller);
    Ok(caller)
}

async fn load_caller(state: &AppState, hash: &str) -> Result<Option<Caller>, ApiError> {
    let Some(target) = state.store.resolve_alias(&token_alias(hash)).await? else {
        return Ok(None);
    };
    let Some(stored) = state.store.get(&target).await? else {
        return Ok(None);
    };
    let token: AccessToken = decode(&stored.doc)?;
    // A token found by its previous secret works only until that secret's expiry.
    if token.secret_hash != hash
        && !token.previous_secret.as_ref().is_some_and(|old| {
            old.secret_hash == hash && old.expiry > crate::services::wall_millis()
        })
    {
        return Ok(None);
    }
    caller_of_token(state.store.as_ref(), token).await
}

/// The caller a token acts as now (its member and current permissions); `None` when the
/// member is gone. Also used to complete work a token started earlier (an OAuth callback).
pub async fn caller_of_token(store: &dyn Store, token: AccessToken) -> ApiResult<Option<Caller>> {
    let member_ref = EntityRef::new(EntityKind::Member, "", token.member_id.clone());
    let Some(member) = store.get(&member_ref).await? else {
        // A removed member's tokens stop working.
        return Ok(None);
    };
    let member: Member = decode(&member.doc)?;
    let permissions = Arc::new(token_permissions(store, &token, &member).await?);
    Ok(Some(Caller {
        token,
        member,
        permissions,
    }))
}

/// A member's permissions: their custom roles if they have any, else their built-in role;
/// plus the roles of every team they belong to.
pub async fn member_permissions(store: &dyn Store, member: &Member) -> ApiResult<Permissions> {
    let mut roles: Vec<Arc<CompiledPolicy>> = Vec::new();
    if member.custom_roles.is_empty() {
        roles.push(base_role(&member.role)?.policy());
    } else {
        for key in &member.custom_roles {
            roles.push(compile_custom_role(store, key, &member.role_attributes).await?);
        }
    }
    for stored in store.list(EntityKind::Team, "").await? {
        let team: Team = decode(&stored.doc)?;
        if team.member_ids.contains(&member.id) {
            let mut attributes = team.role_attributes.clone();
            for (k, v) in &member.role_attributes {
                attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for key in &team.custom_role_keys {
                roles.push(compile_custom_role(store, key, &attributes).await?);
            }
        }
    }
    Ok(Permissions::new(roles))
}

/// What a token may do. A personal token never exceeds its member's *current* permissions.
pub async fn token_permissions(
    store: &dyn Store,
    token: &AccessToken,
    member: &Member,
) -> ApiResult<Permissions> {
    let mut scope: Vec<Arc<CompiledPolicy>> = Vec::new();
    if !token.inline_role.is_empty() {
        let statements = parse_policy(&serde_json::Value::Array(token.inline_role.clone()))
            .map_err(|e| {
                ApiError::Internal(format!(
                    "stored inline policy of token {} is invalid: {e}",
                    token.id
                ))
            })?;
        // A placeholder the member no longer has a value for grants nothing (like a custom
        // role's), instead of failing every request the token makes.
        let compiled = CompiledPolicy::compile(&statements, &member.role_attributes)
            .unwrap_or_else(|e| {
                tracing::warn!(token = %token.id, "inline policy grants nothing: {e}");
                CompiledPolicy::default()
            });
        scope.push(Arc::new(compiled));
    } else if !token.custom_role_ids.is_empty() {
        for id in &token.custom_role_ids {
            scope.push(compile_custom_role(store, id, &member.role_attributes).await?);
        }
    } else if let Some(role) = &token.role {
        scope.push(base_role(role)?.policy());
    }
    if token.service_token {
        return Ok(Permissions::new(scope));
    }
    let member_side = member_permissions(store, member).await?;
    if scope.is_empty() {
        return Ok(member_side);
    }
    Ok(Permissions::new(scope).bounded_by(member_side))
}

fn base_role(name: &str) -> ApiResult<BaseRole> {
    BaseRole::from_name(name)
        .ok_or_else(|| ApiError::Internal(format!("unknown built-in role \"{name}\"")))
}

/// Finds a custom role by key (or `_id`) and compiles it with `attributes`. A role that was
/// deleted grants nothing.
async fn compile_custom_role(
    store: &dyn Store,
    key_or_id: &str,
    attributes: &flagstaff_model::account::RoleAttributes,
) -> ApiResult<Arc<CompiledPolicy>> {
    let role = match store
        .get(&EntityRef::new(EntityKind::Role, "", key_or_id))
        .await?
    {
        Some(stored) => Some(decode::<CustomRole>(&stored.doc)?),
        None => match store.resolve_alias(&format!("role-id:{key_or_id}")).await? {
            Some(target) => match store.get(&target).await? {
                Some(stored) => Some(decode::<CustomRole>(&stored.doc)?),
                None => None,
            },
            None => None,
        },
    };
    let Some(role) = role else {
        return Ok(Arc::new(CompiledPolicy::default()));
    };
    let statements = parse_policy(&serde_json::Value::Array(role.policy.clone())).map_err(|e| {
        ApiError::Internal(format!(
            "stored policy of role {} is invalid: {e}",
            role.key
        ))
    })?;
    let base =
        BasePermissions::from_name(&role.base_permissions).unwrap_or(BasePermissions::NoAccess);
    // An assignment whose role attributes do not fill the role's placeholders grants nothing.
    Ok(Arc::new(
        CompiledPolicy::compile_role(&statements, base, attributes).unwrap_or_default(),
    ))
}
