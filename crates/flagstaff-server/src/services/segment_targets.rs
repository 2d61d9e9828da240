//! Synced segments: a partner keeps a segment's members in step with one of its cohorts
//! (`POST /api/v2/segment-targets/{integrationKey}`). Each cohort is the segment
//! `<integrationKey>-<cohortId>` in the environment whose client-side ID the request names;
//! it is created on first sight, and each batch adds and removes members idempotently in one
//! change (one audit entry, one SDK update).
//!
//! A synced segment is a big segment, as at LaunchDarkly: the document is `unbounded` (with
//! `unboundedContextKind` and a `generation`) and holds no members; members are rows of
//! `segment_members` (flagstaff-store), so a batch reads and writes only its own members and
//! a cohort of millions never sits in memory. The batch's rows, the segment's version bump
//! (which reaches SDK streams) and the audit entry are one commit.

use std::collections::{HashMap, HashSet};

use flagstaff_manifest::synced_segment::{CohortChanges, ParsedSync, segment_key};
use flagstaff_model::segment::{Segment, SegmentBody};
use flagstaff_store::{EntityKind, EntityWrite, SegmentMembersWrite};
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

/// The context kind a synced segment's members have. Segments written before membership
/// moved out of the document keep members in their lists; those say the kind.
fn member_kind(segment: &Segment) -> Option<&str> {
    if segment.unbounded {
        return Some(segment.unbounded_context_kind.as_deref().unwrap_or("user"));
    }
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

/// The membership rows a batch changes, given the stored state of its members (absent:
/// never a member): adds of non-members, removals of members. Each key appears once.
fn effective_changes(
    stored: &HashMap<String, bool>,
    add: &[&str],
    remove: &[&str],
) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for id in add {
        if stored.get(*id) != Some(&true) {
            out.push(((*id).to_string(), true));
        }
    }
    for id in remove {
        if stored.get(*id) == Some(&true) {
            out.push(((*id).to_string(), false));
        }
    }
    out
}

