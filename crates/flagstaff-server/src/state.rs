//! Shared application state handed to every router.

use std::sync::Arc;

use flagstaff_store::Store;
use tokio::sync::broadcast;

use crate::auth::TokenCache;
use crate::ratelimit::{DEFAULT_LIMIT_PER_WINDOW, RateLimiter};
use crate::services::Services;

/// A committed change, published in-process after the transaction commits. Consumers that
/// must not miss anything read the outbox from `outbox_seq` instead of relying on this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeNotice {
    pub outbox_seq: i64,
    pub topic: String,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub services: Arc<Services>,
    pub tokens: Arc<TokenCache>,
    pub changes: broadcast::Sender<ChangeNotice>,
    pub rate_limiter: Arc<RateLimiter>,
    /// SDK data per environment, kept current from the outbox (`sdk/feed.rs`).
    pub sdk: Arc<crate::sdk::SdkHub>,
    /// The integration catalogue, secrets, outbound client and delivery routing.
    pub integrations: Arc<crate::integrations::Integrations>,
    /// The OAuth authorization server's lifetimes, password cost and issuer.
    pub oauth: Arc<crate::services::oauth::OAuthSettings>,
    /// Sign-in attempts per e-mail address.
    pub signin_limiter: Arc<RateLimiter>,
    account_id: String,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, account_id: String) -> Self {
        let (changes, _) = broadcast::channel(1024);
        let integrations = Arc::new(crate::integrations::Integrations::ephemeral());
        let services = Arc::new(
            Services::new(store.clone(), account_id.clone(), changes.clone())
                .with_delivery(integrations.clone()),
        );
        let sdk = Arc::new(crate::sdk::SdkHub::new(store.clone(), changes.clone()));
        Self {
            store,
            services,
            sdk,
            tokens: Arc::new(TokenCache::default()),
            changes,
            rate_limiter: Arc::new(RateLimiter::new(DEFAULT_LIMIT_PER_WINDOW)),
            integrations,
            oauth: Arc::new(Default::default()),
            signin_limiter: Arc::new(RateLimiter::new(
                crate::services::oauth::OAuthSettings::default().signin_attempts_per_window,
            )),
            account_id,
        }
    }

    /// Replaces the OAuth settings (token lifetimes, password cost, issuer).
    pub fn with_oauth(mut self, settings: crate::services::oauth::OAuthSettings) -> Self {
        self.signin_limiter = Arc::new(RateLimiter::new(settings.signin_attempts_per_window));
        self.oauth = Arc::new(settings);
        self
    }

    /// Spawns the delivery workers for this state's integrations runtime, once.
    pub fn start_delivery(&self) {
        if self.integrations.mark_started() {
            crate::integrations::delivery::Worker::new(
                self.store.clone(),
                self.services.clone(),
                self.integrations.clone(),
            )
            .spawn();
            crate::integrations::oauth_client::spawn_refresher(
                self.store.clone(),
                self.integrations.clone(),
            );
            crate::integrations::stores::StoreSync::start(
                self.store.clone(),
                self.sdk.clone(),
                self.integrations.clone(),
            );
            crate::integrations::approval_jobs::spawn_scheduler(self.services.clone());
        }
    }

    /// Replaces the integrations runtime (catalogue directories, secret key, outbound policy,
    /// delivery settings); the domain services route deliveries through the new one.
    pub fn with_integrations(mut self, integrations: crate::integrations::Integrations) -> Self {
        let integrations = Arc::new(integrations);
        self.services = Arc::new(
            Services::new(
                self.store.clone(),
                self.account_id.clone(),
                self.changes.clone(),
            )
            .with_delivery(integrations.clone()),
        );
        self.integrations = integrations;
        self
    }

    /// The SSE heartbeat interval of SDK streams (default 3 minutes, as LaunchDarkly).
    pub fn with_sdk_heartbeat(mut self, every: std::time::Duration) -> Self {
        self.sdk = Arc::new(
            crate::sdk::SdkHub::new(self.store.clone(), self.changes.clone()).with_heartbeat(every),
        );
        self
    }

    /// Requests per token per 10-second window; 0 turns rate limiting off.
    pub fn with_rate_limit(mut self, per_window: u32) -> Self {
        self.rate_limiter = Arc::new(RateLimiter::new(per_window));
        self
    }
}
