//! Delivery workers: take deliveries handed over in memory by the commit that created them,
//! or claimed from the database (retries, expired leases, overflow), build each request from
//! the audit entry and the destination's configuration, send it through the outbound-safe
//! client, record the attempt, retry with backoff, and turn off a destination that keeps
//! failing.
//!
//! At-least-once: a delivery is marked delivered only after the partner answered 2xx; a crash
//! in between leaves it leased, and the lease expiring makes it due again. Every request
//! carries `X-Flagstaff-Delivery: <id>` so receivers can drop the duplicates this allows.
//!
//! The fast path: `Services::commit` writes a change's deliveries already leased to this node
//! ([`Handoff::admit`]) and, once committed, passes them with the audit entry to the
//! dispatcher ([`Admitted::deliver`]), so a delivery costs no claim and no re-read. The
//! dispatcher keeps a queue per destination, runs at most `per_destination_concurrency`
//! requests per destination and `total_concurrency` in all, and sends nothing whose lease is
//! running out (the database claim takes those over). Outcomes are recorded in batches.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview, sign_body};
use flagstaff_model::audit::AuditEntry;
use flagstaff_outbound::{OutboundError, OutboundRequest};
use flagstaff_store::{
    ClaimedDelivery, DeliveryNext, DeliveryOutcome, EntityKind, EntityRef, NewDelivery, Store,
    StoreResult,
};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::destinations::Opened;
use super::{Integrations, SubscriptionDoc, WebhookDoc};
use crate::services::{Services, wall_millis};

/// The header carrying the delivery id.
pub const DELIVERY_HEADER: &str = "X-Flagstaff-Delivery";

/// A request ready to send, and whether an error response's body may be kept.
pub struct Prepared {
    pub request: OutboundRequest,
    pub keep_error_body: bool,
}

/// Why nothing is sent for a delivery.
pub enum NotSent {
    /// Done without a request (an empty render, no template for this kind).
    Skipped(String),
    /// Cannot be delivered (destination deleted or off, integration gone, bad secret).
    Permanent(String),
    /// Cannot be delivered now (no usable OAuth token): retried with backoff.
    Retry(String),
}

/// An audit entry on its way to destinations. Every webhook receives the same body, so it is
/// rendered once per entry, not once per webhook.
pub struct PreparedEntry {
    pub entry: AuditEntry,
    webhook_body: OnceLock<Vec<u8>>,
}

impl PreparedEntry {
    pub fn new(entry: AuditEntry) -> Self {
        Self {
            entry,
            webhook_body: OnceLock::new(),
        }
    }

    fn webhook_body(&self) -> &[u8] {
        self.webhook_body.get_or_init(|| {
            serde_json::to_vec(&crate::render::audit_entry(&self.entry, true)).unwrap_or_default()
        })
    }
}

/// A delivery this node holds a lease on, waiting for or in its attempt.
struct Job {
    delivery: ClaimedDelivery,
    lease_until: i64,
    /// Handed over by the commit (with its entry); `None` for claimed rows.
    entry: Option<Arc<PreparedEntry>>,
}

/// The commit side of the in-memory hand-off. At most `per_destination` handed-over
/// deliveries per destination are held in memory; beyond that a change's deliveries are
/// written unleased and go through the database claim, so a slow partner cannot make this
/// node hoard leases it will not get to in time.
pub struct Handoff {
    sender: mpsc::UnboundedSender<Vec<Job>>,
    held: Mutex<HashMap<String, usize>>,
    per_destination: usize,
    lease: Duration,
}

/// Deliveries leased to this node for a change that is being committed. Dropped without
/// [`Admitted::deliver`] (the commit failed, or was cancelled), they stop counting against
/// the destinations' room; rows that did commit are then claimed once their lease ends.
pub struct Admitted<'a> {
    handoff: &'a Handoff,
    deliveries: Vec<NewDelivery>,
}

