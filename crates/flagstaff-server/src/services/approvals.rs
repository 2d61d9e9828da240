//! Approval requests: a change to a flag or segment in one environment, written as
//! semantic-patch instructions, reviewed by others and applied only as it was approved.
//!
//! Two things make an approval impossible to bypass:
//! - binding: a request records the resource's version when it was made and a digest of
//!   (resource, version, instructions). Applying recomputes the digest and re-checks the
//!   version inside the resource's write lock, so an edit after approval, or instructions
//!   altered after review, make the apply fail with 409 instead of applying something nobody
//!   approved;
//! - enforcement: every write to a flag or segment ([`require_approval`], called by the flag
//!   and segment services, not by handlers) refuses to change a resource in an environment
//!   whose `approvalSettings` cover it, unless the write is the apply of an approved request
//!   for that environment or the caller may `bypassRequiredApproval`.

use flagstaff_model::approval::{
    ApprovalSettings, NATIVE_SERVICE_KIND, REVIEW_KINDS, Review, change_digest,
    change_scope_digest, may_apply, review_status,
};
use flagstaff_model::audit::AuditEntry;
use flagstaff_model::patch::{PatchFormats, PatchRequest, parse_patch_request};
use flagstaff_model::{UnixMillis, new_object_id};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::approval_jobs::{CREATE_STEP, DELETE_STEP, POST_APPLY_STEP};
use super::segments::segment_after_patch;
use super::{
    AuditDraft, CommitError, PendingChange, ProjectContext, Services, encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn approval_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::ApprovalRequest, "", id)
}

/// The change an applied request stands for: its environment is exempt from
/// [`require_approval`], and the resource must still be at the version it was made against —
/// or, where the environment sets `applyAfterUnrelatedChanges`, unchanged in everything the
/// request could change ([`change_scope_digest`]).
pub struct ApprovedChange {
    pub request_id: String,
    pub environment: String,
    pub resource_version: i64,
    /// The request's scope digest when the environment allows applying after unrelated
    /// changes; `None`: only the exact version will do.
    pub unrelated_changes_allowed: Option<String>,
}

impl ApprovedChange {
    /// `current_document`: the resource as it is now (its scope digest is compared only
    /// when the version moved on and the environment allows it).
    pub fn check_version(
        &self,
        kind: &str,
        key: &str,
        current: i64,
        current_document: impl FnOnce() -> Value,
    ) -> ApiResult<()> {
        if current == self.resource_version {
            return Ok(());
        }
        if let Some(scope) = &self.unrelated_changes_allowed
            && change_scope_digest(kind, &self.environment, &current_document()) == *scope
        {
            return Ok(());
        }
        Err(ApiError::Conflict(format!(
            "the {kind} \"{key}\" changed after approval request \"{}\" was made (it was at version {}, it is now at version {current}): the approved change no longer applies to what was reviewed; create a new approval request",
            self.request_id, self.resource_version
        )))
    }
}

/// Refuses a write to a resource in any of `environments` whose approval settings cover it
/// (by `required` or by one of its tags, as it was or as it will be), unless the write is
/// the apply of an approved request for that environment or the caller may
/// `bypassRequiredApproval` there.
pub fn require_approval(
    caller: Option<&Caller>,
    context: &ProjectContext,
    environments: &[String],
    what: &str,
    resource: impl Fn(&str) -> Resource,
    tags: &[&[String]],
    approved: Option<&ApprovedChange>,
) -> ApiResult<()> {
    for env in environments {
        let Some(settings) = context
            .environment(env)
            .and_then(|e| e.approval_settings.as_ref())
        else {
            continue;
        };
        if !tags.iter().any(|t| settings.covers(t)) {
            continue;
        }
        if approved.is_some_and(|a| a.environment == *env) {
            continue;
        }
        if caller.is_some_and(|c| c.can("bypassRequiredApproval", &resource(env))) {
            continue;
        }
        return Err(ApiError::Forbidden(format!(
            "environment \"{env}\" requires approval for changes to {what}: create an approval request (POST /api/v2/approval-requests) and apply it once approved, or use a token allowed \"bypassRequiredApproval\""
        )));
    }
    Ok(())
}

