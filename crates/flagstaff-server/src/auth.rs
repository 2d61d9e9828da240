//! Authentication of REST calls: `Authorization: <api token>` (raw, as LaunchDarkly's clients
//! send it) or `Authorization: Bearer <api token>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use flagstaff_model::account::{AccessToken, Member};
use flagstaff_model::audit::{AuditMember, AuditToken};
use flagstaff_store::{EntityKind, EntityRef};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Who is calling: the token and the member it acts for.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: AccessToken,
    pub member: Member,
}

impl Caller {
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
/// lookup. Short-lived so that a revoked token stops working promptly on every node.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Instant, Caller)>>,
}

const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<Caller> {
        let entries = self.entries.lock().ok()?;
        let (at, caller) = entries.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| caller.clone())
    }

    fn put(&self, hash: String, caller: Caller) {
        if let Ok(mut entries) = self.entries.lock() {
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
        if let Some(caller) = state.tokens.get(&hash) {
            return Ok(caller);
        }
        let caller = load_caller(state, &hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state.tokens.put(hash, caller.clone());
        Ok(caller)
    }
}

async fn load_caller(state: &AppState, hash: &str) -> Result<Option<Caller>, ApiError> {
    let Some(target) = state.store.resolve_alias(&token_alias(hash)).await? else {
        return Ok(None);
    };
    let Some(stored) = state.store.get(&target).await? else {
        return Ok(None);
    };
    let token: AccessToken = crate::services::decode(&stored.doc)?;
    let member_ref = EntityRef::new(EntityKind::Member, "", token.member_id.clone());
    let Some(member) = state.store.get(&member_ref).await? else {
        return Ok(None);
    };
    let member: Member = crate::services::decode(&member.doc)?;
    Ok(Some(Caller { token, member }))
}