impl Handoff {
    /// Leases to this node (sets `lease_until`) those deliveries whose destination has room
    /// in memory; the others stay due for the database claim.
    pub fn admit(&self, deliveries: &mut [NewDelivery]) -> Admitted<'_> {
        let lease_until = wall_millis() + self.lease.as_millis() as i64;
        let mut admitted = Vec::new();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for delivery in deliveries.iter_mut() {
            let count = held.entry(delivery.destination.clone()).or_default();
            if *count < self.per_destination {
                *count += 1;
                delivery.lease_until = lease_until;
                admitted.push(delivery.clone());
            }
        }
        Admitted {
            handoff: self,
            deliveries: admitted,
        }
    }

    fn release(&self, destinations: impl IntoIterator<Item = impl AsRef<str>>) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for destination in destinations {
            if let Some(count) = held.get_mut(destination.as_ref()) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    held.remove(destination.as_ref());
                }
            }
        }
    }
}

impl Admitted<'_> {
    pub fn is_empty(&self) -> bool {
        self.deliveries.is_empty()
    }

    /// The change committed: its leased deliveries go to the worker with the entry.
    pub fn deliver(mut self, entry: AuditEntry) {
        let deliveries = std::mem::take(&mut self.deliveries);
        if deliveries.is_empty() {
            return;
        }
        let entry = Arc::new(PreparedEntry::new(entry));
        let jobs: Vec<Job> = deliveries
            .into_iter()
            .map(|d| Job {
                lease_until: d.lease_until,
                delivery: ClaimedDelivery {
                    seq: 0,
                    id: d.id,
                    destination: d.destination,
                    audit_id: d.audit_id,
                    attempts: 0,
                },
                entry: Some(entry.clone()),
            })
            .collect();
        if let Err(unsent) = self.handoff.sender.send(jobs) {
            // The worker is gone (shutting down): the leases expire and a claim takes them.
            self.handoff
                .release(unsent.0.iter().map(|j| j.delivery.destination.as_str()));
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        if !self.deliveries.is_empty() {
            self.handoff
                .release(self.deliveries.iter().map(|d| d.destination.as_str()));
        }
    }
}

pub struct Worker {
    store: Arc<dyn Store>,
    services: Arc<Services>,
    integrations: Arc<Integrations>,
    entries: EntryCache,
}

struct Result_ {
    outcome: DeliveryOutcome,
    destination: String,
    success: bool,
}

/// An attempt ended (whatever its outcome): its destination has a free slot.
struct Finished {
    destination: String,
    handed_off: bool,
}

#[derive(Default)]
struct DestinationQueue {
    in_flight: usize,
    waiting: VecDeque<Job>,
}

/// The dispatcher's view of what this node holds: one task owns it, so no locks.
#[derive(Default)]
struct Dispatch {
    destinations: HashMap<String, DestinationQueue>,
    in_flight: usize,
    /// Waiting jobs that came from the claim, which bounds how much more it may take.
    claimed_waiting: usize,
}

impl Worker {
    pub fn new(
        store: Arc<dyn Store>,
        services: Arc<Services>,
        integrations: Arc<Integrations>,
    ) -> Self {
        Self {
            store,
            services,
            integrations,
            entries: EntryCache::default(),
        }
    }

    /// Opens the in-memory hand-off and runs the dispatcher and the recorder until the
    /// runtime stops.
    pub fn spawn(self) {
        let worker = Arc::new(self);
        let settings = &worker.integrations.settings;
        let (sender, handed) = mpsc::unbounded_channel();
        let handoff = Handoff {
            sender,
            held: Mutex::default(),
            // Enough to keep a destination busy for a while, few enough to be sent well
            // within the lease by a partner that answers at all promptly.
            per_destination: settings.per_destination_concurrency * 32,
            lease: settings.lease,
        };
        if worker.integrations.handoff.set(handoff).is_err() {
            tracing::warn!("delivery workers started twice; the second is idle");
            return;
        }
        let (results, receiver) = mpsc::channel::<Result_>(4096);
        tokio::spawn(worker.clone().record_results(receiver));
        tokio::spawn(worker.dispatch(handed, results));
    }

