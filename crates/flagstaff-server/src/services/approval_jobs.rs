//! The approval-integration side of approval requests: preparing a request for its partner,
//! queueing lifecycle steps, running one step and committing what the partner decided.
//! Sending is in `integrations/approval_jobs.rs`; the rules of a request in `approvals.rs`.

use std::sync::Arc;

use flagstaff_manifest::approval::Outcome;
use flagstaff_model::approval::{ApprovalSettings, Review};
use flagstaff_model::audit::AuditEntry;
use flagstaff_model::new_object_id;
use flagstaff_store::{ApprovalJob, EntityKind};
use serde_json::{Map, Value, json};

use super::approvals::{ApprovalRequestDoc, approval_ref};
use super::{ProjectContext, Services, now_millis, wall_millis};
use crate::error::{ApiError, ApiResult};
use crate::integrations::approval_jobs::{ExternalApproval, member_list, send_step};
use crate::integrations::{Integrations, SubscriptionDoc};

const CREATE: &str = "creationRequest";
const STATUS: &str = "statusRequest";
const POST_APPLY: &str = "postApplyRequest";
const DELETE: &str = "deletionRequest";

fn millis(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Services {
    fn approval_runtime(&self) -> ApiResult<Arc<Integrations>> {
        self.integrations().ok_or_else(|| {
            ApiError::invalid("approval integrations are not available while bootstrapping")
        })
    }

    /// Checks that the environment's approval integration can be used and collects what its
    /// requests will need (everything but the event, which exists once the request does).
    pub(super) async fn prepare_external(
        &self,
        settings: &ApprovalSettings,
        env: &str,
        integration_config: Option<&Value>,
    ) -> ApiResult<ExternalApproval> {
        let integrations = self.approval_runtime()?;
        let key = &settings.service_kind;
        let integration = integrations
            .catalogue
            .current()
            .get(key)
            .cloned()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "environment \"{env}\" delegates approvals to \"{key}\", which is not in the loaded integration catalogue: load it (--integrations-dir) or set approvalSettings.serviceKind to \"launchdarkly\""
                ))
            })?;
        let capability = integration
            .manifest
            .capabilities
            .as_ref()
            .and_then(|c| c.approval.as_ref())
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "integration \"{key}\" has no approval capability: set approvalSettings.serviceKind to an approval integration or \"launchdarkly\""
                ))
            })?;
        let configuration_id = match &settings.service_kind_configuration_id {
            Some(id) => {
                self.get_subscription(key, id).await.map_err(|_| {
                    ApiError::invalid(format!(
                        "approvalSettings.serviceKindConfigurationId \"{id}\" of environment \"{env}\" is not a configuration of integration \"{key}\""
                    ))
                })?;
                Some(id.clone())
            }
            None if integration.manifest.form_variables.is_empty() => None,
            None => {
                let configurations = self
                    .load_all::<SubscriptionDoc>(EntityKind::IntegrationConfig, key)
                    .await?;
                match configurations.as_slice() {
                    [(only, _)] => Some(only.id.clone()),
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "environment \"{env}\" must name which configuration of \"{key}\" to use: set approvalSettings.serviceKindConfigurationId to one of POST /api/v2/integration-configurations/keys/{key}"
                        )));
                    }
                }
            }
        };
        let approval_values = match integration_config {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(values)) => {
                if !capability.allow_additional_approval_form_variables
                    && let Some(unknown) = values.keys().find(|k| {
                        !capability
                            .approval_form_variables
                            .iter()
                            .any(|v| &v.key == *k)
                    })
                {
                    return Err(ApiError::invalid(format!(
                        "integrationConfig.{unknown} is not an approval form variable of \"{key}\""
                    )));
                }
                values.clone()
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "integrationConfig must be an object of approval form values",
                ));
            }
        };
        Ok(ExternalApproval {
            integration_key: key.clone(),
            configuration_id,
            environment_values: settings.service_config.clone(),
            approval_values,
            ..ExternalApproval::default()
        })
    }

    /// What the partner's templates see for a new request: the change-history event of its
    /// creation plus the approval fields (`approvalId`, `_links.approval`, `flag`,
    /// `approvalDescription`, `member.externalId`).
    pub(super) async fn approval_event(
        &self,
        entry: &AuditEntry,
        doc: &ApprovalRequestDoc,
        context: &ProjectContext,
        tags: &[String],
        external: &mut ExternalApproval,
    ) {
        let Ok(integrations) = self.approval_runtime() else {
            return;
        };
        let base = integrations
            .settings
            .base_url
            .trim_end_matches('/')
            .to_string();
        let mut event =
            crate::integrations::event::event_context(self.store.as_ref(), entry, &base).await;
        let b = &doc.binding;
        let name = if b.kind == "flag" {
            self.get_flag(&b.project, &b.key)
                .await
                .map(|(f, _)| f.name)
                .unwrap_or_else(|_| b.key.clone())
        } else {
            self.get_segment(&b.project, &b.environment, &b.key)
                .await
                .map(|(s, _)| s.name)
                .unwrap_or_else(|_| b.key.clone())
        };
        let page = format!(
            "{base}/{}/{}/features/{}/approvals/{}",
            b.project, b.environment, b.key, doc.id
        );
        event["approvalId"] = json!(doc.id);
        event["_links"]["approval"] = json!({"href": page, "type": "text/html"});
        event["_links"]["history"] = json!({
            "href": format!("{base}/{}/{}/features/{}/history", b.project, b.environment, b.key),
            "type": "text/html"
        });
        event[b.kind.as_str()] = json!({"name": name, "key": b.key, "tags": tags});
        event["approvalDescription"] = json!(doc.description);
        if let Some(env) = context.environment(&b.environment) {
            event["project"]["environment"] =
                json!({"name": env.name, "key": env.key, "tags": env.tags});
        }
        let email = entry.member.as_ref().map(|m| m.email.clone());
        let mut external_id = String::new();
        if let Some(email) = email.filter(|e| !e.is_empty()) {
            match self.external_members(&integrations, external).await {
                Ok(Some(members)) => {
                    if let Some(id) =
                        flagstaff_manifest::approval::external_id_for(&members, &email)
                    {
                        external_id = id.to_string();
                    }
                }
                Ok(None) => {}
                Err(message) => {
                    event["memberListError"] = json!(message);
                }
            }
        }
        event["member"]["externalId"] = json!(external_id);
        external.event = event;
    }

    /// The partner's users, fetched at most once per `member_list_ttl` per configuration.
    async fn external_members(
        &self,
        integrations: &Arc<Integrations>,
        external: &ExternalApproval,
    ) -> Result<Option<Arc<Vec<flagstaff_manifest::approval::ExternalMember>>>, String> {
        let cache_key = format!(
            "{}/{}",
            external.integration_key,
            external.configuration_id.as_deref().unwrap_or("")
        );
        let ttl = integrations.approvals.member_list_ttl;
        if let Some((at, members)) = integrations
            .member_lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cache_key)
            && at.elapsed() < ttl
        {
            return Ok(Some(members.clone()));
        }
        let Ok(_permit) = integrations.approval_slots.clone().acquire_owned().await else {
            return Ok(None);
        };
        match member_list(&self.store, integrations, &integrations.approvals, external).await {
            Ok(Some(members)) => {
                let members = Arc::new(members);
                integrations
                    .member_lists
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(cache_key, (std::time::Instant::now(), members.clone()));
                Ok(Some(members))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e.message),
        }
    }

    /// Queues `step` of a request's partner work, due now, replacing whatever was pending.
    pub(super) async fn queue_approval_step(
        &self,
        request_id: &str,
        step: &str,
        data: Option<ExternalApproval>,
    ) -> ApiResult<()> {
        let current = self.store.approval_job_get(request_id).await?;
        let data = match (data, &current) {
            (Some(data), _) => {
                serde_json::to_string(&data).map_err(|e| ApiError::Internal(e.to_string()))?
            }
            (None, Some(job)) => job.data.clone(),
            (None, None) => return Ok(()),
        };
        self.store
            .approval_job_put(&ApprovalJob {
                request_id: request_id.to_string(),
                step: step.to_string(),
                state: "due".into(),
                due_at: wall_millis(),
                lease_until: 0,
                attempts: 0,
                last_attempt_at: None,
                last_error: None,
                data,
            })
            .await?;
        Ok(())
    }

    /// Runs the request's due step now, unless another worker holds it. `status_only`: only
    /// a status check (reading a request must not resend a failing creation).
    pub async fn run_approval_step_now(&self, request_id: &str, status_only: bool) {
        let Ok(integrations) = self.approval_runtime() else {
            return;
        };
        if status_only {
            match self.store.approval_job_get(request_id).await {
                Ok(Some(job)) if job.step == STATUS && job.state == "due" => {}
                _ => return,
            }
        }
        // Shares the scheduler's permits: reads and writes never push the partner past the
        // configured concurrency.
        let Ok(_permit) = integrations.approval_slots.clone().acquire_owned().await else {
            return;
        };
        let now = wall_millis();
        let lease = now + millis(integrations.approvals.lease);
        match self
            .store
            .approval_job_claim_one(request_id, now, lease)
            .await
        {
            Ok(Some(job)) => self.run_approval_step(job).await,
            Ok(None) => {}
            Err(e) => tracing::warn!("cannot claim approval step of {request_id}: {e}"),
        }
    }

    pub async fn claim_due_approval_steps(
        &self,
        limit: i64,
    ) -> flagstaff_store::StoreResult<Vec<ApprovalJob>> {
        let Ok(integrations) = self.approval_runtime() else {
            return Ok(Vec::new());
        };
        let now = wall_millis();
        self.store
            .approval_jobs_claim(
                now,
                now + millis(integrations.approvals.lease),
                limit.min(integrations.approvals.claim_batch),
            )
            .await
    }

    /// Sends a claimed step and records its outcome; commits a decision the partner made.
    pub async fn run_approval_step(&self, job: ApprovalJob) {
        let Ok(integrations) = self.approval_runtime() else {
            return;
        };
        let settings = &integrations.approvals;
        let Ok(mut data) = serde_json::from_str::<ExternalApproval>(&job.data) else {
            let mut failed = job.clone();
            failed.state = "failed".into();
            failed.last_error = Some("the stored job cannot be read".into());
            let _ = self.store.approval_job_record(&failed, &job.step).await;
            return;
        };
        let mut next = job.clone();
        let now = wall_millis();
        next.last_attempt_at = Some(now);
        // Nothing to report or cancel without the partner's id.
        if matches!(job.step.as_str(), POST_APPLY | DELETE) && data.external_id.is_none() {
            next.state = "done".into();
            next.last_error = None;
            let _ = self.store.approval_job_record(&next, &job.step).await;
            return;
        }
        let mut decided = None;
        match send_step(&self.store, &integrations, settings, &data, &job.step).await {
            Ok(answer) => {
                if let Some(status) = &answer.status {
                    if let Some(id) = &status.approval_id {
                        data.external_id = Some(id.clone());
                    }
                    data.status_value = Some(status.value.clone());
                    data.status_display = Some(status.display.clone());
                    data.outcome = Some(status.outcome);
                    data.last_checked = Some(now);
                }
                if job.step == CREATE {
                    data.creation_response_body = Some(answer.body.clone());
                }
                if answer.external_url.is_some() {
                    data.external_url = answer.external_url.clone();
                }
                next.attempts = 0;
                next.last_error = None;
                match job.step.as_str() {
                    CREATE | STATUS => match data.outcome {
                        Some(outcome @ (Outcome::Approved | Outcome::Rejected)) => {
                            next.step = STATUS.into();
                            next.state = "done".into();
                            decided = Some(outcome);
                        }
                        _ => {
                            next.step = STATUS.into();
                            next.state = "due".into();
                            next.due_at = now + millis(settings.poll_interval);
                        }
                    },
                    _ => next.state = "done".into(),
                }
            }
            Err(error) => {
                next.attempts = job.attempts + 1;
                next.last_error = Some(error.message.clone());
                let one_shot = matches!(job.step.as_str(), POST_APPLY | DELETE);
                if error.permanent || (one_shot && next.attempts >= settings.max_attempts) {
                    next.state = "failed".into();
                } else {
                    let retry = crate::integrations::delivery::backoff(
                        &integrations.settings,
                        next.attempts,
                    )
                    .min(settings.poll_interval);
                    next.due_at = now + millis(retry);
                }
            }
        }
        next.data = match serde_json::to_string(&data) {
            Ok(text) => text,
            Err(_) => return,
        };
        match self.store.approval_job_record(&next, &job.step).await {
            Ok(true) => {}
            // The request was applied or deleted meanwhile: its new step decides.
            Ok(false) => return,
            Err(e) => {
                tracing::warn!("cannot record approval step of {}: {e}", job.request_id);
                return;
            }
        }
        if let Some(outcome) = decided
            && let Err(e) = self
                .commit_external_decision(&job.request_id, outcome, &data)
                .await
        {
            tracing::warn!(
                "cannot record the partner's decision on approval request {}: {e}",
                job.request_id
            );
        }
    }

    /// Writes the partner's decision into the request (an approve or decline review of the
    /// partner, audited like a member's review); with `autoApplyApprovedChanges`, applies it.
    async fn commit_external_decision(
        &self,
        request_id: &str,
        outcome: Outcome,
        data: &ExternalApproval,
    ) -> ApiResult<()> {
        let target = approval_ref(request_id);
        let auto_apply = {
            let _guard = self.lock(&target).await;
            self.with_retries(|| async {
                let now = now_millis();
                let Some((mut doc, version)) = self.load::<ApprovalRequestDoc>(&target).await?
                else {
                    return Ok(false);
                };
                let status = match outcome {
                    Outcome::Approved => "approved",
                    _ => "declined",
                };
                if doc.status != "pending" || doc.review_status == status {
                    return Ok(false);
                }
                let context = self.project_context(&doc.binding.project).await?;
                let settings = Self::approval_settings(&context, &doc.binding.environment);
                let (tags, _) = self.bound_resource(&doc.binding).await?;
                let resource = Self::binding_resource(&context, &doc.binding, &tags);
                let display = data.status_display.clone().unwrap_or_default();
                doc.all_reviews.push(Review {
                    id: new_object_id(),
                    kind: if status == "approved" {
                        "approve"
                    } else {
                        "decline"
                    }
                    .into(),
                    creation_date: now,
                    comment: Some(format!("{}: {display}", data.integration_key)),
                    member_id: None,
                    service_token_id: None,
                });
                doc.review_status = status.into();
                doc.version = version + 1;
                let verb = if status == "approved" {
                    "approved (in the approval integration) an approval request for"
                } else {
                    "declined (in the approval integration) an approval request for"
                };
                self.commit_approval(
                    None,
                    now,
                    Some(version),
                    &doc,
                    &resource,
                    "reviewApprovalRequest",
                    verb,
                    format!(
                        "{} the approval request in {}: {}",
                        if status == "approved" {
                            "Approved"
                        } else {
                            "Declined"
                        },
                        data.integration_key,
                        doc.description
                    ),
                    None,
                )
                .await?;
                Ok(status == "approved" && settings.auto_apply_approved_changes)
            })
            .await?
        };
        if auto_apply {
            // Boxed: applying sends the post-apply step, which runs this function again.
            Box::pin(self.apply_approval_request_as(None, request_id, Default::default())).await?;
        }
        Ok(())
    }

    /// `integrationMetadata` (LaunchDarkly's shape) and `_integrationJob` (Flagstaff: the
    /// partner step under way and its last error) of a request that uses an integration.
    pub async fn approval_integration_view(&self, request_id: &str) -> Option<(Value, Value)> {
        let job = self.store.approval_job_get(request_id).await.ok()??;
        let data: ExternalApproval = serde_json::from_str(&job.data).ok()?;
        let metadata = json!({
            "externalId": data.external_id.clone().unwrap_or_default(),
            "externalStatus": {
                "display": data.status_display.clone().or(data.status_value.clone()).unwrap_or_else(|| "Not yet known".into()),
                "value": data.status_value.clone().unwrap_or_default(),
            },
            "externalUrl": data.external_url.clone().unwrap_or_default(),
            "lastChecked": data.last_checked.unwrap_or(0),
        });
        let mut status = json!({
            "integrationKey": data.integration_key,
            "step": job.step,
            "state": job.state,
            "attempts": job.attempts,
        });
        if job.state == "due" {
            status["nextAttemptAt"] = json!(job.due_at);
        }
        if let Some(at) = job.last_attempt_at {
            status["lastAttemptAt"] = json!(at);
        }
        if let Some(error) = job.last_error {
            status["lastError"] = json!(error);
        }
        if let Some(error) = data.event.get("memberListError") {
            status["memberListError"] = error.clone();
        }
        Some((metadata, status))
    }
}
/// The lifecycle step names, for callers outside this module.
pub const POST_APPLY_STEP: &str = POST_APPLY;
pub const DELETE_STEP: &str = DELETE;
pub const CREATE_STEP: &str = CREATE;
