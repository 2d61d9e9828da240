//! Segments (per environment): create, JSON Patch / merge / semantic patch, delete.

use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_model::segment::{Segment, SegmentBody};
use flagstaff_model::semantic::segment::apply_to_segment;

use flagstaff_store::{EntityKind, EntityRef, EntityWrite, OutboxRow};
use serde_json::{Value, json};

use super::approvals::{ApprovedChange, require_approval};
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, changed_fields,
    encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn segment_scope(project: &str, env: &str) -> String {
    format!("{project}/{env}")
}

pub fn segment_ref(project: &str, env: &str, key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Segment, segment_scope(project, env), key)
}

const SEGMENT_READ_ONLY: &[&str] = &[
    "/key",
    "/version",
    "/creationDate",
    "/lastModifiedDate",
    "/deleted",
    "/generation",
    "/salt",
    "/_external",
    "/_externalLink",
];

/// Fields of a synced segment that only its integration changes: its membership and what
/// makes it a big segment.
const SYNCED_MEMBERSHIP_FIELDS: &[&str] = &[
    "included",
    "excluded",
    "includedContexts",
    "excludedContexts",
    "unbounded",
    "unboundedContextKind",
    "generation",
];

fn segment_action(field: &str) -> &'static str {
    match field {
        "name" => "updateName",
        "description" => "updateDescription",
        "tags" => "updateTags",
        "included" | "includedContexts" => "updateIncluded",
        "excluded" | "excludedContexts" => "updateExcluded",
        "rules" => "updateRules",
        _ => "updateSegment",
    }
}

pub(crate) fn segment_outbox(
    project: &str,
    env: &str,
    key: &str,
    version: i64,
    action: &str,
) -> OutboxRow {
    OutboxRow {
        topic: "segment".into(),
        payload: json!({"kind": "segment", "action": action, "project": project, "environment": env, "segment": key, "version": version}).to_string(),
    }
}