    async fn dispatch(
        self: Arc<Self>,
        mut handed: mpsc::UnboundedReceiver<Vec<Job>>,
        results: mpsc::Sender<Result_>,
    ) {
        let settings = &self.integrations.settings;
        let (finished_tx, mut finished) = mpsc::unbounded_channel::<Finished>();
        let mut state = Dispatch::default();
        let mut claiming: Option<JoinHandle<StoreResult<Vec<ClaimedDelivery>>>> = None;
        let mut claim_due = true;
        let mut next_poll = tokio::time::Instant::now() + settings.poll_interval;
        let mut last_reload = Instant::now();
        loop {
            if last_reload.elapsed() > Duration::from_secs(5) {
                // Other nodes may have changed destinations.
                self.integrations
                    .destinations
                    .reload(self.store.as_ref(), &self.integrations.catalogue)
                    .await;
                last_reload = Instant::now();
            }
            if claim_due && claiming.is_none() {
                claim_due = false;
                claiming = self.start_claim(&state);
                next_poll = tokio::time::Instant::now() + settings.poll_interval;
            }
            self.pump(&mut state, &finished_tx, &results);
            tokio::select! {
                jobs = handed.recv() => match jobs {
                    Some(jobs) => state.enqueue(jobs, false),
                    None => return,
                },
                Some(done) = finished.recv() => state.finish(&self.integrations, done),
                claimed = async { claiming.as_mut().expect("guarded").await }, if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        Ok(Ok(claimed)) => {
                            // A full batch: more may be due right away.
                            claim_due = claimed.len() as i64 >= settings.claim_batch;
                            let lease_until = wall_millis() + settings.lease.as_millis() as i64;
                            state.enqueue(
                                claimed.into_iter().map(|delivery| Job {
                                    delivery,
                                    lease_until,
                                    entry: None,
                                }),
                                true,
                            );
                        }
                        Ok(Err(e)) => tracing::warn!("claiming deliveries failed: {e}"),
                        Err(e) => tracing::warn!("the delivery claim task failed: {e}"),
                    }
                }
                _ = self.integrations.wake.notified() => claim_due = true,
                _ = tokio::time::sleep_until(next_poll) => claim_due = true,
            }
            // Take everything else that is ready before the next pump.
            while let Ok(done) = finished.try_recv() {
                state.finish(&self.integrations, done);
            }
            while let Ok(jobs) = handed.try_recv() {
                state.enqueue(jobs, false);
            }
        }
    }

    /// Claims due rows for the slots left over by what this node already holds, skipping
    /// destinations that are full; runs beside the dispatcher so a slow statement does not
    /// hold up hand-offs.
    fn start_claim(
        self: &Arc<Self>,
        state: &Dispatch,
    ) -> Option<JoinHandle<StoreResult<Vec<ClaimedDelivery>>>> {
        let settings = &self.integrations.settings;
        let free = settings
            .total_concurrency
            .saturating_sub(state.in_flight + state.claimed_waiting);
        let limit = settings.claim_batch.min(free as i64);
        if limit <= 0 {
            return None;
        }
        let excluded: Vec<String> = state
            .destinations
            .iter()
            .filter(|(_, q)| q.in_flight + q.waiting.len() >= settings.per_destination_concurrency)
            .map(|(d, _)| d.clone())
            .collect();
        let store = self.store.clone();
        let now = wall_millis();
        let lease_until = now + settings.lease.as_millis() as i64;
        Some(tokio::spawn(async move {
            store
                .deliveries_claim(now, lease_until, limit, &excluded)
                .await
        }))
    }

    /// Starts every waiting job that has a slot, oldest first per destination.
    fn pump(
        self: &Arc<Self>,
        state: &mut Dispatch,
        finished: &mpsc::UnboundedSender<Finished>,
        results: &mpsc::Sender<Result_>,
    ) {
        let settings = &self.integrations.settings;
        // A job is started only with at least half its lease left, so its attempt (bounded
        // by the client's timeouts) normally ends before a claim could take the row again.
        let margin = settings.lease.as_millis() as i64 / 2;
        let now = wall_millis();
        let mut expired: Vec<String> = Vec::new();
        for (destination, queue) in state.destinations.iter_mut() {
            while queue.in_flight < settings.per_destination_concurrency
                && state.in_flight < settings.total_concurrency
            {
                let Some(job) = queue.waiting.pop_front() else {
                    break;
                };
                if job.entry.is_none() {
                    state.claimed_waiting -= 1;
                }
                if job.lease_until - margin <= now {
                    // The database claim takes it over when the lease ends.
                    if job.entry.is_some() {
                        expired.push(destination.clone());
                    }
                    continue;
                }
                queue.in_flight += 1;
                state.in_flight += 1;
                let worker = self.clone();
                let finished = finished.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    let handed_off = job.entry.is_some();
                    let result = worker.attempt(&job).await;
                    let _ = finished.send(Finished {
                        destination: job.delivery.destination,
                        handed_off,
                    });
                    let _ = results.send(result).await;
                });
            }
        }
        if let Some(handoff) = self.integrations.handoff.get() {
            handoff.release(&expired);
        }
        state
            .destinations
            .retain(|_, q| q.in_flight > 0 || !q.waiting.is_empty());
    }

    async fn record_results(self: Arc<Self>, mut receiver: mpsc::Receiver<Result_>) {
        let threshold = self.integrations.settings.disable_after_failures;
        let mut batch = Vec::new();
        while receiver.recv_many(&mut batch, 512).await > 0 {
            let outcomes: Vec<DeliveryOutcome> = batch.iter().map(|r| r.outcome.clone()).collect();
            let mut tries = 0;
            while let Err(e) = self.store.deliveries_record(&outcomes).await {
                tries += 1;
                tracing::warn!("recording {} delivery attempts failed: {e}", outcomes.len());
                if tries >= 20 {
                    // The leases expire and the deliveries are retried: at-least-once holds.
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100 * tries)).await;
            }
            let mut to_disable = Vec::new();
            for result in batch.drain(..) {
                let failures = self
                    .integrations
                    .destinations
                    .record(&result.destination, result.success);
                if threshold > 0 && failures == threshold {
                    to_disable.push(result.destination);
                }
            }
            for destination in to_disable {
                let reason = format!("turned off after {threshold} consecutive failed deliveries");
                if let Err(e) = self
                    .services
                    .disable_destination(&self.integrations, &destination, &reason)
                    .await
                {
                    tracing::warn!("could not turn off {destination}: {e}");
                }
            }
        }
    }

    /// One attempt at one delivery.
    async fn attempt(&self, job: &Job) -> Result_ {
        let delivery = &job.delivery;
        let attempt = delivery.attempts + 1;
        let settings = &self.integrations.settings;
        let started = wall_millis();
        let mut outcome = DeliveryOutcome {
            id: delivery.id.clone(),
            attempt,
            at: started,
            status: None,
            latency_ms: 0,
            error: None,
            response_body: None,
            next: DeliveryNext::Delivered,
        };
        let retry_or_fail = |attempt: i64| {
            if attempt >= settings.max_attempts {
                DeliveryNext::Failed
            } else {
                DeliveryNext::RetryAt(wall_millis() + backoff(settings, attempt).as_millis() as i64)
            }
        };
        let prepared = match self.prepare(job).await {
            Ok(prepared) => prepared,
            Err(NotSent::Skipped(reason)) => {
                outcome.error = Some(format!("not sent: {reason}"));
                return Result_ {
                    outcome,
                    destination: delivery.destination.clone(),
                    success: true,
                };
            }
            Err(NotSent::Permanent(reason)) => {
                outcome.error = Some(reason);
                outcome.next = DeliveryNext::Failed;
                return Result_ {
                    outcome,
                    destination: delivery.destination.clone(),
                    success: false,
                };
            }
            Err(NotSent::Retry(reason)) => {
                outcome.error = Some(reason);
                outcome.next = retry_or_fail(attempt);
                return Result_ {
                    outcome,
                    destination: delivery.destination.clone(),
                    success: false,
                };
            }
        };
        let sent = self.integrations.outbound.send(prepared.request).await;
        outcome.latency_ms = wall_millis() - started;
        let success = match sent {
            Ok(response) if (200..300).contains(&response.status) => {
                outcome.status = Some(i64::from(response.status));
                true
            }
            Ok(response) => {
                outcome.status = Some(i64::from(response.status));
                outcome.error = Some(format!("the endpoint answered HTTP {}", response.status));
                if prepared.keep_error_body {
                    outcome.response_body =
                        Some(String::from_utf8_lossy(&response.body).into_owned());
                }
                // 4xx other than 408/429 will not get better by retrying the same request.
                let permanent = (400..500).contains(&response.status)
                    && response.status != 408
                    && response.status != 429;
                outcome.next = if permanent {
                    DeliveryNext::Failed
                } else {
                    retry_or_fail(attempt)
                };
                false
            }
            Err(error @ OutboundError::Refused { .. })
            | Err(error @ OutboundError::InvalidRequest(_)) => {
                outcome.error = Some(error.to_string());
                outcome.next = DeliveryNext::Failed;
                false
            }
            Err(error) => {
                outcome.error = Some(error.to_string());
                outcome.next = retry_or_fail(attempt);
                false
            }
        };
        Result_ {
            outcome,
            destination: delivery.destination.clone(),
            success,
        }
    }

    async fn prepare(&self, job: &Job) -> Result<Prepared, NotSent> {
        let entry = match &job.entry {
            Some(entry) => entry.clone(),
            None => {
                self.entries
                    .get(&self.store, &job.delivery.audit_id)
                    .await?
            }
        };
        let mut prepared = prepare_request(
            &self.store,
            &self.integrations,
            &job.delivery.destination,
            &entry,
        )
        .await?;
        prepared
            .request
            .headers
            .push((DELIVERY_HEADER.to_string(), job.delivery.id.clone()));
        Ok(prepared)
    }
}

