//! Approval integrations (the `approval` capability): sending a lifecycle step of an
//! approval request to the partner, and the scheduler that runs due steps.
//!
//! ```text
//! create/apply/delete (services/approvals.rs) ─► approval_jobs row (step, due_at) ─┐
//! scheduler tick ─► claim due rows with a lease (at most `concurrency` in flight) ─┤
//! GET of one request ─► claim that row now (poll on read) ──────────────────────────┤
//!      ─► send_step: flagstaff_manifest::approval::build_request (the preview code)
//!         ─► SafeClient (address policy, no redirects, timeouts, capped body)
//!         ─► parser: external id, status, approved / rejected / pending
//!      ─► Services::record_approval_step: the row's next state (retry with the delivery
//!         backoff on failure, next poll after `poll_interval`); an outcome that changes the
//!         request (approved, rejected) is committed with an audit entry
//! ```
//!
//! The row is the only state: a restarted node finds every pending step and its due time in
//! the database, and a crashed node's lease expires for another to take over. Terminal
//! requests (approved, rejected, applied, deleted) have no due row, so they are never polled.

use std::sync::Arc;
use std::time::Duration;

use flagstaff_manifest::approval::{ExternalMember, Outcome, ParsedStatus};
use flagstaff_manifest::preview::PreviewInput;
use flagstaff_outbound::OutboundRequest;
use flagstaff_store::{EntityKind, EntityRef, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::delivery::{NotSent, open_config};
use super::{Integrations, SubscriptionDoc};

/// How approval integrations are driven; the defaults are LaunchDarkly's.
#[derive(Debug, Clone)]
pub struct ApprovalJobSettings {
    /// Time between status checks of a pending request (LaunchDarkly: 5 minutes).
    pub poll_interval: Duration,
    /// Partner requests in flight at once, across every request on this node.
    pub concurrency: usize,
    /// How often the scheduler looks for due steps.
    pub tick: Duration,
    /// How long a claimed step stays leased to this node.
    pub lease: Duration,
    /// Rows claimed per round trip.
    pub claim_batch: i64,
    /// Failed attempts after which a one-shot step (post-apply, deletion) is given up;
    /// creation and status checks keep retrying with backoff while the request is open.
    pub max_attempts: i64,
    /// Limit for one partner request (the outbound client has its own, longer one).
    pub request_timeout: Duration,
    /// How long a fetched member list is used (LaunchDarkly refreshes every 4 hours).
    pub member_list_ttl: Duration,
    /// Whether reading one request checks its status at once.
    pub check_on_read: bool,
}

impl Default for ApprovalJobSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(300),
            concurrency: 16,
            tick: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            claim_batch: 256,
            max_attempts: 8,
            request_timeout: Duration::from_secs(10),
            member_list_ttl: Duration::from_secs(4 * 3600),
            check_on_read: true,
        }
    }
}

/// A job's data (the `data` column): what every step needs to render its request, and what
/// the partner answered so far. Secrets are not here: they are opened from the integration
/// configuration at send time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalApproval {
    pub integration_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<String>,
    /// The environment's `serviceConfig` (the capability's environment form variables).
    #[serde(default)]
    pub environment_values: Map<String, Value>,
    /// The request's `integrationConfig` (approval form variables).
    #[serde(default)]
    pub approval_values: Map<String, Value>,
    /// What body templates see; `approvalId` is Flagstaff's request id.
    pub event: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_response_body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_display: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<i64>,
}

impl ExternalApproval {
    /// The event with what the partner answered: `creationResponseBody` for every template,
    /// and for endpoint templates `approvalId` is the partner's id (`context.approvalId`).
    fn events(&self) -> (Value, Value) {
        let mut body = self.event.clone();
        if let (Value::Object(object), Some(response)) = (&mut body, &self.creation_response_body) {
            object.insert("creationResponseBody".into(), response.clone());
        }
        let mut endpoint = body.clone();
        if let (Value::Object(object), Some(id)) = (&mut endpoint, &self.external_id) {
            object.insert("approvalId".into(), Value::from(id.clone()));
        }
        (body, endpoint)
    }
}

/// Why a step failed. Every failure is retried (the partner may come back, a token may be
/// reconnected) unless it is `permanent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub permanent: bool,
}

impl StepError {
    fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
        }
    }

    fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
        }
    }
}

impl From<NotSent> for StepError {
    fn from(e: NotSent) -> Self {
        match e {
            NotSent::Retry(m) => StepError::retry(m),
            NotSent::Permanent(m) | NotSent::Skipped(m) => StepError::permanent(m),
        }
    }
}

/// A partner's successful answer to a step.
#[derive(Debug, Clone)]
pub struct StepAnswer {
    pub body: Value,
    /// The step's parser applied to the body (`None`: the step has no parser).
    pub status: Option<ParsedStatus>,
    pub external_url: Option<String>,
}

/// The integration and its opened form values (configuration secrets decrypted, the
/// environment values under `environment`, the approval ones under `approval`, OAuth).
async fn inputs(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    data: &ExternalApproval,
) -> Result<(Arc<flagstaff_manifest::Integration>, PreviewInput), StepError> {
    let integration = integrations
        .catalogue
        .current()
        .get(&data.integration_key)
        .cloned()
        .ok_or_else(|| {
            StepError::retry(format!(
                "integration `{}` is not in the loaded catalogue",
                data.integration_key
            ))
        })?;
    let mut form_values = match &data.configuration_id {
        Some(id) => {
            let stored = store
                .get(&EntityRef::new(
                    EntityKind::IntegrationConfig,
                    data.integration_key.clone(),
                    id.clone(),
                ))
                .await
                .map_err(|e| StepError::retry(e.to_string()))?
                .ok_or_else(|| {
                    StepError::retry(format!(
                        "integration configuration {id} of `{}` was deleted",
                        data.integration_key
                    ))
                })?;
            let doc: SubscriptionDoc = serde_json::from_str(&stored.doc)
                .map_err(|e| StepError::permanent(e.to_string()))?;
            open_config(integrations, &integration, &doc)?
        }
        None => Map::new(),
    };
    form_values.insert(
        "environment".into(),
        Value::Object(data.environment_values.clone()),
    );
    form_values.insert(
        "approval".into(),
        Value::Object(data.approval_values.clone()),
    );
    let oauth = super::oauth_client::template_oauth(store, integrations, &integration).await?;
    Ok((
        integration,
        PreviewInput {
            form_values,
            oauth,
            compat: flagstaff_template::Compat::Go,
            standard_payload: None,
        },
    ))
}

