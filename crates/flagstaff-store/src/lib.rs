//! Persistence for Flagstaff.
//!
//! One [`Store`] trait, implemented for SQLite ([`SqliteStore`]) and Postgres ([`PgStore`]),
//! each with its own migrations. Reads fetch single entities or whole scopes; every write is a
//! [`ChangeSet`] committed atomically: entity writes guarded by expected versions, the audit
//! entry and the outbox rows land together or not at all.

use std::sync::Arc;

use async_trait::async_trait;

pub mod approval_jobs;
mod deliveries;
pub mod oauth;
mod postgres;
pub mod segment_members;
mod sqlite;
pub mod store_sync;

pub use deliveries::{
    AttemptRecord, ClaimedDelivery, DeliveryNext, DeliveryOutcome, DeliveryRecord, NewDelivery,
};

pub use approval_jobs::{ApprovalJob, ApprovalJobStore};
pub use oauth::{OAuthSecret, OAuthSecretKind, OAuthStore, RevokeScope};
pub use postgres::PgStore;
pub use segment_members::{SegmentMemberChange, SegmentMemberStore, SegmentMembersWrite};
pub use sqlite::SqliteStore;
pub use store_sync::{StoreSyncState, StoreSyncStore};

/// What kind of document an entity is. The `scope` of each kind is documented on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// scope: "" (one account per installation), key: account id
    Account,
    /// scope: "", key: member id
    Member,
    /// scope: "", key: token id
    Token,
    /// scope: "", key: custom role key
    Role,
    /// scope: "", key: team key
    Team,
    /// scope: "", key: project key
    Project,
    /// scope: project key, key: environment key
    Environment,
    /// scope: project key, key: flag key
    Flag,
    /// scope: "projectKey/environmentKey", key: segment key
    Segment,
    /// scope: "", key: webhook id
    Webhook,
    /// An integration configuration (audit-log subscription). scope: integration key,
    /// key: configuration id
    IntegrationConfig,
    /// An OAuth client registration with a partner (Flagstaff is the client). scope: "",
    /// key: the manifests' `oauthIntegrationKey`
    IntegrationOAuthProvider,
    /// The tokens an OAuth provider issued to Flagstaff, and pending authorizations.
    /// scope: "", key: `oauthIntegrationKey`
    IntegrationOAuthConnection,

    /// A client of Flagstaff's OAuth authorization server. scope: "", key: client id
    OAuthClient,
    /// A member's consent to an OAuth client (an authorized app). scope: "", key: grant id
    OAuthGrant,
    /// A member's sign-in password (argon2id hash). scope: "", key: member id
    Credential,
    /// An approval request for a change to a flag or segment. scope: "", key: request id
    ApprovalRequest,
    /// A flag trigger. scope: "projectKey/triggers:flagKey:environmentKey" (`:` cannot occur
    /// in keys, so deleting an environment's scope never reaches a flag's), key: trigger id;
    /// found by id through the alias `trigger:<id>`
    FlagTrigger,
    /// A flag link. scope: "projectKey/links:flagKey", key: link id
    FlagLink,
    /// A persistent-store configuration of an environment (featureStore or bigSegmentStore
    /// capability). scope: "projectKey/environmentKey" (deleted with the environment), key:
    /// configuration id; found by id through the alias `storecfg:<id>`
    StoreConfig,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Account => "account",
            EntityKind::Member => "member",
            EntityKind::Token => "token",
            EntityKind::Role => "role",
            EntityKind::Team => "team",
            EntityKind::Project => "project",
            EntityKind::Environment => "environment",
            EntityKind::Flag => "flag",
            EntityKind::Segment => "segment",
            EntityKind::Webhook => "webhook",
            EntityKind::IntegrationConfig => "integration-config",
            EntityKind::IntegrationOAuthProvider => "integration-oauth-provider",
            EntityKind::IntegrationOAuthConnection => "integration-oauth-connection",

            EntityKind::OAuthClient => "oauth-client",
            EntityKind::OAuthGrant => "oauth-grant",
            EntityKind::Credential => "credential",
            EntityKind::ApprovalRequest => "approval-request",
            EntityKind::FlagTrigger => "flag-trigger",
            EntityKind::FlagLink => "flag-link",
            EntityKind::StoreConfig => "store-config",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "account" => EntityKind::Account,
            "member" => EntityKind::Member,
            "token" => EntityKind::Token,
            "role" => EntityKind::Role,
            "team" => EntityKind::Team,
            "project" => EntityKind::Project,
            "environment" => EntityKind::Environment,
            "flag" => EntityKind::Flag,
            "segment" => EntityKind::Segment,
            "webhook" => EntityKind::Webhook,
            "integration-config" => EntityKind::IntegrationConfig,
            "integration-oauth-provider" => EntityKind::IntegrationOAuthProvider,
            "integration-oauth-connection" => EntityKind::IntegrationOAuthConnection,

            "oauth-client" => EntityKind::OAuthClient,
            "oauth-grant" => EntityKind::OAuthGrant,
            "credential" => EntityKind::Credential,
            "approval-request" => EntityKind::ApprovalRequest,
            "flag-trigger" => EntityKind::FlagTrigger,
            "flag-link" => EntityKind::FlagLink,
            "store-config" => EntityKind::StoreConfig,
            _ => return None,
        })
    }
}