impl Dispatch {
    fn enqueue(&mut self, jobs: impl IntoIterator<Item = Job>, claimed: bool) {
        for job in jobs {
            if claimed {
                self.claimed_waiting += 1;
            }
            self.destinations
                .entry(job.delivery.destination.clone())
                .or_default()
                .waiting
                .push_back(job);
        }
    }

    fn finish(&mut self, integrations: &Integrations, done: Finished) {
        self.in_flight -= 1;
        if let Some(queue) = self.destinations.get_mut(&done.destination) {
            queue.in_flight -= 1;
        }
        if done.handed_off
            && let Some(handoff) = integrations.handoff.get()
        {
            handoff.release([done.destination]);
        }
    }
}

/// Audit entries read for claimed deliveries (retries, overflow): one change usually has
/// several due at about the same time, so each is read and rendered once, not once per
/// destination. Bounded and short-lived; entries never change.
#[derive(Default)]
struct EntryCache {
    entries: Mutex<HashMap<String, (Instant, Arc<PreparedEntry>)>>,
}

impl EntryCache {
    const TTL: Duration = Duration::from_secs(10);
    const MAX: usize = 1024;

    async fn get(
        &self,
        store: &Arc<dyn Store>,
        audit_id: &str,
    ) -> Result<Arc<PreparedEntry>, NotSent> {
        if let Some((at, entry)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(audit_id)
            && at.elapsed() < Self::TTL
        {
            return Ok(entry.clone());
        }
        let entry = match store.audit_get(audit_id).await {
            Ok(Some(doc)) => serde_json::from_str::<AuditEntry>(&doc)
                .map_err(|e| NotSent::Permanent(format!("corrupt audit entry: {e}")))?,
            Ok(None) => {
                return Err(NotSent::Permanent(
                    "the audit entry no longer exists".into(),
                ));
            }
            Err(e) => {
                return Err(NotSent::Permanent(format!(
                    "cannot read the audit entry: {e}"
                )));
            }
        };
        let entry = Arc::new(PreparedEntry::new(entry));
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::MAX {
            entries.retain(|_, (at, _)| at.elapsed() < Self::TTL);
            if entries.len() >= Self::MAX {
                entries.clear();
            }
        }
        entries.insert(audit_id.to_string(), (Instant::now(), entry.clone()));
        Ok(entry)
    }
}

/// Builds the request a destination receives for an audit entry.
pub async fn prepare_request(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    destination: &str,
    entry: &PreparedEntry,
) -> Result<Prepared, NotSent> {
    match open_destination(store, integrations, destination)
        .await?
        .as_ref()
    {
        Opened::Webhook { url, secret } => {
            let body = entry.webhook_body().to_vec();
            let mut request = OutboundRequest::new("POST", url.clone())
                .header("Content-Type", "application/json");
            if let Some(secret) = secret {
                request = request.header("X-LD-Signature", sign_body(secret.as_bytes(), &body));
            }
            Ok(Prepared {
                request: request.body(body),
                keep_error_body: false,
            })
        }
        Opened::Subscription {
            integration,
            form_values,
        } => {
            let event = super::event::event_context(
                store.as_ref(),
                &entry.entry,
                &integrations.settings.base_url,
            )
            .await;
            let standard = crate::render::audit_entry(&entry.entry, true);
            // Not part of the opened destination: tokens are refreshed and rotated.
            let oauth =
                super::oauth_client::template_oauth(store, integrations, integration).await?;
            let input = PreviewInput {
                form_values: form_values.clone(),
                oauth,
                compat: flagstaff_template::Compat::Go,
                standard_payload: Some(standard),
            };
            match preview(integration, &Target::AuditLogEventsHook, &event, &input) {
                Ok(Preview::Request(rendered)) => {
                    let mut request = OutboundRequest::new(rendered.method, rendered.url)
                        .body(rendered.body.into_bytes());
                    for header in rendered.headers {
                        request = request.header(header.name, header.value);
                    }
                    let keep_error_body = integration
                        .manifest
                        .capabilities
                        .as_ref()
                        .and_then(|c| c.audit_log_events_hook.as_ref())
                        .is_some_and(|h| h.include_error_response_body)
                        && !integration
                            .warnings
                            .iter()
                            .any(|w| w.rule == "include-error-response-body");
                    Ok(Prepared {
                        request,
                        keep_error_body,
                    })
                }
                Ok(Preview::Skipped(reason)) => Err(NotSent::Skipped(reason)),
                Ok(Preview::Rendered(_)) => Err(NotSent::Permanent(
                    "the integration does not build a request for change-history events".into(),
                )),
                Err(error) => Err(NotSent::Permanent(error.to_string())),
            }
        }
    }
}

/// The destination's configuration with its secrets opened: from the routing table's cache,
/// or read, checked and opened once, then kept until the destinations next change.
async fn open_destination(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    destination: &str,
) -> Result<Arc<Opened>, NotSent> {
    let (generation, cached) = integrations.destinations.opened(destination);
    if let Some(opened) = cached {
        return Ok(opened);
    }
    let parts: Vec<&str> = destination.splitn(3, '/').collect();
    let opened = match parts.as_slice() {
        ["webhook", id] => {
            let doc: WebhookDoc = load(store, EntityRef::new(EntityKind::Webhook, "", *id))
                .await
                .ok_or_else(|| NotSent::Permanent("the webhook was deleted".into()))?;
            if !doc.on {
                return Err(NotSent::Permanent("the webhook is turned off".into()));
            }
            let secret = match (&doc.secret, doc.sign) {
                (Some(sealed), true) => Some(
                    integrations
                        .secrets
                        .open_for(webhook_secret_aad(&doc.id).as_bytes(), sealed)
                        .map_err(|_| {
                            NotSent::Permanent(
                                "the webhook secret cannot be decrypted with this server's key"
                                    .into(),
                            )
                        })?,
                ),
                _ => None,
            };
            Opened::Webhook {
                url: doc.url,
                secret,
            }
        }
        ["integration", key, id] => {
            let doc: SubscriptionDoc = load(
                store,
                EntityRef::new(EntityKind::IntegrationConfig, *key, *id),
            )
            .await
            .ok_or_else(|| {
                NotSent::Permanent("the integration configuration was deleted".into())
            })?;
            if !doc.on {
                return Err(NotSent::Permanent(
                    "the integration configuration is turned off".into(),
                ));
            }
            let integration = integrations
                .catalogue
                .current()
                .get(key)
                .cloned()
                .ok_or_else(|| {
                    NotSent::Permanent(format!(
                        "integration `{key}` is not in the loaded catalogue"
                    ))
                })?;
            let form_values = open_config(integrations, &integration, &doc)?;
            Opened::Subscription {
                integration,
                form_values,
            }
        }
        _ => {
            return Err(NotSent::Permanent(format!(
                "unknown destination `{destination}`"
            )));
        }
    };
    let opened = Arc::new(opened);
    integrations
        .destinations
        .keep_opened(generation, destination, opened.clone());
    Ok(opened)
}

/// Exponential backoff with ±50% jitter, so a partner coming back is not hit by every
/// retry at the same instant.
pub fn backoff(settings: &super::DeliverySettings, attempt: i64) -> Duration {
    let exponent = (attempt - 1).clamp(0, 20) as u32;
    let base = settings
        .base_backoff
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(settings.max_backoff);
    let jitter = 0.5 + (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    base.mul_f64(jitter)
}

/// Associated data binding a sealed webhook secret to its webhook.
pub fn webhook_secret_aad(id: &str) -> String {
    format!("webhook/{id}/secret")
}

/// Associated data binding a sealed form value to its configuration and field.
pub fn config_secret_aad(integration_key: &str, id: &str, field: &str) -> String {
    format!("integration/{integration_key}/{id}/{field}")
}

/// The configuration's form values with secrets decrypted.
pub fn open_config(
    integrations: &Integrations,
    integration: &flagstaff_manifest::Integration,
    doc: &SubscriptionDoc,
) -> Result<Map<String, Value>, NotSent> {
    open_values(
        integrations,
        &integration.manifest.form_variables,
        &doc.integration_key,
        &doc.id,
        &doc.config,
    )
}

/// Stored form values with the secret ones among `variables` decrypted.
pub fn open_values(
    integrations: &Integrations,
    variables: &[flagstaff_manifest::model::FormVariable],
    integration_key: &str,
    id: &str,
    config: &Map<String, Value>,
) -> Result<Map<String, Value>, NotSent> {
    let mut values = config.clone();
    for variable in variables {
        if !variable.is_secret {
            continue;
        }
        if let Some(Value::String(sealed)) = values.get(&variable.key) {
            let aad = config_secret_aad(integration_key, id, &variable.key);
            let plain = integrations
                .secrets
                .open_for(aad.as_bytes(), sealed)
                .map_err(|_| {
                    NotSent::Permanent(format!(
                        "the secret `{}` cannot be decrypted with this server's key",
                        variable.key
                    ))
                })?;
            values.insert(variable.key.clone(), Value::String(plain));
        }
    }
    Ok(values)
}

async fn load<T: serde::de::DeserializeOwned>(
    store: &Arc<dyn Store>,
    target: EntityRef,
) -> Option<T> {
    let stored = store.get(&target).await.ok().flatten()?;
    serde_json::from_str(&stored.doc).ok()
}
