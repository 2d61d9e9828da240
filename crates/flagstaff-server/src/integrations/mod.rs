//! Outbound integrations: the catalogue the server runs, webhook and integration
//! subscriptions as delivery destinations, and the delivery workers.
//!
//! ```text
//! Services::commit ─► Destinations::route (policy filter) ─► deliveries rows, same transaction
//!        │                                  (leased to this node while it has room for them)
//!        └─ after commit: leased rows + audit entry, in memory ─► delivery::Worker
//!                            unleased rows, retries, expired leases ─► claim (lease) ─┘
//!                 └─► render (flagstaff_manifest::preview, the same code as the CLI)
//!                 └─► SafeClient (no private addresses, no redirects) ─► partner
//!                 └─► record attempt; retry with backoff; auto-disable after N failures
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use flagstaff_manifest::{LintOptions, LiveCatalogue};
use flagstaff_outbound::{OutboundPolicy, SafeClient, SafeClientConfig, SecretBox};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;

pub mod approval_jobs;
pub mod delivery;
pub mod destinations;
pub mod event;
pub mod oauth_client;
pub mod stores;

pub use destinations::{Destinations, Route, integration_destination, webhook_destination};

/// First-party integrations, written for Flagstaff and embedded in the binary.
const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "redis-feature-store/manifest.json",
        include_str!("../../integrations/redis-feature-store/manifest.json"),
    ),
    (
        "redis-feature-store/assets/images/square.svg",
        include_str!("../../integrations/redis-feature-store/assets/images/square.svg"),
    ),
    (
        "flagstaff-webhook/manifest.json",
        include_str!("../../integrations/flagstaff-webhook/manifest.json"),
    ),
    (
        "flagstaff-webhook/assets/images/square.svg",
        include_str!("../../integrations/flagstaff-webhook/assets/images/square.svg"),
    ),
    (
        "flagstaff-webhook/assets/images/horizontal.svg",
        include_str!("../../integrations/flagstaff-webhook/assets/images/horizontal.svg"),
    ),
    (
        "slack-incoming-webhook/manifest.json",
        include_str!("../../integrations/slack-incoming-webhook/manifest.json"),
    ),
    (
        "slack-incoming-webhook/templates/default.json.hbs",
        include_str!("../../integrations/slack-incoming-webhook/templates/default.json.hbs"),
    ),
    (
        "slack-incoming-webhook/assets/images/square.svg",
        include_str!("../../integrations/slack-incoming-webhook/assets/images/square.svg"),
    ),
    (
        "slack-incoming-webhook/assets/images/horizontal.svg",
        include_str!("../../integrations/slack-incoming-webhook/assets/images/horizontal.svg"),
    ),
];

/// Partners' member lists by `<integration>/<configuration>`, with when they were fetched.
pub(crate) type MemberLists = std::collections::HashMap<
    String,
    (
        std::time::Instant,
        Arc<Vec<flagstaff_manifest::approval::ExternalMember>>,
    ),
>;

/// How deliveries behave; the defaults are for production, tests shorten them.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: i64,
    /// First retry delay; doubles per attempt (with ±50% jitter) up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Consecutive failed attempts after which a destination is turned off.
    pub disable_after_failures: u32,
    /// Deliveries in flight per destination (one slow partner holds only these).
    pub per_destination_concurrency: usize,
    /// Deliveries in flight in all.
    pub total_concurrency: usize,
    /// Rows claimed per round trip to the database.
    pub claim_batch: i64,
    /// How long a claimed delivery stays leased to this worker.
    pub lease: Duration,
    /// How often to look for due retries when nothing new was committed.
    pub poll_interval: Duration,
    /// The server's public base URL, for links in payloads.
    pub base_url: String,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(15 * 60),
            disable_after_failures: 25,
            per_destination_concurrency: 8,
            total_concurrency: 256,
            claim_batch: 256,
            lease: Duration::from_secs(20),
            poll_interval: Duration::from_millis(500),
            base_url: "http://localhost:8030".into(),
        }
    }
}

/// Everything outbound delivery needs.
pub struct Integrations {
    pub catalogue: Arc<LiveCatalogue>,
    pub secrets: Arc<SecretBox>,
    pub outbound: Arc<SafeClient>,
    pub destinations: Arc<Destinations>,
    pub settings: DeliverySettings,
    /// Woken after every commit that created deliveries not handed over in memory.
    pub wake: Arc<Notify>,
    /// Set when the delivery workers start: commits hand their deliveries over through it.
    pub(crate) handoff: std::sync::OnceLock<delivery::Handoff>,
    /// OAuth connections of `requiresOAuth` integrations (`oauth_client.rs`).
    pub oauth: oauth_client::OAuthClient,
    /// The persistent-store sync engines, once started (`stores/`).
    pub store_sync: std::sync::OnceLock<Arc<stores::StoreSync>>,
    pub store_sync_settings: stores::StoreSyncSettings,
    /// PEM root certificates for `rediss://` stores, replacing the system's (`--redis-ca-file`).
    pub redis_root_certificates: Option<Arc<Vec<u8>>>,
    /// How approval integrations are polled (`approval_jobs.rs`).
    pub approvals: approval_jobs::ApprovalJobSettings,
    /// One permit per partner request of approval integrations in flight, shared by the
    /// scheduler and the steps run at once (create, read, apply, delete).
    pub(crate) approval_slots: Arc<tokio::sync::Semaphore>,
    /// Partners' member lists by `<integration>/<configuration>`, with when they were fetched.
    pub(crate) member_lists: std::sync::Mutex<MemberLists>,
    started: std::sync::atomic::AtomicBool,
    /// Keeps the materialized first-party integrations alive.
    _builtin_dir: Option<tempfile::TempDir>,
}