/// Moves the members of a segment synced before membership left the document into rows, and
/// makes it a big segment (once, O(its members)).
fn adopt_listed_members(segment: &mut Segment, context_kind: &str, now: i64) -> Vec<String> {
    let mut members = std::mem::take(&mut segment.included);
    for target in std::mem::take(&mut segment.included_contexts) {
        members.extend(target.values);
    }
    segment.unbounded = true;
    segment.unbounded_context_kind = Some(context_kind.to_string());
    segment.generation = now;
    members
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
                    (&env, &parsed.environment_id),
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

    /// `(included, excluded)` of a context key in a segment: a big segment's member row,
    /// or an ordinary segment's target lists.
    pub async fn segment_membership(
        &self,
        project: &str,
        env: &str,
        key: &str,
        context_key: &str,
    ) -> ApiResult<(bool, bool)> {
        let (segment, _) = self.get_segment(project, env, key).await?;
        if segment.unbounded {
            let (environment, _) = self.get_environment(project, env).await?;
            let stored = self
                .store
                .segment_member_states(&environment.id, key, &[context_key.to_string()])
                .await?;
            return Ok((stored.iter().any(|(_, included)| *included), false));
        }
        let listed = |keys: &[String], targets: &[flagstaff_model::segment::SegmentTarget]| {
            keys.iter().any(|k| k == context_key)
                || targets
                    .iter()
                    .any(|t| t.values.iter().any(|k| k == context_key))
        };
        Ok((
            listed(&segment.included, &segment.included_contexts),
            listed(&segment.excluded, &segment.excluded_contexts),
        ))
    }

    /// The write that forgets a deleted big segment's member rows.
    pub(crate) async fn segment_member_delete(
        &self,
        project: &str,
        env: &str,
        key: &str,
    ) -> ApiResult<EntityWrite> {
        let (environment, _) = self.get_environment(project, env).await?;
        Ok(EntityWrite::SegmentMembers(
            SegmentMembersWrite::DeleteSegment {
                environment_id: environment.id,
                segment_key: key.to_string(),
            },
        ))
    }

    /// The writes that forget the member rows of every environment of a deleted project.
    pub(crate) async fn environment_member_deletes(
        &self,
        project: &str,
    ) -> ApiResult<Vec<EntityWrite>> {
        Ok(self
            .list_environments(project)
            .await?
            .into_iter()
            .map(|environment| {
                EntityWrite::SegmentMembers(SegmentMembersWrite::DeleteEnvironment {
                    environment_id: environment.id,
                })
            })
            .collect())
    }

    #[allow(clippy::too_many_arguments)]
    async fn sync_cohort_once(
        &self,
        caller: &Caller,
        integration_key: &str,
        project: &str,
        (env, environment_id): (&str, &str),
        key: &str,
        context_kind: &str,
        cohort: &CohortChanges<'_>,
    ) -> Result<(), CommitError> {
        let now = now_millis();
        let target = segment_ref(project, env, key);
        let existing = self.load::<Segment>(&target).await?;
        let created = existing.is_none();
        let mut listed = Vec::new();
        let (mut segment, version) = match existing {
            Some((mut segment, version)) => {
                check_synced(&segment, integration_key, context_kind)?;
                if !segment.unbounded {
                    listed = adopt_listed_members(&mut segment, context_kind, now);
                }
                (segment, version)
            }
            None => {
                let mut segment = Segment::create(
                    SegmentBody {
                        name: cohort.cohort_name.to_string(),
                        key: key.to_string(),
                        description: None,
                        tags: None,
                        unbounded: Some(true),
                        unbounded_context_kind: Some(context_kind.to_string()),
                    },
                    now,
                )?;
                // Big-segment stores key membership by `<segmentKey>.g<generation>`: a
                // re-created segment must never match its predecessor's members there.
                segment.generation = now;
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
        // Read after the segment's version: a concurrent batch that changes these rows also
        // bumps that version, so this commit then fails its version check and re-reads.
        let stored: HashMap<String, bool> = if created {
            HashMap::new()
        } else {
            let keys: Vec<String> = cohort
                .add
                .iter()
                .chain(&cohort.remove)
                .map(|k| (*k).to_string())
                .collect();
            self.store
                .segment_member_states(environment_id, key, &keys)
                .await?
                .into_iter()
                .collect()
        };
        let mut changes = effective_changes(&stored, &cohort.add, &cohort.remove);
        if !listed.is_empty() {
            let batch: HashSet<&str> = cohort.add.iter().chain(&cohort.remove).copied().collect();
            let kept: Vec<(String, bool)> = listed
                .into_iter()
                .filter(|k| !batch.contains(k.as_str()))
                .map(|k| (k, true))
                .collect();
            changes.extend(kept);
        }
        let added: Vec<&str> = changes
            .iter()
            .filter(|(_, included)| *included)
            .map(|(k, _)| k.as_str())
            .collect();
        let removed: Vec<&str> = changes
            .iter()
            .filter(|(_, included)| !*included)
            .map(|(k, _)| k.as_str())
            .collect();
        let (added_count, removed_count) = (added.len(), removed.len());
        segment.validate()?;
        let relinked = relinked && cohort.cohort_url.is_some();
        if !(created || renamed || relinked || !changes.is_empty()) {
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
        if !changes.is_empty() || created {
            accesses.push(access("updateIncluded", &resource));
        }
        let mut description = vec![format!(
            "Synced from {integration_key} cohort *{}*: added {added_count} and removed \
             {removed_count} {context_kind} members",
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
        let mut writes = vec![write];
        if !changes.is_empty() {
            writes.push(EntityWrite::SegmentMembers(SegmentMembersWrite::Upsert {
                environment_id: environment_id.to_string(),
                segment_key: key.to_string(),
                members: changes.clone(),
            }));
        }
        let change = PendingChange {
            writes,
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
                // What the batch changed, not the cohort: a cohort can have millions.
                delta: Some(json!({
                    "integrationKey": integration_key,
                    "cohortId": cohort.cohort_id,
                    "contextKind": context_kind,
                    "added": added,
                    "removed": removed,
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
    use std::collections::HashMap;

    use super::effective_changes;

    #[test]
    fn only_real_changes_are_written() {
        let stored: HashMap<String, bool> = [("a".into(), true), ("b".into(), false)].into();
        assert_eq!(
            effective_changes(&stored, &["a", "b", "c"], &["b", "zz"]),
            vec![("b".to_string(), true), ("c".to_string(), true)]
        );
        assert_eq!(
            effective_changes(&stored, &[], &["a", "b"]),
            vec![("a".to_string(), false)]
        );
        assert!(effective_changes(&stored, &["a"], &["b"]).is_empty());
    }
}
