//! Persistent stores kept current from the change feed: featureStore configurations (an
//! edge KV store over HTTP, rendered from the manifest, or Redis in the Relay Proxy layout
//! for daemon-mode SDKs) and the stored big-segment-store configurations.
//!
//! ```text
//! Services::commit ─► outbox ─► SdkHub (sdk/feed.rs): per environment the SDK `{flags,
//!        segments}` and its version (outbox sequence) ─► broadcast (wake-up)
//!                                                           │
//! Engine (one task per enabled featureStore configuration) ◄┘
//!   wake ─► drain every queued event ─► read the environment as it is now
//!   ─► plan::decide(pushed version, current version, needs full)
//!        Full:        HTTP: the rendered request with the whole payload
//!                     Redis: DEL + HSET both hashes + SET $inited in one MULTI/EXEC
//!        Incremental: HTTP: the same full payload (a KV value is the whole environment)
//!                     Redis: changed items and tombstones through a version-checked script
//!   ─► success: store_sync row (pushed version, time)    failure: error, backoff, full next
//! ```
//!
//! Why read the feed instead of the outbox: the feed already holds the environment in SDK
//! form, converted once for every consumer (SDK streams included), and a wake-up followed by
//! "read the latest state" coalesces any burst into one push. Versions are outbox sequences,
//! so a push is never older than the one before it, on any node. Why persist the pushed
//! version: a restarted node reports where each store stands; it still resyncs everything
//! on start, because the store may have changed while nobody watched it.

pub mod big_segments;
pub mod plan;
pub mod redis_relay;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagstaff_manifest::Integration;
use flagstaff_manifest::preview::Preview;
use flagstaff_outbound::{OutboundRequest, RedisTarget, RedisTimeouts};
use flagstaff_store::{EntityKind, Store, StoreSyncState};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::Integrations;
use crate::sdk::SdkHub;
use crate::sdk::feed::{EnvFeed, EnvId, FeedEvent};
use crate::services::wall_millis;

/// The first-party integration that writes the Relay Proxy layout into Redis.
pub const REDIS_FEATURE_STORE: &str = "redis-feature-store";

/// Which capability a stored configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StoreCapability {
    FeatureStore,
    BigSegmentStore,
}

/// A stored persistent-store configuration of one environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfigDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub capability: StoreCapability,
    pub integration_key: String,
    pub project_key: String,
    pub environment_key: String,
    pub name: String,
    /// Form-variable values; secret ones sealed.
    pub config: Map<String, Value>,
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub created_at: i64,
}

/// How sync engines behave; tests shorten the backoff.
#[derive(Debug, Clone)]
pub struct StoreSyncSettings {
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub redis_timeouts: RedisTimeouts,
    /// How often a big-segment store's `synchronized_on` is refreshed when nothing changes
    /// (SDKs call a store stale after about two minutes without a refresh).
    pub big_segment_refresh: Duration,
    /// How long a node's lease on a configuration lasts without renewal: the longest a store
    /// goes unwritten after its node dies without releasing it.
    pub lease_ttl: Duration,
    /// How often the holder renews its leases, and a standby node asks for them.
    pub lease_renew: Duration,
}

impl Default for StoreSyncSettings {
    fn default() -> Self {
        Self {
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            redis_timeouts: RedisTimeouts::default(),
            big_segment_refresh: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(30),
            lease_renew: Duration::from_secs(10),
        }
    }
}

/// Runs one engine per enabled featureStore or big-segment-store configuration. Every node
/// runs them all; an engine writes only while its node holds the configuration's lease
/// (`store_sync.lease_owner`), so one node at a time writes each store.
pub struct StoreSync {
    /// This node's name in leases: random per process, so a restarted node is a new owner.
    node: Arc<str>,
    store: Arc<dyn Store>,
    sdk: Arc<SdkHub>,
    integrations: Arc<Integrations>,
    engines: Mutex<HashMap<String, (i64, JoinHandle<()>)>>,
    reload_lock: tokio::sync::Mutex<()>,
    stopped: std::sync::atomic::AtomicBool,
}