impl Integrations {
    /// `dirs`: catalogue directories (`--integrations-dir`), loaded after the built-in ones so
    /// they can override them.
    pub fn new(
        dirs: Vec<PathBuf>,
        secrets: SecretBox,
        policy: OutboundPolicy,
        settings: DeliverySettings,
    ) -> std::io::Result<Self> {
        let builtin = tempfile::Builder::new()
            .prefix("flagstaff-integrations-")
            .tempdir()?;
        for (path, content) in BUILTIN_FILES {
            let target = builtin.path().join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, content)?;
        }
        let mut all = vec![builtin.path().to_path_buf()];
        all.extend(dirs);
        let catalogue = Arc::new(LiveCatalogue::new(all, LintOptions::default(), Vec::new()));
        let outbound = SafeClient::new(SafeClientConfig {
            policy,
            ..SafeClientConfig::default()
        })
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Self {
            catalogue,
            secrets: Arc::new(secrets),
            outbound: Arc::new(outbound),
            destinations: Arc::new(Destinations::default()),
            settings,
            wake: Arc::new(Notify::new()),
            handoff: std::sync::OnceLock::new(),
            oauth: oauth_client::OAuthClient::new(oauth_client::OAuthSettings::default()),
            store_sync: std::sync::OnceLock::new(),
            store_sync_settings: stores::StoreSyncSettings::default(),
            redis_root_certificates: None,
            approvals: approval_jobs::ApprovalJobSettings::default(),
            approval_slots: Arc::new(tokio::sync::Semaphore::new(
                approval_jobs::ApprovalJobSettings::default().concurrency,
            )),
            member_lists: Default::default(),
            started: std::sync::atomic::AtomicBool::new(false),
            _builtin_dir: Some(builtin),
        })
    }

    /// The in-memory hand-off to this node's delivery workers, once they run.
    pub fn handoff(&self) -> Option<&delivery::Handoff> {
        self.handoff.get()
    }

    /// Replaces the OAuth client's settings (refresh margin, clock).
    pub fn with_oauth_settings(mut self, settings: oauth_client::OAuthSettings) -> Self {
        self.oauth = oauth_client::OAuthClient::new(settings);
        self
    }

    /// Replaces the persistent-store sync settings (backoff, Redis timeouts).
    /// Replaces the outbound client's per-request time limit (tests that hold a receiver's
    /// answers longer than the 10 s default).
    pub fn with_outbound_request_timeout(mut self, timeout: std::time::Duration) -> Self {
        if let Ok(client) = SafeClient::new(SafeClientConfig {
            policy: self.outbound.policy().clone(),
            request_timeout: timeout,
            ..SafeClientConfig::default()
        }) {
            self.outbound = Arc::new(client);
        }
        self
    }

    /// Verifies TLS Redis servers (feature and big-segment stores) against these PEM root
    /// certificates instead of the system's: for a Redis whose certificate comes from the
    /// operator's own CA. Refuses text that holds no PEM certificate.
    pub fn with_redis_root_certificates(mut self, pem: Vec<u8>) -> Result<Self, String> {
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) found".into());
        }
        self.redis_root_certificates = Some(Arc::new(pem));
        Ok(self)
    }

    pub fn with_store_sync_settings(mut self, settings: stores::StoreSyncSettings) -> Self {
        self.store_sync_settings = settings;
        self
    }

    /// Asks the store sync engines to pick up configuration changes now.
    pub async fn reload_store_sync(&self) {
        if let Some(sync) = self.store_sync.get()
            && let Err(e) = sync.reload().await
        {
            tracing::warn!("store sync: reading the configurations failed: {e}");
        }
    }

    /// Replaces how approval integrations are polled (interval, concurrency, timeouts).
    pub fn with_approval_settings(mut self, settings: approval_jobs::ApprovalJobSettings) -> Self {
        self.approval_slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        self.approvals = settings;
        self
    }

    /// True the first time: the caller starts the delivery workers.
    pub fn mark_started(&self) -> bool {
        !self.started.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// For tests and tools: built-in integrations only, a random secret key, loopback allowed.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        key.iter_mut()
            .zip(
                uuid::Uuid::new_v4()
                    .as_bytes()
                    .iter()
                    .chain(uuid::Uuid::new_v4().as_bytes()),
            )
            .for_each(|(k, r)| *k = *r);
        Self::new(
            Vec::new(),
            SecretBox::new(key),
            OutboundPolicy::default(),
            DeliverySettings::default(),
        )
        .expect("a temporary directory for the built-in integrations")
    }
}

/// A stored webhook (`/api/v2/webhooks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
    /// Sealed with the secret box; `None` when `sign` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub sign: bool,
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

/// A stored integration configuration: an audit-log subscription of a catalogue integration
/// (`/api/v2/integrations/{key}` and `/api/v2/integration-configurations`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub integration_key: String,
    pub name: String,
    /// Form-variable values; secret ones sealed.
    pub config: Map<String, Value>,
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<Value>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}