/// What a request changes: a flag's configuration in one environment, or a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    pub project: String,
    pub environment: String,
    /// `flag` or `segment`.
    pub kind: String,
    pub key: String,
    /// The resource's version when the request was made.
    pub version: i64,
    /// [`change_digest`] of (resourceId, version, instructions).
    pub digest: String,
    /// [`change_scope_digest`] of the resource when the request was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_digest: Option<String>,
}

/// The stored approval request: LaunchDarkly's representation plus the binding.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRequestDoc {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_version")]
    pub version: i64,
    pub creation_date: UnixMillis,
    pub service_kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor_id: Option<String>,
    /// Set when a service token asked: reviews by the same token are self-reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requestor_token_id: Option<String>,
    pub description: String,
    pub review_status: String,
    pub all_reviews: Vec<Review>,
    pub notify_member_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_date: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_by_member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_by_service_token_id: Option<String>,
    /// `pending` until applied (`completed`).
    pub status: String,
    pub instructions: Vec<Value>,
    pub conflicts: Vec<Value>,
    pub operating_on_id: String,
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    pub binding: Binding,
}

impl ApprovalRequestDoc {
    /// Whether the stored instructions are still those the request was made (and reviewed)
    /// with.
    pub fn intact(&self) -> bool {
        self.resource_id == resource_id(&self.binding)
            && change_digest(&self.resource_id, self.binding.version, &self.instructions)
                == self.binding.digest
    }
}

/// `POST /api/v2/approval-requests` body (`CreateApprovalRequestRequest`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateApprovalRequestBody {
    /// `proj/<project>:env/<environment>:flag/<flag>` or `…:segment/<segment>`.
    pub resource_id: String,
    pub description: String,
    /// Semantic-patch instructions.
    pub instructions: Vec<Value>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub notify_member_ids: Option<Vec<String>>,
    #[serde(default)]
    pub notify_team_keys: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub integration_config: Option<Value>,
}

/// The flag-scoped create body (`CreateFlagConfigApprovalRequestRequest`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFlagApprovalRequestBody {
    pub description: String,
    pub instructions: Vec<Value>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub notify_member_ids: Option<Vec<String>>,
    #[serde(default)]
    pub notify_team_keys: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub integration_config: Option<Value>,
}

impl CreateFlagApprovalRequestBody {
    pub fn for_flag(self, project: &str, env: &str, flag: &str) -> CreateApprovalRequestBody {
        CreateApprovalRequestBody {
            resource_id: format!("proj/{project}:env/{env}:flag/{flag}"),
            description: self.description,
            instructions: self.instructions,
            comment: self.comment,
            notify_member_ids: self.notify_member_ids,
            notify_team_keys: self.notify_team_keys,
            integration_config: self.integration_config,
        }
    }
}