/// The address of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityRef {
    pub kind: EntityKind,
    pub scope: String,
    pub key: String,
}

impl EntityRef {
    pub fn new(kind: EntityKind, scope: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            kind,
            scope: scope.into(),
            key: key.into(),
        }
    }
}

/// A stored document with its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntity {
    pub key: String,
    pub version: i64,
    pub doc: String,
}

/// One entity change inside a [`ChangeSet`].
#[derive(Debug, Clone)]
pub enum EntityWrite {
    /// Create; fails with [`StoreError::AlreadyExists`] if the address or an alias is taken.
    Insert {
        target: EntityRef,
        version: i64,
        doc: String,
        aliases: Vec<String>,
    },
    /// Replace the document if the stored version is still `expected_version`.
    /// `aliases: Some(..)` replaces the entity's aliases.
    Update {
        target: EntityRef,
        expected_version: i64,
        version: i64,
        doc: String,
        aliases: Option<Vec<String>>,
    },
    /// Delete (with its aliases) if the stored version is still `expected_version`.
    Delete {
        target: EntityRef,
        expected_version: i64,
    },
    /// Delete every entity (and alias) whose scope is `scope` or starts with `scope/`:
    /// everything inside a project or environment.
    DeleteScope { scope: String },
    /// Synced-segment membership rows (see [`segment_members`]); not an entity, but written
    /// in the same transaction as the segment's version bump.
    SegmentMembers(SegmentMembersWrite),
}

/// An audit entry to append.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub date: i64,
    pub kind: String,
    /// Lower-cased text searched by `q`.
    pub search: String,
    pub doc: String,
}

/// A change notification for consumers that run after the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub topic: String,
    pub payload: String,
}

/// Everything one domain operation writes, committed in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub writes: Vec<EntityWrite>,
    pub audit: Vec<AuditRow>,
    pub outbox: Vec<OutboxRow>,
    /// Deliveries of this change's audit entry to webhooks and integrations.
    pub deliveries: Vec<NewDelivery>,
    pub created_at: i64,
}