impl Services {
    pub async fn get_segment(
        &self,
        project: &str,
        env: &str,
        key: &str,
    ) -> ApiResult<(Segment, i64)> {
        self.load(&segment_ref(project, env, key))
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "segment \"{key}\" in environment \"{env}\" of project \"{project}\""
                ))
            })
    }

    pub async fn list_segments(&self, project: &str, env: &str) -> ApiResult<Vec<Segment>> {
        self.get_environment(project, env).await?;
        Ok(self
            .load_all::<Segment>(EntityKind::Segment, &segment_scope(project, env))
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    pub async fn create_segment(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        body: SegmentBody,
    ) -> ApiResult<Segment> {
        let now = now_millis();
        self.get_environment(project, env).await?;
        let segment = Segment::create(body, now)?;
        let resource =
            self.project_context(project)
                .await?
                .segment_resource(env, &segment.key, &segment.tags);
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: segment_ref(project, env, &segment.key),
                version: segment.version,
                doc: encode(&segment)?,
                aliases: Vec::new(),
            }],
            audit: AuditDraft {
                current_version: Some(to_value(&segment)),
                ..AuditDraft::single(
                    "segment",
                    segment.name.clone(),
                    "createSegment",
                    &resource,
                    "created the segment",
                    format!("Created the segment *{}*", segment.name),
                    format!("/{project}/{env}/segments/{}", segment.key),
                )
            },
            outbox: vec![segment_outbox(
                project,
                env,
                &segment.key,
                segment.version,
                "create",
            )],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(|e| match e {
                CommitError::Api(ApiError::Conflict(_)) => ApiError::Conflict(format!(
                    "a segment with key \"{}\" already exists in environment \"{env}\"",
                    segment.key
                )),
                CommitError::Api(e) => e,
                CommitError::Conflict(what) => ApiError::Conflict(what),
            })?;
        Ok(segment)
    }

    pub async fn patch_segment(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        key: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<Segment> {
        let request = parse_patch_request(body, semantic, PatchFormats::All)?;
        self.patch_segment_request(caller, project, env, key, &request, None)
            .await
    }

    /// Applies a parsed patch; `approved` when it is the change of an approved request.
    pub async fn patch_segment_request(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        key: &str,
        request: &PatchRequest,
        approved: Option<&ApprovedChange>,
    ) -> ApiResult<Segment> {
        let target = segment_ref(project, env, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| {
            self.patch_segment_once(Some(caller), project, env, key, request, approved)
        })
        .await
    }

    /// Applies an approved request's change with no caller (see
    /// `patch_flag_as_approval_integration`).
    pub async fn patch_segment_as_approval_integration(
        &self,
        project: &str,
        env: &str,
        key: &str,
        request: &PatchRequest,
        approved: &ApprovedChange,
    ) -> ApiResult<Segment> {
        let target = segment_ref(project, env, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| {
            self.patch_segment_once(None, project, env, key, request, Some(approved))
        })
        .await
    }

    async fn patch_segment_once(
        &self,
        caller: Option<&Caller>,
        project: &str,
        env: &str,
        key: &str,
        request: &PatchRequest,
        approved: Option<&ApprovedChange>,
    ) -> Result<Segment, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_segment(project, env, key).await?;
        if let Some(approved) = approved {
            approved.check_version("segment", key, version, || to_value(&before))?;
        }
        let (mut after, lines) = segment_after_patch(&before, version, request)?;
        flagstaff_model::keys::normalize_tags(&mut after.tags);
        after.validate()?;
        let before_json = to_value(&before);
        let fields = changed_fields(&before_json, &to_value(&after));
        if let Some(integration) = &before.external
            && let Some(field) = fields
                .iter()
                .find(|f| SYNCED_MEMBERSHIP_FIELDS.contains(&f.as_str()))
        {
            return Err(ApiError::invalid(format!(
                "segment \"{key}\" is synced by the `{integration}` integration, which manages \
                 its members (`{field}`) through /api/v2/segment-targets/{integration}: change \
                 them in the partner tool; its name, description, tags and rules can be edited"
            ))
            .into());
        }
        if fields.is_empty() {
            if let Some(caller) = caller {
                self.require_view_project(caller, project).await?;
            }
            return Ok(before);
        }
        after.version = version + 1;
        after.last_modified_date = now;
        let mut actions: Vec<&str> = fields.iter().map(|f| segment_action(f)).collect();
        actions.sort();
        actions.dedup();
        let context = self.project_context(project).await?;
        if let Some(caller) = caller {
            for a in &actions {
                caller.require(a, &context.segment_resource(env, key, &before.tags))?;
            }
        }
        require_approval(
            caller,
            &context,
            &[env.to_string()],
            &format!("segment \"{key}\""),
            |env| context.segment_resource(env, key, &before.tags),
            &[&before.tags, &after.tags],
            approved,
        )?;
        let resource = context.segment_resource(env, key, &after.tags);
        let lines = lines.unwrap_or_else(|| {
            actions
                .iter()
                .map(|a| format!("Changed the segment ({a})"))
                .collect()
        });
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: segment_ref(project, env, key),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "segment",
                name: after.name.clone(),
                accesses: actions.iter().map(|a| access(a, &resource)).collect(),
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the segment".into(),
                description: lines,
                comment: request.comment().map(String::from),
                site_path: format!("/{project}/{env}/segments/{key}"),
                delta: Some(request.delta()),
                previous_version: Some(before_json),
                current_version: Some(to_value(&after)),
            },
            outbox: vec![segment_outbox(project, env, key, after.version, "update")],
        };
        self.commit(caller, now, change).await?;
        Ok(after)
    }

    pub async fn delete_segment(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        key: &str,
    ) -> ApiResult<()> {
        let target = segment_ref(project, env, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (segment, version) = self.get_segment(project, env, key).await?;
            let context = self.project_context(project).await?;
            let resource = context.segment_resource(env, key, &segment.tags);
            require_approval(
                Some(caller),
                &context,
                &[env.to_string()],
                &format!("segment \"{key}\""),
                |env| context.segment_resource(env, key, &segment.tags),
                &[&segment.tags],
                None,
            )?;
            let mut writes = vec![EntityWrite::Delete {
                target: target.clone(),
                expected_version: version,
            }];
            if segment.unbounded {
                writes.push(self.segment_member_delete(project, env, key).await?);
            }
            let change = PendingChange {
                writes,
                audit: AuditDraft {
                    previous_version: Some(to_value(&segment)),
                    ..AuditDraft::single(
                        "segment",
                        segment.name.clone(),
                        "deleteSegment",
                        &resource,
                        "deleted the segment",
                        format!("Deleted the segment *{}*", segment.name),
                        format!("/{project}/{env}/segments"),
                    )
                },
                outbox: vec![segment_outbox(project, env, key, version + 1, "delete")],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }
}

/// The segment a patch would produce, with the applied instructions' descriptions (semantic
/// patch only).
pub fn segment_after_patch(
    before: &Segment,
    version: i64,
    request: &PatchRequest,
) -> ApiResult<(Segment, Option<Vec<String>>)> {
    Ok(match request {
        PatchRequest::Semantic(patch) => {
            let (after, applied) = apply_to_segment(before, patch)?;
            (
                after,
                Some(applied.into_iter().map(|a| a.description).collect()),
            )
        }
        other => (
            apply_document_patch(before, other, version, SEGMENT_READ_ONLY)?,
            None,
        ),
    })
}
