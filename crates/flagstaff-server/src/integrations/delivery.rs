//! Delivery workers: claim due deliveries, build each request from the audit entry and the
//! destination's current configuration, send it through the outbound-safe client, record the
//! attempt, retry with backoff, and turn off a destination that keeps failing.
//!
//! At-least-once: a delivery is marked delivered only after the partner answered 2xx; a crash
//! in between leaves it leased, and the lease expiring makes it due again. Every request
//! carries `X-Flagstaff-Delivery: <id>` so receivers can drop the duplicates this allows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flagstaff_manifest::preview::{Preview, PreviewInput, Target, preview, sign_body};
use flagstaff_model::audit::AuditEntry;
use flagstaff_outbound::{OutboundError, OutboundRequest};
use flagstaff_store::{
    ClaimedDelivery, DeliveryNext, DeliveryOutcome, EntityKind, EntityRef, Store,
};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};

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

pub struct Worker {
    store: Arc<dyn Store>,
    services: Arc<Services>,
    integrations: Arc<Integrations>,
}

struct Result_ {
    outcome: DeliveryOutcome,
    destination: String,
    success: bool,
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
        }
    }

    /// Runs the claim loop and the recorder until the runtime stops.
    pub fn spawn(self) {
        let worker = Arc::new(self);
        let (results, receiver) = mpsc::channel::<Result_>(4096);
        let inflight: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        tokio::spawn(worker.clone().record_results(receiver, inflight.clone()));
        tokio::spawn(worker.claim_loop(results, inflight));
    }

    async fn claim_loop(
        self: Arc<Self>,
        results: mpsc::Sender<Result_>,
        inflight: Arc<Mutex<HashMap<String, usize>>>,
    ) {
        let settings = &self.integrations.settings;
        let global = Arc::new(Semaphore::new(settings.total_concurrency));
        let mut last_reload = std::time::Instant::now();
        loop {
            if last_reload.elapsed() > Duration::from_secs(5) {
                // Other nodes may have changed destinations.
                self.integrations
                    .destinations
                    .reload(self.store.as_ref(), &self.integrations.catalogue)
                    .await;
                last_reload = std::time::Instant::now();
            }
            let free = global.available_permits();
            if free == 0 {
                let _ = global.clone().acquire_owned().await.map(drop);
                continue;
            }
            let excluded: Vec<String> = {
                let inflight = inflight.lock().unwrap_or_else(|p| p.into_inner());
                inflight
                    .iter()
                    .filter(|(_, n)| **n >= settings.per_destination_concurrency)
                    .map(|(d, _)| d.clone())
                    .collect()
            };
            let now = wall_millis();
            let lease_until = now + settings.lease.as_millis() as i64;
            let limit = settings.claim_batch.min(free as i64);
            let claimed = match self
                .store
                .deliveries_claim(now, lease_until, limit, &excluded)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!("claiming deliveries failed: {e}");
                    tokio::time::sleep(settings.poll_interval).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = self.integrations.wake.notified() => {}
                    _ = tokio::time::sleep(settings.poll_interval) => {}
                }
                continue;
            }
            let mut surplus = Vec::new();
            for delivery in claimed {
                let permitted = {
                    let mut inflight = inflight.lock().unwrap_or_else(|p| p.into_inner());
                    let count = inflight.entry(delivery.destination.clone()).or_default();
                    if *count >= settings.per_destination_concurrency {
                        false
                    } else {
                        *count += 1;
                        true
                    }
                };
                if !permitted {
                    surplus.push(delivery.id);
                    continue;
                }
                let Ok(permit) = global.clone().acquire_owned().await else {
                    return;
                };
                let worker = self.clone();
                let results = results.clone();
                tokio::spawn(async move {
                    let result = worker.attempt(&delivery).await;
                    drop(permit);
                    let _ = results.send(result).await;
                });
            }
            if !surplus.is_empty() {
                // Over the destination's concurrency: hand the leases back at once rather than
                // holding them while earlier requests to a slow partner finish.
                if let Err(e) = self.store.deliveries_release(&surplus).await {
                    tracing::warn!("releasing surplus deliveries failed: {e}");
                }
            }
        }
    }

    async fn record_results(
        self: Arc<Self>,
        mut receiver: mpsc::Receiver<Result_>,
        inflight: Arc<Mutex<HashMap<String, usize>>>,
    ) {
        let threshold = self.integrations.settings.disable_after_failures;
        while let Some(first) = receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < 512 {
                match receiver.try_recv() {
                    Ok(result) => batch.push(result),
                    Err(_) => break,
                }
            }
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
            {
                let mut inflight = inflight.lock().unwrap_or_else(|p| p.into_inner());
                for result in &batch {
                    if let Some(count) = inflight.get_mut(&result.destination) {
                        *count = count.saturating_sub(1);
                    }
                    let failures = self
                        .integrations
                        .destinations
                        .record(&result.destination, result.success);
                    if threshold > 0 && failures == threshold {
                        to_disable.push(result.destination.clone());
                    }
                }
                inflight.retain(|_, n| *n > 0);
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
            self.integrations.wake.notify_one();
        }
    }

    /// One attempt at one delivery.
    async fn attempt(&self, delivery: &ClaimedDelivery) -> Result_ {
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
        let prepared = match self.prepare(delivery).await {
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

    async fn prepare(&self, delivery: &ClaimedDelivery) -> Result<Prepared, NotSent> {
        let entry = match self.store.audit_get(&delivery.audit_id).await {
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
        prepare_request(
            &self.store,
            &self.integrations,
            &delivery.destination,
            &entry,
        )
        .await
        .map(|mut prepared| {
            prepared
                .request
                .headers
                .push((DELIVERY_HEADER.to_string(), delivery.id.clone()));
            prepared
        })
    }
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

/// Builds the request a destination receives for an audit entry.
pub async fn prepare_request(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    destination: &str,
    entry: &AuditEntry,
) -> Result<Prepared, NotSent> {
    let parts: Vec<&str> = destination.splitn(3, '/').collect();
    match parts.as_slice() {
        ["webhook", id] => {
            let doc: WebhookDoc = load(store, EntityRef::new(EntityKind::Webhook, "", *id))
                .await
                .ok_or_else(|| NotSent::Permanent("the webhook was deleted".into()))?;
            if !doc.on {
                return Err(NotSent::Permanent("the webhook is turned off".into()));
            }
            let body =
                serde_json::to_vec(&crate::render::audit_entry(entry, true)).unwrap_or_default();
            let mut request = OutboundRequest::new("POST", doc.url.clone())
                .header("Content-Type", "application/json");
            if doc.sign
                && let Some(sealed) = &doc.secret
            {
                let secret = integrations
                    .secrets
                    .open_for(webhook_secret_aad(&doc.id).as_bytes(), sealed)
                    .map_err(|_| {
                        NotSent::Permanent(
                            "the webhook secret cannot be decrypted with this server's key".into(),
                        )
                    })?;
                request = request.header("X-LD-Signature", sign_body(secret.as_bytes(), &body));
            }
            Ok(Prepared {
                request: request.body(body),
                keep_error_body: false,
            })
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
            let catalogue = integrations.catalogue.current();
            let integration = catalogue.get(key).ok_or_else(|| {
                NotSent::Permanent(format!(
                    "integration `{key}` is not in the loaded catalogue"
                ))
            })?;
            let form_values = open_config(integrations, integration, &doc)?;
            let event =
                super::event::event_context(store.as_ref(), entry, &integrations.settings.base_url)
                    .await;
            let standard = crate::render::audit_entry(entry, true);
            let oauth =
                super::oauth_client::template_oauth(store, integrations, integration).await?;
            let input = PreviewInput {
                form_values,
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
        _ => Err(NotSent::Permanent(format!(
            "unknown destination `{destination}`"
        ))),
    }
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
    let mut values = doc.config.clone();
    for variable in &integration.manifest.form_variables {
        if !variable.is_secret {
            continue;
        }
        if let Some(Value::String(sealed)) = values.get(&variable.key) {
            let aad = config_secret_aad(&doc.integration_key, &doc.id, &variable.key);
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