/// Filters for reading the audit log, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries strictly before this date (Unix ms).
    pub before: Option<i64>,
    /// Only entries strictly after this date (Unix ms).
    pub after: Option<i64>,
    /// Lower-cased substring that must occur in the entry's search text.
    pub q: Option<String>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub created_at: i64,
    pub topic: String,
    pub payload: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The entity changed since it was read (or vanished): re-read and retry.
    #[error("{0} was changed concurrently")]
    Conflict(String),
    /// An insert hit an existing address or alias.
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store:
    OAuthStore + StoreSyncStore + SegmentMemberStore + ApprovalJobStore + Send + Sync + 'static
{
    /// "sqlite" or "postgres".
    fn dialect(&self) -> &'static str;
    /// Closes every connection after outstanding work (SQLite: checkpoints the WAL first).
    async fn close(&self);
    async fn get(&self, target: &EntityRef) -> StoreResult<Option<StoredEntity>>;
    /// All entities of a kind in a scope, ordered by key.
    async fn list(&self, kind: EntityKind, scope: &str) -> StoreResult<Vec<StoredEntity>>;
    /// All entities of a kind in every scope, as `(scope, entity)` ordered by scope and key:
    /// one range of the primary key, for background tasks that watch one kind everywhere.
    async fn list_kind(&self, kind: EntityKind) -> StoreResult<Vec<(String, StoredEntity)>>;
    async fn resolve_alias(&self, alias: &str) -> StoreResult<Option<EntityRef>>;
    /// Commits the change set atomically. Returns the outbox sequence numbers assigned.
    async fn commit(&self, change: ChangeSet) -> StoreResult<Vec<i64>>;
    /// Audit entry documents, newest first.
    async fn audit_list(&self, query: &AuditQuery) -> StoreResult<Vec<String>>;
    async fn audit_get(&self, id: &str) -> StoreResult<Option<String>>;
    /// Outbox events with `seq > after_seq`, oldest first.
    async fn outbox_after(&self, after_seq: i64, limit: i64) -> StoreResult<Vec<OutboxEvent>>;

    /// Leases up to `limit` due pending deliveries (oldest first) until `lease_until`,
    /// skipping the `excluded` destinations (those already at their concurrency limit).
    async fn deliveries_claim(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
        excluded: &[String],
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records attempts and each delivery's next state, in one transaction.
    async fn deliveries_record(&self, outcomes: &[DeliveryOutcome]) -> StoreResult<()>;
    /// A destination's deliveries, newest first, with `seq < before_seq`.
    async fn deliveries_list(
        &self,
        destination: &str,
        before_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>>;
    async fn delivery_get(&self, id: &str) -> StoreResult<Option<DeliveryRecord>>;
    async fn delivery_attempts(&self, id: &str) -> StoreResult<Vec<AttemptRecord>>;
    /// Makes a delivery pending again, due at `now`; false if there is no such delivery.
    async fn delivery_requeue(&self, id: &str, now: i64) -> StoreResult<bool>;
    async fn deliveries_pending(&self, destination: &str) -> StoreResult<i64>;
}

/// Opens the store named by a database URL (`sqlite://path` or `postgres://…`) and runs its
/// migrations.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(url, None).await?))
    } else {
        Err(StoreError::InvalidUrl(format!(
            "{url}: use sqlite://PATH or postgres://USER@HOST:PORT/DB"
        )))
    }
}

