//! The per-environment SDK data cache and the change feed that keeps it current.
//!
//! ```text
//! Services::commit ─► outbox row (same transaction) ─► ChangeNotice (wake-up only)
//!                                                          │
//!     SdkHub consumer task ◄───────────────────────────────┘ (+ a 500 ms poll of the outbox)
//!       reads Store::outbox_after(last_seq), reloads each changed flag/segment from the store,
//!       converts it for every loaded environment, updates that environment's EnvFeed and
//!       broadcasts a patch/delete to its streams
//! ```
//!
//! **Versions.** The SDK `version` of a flag or segment is the outbox sequence number of the
//! entity's last change (flags: any change to the flag in the project; segments: per
//! environment). Outbox sequences are persistent and strictly increasing, so versions rise
//! across updates, delete (the `delete` event carries the sequence of the deletion) and
//! re-create, across restarts and on every node sharing the database. The index from entity
//! to sequence is built once per process, lazily, by reading the outbox from the start.
//!
//! **Consistency.** Payloads are never trusted: each outbox row only names what changed, and
//! the current document is read from the store. A gap in the sequence (a transaction that
//! has not committed yet on Postgres) is waited for up to [`GAP_WAIT`]; after that the
//! whole index and every feed are rebuilt (streams get a fresh `put`).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use flagstaff_eval::{Flag, InMemoryStore, Segment};
use flagstaff_model::environment::Environment;
use flagstaff_model::flag::FeatureFlag;
use flagstaff_model::segment::Segment as RestSegment;
use flagstaff_store::{EntityKind, EntityRef, Store};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, broadcast};

use super::convert::{sdk_flag, sdk_segment};
use crate::error::{ApiError, ApiResult};
use crate::state::ChangeNotice;

/// How long a hole in the outbox sequence is waited for before the feed rebuilds.
pub const GAP_WAIT: Duration = Duration::from_secs(1);
/// How often the consumer reads the outbox without a wake-up (other nodes' changes).
pub const POLL_EVERY: Duration = Duration::from_millis(500);
const PAGE: i64 = 500;
/// Default SSE heartbeat (a comment line), as LaunchDarkly's Relay Proxy.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnvId {
    pub project: String,
    pub env: String,
}

/// What a feed tells its streams.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    /// A flag or segment changed: `data` is its SDK JSON.
    Patch {
        kind: ItemKind,
        key: String,
        data: Arc<str>,
    },
    Delete {
        kind: ItemKind,
        key: String,
        version: u64,
    },
    /// Everything may have changed: send a full `put`.
    Reset,
    /// The environment is gone: end the stream.
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Flag,
    Segment,
}

impl ItemKind {
    pub fn path(self, key: &str) -> String {
        match self {
            ItemKind::Flag => format!("/flags/{key}"),
            ItemKind::Segment => format!("/segments/{key}"),
        }
    }
}

/// One environment's SDK data.
pub struct EnvState {
    pub environment: Environment,
    pub flags: BTreeMap<String, Flag>,
    pub segments: BTreeMap<String, Segment>,
    /// Compiled, for client-side evaluation (tombstones for deleted items).
    pub eval: InMemoryStore,
    /// `{"flags":{…},"segments":{…}}`, serialised once per change.
    pub all_json: Arc<str>,
    pub etag: String,
    /// The outbox sequence this state reflects: rises with every change applied, so
    /// persistent-store sync can order and coalesce pushes by it.
    pub version: i64,
}

impl EnvState {
    fn refresh(&mut self) {
        let body = serde_json::json!({"flags": self.flags, "segments": self.segments}).to_string();
        self.etag = format!(
            "\"{}\"",
            hex::encode(&Sha256::digest(body.as_bytes())[..16])
        );
        self.all_json = body.into();
    }
}

pub struct EnvFeed {
    pub id: EnvId,
    pub state: RwLock<EnvState>,
    pub tx: broadcast::Sender<FeedEvent>,
}

