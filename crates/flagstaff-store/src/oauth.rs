//! OAuth authorization-server secrets: sign-in sessions, authorization codes, access and
//! refresh tokens, stored by the SHA-256 of the secret.
//!
//! These rows are protocol state, not domain entities: one is written for every sign-in and
//! every token request, and none of them is a change an administrator reviews. The changes
//! that are (clients, consents, revocations of an authorization, passwords) are entities
//! committed with an audit entry; these rows only ever refer to them.

use async_trait::async_trait;

use crate::StoreResult;

/// One stored secret (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthSecret {
    /// Hex SHA-256 of the secret.
    pub hash: String,
    pub kind: OAuthSecretKind,
    /// Everything issued from one authorization code shares a family; a session is its own.
    pub family: String,
    pub member_id: String,
    /// Empty for sessions.
    pub client_id: String,
    /// The consent (grant entity) the secret was issued under; empty for sessions.
    pub grant_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// JSON: a code's redirect URI and PKCE challenge, a session's CSRF token.
    pub data: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthSecretKind {
    Session,
    Code,
    Access,
    Refresh,
}

impl OAuthSecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthSecretKind::Session => "session",
            OAuthSecretKind::Code => "code",
            OAuthSecretKind::Access => "access",
            OAuthSecretKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "session" => OAuthSecretKind::Session,
            "code" => OAuthSecretKind::Code,
            "access" => OAuthSecretKind::Access,
            "refresh" => OAuthSecretKind::Refresh,
            _ => return None,
        })
    }
}

/// Which secrets [`OAuthStore::oauth_revoke`] revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope<'a> {
    /// One secret, by hash.
    Hash(&'a str),
    /// Everything issued from one authorization code (or one session).
    Family(&'a str),
    /// Everything issued under one consent.
    Grant(&'a str),
}

#[async_trait]
pub trait OAuthStore {
    async fn oauth_get(&self, hash: &str) -> StoreResult<Option<OAuthSecret>>;
    /// In one transaction: marks `consume` used (if given) and inserts `insert`. Returns false,
    /// writing nothing, when `consume` was already used or revoked (a lost race or a replay).
    async fn oauth_exchange(
        &self,
        consume: Option<&str>,
        now: i64,
        insert: &[OAuthSecret],
    ) -> StoreResult<bool>;
    /// Revokes the secrets `scope` selects that are not revoked yet; returns how many.
    async fn oauth_revoke(&self, scope: RevokeScope<'_>, now: i64) -> StoreResult<u64>;
    /// Deletes secrets that expired before `before`.
    async fn oauth_purge(&self, before: i64) -> StoreResult<u64>;
}

pub(crate) mod sql {
    pub const GET: &str = "SELECT hash, kind, family, member_id, client_id, grant_id, scope, data, created_at, expires_at, used_at, revoked_at FROM oauth_secrets WHERE hash = ?";
    pub const INSERT: &str = "INSERT INTO oauth_secrets (hash, kind, family, member_id, client_id, grant_id, scope, data, created_at, expires_at, used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)";
    pub const CONSUME: &str = "UPDATE oauth_secrets SET used_at = ? WHERE hash = ? AND used_at IS NULL AND revoked_at IS NULL";
    pub const REVOKE_HASH: &str =
        "UPDATE oauth_secrets SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL";
    pub const REVOKE_FAMILY: &str =
        "UPDATE oauth_secrets SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL";
    pub const REVOKE_GRANT: &str =
        "UPDATE oauth_secrets SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL";
    pub const PURGE: &str = "DELETE FROM oauth_secrets WHERE expires_at < ?";

    pub const ALL: &[&str] = &[
        GET,
        INSERT,
        CONSUME,
        REVOKE_HASH,
        REVOKE_FAMILY,
        REVOKE_GRANT,
        PURGE,
    ];
}

pub(crate) type SecretRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn secret(row: SecretRow) -> Option<OAuthSecret> {
    let (
        hash,
        kind,
        family,
        member_id,
        client_id,
        grant_id,
        scope,
        data,
        created_at,
        expires_at,
        used_at,
        revoked_at,
    ) = row;
    Some(OAuthSecret {
        hash,
        kind: OAuthSecretKind::parse(&kind)?,
        family,
        member_id,
        client_id,
        grant_id,
        scope,
        data,
        created_at,
        expires_at,
        used_at,
        revoked_at,
    })
}

/// The [`OAuthStore`] implementation both dialects share.
macro_rules! impl_oauth_store_for {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::oauth::OAuthStore for $store {
            async fn oauth_get(
                &self,
                hash: &str,
            ) -> $crate::StoreResult<Option<$crate::oauth::OAuthSecret>> {
                let row: Option<$crate::oauth::SecretRow> =
                    sqlx::query_as(self.sql($crate::oauth::sql::GET))
                        .bind(hash)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.and_then($crate::oauth::secret))
            }

            async fn oauth_exchange(
                &self,
                consume: Option<&str>,
                now: i64,
                insert: &[$crate::oauth::OAuthSecret],
            ) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                if let Some(hash) = consume {
                    let done = sqlx::query(self.sql($crate::oauth::sql::CONSUME))
                        .bind(now)
                        .bind(hash)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        tx.rollback().await?;
                        return Ok(false);
                    }
                }
                for s in insert {
                    sqlx::query(self.sql($crate::oauth::sql::INSERT))
                        .bind(&s.hash)
                        .bind(s.kind.as_str())
                        .bind(&s.family)
                        .bind(&s.member_id)
                        .bind(&s.client_id)
                        .bind(&s.grant_id)
                        .bind(&s.scope)
                        .bind(&s.data)
                        .bind(s.created_at)
                        .bind(s.expires_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn oauth_revoke(
                &self,
                scope: $crate::oauth::RevokeScope<'_>,
                now: i64,
            ) -> $crate::StoreResult<u64> {
                let (statement, value) = match scope {
                    $crate::oauth::RevokeScope::Hash(v) => ($crate::oauth::sql::REVOKE_HASH, v),
                    $crate::oauth::RevokeScope::Family(v) => ($crate::oauth::sql::REVOKE_FAMILY, v),
                    $crate::oauth::RevokeScope::Grant(v) => ($crate::oauth::sql::REVOKE_GRANT, v),
                };
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(self.sql(statement))
                    .bind(now)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }

            async fn oauth_purge(&self, before: i64) -> $crate::StoreResult<u64> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(self.sql($crate::oauth::sql::PURGE))
                    .bind(before)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use impl_oauth_store_for;
