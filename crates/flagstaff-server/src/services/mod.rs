//! Domain services: the only code that writes. Each operation loads what it needs, computes
//! the new state with the pure model crate, and commits one [`PendingChange`]: the entity
//! writes, exactly one audit entry and the outbox rows, in a single transaction.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flagstaff_model::UnixMillis;
use flagstaff_model::audit::{AuditEntry, AuditParent, AuditTarget, ResourceAccess};
use flagstaff_model::environment::Environment;
use flagstaff_model::project::Project;
use flagstaff_policy::Resource;
use flagstaff_store::{
    AuditRow, ChangeSet, EntityKind, EntityRef, EntityWrite, OutboxRow, Store, StoreError,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::ChangeNotice;

pub mod approval_jobs;
pub mod approvals;
pub mod audit;
pub mod bootstrap;
pub mod environments;
pub mod flag_links;
pub mod flags;
pub mod grants;
pub mod integration_oauth;
pub mod members;
pub mod oauth;
pub mod projects;
pub mod reserved_properties;
pub mod roles;
pub mod segment_targets;
pub mod segments;
pub mod store_configs;
pub mod teams;
pub mod tokens;
pub mod triggers;
pub mod webhooks;

/// How often a read-modify-write retries when another writer (another node, or a request
/// that raced past the in-process lock) changed the entity in between.
const MAX_WRITE_ATTEMPTS: usize = 5;

pub struct Services {
    pub store: Arc<dyn Store>,
    pub account_id: String,
    changes: broadcast::Sender<ChangeNotice>,
    locks: Vec<tokio::sync::Mutex<()>>,
    /// Routes each change's audit entry to webhooks and integrations (deliveries are written
    /// in the change's transaction). `None` only while bootstrapping.
    delivery: Option<Arc<crate::integrations::Integrations>>,
}

/// What one operation writes; turned into a [`ChangeSet`] by [`Services::commit`].
pub struct PendingChange {
    pub writes: Vec<EntityWrite>,
    pub audit: AuditDraft,
    pub outbox: Vec<OutboxRow>,
}

/// The parts of an audit entry an operation decides; the rest (id, date, member, token,
/// title) is filled in uniformly.
pub struct AuditDraft {
    pub kind: &'static str,
    pub name: String,
    pub accesses: Vec<Access>,
    pub target_resources: Vec<String>,
    pub parent: Option<AuditParent>,
    pub title_verb: String,
    /// Markdown lines, one per change.
    pub description: Vec<String>,
    pub comment: Option<String>,
    pub site_path: String,
    pub delta: Option<Value>,
    pub previous_version: Option<Value>,
    pub current_version: Option<Value>,
}

/// One (action, resource) a change performs: recorded in the audit entry's `accesses` and,
/// before anything is written, authorized against the caller's permissions.
#[derive(Debug, Clone)]
pub struct Access {
    pub action: String,
    pub resource: Resource,
}

/// The specifier string an audit entry records for a resource, as LaunchDarkly writes it:
/// types and keys of every level, tags of the innermost one
/// (`proj/default:env/production:flag/my-flag;beta`).
pub fn audit_resource(resource: &Resource) -> String {
    let nodes = resource.nodes();
    let mut spec = flagstaff_policy::ResourceSpec::new();
    for (i, node) in nodes.iter().enumerate() {
        let tags: &[String] = if i + 1 == nodes.len() {
            &node.tags
        } else {
            &[]
        };
        spec = spec.with(node.kind.as_str(), &node.key, tags);
    }
    spec.to_string()
}

impl AuditDraft {
    /// The common case: one action on one resource, recorded with one description line and
    /// nothing else. Callers add `comment`, `delta` or versions with struct update syntax.
    pub fn single(
        kind: &'static str,
        name: impl Into<String>,
        action: &str,
        resource: &Resource,
        title_verb: impl Into<String>,
        description: impl Into<String>,
        site_path: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            name: name.into(),
            accesses: vec![access(action, resource)],
            target_resources: vec![audit_resource(resource)],
            parent: None,
            title_verb: title_verb.into(),
            description: vec![description.into()],
            comment: None,
            site_path: site_path.into(),
            delta: None,
            previous_version: None,
            current_version: None,
        }
    }
}

pub fn access(action: &str, resource: &Resource) -> Access {
    Access {
        action: action.to_string(),
        resource: resource.clone(),
    }
}