/// The SQL shared by both dialects, written once with `?` placeholders;
/// [`numbered_placeholders`] turns them into Postgres' `$1, $2, …`.
pub(crate) mod sql {
    pub const GET: &str =
        "SELECT key, version, doc FROM entities WHERE kind = ? AND scope = ? AND key = ?";
    pub const LIST: &str =
        "SELECT key, version, doc FROM entities WHERE kind = ? AND scope = ? ORDER BY key";
    pub const LIST_KIND: &str =
        "SELECT scope, key, version, doc FROM entities WHERE kind = ? ORDER BY scope, key";
    pub const RESOLVE_ALIAS: &str = "SELECT kind, scope, key FROM entity_aliases WHERE alias = ?";
    pub const INSERT: &str = "INSERT INTO entities (kind, scope, key, version, doc) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
    pub const INSERT_ALIAS: &str = "INSERT INTO entity_aliases (alias, kind, scope, key) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING";
    pub const DELETE_ALIASES: &str =
        "DELETE FROM entity_aliases WHERE kind = ? AND scope = ? AND key = ?";
    pub const UPDATE: &str = "UPDATE entities SET version = ?, doc = ? WHERE kind = ? AND scope = ? AND key = ? AND version = ?";
    pub const DELETE: &str =
        "DELETE FROM entities WHERE kind = ? AND scope = ? AND key = ? AND version = ?";
    pub const DELETE_SCOPE: &str =
        "DELETE FROM entities WHERE scope = ? OR substr(scope, 1, ?) = ?";
    pub const DELETE_SCOPE_ALIASES: &str =
        "DELETE FROM entity_aliases WHERE scope = ? OR substr(scope, 1, ?) = ?";
    pub const INSERT_AUDIT: &str =
        "INSERT INTO audit_log (id, date, kind, search, doc) VALUES (?, ?, ?, ?, ?)";
    pub const GET_AUDIT: &str = "SELECT doc FROM audit_log WHERE id = ?";
    pub const INSERT_OUTBOX: &str =
        "INSERT INTO outbox (created_at, topic, payload) VALUES (?, ?, ?) RETURNING seq";
    pub const OUTBOX_AFTER: &str =
        "SELECT seq, created_at, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?";

    /// The audit listing; `contains` is the dialect's substring test (`instr` / `strpos`).
    pub fn audit_list(contains: &str) -> String {
        format!(
            "SELECT doc FROM audit_log WHERE (? IS NULL OR date < ?) AND (? IS NULL OR date > ?) \
             AND (? IS NULL OR {contains}(search, ?) > 0) ORDER BY date DESC, seq DESC LIMIT ?"
        )
    }

    /// Every statement above, for dialects that rewrite them once at start-up.
    pub const ALL: &[&str] = &[
        GET,
        LIST,
        LIST_KIND,
        RESOLVE_ALIAS,
        INSERT,
        INSERT_ALIAS,
        DELETE_ALIASES,
        UPDATE,
        DELETE,
        DELETE_SCOPE,
        DELETE_SCOPE_ALIASES,
        INSERT_AUDIT,
        GET_AUDIT,
        INSERT_OUTBOX,
        OUTBOX_AFTER,
    ];

    pub fn numbered_placeholders(sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// `scope/` prefix used by [`EntityWrite::DeleteScope`].
/// The length is an `i32` because Postgres' `substr` takes `integer`, not `bigint`.
pub(crate) fn scope_prefix(scope: &str) -> (String, i32) {
    let prefix = format!("{scope}/");
    let len = prefix.chars().count() as i32;
    (prefix, len)
}

/// Shared implementation of the trait: both dialects run the same statements through
/// sqlx, differing only in the pool type, the placeholder style and how a transaction opens.
macro_rules! impl_store_for {
    ($store:ty, $db:ty, $dialect:literal) => {
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn dialect(&self) -> &'static str {
                $dialect
            }

            async fn close(&self) {
                self.close_pools().await
            }

            async fn get(
                &self,
                target: &$crate::EntityRef,
            ) -> $crate::StoreResult<Option<$crate::StoredEntity>> {
                let row: Option<(String, i64, String)> = sqlx::query_as(self.sql($crate::sql::GET))
                    .bind(target.kind.as_str())
                    .bind(&target.scope)
                    .bind(&target.key)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|(key, version, doc)| $crate::StoredEntity { key, version, doc }))
            }

