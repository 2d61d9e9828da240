//! Synced segments: a partner keeps a segment's members in step with one of its cohorts
//! (`POST /api/v2/segment-targets/{integrationKey}`). Each cohort is the segment
//! `<integrationKey>-<cohortId>` in the environment whose client-side ID the request names;
//! it is created on first sight, and each batch adds and removes members idempotently in one
//! change (one audit entry, one SDK update).
//!
//! Members live in the segment's `included` (context kind `user`) or `includedContexts`
//! list, so evaluation and SDK streams need nothing beyond ordinary segments.

use std::collections::HashSet;

use flagstaff_manifest::synced_segment::{CohortChanges, ParsedSync, segment_key};
use flagstaff_model::segment::{Segment, SegmentBody, SegmentTarget};
use flagstaff_store::{EntityKind, EntityWrite};
use serde_json::json;

use super::segments::{segment_outbox, segment_ref};
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, encode, now_millis,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Where a synced cohort landed.
#[derive(Debug, Clone)]
pub struct SyncedTarget {
    pub project: String,
    pub environment: String,
    pub segment_key: String,
}

/// The project and environment with this client-side ID.
async fn environment_by_client_side_id(
    services: &Services,
    id: &str,
) -> ApiResult<(String, String)> {
    match services
        .store
        .resolve_alias(&format!("clientside:{id}"))
        .await?
    {
        Some(target) if target.kind == EntityKind::Environment => Ok((target.scope, target.key)),
        _ => Err(ApiError::invalid(format!(
            "no environment has the client-side ID \"{id}\": send the client-side ID of the \
             environment to sync into"
        ))),
    }
}

/// The context kind a segment's synced members have, if it has any.
fn member_kind(segment: &Segment) -> Option<&str> {
    if !segment.included.is_empty() {
        return Some("user");
    }
    segment
        .included_contexts
        .iter()
        .find(|t| !t.values.is_empty())
        .map(|t| t.context_kind.as_str())
}

/// A segment a sync may write: made by this integration, with members of this kind.
fn check_synced(segment: &Segment, integration_key: &str, context_kind: &str) -> ApiResult<()> {
    let key = &segment.key;
    if segment.external.as_deref() != Some(integration_key) {
        return Err(ApiError::Conflict(format!(
            "segment \"{key}\" exists and is not synced by integration \"{integration_key}\": \
             delete it or use another cohort ID"
        )));
    }
    if let Some(kind) = member_kind(segment)
        && kind != context_kind
    {
        return Err(ApiError::Conflict(format!(
            "segment \"{key}\" holds members of context kind \"{kind}\", not \
             \"{context_kind}\": all members of a synced segment share one kind"
        )));
    }
    Ok(())
}

/// Adds and removes members in `list`, keeping its order; returns how many changed.
fn apply_members(list: &mut Vec<String>, add: &[&str], remove: &[&str]) -> (usize, usize) {
    let removing: HashSet<&str> = remove.iter().copied().collect();
    let before = list.len();
    if !removing.is_empty() {
        list.retain(|m| !removing.contains(m.as_str()));
    }
    let removed = before - list.len();
    let mut present: HashSet<String> = list.iter().cloned().collect();
    let mut added = 0;
    for id in add {
        if present.insert((*id).to_string()) {
            list.push((*id).to_string());
            added += 1;
        }
    }
    (added, removed)
}