/// A project with its environments: what building the resources of anything inside the
/// project needs (project tags, environment tags and `critical`).
pub struct ProjectContext {
    pub project: Project,
    pub project_version: i64,
    pub environments: Vec<Environment>,
}

impl ProjectContext {
    pub fn project_resource(&self) -> Resource {
        Resource::project(&self.project.key, &self.project.tags)
    }

    pub fn environment(&self, key: &str) -> Option<&Environment> {
        self.environments.iter().find(|e| e.key == key)
    }

    /// `proj/p:env/e` with tags and `critical`; an environment not (or no longer) in the
    /// project is described by its key alone.
    pub fn env_resource(&self, env_key: &str) -> Resource {
        match self.environment(env_key) {
            Some(e) => self.project_resource().env(&e.key, &e.tags, e.critical),
            None => self.project_resource().env(env_key, &[], false),
        }
    }

    pub fn flag_resource(&self, env_key: &str, flag_key: &str, tags: &[String]) -> Resource {
        self.env_resource(env_key).flag(flag_key, tags)
    }

    pub fn segment_resource(&self, env_key: &str, segment_key: &str, tags: &[String]) -> Resource {
        self.env_resource(env_key).segment(segment_key, tags)
    }

    pub fn environment_names(&self) -> std::collections::BTreeMap<String, String> {
        self.environments
            .iter()
            .map(|e| (e.key.clone(), e.name.clone()))
            .collect()
    }
}

/// Unix time in milliseconds, strictly increasing within this process: every change gets a
/// timestamp of its own, so audit entries never share a date and paging the log with
/// `before`/`after` cannot skip an entry written in the same millisecond as another.
pub fn now_millis() -> UnixMillis {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let next = |last: i64| wall.max(last + 1);
    match LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        Some(next(last))
    }) {
        Ok(last) | Err(last) => next(last),
    }
}

/// Unix time in milliseconds as the wall clock says, for bookkeeping that may be read many
/// times a millisecond (delivery leases, retry times). [`now_millis`] would run ahead of real
/// time if it were called more than a thousand times a second.
pub fn wall_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn decode<T: DeserializeOwned>(doc: &str) -> ApiResult<T> {
    serde_json::from_str(doc)
        .map_err(|e| ApiError::Internal(format!("corrupt stored document: {e}")))
}

pub fn encode<T: Serialize>(value: &T) -> ApiResult<String> {
    serde_json::to_string(value)
        .map_err(|e| ApiError::Internal(format!("cannot encode document: {e}")))
}

pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl Services {
    pub fn new(
        store: Arc<dyn Store>,
        account_id: String,
        changes: broadcast::Sender<ChangeNotice>,
    ) -> Self {
        Self {
            store,
            account_id,
            changes,
            locks: (0..256).map(|_| tokio::sync::Mutex::new(())).collect(),
            delivery: None,
        }
    }

    /// Delivers every change's audit entry to the destinations `integrations` routes it to.
    /// The integrations runtime, once delivery is wired (not while bootstrapping).
    pub fn integrations(&self) -> Option<Arc<crate::integrations::Integrations>> {
        self.delivery.clone()
    }

    pub fn with_delivery(mut self, integrations: Arc<crate::integrations::Integrations>) -> Self {
        self.delivery = Some(integrations);
        self
    }

    /// Serializes read-modify-write cycles on one entity within this process, so concurrent
    /// patches of the same flag queue instead of conflicting. (Across nodes, the version
    /// check in the store still catches races; the loser retries.)
    pub async fn lock(&self, target: &EntityRef) -> tokio::sync::MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        target.hash(&mut h);
        self.locks[(h.finish() % self.locks.len() as u64) as usize]
            .lock()
            .await
    }

    /// Loads and decodes one entity with its version.
    pub async fn load<T: DeserializeOwned>(
        &self,
        target: &EntityRef,
    ) -> ApiResult<Option<(T, i64)>> {
        match self.store.get(target).await? {
            Some(stored) => Ok(Some((decode(&stored.doc)?, stored.version))),
            None => Ok(None),
        }
    }

    /// A write that turned out to change nothing writes nothing, but still answers with the
    /// entity: the caller must at least be allowed to read it.
    pub async fn require_view_project(&self, caller: &Caller, project: &str) -> ApiResult<()> {
        let (project, _) = self.get_project(project).await?;
        caller.require(
            "viewProject",
            &Resource::project(&project.key, &project.tags),
        )
    }

    /// The project and its environments, or 404.
    pub async fn project_context(&self, key: &str) -> ApiResult<ProjectContext> {
        let (project, project_version) = self.get_project(key).await?;
        let environments = self.list_environments(key).await?;
        Ok(ProjectContext {
            project,
            project_version,
            environments,
        })
    }

    pub async fn load_all<T: DeserializeOwned>(
        &self,
        kind: EntityKind,
        scope: &str,
    ) -> ApiResult<Vec<(T, i64)>> {
        self.store
            .list(kind, scope)
            .await?
            .into_iter()
            .map(|s| Ok((decode(&s.doc)?, s.version)))
            .collect()
    }

    /// Commits one change: entity writes, one audit entry, outbox rows. Returns the entry.
    pub async fn commit(
        &self,
        caller: Option<&Caller>,
        now: UnixMillis,
        change: PendingChange,
    ) -> Result<AuditEntry, CommitError> {
        self.commit_with(caller, now, change, None).await
    }

    /// [`Services::commit`], recording the external request that caused the change (a flag
    /// trigger's body) as the audit entry's `triggerBody`.
    pub async fn commit_with(
        &self,
        caller: Option<&Caller>,
        now: UnixMillis,
        change: PendingChange,
        trigger_body: Option<Value>,
    ) -> Result<AuditEntry, CommitError> {
        if let Some(caller) = caller {
            for a in &change.audit.accesses {
                caller.require(&a.action, &a.resource)?;
            }
        }
        self.commit_checked(caller, now, change, trigger_body).await
    }

    /// [`Services::commit`] for a change the service has authorized by a rule the policy
    /// language cannot state: a member acting on what is theirs (their consent to an OAuth
    /// app, revoking it). The caller is still recorded in the audit entry.
    pub async fn commit_authorized(
        &self,
        caller: &Caller,
        now: UnixMillis,
        change: PendingChange,
    ) -> Result<AuditEntry, CommitError> {
        self.commit_checked(Some(caller), now, change, None).await
    }

    async fn commit_checked(
        &self,
        caller: Option<&Caller>,
        now: UnixMillis,
        change: PendingChange,
        trigger_body: Option<Value>,
    ) -> Result<AuditEntry, CommitError> {
        let audit_accesses = change.audit.accesses.clone();
        let mut entry = self.audit_entry(caller, now, change.audit);
        entry.trigger_body = trigger_body;
        let mut deliveries = match &self.delivery {
            Some(integrations) => {
                integrations
                    .destinations
                    .ensure_loaded(self.store.as_ref(), &integrations.catalogue)
                    .await;
                integrations.destinations.route(&entry.id, &audit_accesses)
            }
            None => Vec::new(),
        };
        // Deliveries this node will send itself are written leased to it; dropping
        // `handed` without delivering (the commit failed) gives their room back.
        let handed = self
            .delivery
            .as_ref()
            .and_then(|integrations| integrations.handoff())
            .map(|handoff| handoff.admit(&mut deliveries));
        let unleased = deliveries.iter().any(|d| d.lease_until == 0);
        let search = audit_search_text(&entry);
        let doc = serde_json::to_string(&entry)
            .map_err(|e| CommitError::Api(ApiError::Internal(e.to_string())))?;
        let mut outbox = change.outbox;
        for row in &mut outbox {
            // Consumers find the audit entry of the change they are told about.
            if let Ok(mut payload) = serde_json::from_str::<Value>(&row.payload)
                && let Some(obj) = payload.as_object_mut()
            {
                obj.insert("auditId".into(), Value::String(entry.id.clone()));
                row.payload = payload.to_string();
            }
        }
        let topics: Vec<String> = outbox.iter().map(|r| r.topic.clone()).collect();
        let set = ChangeSet {
            writes: change.writes,
            audit: vec![AuditRow {
                id: entry.id.clone(),
                date: entry.date,
                kind: entry.kind.clone(),
                search,
                doc,
            }],
            outbox,
            deliveries,
            created_at: now,
        };
        let seqs = self.store.commit(set).await.map_err(|e| match e {
            StoreError::Conflict(what) => CommitError::Conflict(what),
            other => CommitError::Api(other.into()),
        })?;
        if let Some(handed) = handed.filter(|h| !h.is_empty()) {
            handed.deliver(entry.clone());
        }
        if unleased && let Some(integrations) = &self.delivery {
            integrations.wake.notify_one();
        }
        for (outbox_seq, topic) in seqs.into_iter().zip(topics) {
            // No receivers is fine: nothing is listening yet.
            let _ = self.changes.send(ChangeNotice { outbox_seq, topic });
        }
        Ok(entry)
    }

    /// Runs `attempt` (a whole read-modify-write) until it commits without a concurrent
    /// change in between, at most [`MAX_WRITE_ATTEMPTS`] times.
    pub async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> ApiResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CommitError>>,
    {
        let mut last = String::new();
        for _ in 0..MAX_WRITE_ATTEMPTS {
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(CommitError::Conflict(what)) => last = what,
                Err(CommitError::Api(e)) => return Err(e),
            }
        }
        Err(ApiError::OptimisticLock(format!(
            "Conflict. Optimistic lock error: {last} kept changing concurrently. Try again later."
        )))
    }

    fn audit_entry(
        &self,
        caller: Option<&Caller>,
        now: UnixMillis,
        draft: AuditDraft,
    ) -> AuditEntry {
        let member = caller.map(Caller::audit_member);
        let actor = match &member {
            Some(m) => format!("[{}](mailto:{})", m.display_name(), m.email),
            None => "Flagstaff".to_string(),
        };
        let title = format!(
            "{actor} {} [{}]({})",
            draft.title_verb, draft.name, draft.site_path
        );
        let description = draft
            .description
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        let short_description = draft.description.first().cloned().unwrap_or_default();
        AuditEntry {
            // Time-ordered like LaunchDarkly's ObjectIds: new entries land at the end of the
            // id index instead of on a random page of it.
            id: format!(
                "{:012x}{}",
                now.max(0),
                &flagstaff_model::new_object_id()[..12]
            ),
            account_id: self.account_id.clone(),
            date: now,
            accesses: draft
                .accesses
                .iter()
                .map(|a| ResourceAccess {
                    action: a.action.clone(),
                    resource: audit_resource(&a.resource),
                })
                .collect(),
            kind: draft.kind.to_string(),
            name: draft.name.clone(),
            description,
            short_description,
            comment: draft.comment.filter(|c| !c.is_empty()),
            member,
            token: caller.and_then(Caller::audit_token),
            app: caller.and_then(Caller::audit_app),
            title_verb: draft.title_verb,
            title,
            target: AuditTarget {
                name: draft.name,
                resources: draft.target_resources,
            },
            parent: draft.parent,
            delta: draft.delta,
            previous_version: draft.previous_version,
            current_version: draft.current_version,
            trigger_body: None,
        }
    }
}