/// Sends one request through the outbound client and returns its JSON body (empty: null).
async fn exchange(
    integrations: &Integrations,
    rendered: flagstaff_manifest::preview::RenderedRequest,
    settings: &ApprovalJobSettings,
) -> Result<Value, StepError> {
    let mut request =
        OutboundRequest::new(rendered.method, rendered.url).body(rendered.body.into_bytes());
    for header in rendered.headers {
        request = request.header(header.name, header.value);
    }
    let response = tokio::time::timeout(
        settings.request_timeout,
        integrations.outbound.send(request),
    )
    .await
    .map_err(|_| {
        StepError::retry(format!(
            "the partner did not answer within {} ms",
            settings.request_timeout.as_millis()
        ))
    })?
    .map_err(|e| StepError::retry(e.to_string()))?;
    if !(200..300).contains(&response.status) {
        return Err(StepError::retry(format!(
            "the partner answered HTTP {}",
            response.status
        )));
    }
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        StepError::retry(format!(
            "the partner's answer (HTTP {}) is not JSON: {e}",
            response.status
        ))
    })
}

/// Sends `step` of the approval capability for `data` and reads the answer with the step's
/// parser. An answer the parser cannot read is a failure like an HTTP error.
pub async fn send_step(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    settings: &ApprovalJobSettings,
    data: &ExternalApproval,
    step: &str,
) -> Result<StepAnswer, StepError> {
    let (integration, input) = inputs(store, integrations, data).await?;
    let (body_event, endpoint_event) = data.events();
    let rendered = flagstaff_manifest::approval::build_request(
        &integration,
        step,
        &body_event,
        &endpoint_event,
        &input,
    )
    .map_err(|e| StepError::permanent(e.to_string()))?;
    let body = exchange(integrations, rendered, settings).await?;
    let capability = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.approval.as_ref())
        .ok_or_else(|| StepError::permanent("the integration lost its approval capability"))?;
    let status = match flagstaff_manifest::approval::parser(capability, step) {
        Some(parser) => Some(
            flagstaff_manifest::approval::parse_status(parser, &body)
                .map_err(|e| StepError::retry(format!("the partner's answer: {e}")))?,
        ),
        None => None,
    };
    // The link needs the external id, which the creation answer has just given.
    let mut known = data.clone();
    if let Some(id) = status.as_ref().and_then(|s| s.approval_id.clone()) {
        known.external_id = Some(id);
    }
    let external_url = match known.external_id {
        Some(_) => {
            flagstaff_manifest::approval::external_url(&integration, &known.events().1, &input)
                .ok()
                .flatten()
        }
        None => None,
    };
    Ok(StepAnswer {
        body,
        status,
        external_url,
    })
}

/// Fetches the partner's users (`memberListRequest`); `Ok(None)` when the manifest has none.
pub async fn member_list(
    store: &Arc<dyn Store>,
    integrations: &Integrations,
    settings: &ApprovalJobSettings,
    data: &ExternalApproval,
) -> Result<Option<Vec<ExternalMember>>, StepError> {
    let (integration, input) = inputs(store, integrations, data).await?;
    let Some(capability) = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.approval.as_ref())
        .filter(|a| a.member_list_request.is_some())
    else {
        return Ok(None);
    };
    let (body_event, endpoint_event) = data.events();
    let rendered = flagstaff_manifest::approval::build_request(
        &integration,
        "memberListRequest",
        &body_event,
        &endpoint_event,
        &input,
    )
    .map_err(|e| StepError::permanent(e.to_string()))?;
    let body = exchange(integrations, rendered, settings).await?;
    flagstaff_manifest::approval::parse_member_list(capability, &body)
        .map(Some)
        .map_err(|e| StepError::retry(format!("the partner's member list: {e}")))
}

/// Runs due steps: every `tick`, claims what is due (no more than free slots) and runs each
/// holding one of the `concurrency` permits it shares with steps run at once, so no more
/// partner requests are ever in flight. The loop ends when the runtime does.
pub fn spawn_scheduler(services: Arc<crate::services::Services>) {
    tokio::spawn(async move {
        let Some(integrations) = services.integrations() else {
            return;
        };
        let settings = integrations.approvals.clone();
        let slots = integrations.approval_slots.clone();
        loop {
            let free = slots.available_permits();
            if free > 0 {
                match services.claim_due_approval_steps(free as i64).await {
                    Ok(jobs) => {
                        let full = jobs.len() == free;
                        for job in jobs {
                            let permit = slots
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("the semaphore is never closed");
                            let services = services.clone();
                            tokio::spawn(async move {
                                services.run_approval_step(job).await;
                                drop(permit);
                            });
                        }
                        if full {
                            // More may be due: claim again as soon as a slot frees.
                            let _ = slots.clone().acquire_owned().await;
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!("cannot claim approval steps: {e}"),
                }
            }
            tokio::time::sleep(settings.tick).await;
        }
    });
}