/// `POST …/reviews` body (`PostApprovalRequestReviewRequest`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewBody {
    /// `approve`, `decline` or `comment`.
    pub kind: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST …/apply` body (`PostApprovalRequestApplyRequest`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyBody {
    #[serde(default)]
    pub comment: Option<String>,
}

fn resource_id(b: &Binding) -> String {
    format!(
        "proj/{}:env/{}:{}/{}",
        b.project, b.environment, b.kind, b.key
    )
}

/// Splits `proj/p:env/e:flag/f` (or `:segment/s`) into its keys; tags are not allowed, the
/// specifier must name exactly one resource.
fn parse_resource_id(spec: &str) -> ApiResult<(String, String, String, String)> {
    let bad = || {
        ApiError::invalid(format!(
            "resourceId \"{spec}\" must name one flag or segment in one environment, like proj/my-project:env/production:flag/my-flag"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let [proj, env, res] = parts.as_slice() else {
        return Err(bad());
    };
    let key = |part: &str, prefix: &str| -> Option<String> {
        let k = part.strip_prefix(prefix)?;
        (!k.is_empty() && !k.contains(['*', ';', '/', '{'])).then(|| k.to_string())
    };
    let project = key(proj, "proj/").ok_or_else(bad)?;
    let environment = key(env, "env/").ok_or_else(bad)?;
    let (kind, key) = match (key(res, "flag/"), key(res, "segment/")) {
        (Some(k), _) => ("flag", k),
        (None, Some(k)) => ("segment", k),
        _ => return Err(bad()),
    };
    Ok((project, environment, kind.to_string(), key))
}

/// How a request is identified with its requestor and reviewers.
fn requestor(caller: &Caller) -> (Option<String>, Option<String>) {
    if caller.token.service_token {
        (None, Some(caller.token.id.clone()))
    } else {
        (Some(caller.member.id.clone()), None)
    }
}

/// Filters of `GET /api/v2/approval-requests?filter=`: `field equals value`, comma-separated.
pub struct ApprovalFilter(Vec<(String, String)>);

const FILTER_FIELDS: &[&str] = &[
    "status",
    "reviewStatus",
    "requestorId",
    "resourceId",
    "resourceKind",
    "serviceKind",
    "projectKey",
    "environmentKey",
];

impl ApprovalFilter {
    pub fn parse(filter: Option<&str>) -> ApiResult<Self> {
        let mut out = Vec::new();
        for part in filter
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let mut words = part.splitn(3, ' ');
            let (Some(field), Some("equals"), Some(value)) =
                (words.next(), words.next(), words.next())
            else {
                return Err(ApiError::invalid(format!(
                    "filter \"{part}\" must look like `field equals value`"
                )));
            };
            if !FILTER_FIELDS.contains(&field) {
                return Err(ApiError::invalid(format!(
                    "unsupported filter field \"{field}\": use one of {}",
                    FILTER_FIELDS.join(", ")
                )));
            }
            out.push((field.to_string(), value.trim().to_string()));
        }
        Ok(Self(out))
    }

    fn matches(&self, r: &ApprovalRequestDoc) -> bool {
        self.0.iter().all(|(field, value)| {
            let actual = match field.as_str() {
                "status" => Some(r.status.as_str()),
                "reviewStatus" => Some(r.review_status.as_str()),
                "requestorId" => r.requestor_id.as_deref(),
                "resourceId" => Some(r.resource_id.as_str()),
                "resourceKind" => Some(r.binding.kind.as_str()),
                "serviceKind" => Some(r.service_kind.as_str()),
                "projectKey" => Some(r.binding.project.as_str()),
                "environmentKey" => Some(r.binding.environment.as_str()),
                _ => None,
            };
            actual == Some(value.as_str())
        })
    }
}

impl Services {
    /// The environment's approval settings, or the defaults of an environment without any
    /// (native service, one approval, no self-review).
    pub(super) fn approval_settings(context: &ProjectContext, env: &str) -> ApprovalSettings {
        context
            .environment(env)
            .and_then(|e| e.approval_settings.clone())
            .unwrap_or_else(|| {
                serde_json::from_value(json!({"required": false})).expect("defaults deserialize")
            })
    }

    pub(super) fn binding_resource(
        context: &ProjectContext,
        b: &Binding,
        tags: &[String],
    ) -> Resource {
        if b.kind == "flag" {
            context.flag_resource(&b.environment, &b.key, tags)
        } else {
            context.segment_resource(&b.environment, &b.key, tags)
        }
    }

    /// The resource's tags and current version.
    pub(super) async fn bound_resource(&self, b: &Binding) -> ApiResult<(Vec<String>, i64)> {
        if b.kind == "flag" {
            let (flag, version) = self.get_flag(&b.project, &b.key).await?;
            if !flag.environments.contains_key(&b.environment) {
                return Err(ApiError::not_found(format!(
                    "environment \"{}\" in project \"{}\"",
                    b.environment, b.project
                )));
            }
            Ok((flag.tags, version))
        } else {
            let (segment, version) = self.get_segment(&b.project, &b.environment, &b.key).await?;
            Ok((segment.tags, version))
        }
    }

    fn semantic_request(
        b: &Binding,
        instructions: &[Value],
        comment: Option<&str>,
    ) -> ApiResult<PatchRequest> {
        let mut body = json!({"instructions": instructions});
        if b.kind == "flag" {
            body["environmentKey"] = json!(b.environment);
        }
        if let Some(c) = comment {
            body["comment"] = json!(c);
        }
        Ok(parse_patch_request(body, true, PatchFormats::All)?)
    }

    pub async fn create_approval_request(
        &self,
        caller: &Caller,
        body: CreateApprovalRequestBody,
    ) -> ApiResult<ApprovalRequestDoc> {
        let (project, environment, kind, key) = parse_resource_id(&body.resource_id)?;
        if body.description.trim().is_empty() {
            return Err(ApiError::invalid(
                "description must say what the change is for",
            ));
        }
        if body.instructions.is_empty() {
            return Err(ApiError::invalid(
                "instructions must hold at least one semantic-patch instruction",
            ));
        }
        let context = self.project_context(&project).await?;
        if context.environment(&environment).is_none() {
            return Err(ApiError::not_found(format!(
                "environment \"{environment}\" in project \"{project}\""
            )));
        }
        let mut binding = Binding {
            project,
            environment,
            kind,
            key,
            version: 0,
            digest: String::new(),
            scope_digest: None,
        };
        let (tags, version) = self.bound_resource(&binding).await?;
        binding.version = version;
        let now = now_millis();
        // The instructions must apply now: a request nobody could ever apply is refused
        // when it is made, with the instruction's own error.
        let request = Self::semantic_request(&binding, &body.instructions, None)?;
        let document = if binding.kind == "flag" {
            let (flag, _) = self.get_flag(&binding.project, &binding.key).await?;
            self.flag_after_patch(&binding.project, &flag, version, &request, now)
                .await?;
            to_value(&flag)
        } else {
            let (segment, _) = self
                .get_segment(&binding.project, &binding.environment, &binding.key)
                .await?;
            segment_after_patch(&segment, version, &request)?;
            to_value(&segment)
        };
        binding.scope_digest = Some(change_scope_digest(
            &binding.kind,
            &binding.environment,
            &document,
        ));
        let resource_id = resource_id(&binding);
        binding.digest = change_digest(&resource_id, version, &body.instructions);
        let settings = Self::approval_settings(&context, &binding.environment);
        let (requestor_id, requestor_token_id) = requestor(caller);
        let doc = ApprovalRequestDoc {
            id: new_object_id(),
            version: 1,
            creation_date: now,
            service_kind: settings.service_kind.clone(),
            requestor_id,
            requestor_token_id,
            description: body.description,
            review_status: "pending".into(),
            all_reviews: Vec::new(),
            notify_member_ids: body.notify_member_ids.unwrap_or_default(),
            applied_date: None,
            applied_by_member_id: None,
            applied_by_service_token_id: None,
            status: "pending".into(),
            instructions: body.instructions,
            conflicts: Vec::new(),
            operating_on_id: binding.key.clone(),
            resource_id,
            comment: body.comment.clone(),
            binding,
        };
        // A partner that cannot be used is refused before anything is written.
        let mut external = if doc.service_kind != NATIVE_SERVICE_KIND {
            Some(
                self.prepare_external(
                    &settings,
                    &doc.binding.environment,
                    body.integration_config.as_ref(),
                )
                .await?,
            )
        } else {
            None
        };
        let resource = Self::binding_resource(&context, &doc.binding, &tags);
        let entry = self
            .with_retries(|| {
                self.commit_approval(
                    Some(caller),
                    now,
                    None,
                    &doc,
                    &resource,
                    "createApprovalRequest",
                    "requested approval for a change to",
                    format!("Requested approval: {}", doc.description),
                    body.comment.clone(),
                )
            })
            .await?;
        if let Some(external) = &mut external {
            self.approval_event(&entry, &doc, &context, &tags, external)
                .await;
            self.queue_approval_step(&doc.id, CREATE_STEP, Some(external.clone()))
                .await?;
            // One attempt now, so the answer usually shows the partner's record; failures
            // stay on the request and are retried by the scheduler.
            self.run_approval_step_now(&doc.id, false).await;
        }
        Ok(doc)
    }

    /// Writes the request (insert when `expected` is None) with one audit entry whose access
    /// is `action` on the resource, so webhooks and integrations subscribed to the flag or
    /// segment hear about its approvals.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_approval(
        &self,
        caller: Option<&Caller>,
        now: UnixMillis,
        expected: Option<i64>,
        doc: &ApprovalRequestDoc,
        resource: &Resource,
        action: &str,
        title_verb: &str,
        line: String,
        comment: Option<String>,
    ) -> Result<AuditEntry, CommitError> {
        let target = approval_ref(&doc.id);
        let write = match expected {
            None => EntityWrite::Insert {
                target,
                version: doc.version,
                doc: encode(doc)?,
                aliases: Vec::new(),
            },
            Some(expected_version) => EntityWrite::Update {
                target,
                expected_version,
                version: doc.version,
                doc: encode(doc)?,
                aliases: None,
            },
        };
        let b = &doc.binding;
        let site_path = if b.kind == "flag" {
            format!(
                "/{}/{}/features/{}/approvals/{}",
                b.project, b.environment, b.key, doc.id
            )
        } else {
            format!("/{}/{}/segments/{}", b.project, b.environment, b.key)
        };
        let change = PendingChange {
            writes: vec![write],
            audit: AuditDraft {
                comment,
                current_version: Some(render_value(doc)),
                ..AuditDraft::single(
                    if b.kind == "flag" { "flag" } else { "segment" },
                    b.key.clone(),
                    action,
                    resource,
                    title_verb,
                    line,
                    site_path,
                )
            },
            outbox: Vec::new(),
        };
        self.commit(caller, now, change).await
    }

    pub async fn get_approval_request(&self, id: &str) -> ApiResult<(ApprovalRequestDoc, i64)> {
        self.load(&approval_ref(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("approval request \"{id}\"")))
    }

    /// A request the caller may see (`viewProject` on its project).
    pub async fn view_approval_request(
        &self,
        caller: &Caller,
        id: &str,
    ) -> ApiResult<ApprovalRequestDoc> {
        let (doc, _) = self.get_approval_request(id).await?;
        self.require_view_project(caller, &doc.binding.project)
            .await?;
        let check_on_read = self
            .integrations()
            .is_some_and(|i| i.approvals.check_on_read);
        if doc.service_kind != NATIVE_SERVICE_KIND && doc.status == "pending" && check_on_read {
            self.run_approval_step_now(id, true).await;
            return Ok(self.get_approval_request(id).await?.0);
        }
        Ok(doc)
    }

    /// Requests the caller may see that pass `filter`, newest first.
    pub async fn list_approval_requests(
        &self,
        caller: &Caller,
        filter: &ApprovalFilter,
    ) -> ApiResult<Vec<ApprovalRequestDoc>> {
        let mut out = Vec::new();
        let mut visible: std::collections::HashMap<String, bool> = Default::default();
        for (doc, _) in self
            .load_all::<ApprovalRequestDoc>(EntityKind::ApprovalRequest, "")
            .await?
        {
            if !filter.matches(&doc) {
                continue;
            }
            let project = doc.binding.project.clone();
            let allowed = match visible.get(&project) {
                Some(v) => *v,
                None => {
                    let v = self.require_view_project(caller, &project).await.is_ok();
                    visible.insert(project, v);
                    v
                }
            };
            if allowed {
                out.push(doc);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.creation_date));
        Ok(out)
    }

    pub async fn delete_approval_request(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        let target = approval_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (doc, version) = self.get_approval_request(id).await?;
            let context = self.project_context(&doc.binding.project).await?;
            let tags = self
                .bound_resource(&doc.binding)
                .await
                .map(|(t, _)| t)
                .unwrap_or_default();
            let resource = Self::binding_resource(&context, &doc.binding, &tags);
            let b = &doc.binding;
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: target.clone(),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    previous_version: Some(render_value(&doc)),
                    ..AuditDraft::single(
                        if b.kind == "flag" { "flag" } else { "segment" },
                        b.key.clone(),
                        "deleteApprovalRequest",
                        &resource,
                        "deleted an approval request for",
                        format!("Deleted the approval request: {}", doc.description),
                        format!("/{}/{}/features/{}", b.project, b.environment, b.key),
                    )
                },
                outbox: Vec::new(),
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await?;
        // The partner's record is cancelled after the request is gone (the job keeps what
        // the deletion request needs).
        self.queue_approval_step(id, DELETE_STEP, None).await?;
        self.run_approval_step_now(id, false).await;
        Ok(())
    }

    pub async fn review_approval_request(
        &self,
        caller: &Caller,
        id: &str,
        body: ReviewBody,
    ) -> ApiResult<ApprovalRequestDoc> {
        if !REVIEW_KINDS.contains(&body.kind.as_str()) {
            return Err(ApiError::invalid(format!(
                "kind \"{}\" is not a review: use approve, decline or comment",
                body.kind
            )));
        }
        let target = approval_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (mut doc, version) = self.get_approval_request(id).await?;
            if doc.status != "pending" {
                return Err(ApiError::invalid(format!(
                    "approval request \"{id}\" is {}: it can no longer be reviewed",
                    doc.status
                ))
                .into());
            }
            let external = doc.service_kind != NATIVE_SERVICE_KIND;
            if external && body.kind != "comment" {
                return Err(ApiError::invalid(format!(
                    "approval request \"{id}\" is decided in \"{}\", the environment's approval integration: approve or decline it there (comments are allowed here)",
                    doc.service_kind
                ))
                .into());
            }
            let context = self.project_context(&doc.binding.project).await?;
            let settings = Self::approval_settings(&context, &doc.binding.environment);
            let (member_id, token_id) = requestor(caller);
            let own = match (&token_id, &member_id) {
                (Some(t), _) => doc.requestor_token_id.as_ref() == Some(t),
                (None, Some(m)) => doc.requestor_id.as_ref() == Some(m),
                (None, None) => false,
            };
            if own && body.kind != "comment" && !settings.can_review_own_request {
                return Err(ApiError::Forbidden(format!(
                    "you made approval request \"{id}\" and environment \"{}\" does not allow reviewing your own request (approvalSettings.canReviewOwnRequest is false): ask another member",
                    doc.binding.environment
                ))
                .into());
            }
            let (tags, _) = self.bound_resource(&doc.binding).await?;
            let resource = Self::binding_resource(&context, &doc.binding, &tags);
            doc.all_reviews.push(Review {
                id: new_object_id(),
                kind: body.kind.clone(),
                creation_date: now,
                comment: body.comment.clone(),
                member_id,
                service_token_id: token_id,
            });
            if !external {
                doc.review_status =
                    review_status(&doc.all_reviews, settings.min_num_approvals).to_string();
            }
            doc.version = version + 1;
            let (verb, line) = match body.kind.as_str() {
                "approve" => ("approved an approval request for", "Approved"),
                "decline" => ("declined an approval request for", "Declined"),
                _ => ("commented on an approval request for", "Commented on"),
            };
            self.commit_approval(
                Some(caller),
                now,
                Some(version),
                &doc,
                &resource,
                "reviewApprovalRequest",
                verb,
                format!("{line} the approval request: {}", doc.description),
                body.comment.clone(),
            )
            .await?;
            Ok(doc)
        })
        .await
    }

    /// Applies an approved request: the change is made exactly as approved (same digest,
    /// resource still at the version it was made against), then the request is completed.
    pub async fn apply_approval_request(
        &self,
        caller: &Caller,
        id: &str,
        body: ApplyBody,
    ) -> ApiResult<ApprovalRequestDoc> {
        self.apply_approval_request_as(Some(caller), id, body).await
    }

    /// Applies as `caller`, or with none when the environment's approval integration
    /// approved the request and `autoApplyApprovedChanges` is on.
    pub(super) async fn apply_approval_request_as(
        &self,
        caller: Option<&Caller>,
        id: &str,
        body: ApplyBody,
    ) -> ApiResult<ApprovalRequestDoc> {
        // No lock on the request here: the flag's lock is taken by the patch, and two
        // locks could share a stripe. Two concurrent applies cannot both succeed anyway:
        // the second finds the resource past the approved version.
        let (doc, _) = self.get_approval_request(id).await?;
        if doc.status != "pending" {
            return Err(ApiError::Conflict(format!(
                "approval request \"{id}\" is {}: it was already applied",
                doc.status
            )));
        }
        if !doc.intact() {
            return Err(ApiError::Conflict(format!(
                "approval request \"{id}\" no longer matches the change it was made for (its instructions or resource were altered after it was created): nothing was applied; create a new approval request"
            )));
        }
        let context = self.project_context(&doc.binding.project).await?;
        let (tags, _) = self.bound_resource(&doc.binding).await?;
        if let Some(caller) = caller {
            caller.require(
                "applyApprovalRequest",
                &Self::binding_resource(&context, &doc.binding, &tags),
            )?;
        }
        let settings = Self::approval_settings(&context, &doc.binding.environment);
        if !may_apply(&doc.all_reviews, &doc.review_status, &settings) {
            return Err(ApiError::invalid(format!(
                "approval request \"{id}\" is {} and cannot be applied: it needs {} approval(s){}",
                doc.review_status,
                settings.min_num_approvals,
                if doc.review_status == "declined" {
                    " and the environment does not allow applying declined changes"
                } else {
                    ""
                }
            )));
        }
        let approved = ApprovedChange {
            request_id: doc.id.clone(),
            environment: doc.binding.environment.clone(),
            resource_version: doc.binding.version,
            unrelated_changes_allowed: doc
                .binding
                .scope_digest
                .clone()
                .filter(|_| settings.apply_after_unrelated_changes),
        };
        let comment = body
            .comment
            .clone()
            .unwrap_or_else(|| format!("Applied approval request {id}: {}", doc.description));
        let request = Self::semantic_request(&doc.binding, &doc.instructions, Some(&comment))?;
        let b = &doc.binding;
        // The change first: if completing the request then fails, a second apply is
        // refused by the version check, so the change can never be made twice.
        match (caller, b.kind.as_str()) {
            (Some(caller), "flag") => {
                self.patch_flag_request(caller, &b.project, &b.key, &request, Some(&approved))
                    .await?;
            }
            (Some(caller), _) => {
                self.patch_segment_request(
                    caller,
                    &b.project,
                    &b.environment,
                    &b.key,
                    &request,
                    Some(&approved),
                )
                .await?;
            }
            (None, "flag") => {
                self.patch_flag_as_approval_integration(&b.project, &b.key, &request, &approved)
                    .await?;
            }
            (None, _) => {
                self.patch_segment_as_approval_integration(
                    &b.project,
                    &b.environment,
                    &b.key,
                    &request,
                    &approved,
                )
                .await?;
            }
        }
        let (tags, _) = self.bound_resource(&doc.binding).await?;
        let resource = Self::binding_resource(&context, &doc.binding, &tags);
        let doc = self
            .with_retries(|| async {
                let now = now_millis();
                let (mut doc, version) = self.get_approval_request(id).await?;
                let (member_id, token_id) = caller.map(requestor).unwrap_or_default();
                doc.status = "completed".into();
                doc.applied_date = Some(now);
                doc.applied_by_member_id = member_id;
                doc.applied_by_service_token_id = token_id;
                doc.version = version + 1;
                self.commit_approval(
                    caller,
                    now,
                    Some(version),
                    &doc,
                    &resource,
                    "applyApprovalRequest",
                    "applied an approval request for",
                    format!("Applied the approval request: {}", doc.description),
                    body.comment.clone(),
                )
                .await?;
                Ok(doc)
            })
            .await?;
        if doc.service_kind != NATIVE_SERVICE_KIND {
            self.queue_approval_step(id, POST_APPLY_STEP, None).await?;
            // Without a caller this runs inside a scheduled step that holds a permit: the
            // scheduler sends the post-apply request on its next tick instead.
            if caller.is_some() {
                self.run_approval_step_now(id, false).await;
            }
        }
        Ok(doc)
    }
}

/// Resource kinds an environment's approval settings cover.
const SETTING_KINDS: &[&str] = &["flag", "segment"];

impl Services {
    /// `ApprovalRequestSettings`: per resource kind, each environment's settings (the
    /// defaults where it has none). One setting per environment covers flags and segments.
    pub async fn project_approval_settings(
        &self,
        project: &str,
        environment: Option<&str>,
        resource_kind: Option<&str>,
        expand_default: bool,
    ) -> ApiResult<Value> {
        let context = self.project_context(project).await?;
        if let Some(kind) = resource_kind
            && !SETTING_KINDS.contains(&kind)
        {
            return Err(ApiError::invalid(format!(
                "resourceKind \"{kind}\" has no approval settings: use flag or segment"
            )));
        }
        if let Some(env) = environment
            && context.environment(env).is_none()
        {
            return Err(ApiError::not_found(format!(
                "environment \"{env}\" in project \"{project}\""
            )));
        }
        let mut environments = serde_json::Map::new();
        for env in &context.environments {
            if environment.is_some_and(|e| e != env.key) {
                continue;
            }
            environments.insert(
                env.key.clone(),
                setting_value(&Self::approval_settings(&context, &env.key)),
            );
        }
        let mut out = serde_json::Map::new();
        for kind in SETTING_KINDS {
            if resource_kind.is_some_and(|k| k != *kind) {
                continue;
            }
            let mut entry = json!({"environments": environments.clone()});
            if expand_default {
                entry["_default"] = setting_value(&Self::approval_settings(&context, ""));
            }
            out.insert(kind.to_string(), entry);
        }
        Ok(Value::Object(out))
    }

    /// `ApprovalRequestSettingsPatch`: merges the given fields into one environment's
    /// settings and saves them through the environment's JSON Patch (validated, authorized
    /// as `updateApprovalSettings`, audited).
    pub async fn patch_project_approval_settings(
        &self,
        caller: &Caller,
        project: &str,
        body: Value,
    ) -> ApiResult<Value> {
        let Value::Object(mut fields) = body else {
            return Err(ApiError::invalid(
                "the body must be an object with environmentKey, resourceKind and the settings to change",
            ));
        };
        let text = |v: Option<Value>, name: &str| match v {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::invalid(format!("{name} is required (a string)"))),
        };
        let env = text(fields.remove("environmentKey"), "environmentKey")?;
        let kind = text(fields.remove("resourceKind"), "resourceKind")?;
        if !SETTING_KINDS.contains(&kind.as_str()) {
            return Err(ApiError::invalid(format!(
                "resourceKind \"{kind}\" has no approval settings: use flag or segment"
            )));
        }
        let context = self.project_context(project).await?;
        if context.environment(&env).is_none() {
            return Err(ApiError::not_found(format!(
                "environment \"{env}\" in project \"{project}\""
            )));
        }
        let mut merged = to_value(&Self::approval_settings(&context, &env));
        for (key, value) in fields {
            // LaunchDarkly's nullable fields: null means "not set".
            if value.is_null() {
                if let Some(map) = merged.as_object_mut() {
                    map.remove(&key);
                }
            } else {
                merged[key.as_str()] = value;
            }
        }
        self.patch_environment(
            caller,
            project,
            &env,
            json!([{"op": "add", "path": "/approvalSettings", "value": merged}]),
            false,
        )
        .await?;
        self.project_approval_settings(project, Some(&env), Some(&kind), false)
            .await
    }
}

/// One environment's settings as `ApprovalRequestSetting` (nullable fields present).
fn setting_value(settings: &ApprovalSettings) -> Value {
    let mut value = to_value(settings);
    for field in ["autoApplyApprovedChanges", "serviceKindConfigurationId"] {
        if value.get(field).is_none() {
            value[field] = Value::Null;
        }
    }
    value
}

/// The request as LaunchDarkly shows it: the binding and Flagstaff's bookkeeping stay
/// internal; `_links` is added by the caller.
pub fn render_value(doc: &ApprovalRequestDoc) -> Value {
    let mut value = to_value(doc);
    if let Some(obj) = value.as_object_mut() {
        obj.remove("binding");
        obj.remove("requestorTokenId");
        obj.remove("comment");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_ids() {
        assert_eq!(
            parse_resource_id("proj/p:env/production:flag/f").unwrap(),
            (
                "p".to_string(),
                "production".to_string(),
                "flag".to_string(),
                "f".to_string()
            )
        );
        assert_eq!(
            parse_resource_id("proj/p:env/e:segment/s").unwrap().2,
            "segment"
        );
        for bad in [
            "proj/p:env/e",
            "proj/*:env/e:flag/f",
            "proj/p:env/e:flag/f;tag",
            "proj/p:env/e:metric/m",
            "p:e:f",
        ] {
            assert!(parse_resource_id(bad).is_err(), "{bad}");
        }
    }
}