impl StoreSync {
    /// Starts the engines of the stored configurations, and re-reads them every 5 s (changes
    /// made on other nodes) and after every configuration change on this node.
    pub fn start(store: Arc<dyn Store>, sdk: Arc<SdkHub>, integrations: Arc<Integrations>) {
        let sync = Arc::new(Self {
            node: uuid::Uuid::new_v4().to_string().into(),
            store,
            sdk,
            integrations: integrations.clone(),
            engines: Mutex::new(HashMap::new()),
            reload_lock: tokio::sync::Mutex::new(()),
            stopped: std::sync::atomic::AtomicBool::new(false),
        });
        if integrations.store_sync.set(sync.clone()).is_err() {
            return;
        }
        let weak = Arc::downgrade(&sync);
        tokio::spawn(async move {
            loop {
                let Some(sync) = weak.upgrade() else { return };
                if sync.stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                if let Err(e) = sync.reload().await {
                    tracing::warn!("store sync: reading the configurations failed: {e}");
                }
                drop(sync);
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }

    /// Every configuration of one capability, in every environment.
    pub async fn list_all(
        store: &dyn Store,
        capability: StoreCapability,
    ) -> crate::error::ApiResult<Vec<(StoreConfigDoc, i64)>> {
        let mut all = Vec::new();
        for (_scope, stored) in store.list_kind(EntityKind::StoreConfig).await? {
            let doc: StoreConfigDoc = crate::services::decode(&stored.doc)?;
            if doc.capability == capability {
                all.push((doc, stored.version));
            }
        }
        Ok(all)
    }

    /// Starts engines for new or changed configurations and stops those of deleted or
    /// disabled ones.
    pub async fn reload(self: &Arc<Self>) -> crate::error::ApiResult<()> {
        let _one_at_a_time = self.reload_lock.lock().await;
        if self.stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut wanted: HashMap<String, (StoreConfigDoc, i64)> = HashMap::new();
        for capability in [
            StoreCapability::FeatureStore,
            StoreCapability::BigSegmentStore,
        ] {
            for (doc, version) in Self::list_all(self.store.as_ref(), capability).await? {
                if doc.on {
                    wanted.insert(doc.id.clone(), (doc, version));
                }
            }
        }
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        engines.retain(|id, (version, handle)| {
            let keep = wanted.get(id).is_some_and(|(_, v)| v == version) && !handle.is_finished();
            if !keep {
                handle.abort();
            }
            keep
        });
        for (id, (doc, version)) in wanted {
            if engines.contains_key(&id) {
                continue;
            }
            let task = match doc.capability {
                StoreCapability::FeatureStore => tokio::spawn(
                    Engine {
                        node: self.node.clone(),
                        store: self.store.clone(),
                        sdk: self.sdk.clone(),
                        integrations: self.integrations.clone(),
                        doc,
                    }
                    .run(),
                ),
                StoreCapability::BigSegmentStore => tokio::spawn(
                    big_segments::BigSegmentEngine {
                        node: self.node.clone(),
                        store: self.store.clone(),
                        sdk: self.sdk.clone(),
                        integrations: self.integrations.clone(),
                        doc,
                    }
                    .run(),
                ),
            };
            engines.insert(id, (version, task));
        }
        Ok(())
    }

    /// Stops every engine of this node and releases its leases, so other nodes take over
    /// at their next renewal instead of after the leases lapse. Called at graceful shutdown.
    pub async fn shutdown(&self) {
        let _one_at_a_time = self.reload_lock.lock().await;
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        for (_, (_, handle)) in self
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            handle.abort();
        }
        match self.store.store_sync_release(&self.node).await {
            Ok(released) => tracing::info!("store sync: released {released} lease(s)"),
            Err(e) => tracing::warn!("store sync: releasing the leases failed: {e}"),
        }
    }
}

/// Where an engine writes.
enum Sink {
    Http {
        integration: Arc<Integration>,
        form_values: Map<String, Value>,
    },
    Redis {
        target: Box<RedisTarget>,
        prefix: String,
        connection: Option<redis::aio::MultiplexedConnection>,
    },
}

/// The environment as one push sees it.
struct Snapshot {
    version: i64,
    client_side_id: String,
    flags: BTreeMap<String, flagstaff_eval::Flag>,
    segments: BTreeMap<String, flagstaff_eval::Segment>,
    all_json: Arc<str>,
}

impl Snapshot {
    fn of(feed: &EnvFeed) -> Self {
        let state = feed.read();
        Self {
            version: state.version,
            client_side_id: state.environment.id.clone(),
            flags: state.flags.clone(),
            segments: state.segments.clone(),
            all_json: state.all_json.clone(),
        }
    }
}

/// What the store holds after the last successful push (for incremental Redis writes).
#[derive(Default)]
struct Pushed {
    flags: BTreeMap<String, u64>,
    segments: BTreeMap<String, u64>,
}

struct Engine {
    node: Arc<str>,
    store: Arc<dyn Store>,
    sdk: Arc<SdkHub>,
    integrations: Arc<Integrations>,
    doc: StoreConfigDoc,
}

impl Engine {
    async fn run(self) {
        let settings = self.integrations.store_sync_settings.clone();
        // Whatever failed (the configuration, the feed, the store), wait and start over with
        // a full sync.
        run_until_done(&self, self.store.as_ref(), &self.doc, &self.node, &settings).await;
    }

    /// Pushes until the environment is deleted (Ok) or a push fails (Err).
    async fn sync(
        &self,
        state: &mut StoreSyncState,
        settings: &StoreSyncSettings,
    ) -> Result<(), String> {
        let mut sink = self.open_sink()?;
        let id = EnvId {
            project: self.doc.project_key.clone(),
            env: self.doc.environment_key.clone(),
        };
        let feed = self.sdk.feed(&id).await.map_err(|e| e.to_string())?;
        let mut events = feed.tx.subscribe();
        let mut needs_full = true;
        let mut pushed = Pushed::default();
        loop {
            let snapshot = Snapshot::of(&feed);
            match plan::decide(state.pushed_version, snapshot.version, needs_full) {
                plan::Push::UpToDate => {}
                push => {
                    self.push(
                        &mut sink,
                        &snapshot,
                        push == plan::Push::Full,
                        &mut pushed,
                        settings,
                    )
                    .await?;
                    needs_full = false;
                    state.pushed_version = snapshot.version;
                    state.pushed_at = Some(wall_millis());
                    state.failures = 0;
                    state.next_retry_at = None;
                    if let Err(e) = self.store.store_sync_put(state).await {
                        tracing::warn!(config = %self.doc.id, "store sync: recording a push failed: {e}");
                    }
                }
            }
            // Wait for a change, then take everything queued: the next loop reads the
            // latest state once, however many changes arrived meanwhile.
            match events.recv().await {
                Ok(FeedEvent::Closed) | Err(broadcast::error::RecvError::Closed) => return Ok(()),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            }
            loop {
                match events.try_recv() {
                    Ok(FeedEvent::Closed) | Err(broadcast::error::TryRecvError::Closed) => {
                        return Ok(());
                    }
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(broadcast::error::TryRecvError::Empty) => break,
                }
            }
        }
    }

    fn open_sink(&self) -> Result<Sink, String> {
        let integration = self
            .integrations
            .catalogue
            .current()
            .get(&self.doc.integration_key)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "integration `{}` is not in the catalogue",
                    self.doc.integration_key
                )
            })?;
        let variables = integration
            .manifest
            .capabilities
            .as_ref()
            .and_then(|c| c.feature_store.as_ref())
            .map(|s| s.form_variables.as_slice())
            .ok_or("the integration has no featureStore capability")?;
        let form_values = super::delivery::open_values(
            &self.integrations,
            variables,
            &self.doc.integration_key,
            &self.doc.id,
            &self.doc.config,
        )
        .map_err(|_| {
            "a secret of this configuration cannot be decrypted with this server's key".to_string()
        })?;
        if integration.key == REDIS_FEATURE_STORE {
            let url = form_values
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target = RedisTarget::parse(url)
                .map_err(|e| e.to_string())?
                .with_root_certificates(self.integrations.redis_root_certificates.clone());
            let prefix = form_values
                .get("prefix")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .unwrap_or(redis_relay::DEFAULT_PREFIX)
                .to_string();
            return Ok(Sink::Redis {
                target: Box::new(target),
                prefix,
                connection: None,
            });
        }
        Ok(Sink::Http {
            integration,
            form_values,
        })
    }

    async fn push(
        &self,
        sink: &mut Sink,
        snapshot: &Snapshot,
        full: bool,
        pushed: &mut Pushed,
        settings: &StoreSyncSettings,
    ) -> Result<(), String> {
        match sink {
            Sink::Http {
                integration,
                form_values,
            } => {
                let payload: Value =
                    serde_json::from_str(&snapshot.all_json).map_err(|e| e.to_string())?;
                let rendered = match plan::render(
                    integration,
                    false,
                    form_values,
                    &snapshot.client_side_id,
                    &payload,
                )
                .map_err(|e| e.to_string())?
                {
                    Preview::Request(request) => request,
                    Preview::Skipped(reason) => return Err(format!("nothing to send: {reason}")),
                    Preview::Rendered(_) => return Err("the manifest renders no request".into()),
                };
                let response = self
                    .integrations
                    .outbound
                    .send(outbound_request(rendered))
                    .await
                    .map_err(|e| e.to_string())?;
                if !(200..300).contains(&response.status) {
                    let body = String::from_utf8_lossy(&response.body);
                    return Err(format!(
                        "HTTP {}: {}",
                        response.status,
                        body.chars().take(200).collect::<String>()
                    ));
                }
                Ok(())
            }
            Sink::Redis {
                target,
                prefix,
                connection,
            } => {
                let result = async {
                    if connection.is_none() {
                        *connection = Some(
                            target
                                .connect(
                                    self.integrations.outbound.policy(),
                                    settings.redis_timeouts,
                                )
                                .await
                                .map_err(|e| e.to_string())?,
                        );
                    }
                    let conn = connection.as_mut().expect("connected above");
                    if full {
                        let flags = items_json(&snapshot.flags);
                        let segments = items_json(&snapshot.segments);
                        redis_relay::full_sync(conn, prefix, &flags, &segments)
                            .await
                            .map_err(|e| format!("Redis {}: {e}", target.display_address()))
                    } else {
                        let deleted_at = snapshot.version.max(0) as u64;
                        let flags =
                            plan::diff(&pushed.flags, &snapshot.flags, |f| f.version, deleted_at);
                        let segments = plan::diff(
                            &pushed.segments,
                            &snapshot.segments,
                            |s| s.version,
                            deleted_at,
                        );
                        redis_relay::upsert(conn, prefix, &flags, &segments)
                            .await
                            .map_err(|e| format!("Redis {}: {e}", target.display_address()))
                    }
                }
                .await;
                if result.is_err() {
                    // A broken connection is opened again for the full resync that follows.
                    *connection = None;
                }
                result?;
                pushed.flags = snapshot
                    .flags
                    .iter()
                    .map(|(k, f)| (k.clone(), f.version))
                    .collect();
                pushed.segments = snapshot
                    .segments
                    .iter()
                    .map(|(k, s)| (k.clone(), s.version))
                    .collect();
                Ok(())
            }
        }
    }
}