/// Why a commit attempt failed: a concurrent change (retry) or anything else (give up).
#[derive(Debug)]
pub enum CommitError {
    Conflict(String),
    Api(ApiError),
}

impl CommitError {
    /// The API error of a write that creates something: a conflicting row means its key is
    /// taken.
    pub fn already_exists(self) -> ApiError {
        match self {
            CommitError::Api(e) => e,
            CommitError::Conflict(what) => ApiError::Conflict(what),
        }
    }

    /// The API error of a write of something read just before: a conflicting row means it
    /// changed in between (409, LaunchDarkly's optimistic-locking error).
    pub fn concurrent_change(self) -> ApiError {
        match self {
            CommitError::Api(e) => e,
            CommitError::Conflict(what) => ApiError::OptimisticLock(format!(
                "{what} was changed concurrently; read it again and retry"
            )),
        }
    }
}

impl From<ApiError> for CommitError {
    fn from(e: ApiError) -> Self {
        CommitError::Api(e)
    }
}

impl From<flagstaff_model::ModelError> for CommitError {
    fn from(e: flagstaff_model::ModelError) -> Self {
        CommitError::Api(e.into())
    }
}

impl From<StoreError> for CommitError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => CommitError::Conflict(what),
            other => CommitError::Api(other.into()),
        }
    }
}

fn audit_search_text(entry: &AuditEntry) -> String {
    let mut text = format!(
        "{}\n{}\n{}\n{}\n{}",
        entry.name, entry.kind, entry.title, entry.description, entry.short_description
    );
    if let Some(c) = &entry.comment {
        text.push('\n');
        text.push_str(c);
    }
    for r in &entry.target.resources {
        text.push('\n');
        text.push_str(r);
    }
    for a in &entry.accesses {
        text.push('\n');
        text.push_str(&a.action);
    }
    text.to_lowercase()
}

/// Top-level fields whose values differ between two JSON objects, in `after`'s order.
pub fn changed_fields(before: &Value, after: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.as_object().unwrap_or(&empty);
    let a = after.as_object().unwrap_or(&empty);
    let mut fields: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    fields.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    fields
}