impl EnvFeed {
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, EnvState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, EnvState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `item` under `key` (or, with `None`, marks the stored one deleted at `seq`),
    /// refreshes the `/all` payload and broadcasts the patch or delete.
    fn apply<T: FeedItem>(&self, key: &str, item: Option<T>, seq: i64) {
        let event = {
            let mut st = self.write();
            let event = match item {
                Some(item) => {
                    let data: Arc<str> = serde_json::to_string(&item).unwrap_or_default().into();
                    item.clone().index(&mut st.eval);
                    T::items(&mut st).insert(key.to_string(), item);
                    Some(FeedEvent::Patch {
                        kind: T::KIND,
                        key: key.into(),
                        data,
                    })
                }
                None => T::items(&mut st).remove(key).map(|mut gone| {
                    gone.mark_deleted(seq as u64);
                    gone.index(&mut st.eval);
                    FeedEvent::Delete {
                        kind: T::KIND,
                        key: key.into(),
                        version: seq as u64,
                    }
                }),
            };
            if event.is_some() {
                st.version = st.version.max(seq);
                st.refresh();
            }
            event
        };
        if let Some(e) = event {
            let _ = self.tx.send(e);
        }
    }
}

/// A flag or a segment as [`EnvFeed::apply`] keeps it.
trait FeedItem: serde::Serialize + Clone {
    const KIND: ItemKind;
    fn items(st: &mut EnvState) -> &mut BTreeMap<String, Self>;
    fn mark_deleted(&mut self, version: u64);
    fn index(self, eval: &mut InMemoryStore);
}

impl FeedItem for Flag {
    const KIND: ItemKind = ItemKind::Flag;
    fn items(st: &mut EnvState) -> &mut BTreeMap<String, Self> {
        &mut st.flags
    }
    fn mark_deleted(&mut self, version: u64) {
        self.deleted = true;
        self.version = version;
    }
    fn index(self, eval: &mut InMemoryStore) {
        eval.insert_flag(self);
    }
}

impl FeedItem for Segment {
    const KIND: ItemKind = ItemKind::Segment;
    fn items(st: &mut EnvState) -> &mut BTreeMap<String, Self> {
        &mut st.segments
    }
    fn mark_deleted(&mut self, version: u64) {
        self.deleted = true;
        self.version = version;
    }
    fn index(self, eval: &mut InMemoryStore) {
        eval.insert_segment(self);
    }
}

#[derive(Default)]
struct Index {
    built: bool,
    last_seq: i64,
    /// (project, flag) → outbox sequence of the flag's last change.
    flags: HashMap<(String, String), i64>,
    /// (project, environment, segment) → outbox sequence of the segment's last change.
    segments: HashMap<(String, String, String), i64>,
    /// When the current hole in the sequence was first seen.
    gap_since: Option<Instant>,
}

/// Counters for received analytics events (events are accepted and dropped).
#[derive(Default)]
pub struct EventCounters {
    pub payloads: AtomicU64,
    pub events: AtomicU64,
    pub diagnostics: AtomicU64,
}

pub struct SdkHub {
    store: Arc<dyn Store>,
    changes: broadcast::Sender<ChangeNotice>,
    index: Mutex<Index>,
    feeds: RwLock<HashMap<EnvId, Arc<EnvFeed>>>,
    consumer: std::sync::Once,
    pub heartbeat: Duration,
    pub events: EventCounters,
}

fn seq_version(seq: Option<&i64>) -> u64 {
    // Items whose last change predates the outbox (none in practice) get version 1.
    seq.copied().unwrap_or(0).max(1) as u64
}

impl SdkHub {
    pub fn new(store: Arc<dyn Store>, changes: broadcast::Sender<ChangeNotice>) -> Self {
        Self {
            store,
            changes,
            index: Mutex::new(Index::default()),
            feeds: RwLock::new(HashMap::new()),
            consumer: std::sync::Once::new(),
            heartbeat: DEFAULT_HEARTBEAT,
            events: EventCounters::default(),
        }
    }

    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn loaded(&self) -> Vec<Arc<EnvFeed>> {
        self.feeds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn cached(&self, id: &EnvId) -> Option<Arc<EnvFeed>> {
        self.feeds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// The feed of an environment, built on first use.
    pub async fn feed(self: &Arc<Self>, id: &EnvId) -> ApiResult<Arc<EnvFeed>> {
        if let Some(f) = self.cached(id) {
            return Ok(f);
        }
        self.start_consumer();
        let mut index = self.index.lock().await;
        if let Some(f) = self.cached(id) {
            return Ok(f);
        }
        if !index.built {
            self.build_index(&mut index).await?;
        }
        let feed = Arc::new(self.build_feed(&index, id).await?);
        self.feeds
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), feed.clone());
        Ok(feed)
    }