/// One pass of an engine: keeps its store current until the environment is deleted (Ok) or
/// a write fails (Err).
trait SyncPass: Sync {
    fn sync_pass<'a>(
        &'a self,
        state: &'a mut StoreSyncState,
        settings: &'a StoreSyncSettings,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

impl SyncPass for Engine {
    fn sync_pass<'a>(
        &'a self,
        state: &'a mut StoreSyncState,
        settings: &'a StoreSyncSettings,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(self.sync(state, settings))
    }
}

/// Runs an engine's passes until one returns Ok, while this node holds the configuration's
/// lease. Each failure is recorded on the configuration's sync state (shown as `_status`),
/// then the engine backs off and starts over. Without the lease it stands by; losing it
/// stops the pass at once (the next holder starts with a full sync). Ends when the
/// configuration is deleted or turned off, whichever node made that change.
async fn run_until_done(
    engine: &impl SyncPass,
    store: &dyn Store,
    config: &StoreConfigDoc,
    node: &str,
    settings: &StoreSyncSettings,
) {
    let config_id = config.id.as_str();
    let mut failures: u32 = 0;
    loop {
        if !acquire_lease(store, config, node, settings).await {
            tracing::info!(config = %config_id, "store sync: configuration deleted or off; stopping");
            return;
        }
        // Read where the store stands on every acquisition: another node may have written it.
        let mut state = match store.store_sync_get(config_id).await {
            Ok(Some(state)) => state,
            _ => StoreSyncState {
                config_id: config_id.to_string(),
                ..StoreSyncState::default()
            },
        };
        let error = tokio::select! {
            outcome = engine.sync_pass(&mut state, settings) => match outcome {
                Ok(()) => return,
                Err(error) => error,
            },
            () = keep_lease(store, config_id, node, settings) => {
                tracing::info!(config = %config_id, "store sync: lease lost; standing by");
                continue;
            }
        };
        failures += 1;
        let delay = plan::backoff(failures, settings.base_backoff, settings.max_backoff);
        tracing::warn!(config = %config_id, "store sync failed (attempt {failures}): {error}");
        let now = wall_millis();
        state.last_error = Some(error);
        state.last_error_at = Some(now);
        state.failures = failures as i64;
        state.next_retry_at = Some(now + delay.as_millis() as i64);
        if let Err(e) = store.store_sync_put(&state).await {
            tracing::warn!(config = %config_id, "store sync: recording a failure failed: {e}");
        }
        // Still the writer while backing off: a long backoff must not hand the store over.
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = keep_lease(store, config_id, node, settings) => {}
        }
    }
}