            async fn list(
                &self,
                kind: $crate::EntityKind,
                scope: &str,
            ) -> $crate::StoreResult<Vec<$crate::StoredEntity>> {
                let rows: Vec<(String, i64, String)> = sqlx::query_as(self.sql($crate::sql::LIST))
                    .bind(kind.as_str())
                    .bind(scope)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(key, version, doc)| $crate::StoredEntity { key, version, doc })
                    .collect())
            }

            async fn list_kind(
                &self,
                kind: $crate::EntityKind,
            ) -> $crate::StoreResult<Vec<(String, $crate::StoredEntity)>> {
                let rows: Vec<(String, String, i64, String)> =
                    sqlx::query_as(self.sql($crate::sql::LIST_KIND))
                        .bind(kind.as_str())
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(scope, key, version, doc)| {
                        (scope, $crate::StoredEntity { key, version, doc })
                    })
                    .collect())
            }

            async fn resolve_alias(
                &self,
                alias: &str,
            ) -> $crate::StoreResult<Option<$crate::EntityRef>> {
                let row: Option<(String, String, String)> =
                    sqlx::query_as(self.sql($crate::sql::RESOLVE_ALIAS))
                        .bind(alias)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.and_then(|(kind, scope, key)| {
                    $crate::EntityKind::parse(&kind).map(|kind| $crate::EntityRef {
                        kind,
                        scope,
                        key,
                    })
                }))
            }

            async fn commit(&self, change: $crate::ChangeSet) -> $crate::StoreResult<Vec<i64>> {
                let mut tx = self.begin_write().await?;
                for write in &change.writes {
                    match write {
                        $crate::EntityWrite::Insert {
                            target,
                            version,
                            doc,
                            aliases,
                        } => {
                            let done = sqlx::query(self.sql($crate::sql::INSERT))
                                .bind(target.kind.as_str())
                                .bind(&target.scope)
                                .bind(&target.key)
                                .bind(version)
                                .bind(doc)
                                .execute(&mut *tx)
                                .await?;
                            if done.rows_affected() == 0 {
                                return Err($crate::StoreError::AlreadyExists(format!(
                                    "{} \"{}\"",
                                    target.kind.as_str(),
                                    target.key
                                )));
                            }
                            self.insert_aliases(&mut tx, target, aliases).await?;
                        }
                        $crate::EntityWrite::Update {
                            target,
                            expected_version,
                            version,
                            doc,
                            aliases,
                        } => {
                            let done = sqlx::query(self.sql($crate::sql::UPDATE))
                                .bind(version)
                                .bind(doc)
                                .bind(target.kind.as_str())
                                .bind(&target.scope)
                                .bind(&target.key)
                                .bind(expected_version)
                                .execute(&mut *tx)
                                .await?;
                            if done.rows_affected() == 0 {
                                return Err($crate::StoreError::Conflict(format!(
                                    "{} \"{}\"",
                                    target.kind.as_str(),
                                    target.key
                                )));
                            }
                            if let Some(aliases) = aliases {
                                sqlx::query(self.sql($crate::sql::DELETE_ALIASES))
                                    .bind(target.kind.as_str())
                                    .bind(&target.scope)
                                    .bind(&target.key)
                                    .execute(&mut *tx)
                                    .await?;
                                self.insert_aliases(&mut tx, target, aliases).await?;
                            }
                        }
                        $crate::EntityWrite::Delete {
                            target,
                            expected_version,
                        } => {
                            let done = sqlx::query(self.sql($crate::sql::DELETE))
                                .bind(target.kind.as_str())
                                .bind(&target.scope)
                                .bind(&target.key)
                                .bind(expected_version)
                                .execute(&mut *tx)
                                .await?;
                            if done.rows_affected() == 0 {
                                return Err($crate::StoreError::Conflict(format!(
                                    "{} \"{}\"",
                                    target.kind.as_str(),
                                    target.key
                                )));
                            }
                            sqlx::query(self.sql($crate::sql::DELETE_ALIASES))
                                .bind(target.kind.as_str())
                                .bind(&target.scope)
                                .bind(&target.key)
                                .execute(&mut *tx)
                                .await?;
                        }
                        $crate::EntityWrite::DeleteScope { scope } => {
                            let (prefix, len) = $crate::scope_prefix(scope);
                            for statement in
                                [$crate::sql::DELETE_SCOPE, $crate::sql::DELETE_SCOPE_ALIASES]
                            {
                                sqlx::query(self.sql(statement))
                                    .bind(scope)
                                    .bind(len)
                                    .bind(&prefix)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                        }
                        $crate::EntityWrite::SegmentMembers(members) => {
                            self.write_segment_members(&mut tx, members).await?;
                        }
                    }
                }
                for row in &change.audit {
                    sqlx::query(self.sql($crate::sql::INSERT_AUDIT))
                        .bind(&row.id)
                        .bind(row.date)
                        .bind(&row.kind)
                        .bind(&row.search)
                        .bind(&row.doc)
                        .execute(&mut *tx)
                        .await?;
                }
                let mut seqs = Vec::with_capacity(change.outbox.len());
                for row in &change.outbox {
                    let (seq,): (i64,) = sqlx::query_as(self.sql($crate::sql::INSERT_OUTBOX))
                        .bind(change.created_at)
                        .bind(&row.topic)
                        .bind(&row.payload)
                        .fetch_one(&mut *tx)
                        .await?;
                    seqs.push(seq);
                }
                for chunk in change.deliveries.chunks($crate::deliveries::sql::CHUNK) {
                    let statement = self.dynamic($crate::deliveries::sql::insert(chunk.len()));
                    let mut query = sqlx::query(&statement);
                    for delivery in chunk {
                        query = query
                            .bind(&delivery.id)
                            .bind(&delivery.destination)
                            .bind(&delivery.audit_id)
                            .bind(change.created_at)
                            .bind(delivery.lease_until)
                            .bind(change.created_at)
                            .bind(change.created_at);
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(seqs)
            }

            async fn deliveries_claim(
                &self,
                now: i64,
                lease_until: i64,
                limit: i64,
                excluded: &[String],
            ) -> $crate::StoreResult<Vec<$crate::ClaimedDelivery>> {
                let statement = self.dynamic($crate::deliveries::sql::claim(excluded.len()));
                let mut query = sqlx::query_as::<_, (i64, String, String, String, i64)>(&statement)
                    .bind(lease_until)
                    .bind(now)
                    .bind(now);
                for destination in excluded {
                    query = query.bind(destination);
                }
                let mut tx = self.begin_write().await?;
                let mut rows = query.bind(limit).bind(now).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows.sort_by_key(|row| row.0);
                Ok(rows
                    .into_iter()
                    .map(
                        |(seq, id, destination, audit_id, attempts)| $crate::ClaimedDelivery {
                            seq,
                            id,
                            destination,
                            audit_id,
                            attempts,
                        },
                    )
                    .collect())
            }

            async fn deliveries_record(
                &self,
                outcomes: &[$crate::DeliveryOutcome],
            ) -> $crate::StoreResult<()> {
                if outcomes.is_empty() {
                    return Ok(());
                }
                let mut tx = self.begin_write().await?;
                for chunk in outcomes.chunks($crate::deliveries::sql::CHUNK) {
                    let statement = self.dynamic($crate::deliveries::sql::record(chunk.len()));
                    let mut query = sqlx::query(&statement);
                    for outcome in chunk {
                        let next_attempt_at = match outcome.next {
                            $crate::DeliveryNext::RetryAt(at) => at,
                            _ => outcome.at,
                        };
                        query = query
                            .bind(&outcome.id)
                            .bind(outcome.next.state())
                            .bind(outcome.attempt)
                            .bind(next_attempt_at)
                            .bind(outcome.at)
                            .bind(outcome.status)
                            .bind(outcome.error.as_deref());
                    }
                    query.execute(&mut *tx).await?;
                    let statement =
                        self.dynamic($crate::deliveries::sql::insert_attempts(chunk.len()));
                    let mut query = sqlx::query(&statement);
                    for outcome in chunk {
                        query = query
                            .bind(&outcome.id)
                            .bind(outcome.attempt)
                            .bind(outcome.at)
                            .bind(outcome.status)
                            .bind(outcome.latency_ms)
                            .bind(outcome.error.as_deref())
                            .bind(outcome.response_body.as_deref());
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn deliveries_list(
                &self,
                destination: &str,
                before_seq: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::DeliveryRecord>> {
                let rows: Vec<$crate::deliveries::RecordRow> =
                    sqlx::query_as(self.sql($crate::deliveries::sql::LIST))
                        .bind(destination)
                        .bind(before_seq)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows.into_iter().map($crate::deliveries::record).collect())
            }

            async fn delivery_get(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::DeliveryRecord>> {
                let row: Option<$crate::deliveries::RecordRow> =
                    sqlx::query_as(self.sql($crate::deliveries::sql::GET))
                        .bind(id)
                        .fetch_optional(self.reader())
                        .await?;
                Ok(row.map($crate::deliveries::record))
            }

            async fn delivery_attempts(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Vec<$crate::AttemptRecord>> {
                let rows: Vec<(i64, i64, Option<i64>, i64, Option<String>, Option<String>)> =
                    sqlx::query_as(self.sql($crate::deliveries::sql::ATTEMPTS))
                        .bind(id)
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(attempt, at, status, latency_ms, error, response_body)| {
                        $crate::AttemptRecord {
                            attempt,
                            at,
                            status,
                            latency_ms,
                            error,
                            response_body,
                        }
                    })
                    .collect())
            }

            async fn delivery_requeue(&self, id: &str, now: i64) -> $crate::StoreResult<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(self.sql($crate::deliveries::sql::REQUEUE))
                    .bind(now)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() > 0)
            }

            async fn deliveries_pending(&self, destination: &str) -> $crate::StoreResult<i64> {
                let (count,): (i64,) =
                    sqlx::query_as(self.sql($crate::deliveries::sql::COUNT_PENDING))
                        .bind(destination)
                        .fetch_one(self.reader())
                        .await?;
                Ok(count)
            }

            async fn audit_list(
                &self,
                query: &$crate::AuditQuery,
            ) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(&self.audit_list_sql)
                    .bind(query.before)
                    .bind(query.before)
                    .bind(query.after)
                    .bind(query.after)
                    .bind(query.q.as_deref())
                    .bind(query.q.as_deref())
                    .bind(query.limit)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(|(doc,)| doc).collect())
            }

            async fn audit_get(&self, id: &str) -> $crate::StoreResult<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as(self.sql($crate::sql::GET_AUDIT))
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                Ok(row.map(|(doc,)| doc))
            }

            async fn outbox_after(
                &self,
                after_seq: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::OutboxEvent>> {
                let rows: Vec<(i64, i64, String, String)> =
                    sqlx::query_as(self.sql($crate::sql::OUTBOX_AFTER))
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, created_at, topic, payload)| $crate::OutboxEvent {
                        seq,
                        created_at,
                        topic,
                        payload,
                    })
                    .collect())
            }
        }

        impl $store {
            /// A statement built at run time (its size depends on the data), in this
            /// dialect's placeholder style.
            fn dynamic(&self, statement: String) -> String {
                if $dialect == "postgres" {
                    $crate::sql::numbered_placeholders(&statement)
                } else {
                    statement
                }
            }

            async fn insert_aliases(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                target: &$crate::EntityRef,
                aliases: &[String],
            ) -> $crate::StoreResult<()> {
                for alias in aliases {
                    let done = sqlx::query(self.sql($crate::sql::INSERT_ALIAS))
                        .bind(alias)
                        .bind(target.kind.as_str())
                        .bind(&target.scope)
                        .bind(&target.key)
                        .execute(&mut **tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err($crate::StoreError::AlreadyExists(format!(
                            "an alias of {} \"{}\"",
                            target.kind.as_str(),
                            target.key
                        )));
                    }
                }
                Ok(())
            }
        }
    };
}
pub(crate) use impl_store_for;