    /// Ends every open SDK stream (at shutdown: graceful shutdown waits for open requests,
    /// and SSE streams never finish by themselves). SDKs reconnect elsewhere.
    pub fn close_streams(&self) {
        for feed in self.loaded() {
            let _ = feed.tx.send(FeedEvent::Closed);
        }
    }

    fn start_consumer(self: &Arc<Self>) {
        self.consumer.call_once(|| {
            let weak: Weak<SdkHub> = Arc::downgrade(self);
            let mut rx = self.changes.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = rx.recv() => if let Err(broadcast::error::RecvError::Closed) = r {
                            return;
                        },
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                    }
                    let Some(hub) = weak.upgrade() else { return };
                    if let Err(e) = hub.catch_up().await {
                        tracing::warn!("SDK feed: reading the outbox failed: {e}");
                    }
                }
            });
        });
    }

    async fn build_index(&self, index: &mut Index) -> ApiResult<()> {
        *index = Index::default();
        loop {
            let page = self.store.outbox_after(index.last_seq, PAGE * 4).await?;
            let Some(last) = page.last() else { break };
            let last = last.seq;
            for ev in &page {
                record(index, ev.seq, &ev.payload);
            }
            index.last_seq = last;
        }
        index.built = true;
        Ok(())
    }

    async fn build_feed(&self, index: &Index, id: &EnvId) -> ApiResult<EnvFeed> {
        let (environment, _) = self.load_env(id).await?;
        let mut state = EnvState {
            environment,
            flags: BTreeMap::new(),
            segments: BTreeMap::new(),
            eval: InMemoryStore::new(),
            all_json: Arc::from(""),
            etag: String::new(),
            version: 0,
        };
        self.load_items(index, id, &mut state).await?;
        let (tx, _) = broadcast::channel(256);
        Ok(EnvFeed {
            id: id.clone(),
            state: RwLock::new(state),
            tx,
        })
    }

    async fn load_env(&self, id: &EnvId) -> ApiResult<(Environment, i64)> {
        let target = EntityRef::new(EntityKind::Environment, &id.project, &id.env);
        match self.store.get(&target).await? {
            Some(s) => Ok((crate::services::decode(&s.doc)?, s.version)),
            None => Err(ApiError::NotFound("environment not found".into())),
        }
    }

    async fn load_items(&self, index: &Index, id: &EnvId, state: &mut EnvState) -> ApiResult<()> {
        let mut flags = BTreeMap::new();
        for stored in self.store.list(EntityKind::Flag, &id.project).await? {
            let flag: FeatureFlag = crate::services::decode(&stored.doc)?;
            let v = seq_version(index.flags.get(&(id.project.clone(), flag.key.clone())));
            if let Some(f) = sdk_flag(&flag, &id.env, v) {
                flags.insert(flag.key.clone(), f);
            }
        }
        let mut segments = BTreeMap::new();
        let scope = format!("{}/{}", id.project, id.env);
        for stored in self.store.list(EntityKind::Segment, &scope).await? {
            let seg: RestSegment = crate::services::decode(&stored.doc)?;
            let k = (id.project.clone(), id.env.clone(), seg.key.clone());
            if let Some(s) = sdk_segment(&seg, seq_version(index.segments.get(&k))) {
                segments.insert(seg.key.clone(), s);
            }
        }
        let mut eval = InMemoryStore::new();
        for f in flags.values() {
            eval.insert_flag(f.clone());
        }
        for s in segments.values() {
            eval.insert_segment(s.clone());
        }
        state.flags = flags;
        state.segments = segments;
        state.eval = eval;
        state.version = index.last_seq;
        state.refresh();
        Ok(())
    }

    /// Reloads one feed from the store (streams get a `put`), or closes it if the
    /// environment is gone.
    async fn reload(&self, index: &Index, feed: &Arc<EnvFeed>) -> ApiResult<()> {
        let id = &feed.id;
        let env = match self.load_env(id).await {
            Ok((env, _)) => env,
            Err(ApiError::NotFound(_)) => {
                self.feeds
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
                let _ = feed.tx.send(FeedEvent::Closed);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut fresh = EnvState {
            environment: env,
            flags: BTreeMap::new(),
            segments: BTreeMap::new(),
            eval: InMemoryStore::new(),
            all_json: Arc::from(""),
            etag: String::new(),
            version: 0,
        };
        self.load_items(index, id, &mut fresh).await?;
        *feed.write() = fresh;
        let _ = feed.tx.send(FeedEvent::Reset);
        Ok(())
    }

    /// Applies every outbox row after the last one seen.
    pub async fn catch_up(&self) -> ApiResult<()> {
        let mut index = self.index.lock().await;
        if !index.built {
            return Ok(());
        }
        loop {
            let page = self.store.outbox_after(index.last_seq, PAGE).await?;
            if page.is_empty() {
                index.gap_since = None;
                return Ok(());
            }
            for ev in page {
                if ev.seq != index.last_seq + 1 {
                    let since = *index.gap_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < GAP_WAIT {
                        // Probably a transaction that has not committed yet: wait for it.
                        return Ok(());
                    }
                    tracing::warn!(
                        "SDK feed: outbox sequence {} never appeared; rebuilding",
                        index.last_seq + 1
                    );
                    return self.rebuild(&mut index).await;
                }
                index.gap_since = None;
                index.last_seq = ev.seq;
                record(&mut index, ev.seq, &ev.payload);
                self.apply(&index, ev.seq, &ev.payload).await?;
            }
        }
    }

    /// Re-reads the whole outbox and reloads every feed.
    async fn rebuild(&self, index: &mut Index) -> ApiResult<()> {
        self.build_index(index).await?;
        for feed in self.loaded() {
            self.reload(index, &feed).await?;
        }
        Ok(())
    }

    async fn apply(&self, index: &Index, seq: i64, payload: &str) -> ApiResult<()> {
        let Ok(p) = serde_json::from_str::<Value>(payload) else {
            for feed in self.loaded() {
                self.reload(index, &feed).await?;
            }
            return Ok(());
        };
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let project = s("project");
        let in_project: Vec<Arc<EnvFeed>> = self
            .loaded()
            .into_iter()
            .filter(|f| f.id.project == project)
            .collect();
        match p.get("kind").and_then(Value::as_str) {
            Some("flag") => {
                if in_project.is_empty() {
                    return Ok(());
                }
                let key = s("flag");
                let target = EntityRef::new(EntityKind::Flag, &project, &key);
                let flag: Option<FeatureFlag> = match self.store.get(&target).await? {
                    Some(stored) => Some(crate::services::decode(&stored.doc)?),
                    None => None,
                };
                for feed in in_project {
                    let sdk = flag
                        .as_ref()
                        .and_then(|f| sdk_flag(f, &feed.id.env, seq as u64));
                    feed.apply(&key, sdk, seq);
                }
            }
            Some("segment") => {
                let id = EnvId {
                    project,
                    env: s("environment"),
                };
                let Some(feed) = self.cached(&id) else {
                    return Ok(());
                };
                let key = s("segment");
                let scope = format!("{}/{}", id.project, id.env);
                let target = EntityRef::new(EntityKind::Segment, &scope, &key);
                let seg: Option<RestSegment> = match self.store.get(&target).await? {
                    Some(stored) => Some(crate::services::decode(&stored.doc)?),
                    None => None,
                };
                feed.apply(
                    &key,
                    seg.as_ref().and_then(|x| sdk_segment(x, seq as u64)),
                    seq,
                );
            }
            Some("environment") => {
                let env = s("environment");
                for feed in in_project.into_iter().filter(|f| f.id.env == env) {
                    self.reload(index, &feed).await?;
                }
            }
            Some("project") if s("action") == "delete" => {
                for feed in in_project {
                    self.reload(index, &feed).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Notes the sequence of the entity an outbox row names.
fn record(index: &mut Index, seq: i64, payload: &str) {
    let Ok(p) = serde_json::from_str::<Value>(payload) else {
        return;
    };
    let s = |k: &str| p.get(k).and_then(Value::as_str).map(str::to_string);
    match p.get("kind").and_then(Value::as_str) {
        Some("flag") => {
            if let (Some(proj), Some(flag)) = (s("project"), s("flag")) {
                index.flags.insert((proj, flag), seq);
            }
        }
        Some("segment") => {
            if let (Some(proj), Some(env), Some(seg)) =
                (s("project"), s("environment"), s("segment"))
            {
                index.segments.insert((proj, env, seg), seq);
            }
        }
        _ => {}
    }
}