/// Waits until this node holds the configuration's lease; false when the configuration is
/// gone or off (deleted or disabled through any node), so no lease is taken for it.
async fn acquire_lease(
    store: &dyn Store,
    config: &StoreConfigDoc,
    node: &str,
    settings: &StoreSyncSettings,
) -> bool {
    let target = flagstaff_store::EntityRef::new(
        EntityKind::StoreConfig,
        format!("{}/{}", config.project_key, config.environment_key),
        &config.id,
    );
    loop {
        match store.get(&target).await {
            Ok(None) => return false,
            Ok(Some(stored)) => {
                if crate::services::decode::<StoreConfigDoc>(&stored.doc).is_ok_and(|d| !d.on) {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!(config = %config.id, "store sync: reading the configuration failed: {e}")
            }
        }
        let now = wall_millis();
        let until = now + settings.lease_ttl.as_millis() as i64;
        match store.store_sync_lease(&config.id, node, now, until).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(config = %config.id, "store sync: taking the lease failed: {e}")
            }
        }
        tokio::time::sleep(settings.lease_renew).await;
    }
}

/// Renews this node's lease until it is lost: another node holds it, the configuration was
/// deleted (its row with it), or it could not be renewed before it lapsed.
async fn keep_lease(store: &dyn Store, config_id: &str, node: &str, settings: &StoreSyncSettings) {
    let ttl = settings.lease_ttl.as_millis() as i64;
    let mut held_until = wall_millis() + ttl;
    loop {
        tokio::time::sleep(settings.lease_renew).await;
        let now = wall_millis();
        match store.store_sync_renew(config_id, node, now + ttl).await {
            Ok(true) => held_until = now + ttl,
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(config = %config_id, "store sync: renewing the lease failed: {e}");
                if wall_millis() >= held_until {
                    return;
                }
            }
        }
    }
}

fn items_json<T: Serialize>(items: &BTreeMap<String, T>) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap_or_default()))
        .collect()
}

/// A rendered request as the outbound client sends it.
pub fn outbound_request(rendered: flagstaff_manifest::preview::RenderedRequest) -> OutboundRequest {
    let mut request =
        OutboundRequest::new(rendered.method, rendered.url).body(rendered.body.into_bytes());
    for header in rendered.headers {
        request = request.header(header.name, header.value);
    }
    request
}