impl Services {
    /// Applies one parsed synced-segment request for `caller` (who needs `createSegment` for
    /// a new cohort and `updateIncluded` for membership changes).
    pub async fn sync_segments(
        &self,
        caller: &Caller,
        integration_key: &str,
        parsed: &ParsedSync,
    ) -> ApiResult<Vec<SyncedTarget>> {
        let (project, env) = environment_by_client_side_id(self, &parsed.environment_id).await?;
        let cohorts = parsed.cohorts();
        if cohorts.len() > 1 {
            // Members that override the cohort touch several segments, one commit each: refuse
            // what would fail before any of them is written.
            let context = self.project_context(&project).await?;
            for cohort in &cohorts {
                let key = segment_key(integration_key, cohort.cohort_id);
                flagstaff_model::keys::validate_key("segment", &key)?;
                let existing = self
                    .load::<Segment>(&segment_ref(&project, &env, &key))
                    .await?;
                let tags = existing
                    .as_ref()
                    .map(|(s, _)| s.tags.clone())
                    .unwrap_or_default();
                let resource = context.segment_resource(&env, &key, &tags);
                match existing {
                    Some((segment, _)) => {
                        check_synced(&segment, integration_key, &parsed.context_kind)?;
                    }
                    None => caller.require("createSegment", &resource)?,
                }
                caller.require("updateIncluded", &resource)?;
            }
        }
        let mut out = Vec::new();
        for cohort in cohorts {
            let key = segment_key(integration_key, cohort.cohort_id);
            let target = segment_ref(&project, &env, &key);
            let _guard = self.lock(&target).await;
            self.with_retries(|| {
                self.sync_cohort_once(
                    caller,
                    integration_key,
                    &project,
                    &env,
                    &key,
                    &parsed.context_kind,
                    &cohort,
                )
            })
            .await?;
            out.push(SyncedTarget {
                project: project.clone(),
                environment: env.clone(),
                segment_key: key,
            });
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_cohort_once(
        &self,
        caller: &Caller,
        integration_key: &str,
        project: &str,
        env: &str,
        key: &str,
        context_kind: &str,
        cohort: &CohortChanges<'_>,
    ) -> Result<(), CommitError> {
        let now = now_millis();
        let target = segment_ref(project, env, key);
        let existing = self.load::<Segment>(&target).await?;
        let created = existing.is_none();
        let (mut segment, version) = match existing {
            Some((segment, version)) => {
                check_synced(&segment, integration_key, context_kind)?;
                (segment, version)
            }
            None => {
                let mut segment = Segment::create(
                    SegmentBody {
                        name: cohort.cohort_name.to_string(),
                        key: key.to_string(),
                        description: None,
                        tags: None,
                        unbounded: None,
                        unbounded_context_kind: None,
                    },
                    now,
                )?;
                segment.external = Some(integration_key.to_string());
                (segment, 0)
            }
        };
        let renamed = !created && segment.name != cohort.cohort_name;
        segment.name = cohort.cohort_name.to_string();
        let relinked = segment.external_link.as_deref() != cohort.cohort_url;
        if cohort.cohort_url.is_some() {
            segment.external_link = cohort.cohort_url.map(String::from);
        }
        let list = if context_kind == "user" {
            &mut segment.included
        } else {
            let index = match segment
                .included_contexts
                .iter()
                .position(|t| t.context_kind == context_kind)
            {
                Some(i) => i,
                None => {
                    segment.included_contexts.push(SegmentTarget {
                        context_kind: context_kind.to_string(),
                        values: Vec::new(),
                    });
                    segment.included_contexts.len() - 1
                }
            };
            &mut segment.included_contexts[index].values
        };
        let (added, removed) = apply_members(list, &cohort.add, &cohort.remove);
        segment.included_contexts.retain(|t| !t.values.is_empty());
        segment.validate()?;
        if !created
            && added == 0
            && removed == 0
            && !renamed
            && !(relinked && cohort.cohort_url.is_some())
        {
            // Already in step: a retried batch writes nothing.
            self.require_view_project(caller, project).await?;
            return Ok(());
        }
        let context = self.project_context(project).await?;
        let resource = context.segment_resource(env, key, &segment.tags);
        let mut accesses = Vec::new();
        if created {
            accesses.push(access("createSegment", &resource));
        }
        if renamed {
            accesses.push(access("updateName", &resource));
        }
        if added + removed > 0 || created {
            accesses.push(access("updateIncluded", &resource));
        }
        let mut description = vec![format!(
            "Synced from {integration_key} cohort *{}*: added {added} and removed {removed} \
             {context_kind} members",
            cohort.cohort_name
        )];
        if renamed {
            description.push(format!("Renamed the segment to *{}*", segment.name));
        }
        let write = if created {
            EntityWrite::Insert {
                target: target.clone(),
                version: segment.version,
                doc: encode(&segment)?,
                aliases: Vec::new(),
            }
        } else {
            segment.version = version + 1;
            segment.last_modified_date = now;
            EntityWrite::Update {
                target: target.clone(),
                expected_version: version,
                version: segment.version,
                doc: encode(&segment)?,
                aliases: None,
            }
        };
        let change = PendingChange {
            writes: vec![write],
            audit: AuditDraft {
                kind: "segment",
                name: segment.name.clone(),
                accesses,
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: if created {
                    "created the synced segment".into()
                } else {
                    "updated the synced segment".into()
                },
                description,
                comment: None,
                site_path: format!("/{project}/{env}/segments/{key}"),
                // The batch itself, not the whole member list: a cohort can have millions.
                delta: Some(json!({
                    "integrationKey": integration_key,
                    "cohortId": cohort.cohort_id,
                    "contextKind": context_kind,
                    "added": cohort.add,
                    "removed": cohort.remove,
                })),
                previous_version: None,
                current_version: None,
            },
            outbox: vec![segment_outbox(
                project,
                env,
                key,
                segment.version,
                if created { "create" } else { "update" },
            )],
        };
        match self.commit(Some(caller), now, change).await {
            // Another request created the cohort's segment first: retry as an update.
            Err(CommitError::Api(ApiError::Conflict(what))) if created => {
                Err(CommitError::Conflict(what))
            }
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::apply_members;

    #[test]
    fn membership_changes_are_idempotent_and_keep_order() {
        let mut list = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            apply_members(&mut list, &["c", "a", "c"], &["b", "zz"]),
            (1, 1)
        );
        assert_eq!(list, vec!["a", "c"]);
        assert_eq!(apply_members(&mut list, &["c"], &["b"]), (0, 0));
    }
}
