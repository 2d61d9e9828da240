//! Feature flags: create (or clone), the three PATCH formats, copy between environments,
//! delete. Every change is diffed into LaunchDarkly actions for the audit entry.

use std::collections::{BTreeMap, HashMap};

use flagstaff_model::flag::{FeatureFlag, FeatureFlagBody, FlagConfig};
use flagstaff_model::flag_change::{FlagChange, finalize_flag_change, flag_changes};
use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_model::semantic::{AppliedInstruction, flag::apply_to_flag};
use flagstaff_model::{ModelError, UnixMillis};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite, OutboxRow};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::approvals::{ApprovedChange, require_approval};
use super::{
    Access, AuditDraft, CommitError, PendingChange, ProjectContext, Services, access,
    audit_resource, encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Who changes a flag: an API caller (authorized per change), or a flag trigger.
#[derive(Clone, Copy)]
enum Actor<'a> {
    Caller(&'a Caller),
    Trigger(&'a TriggerFire),
    /// Flagstaff itself, applying a request its approval integration approved
    /// (`autoApplyApprovedChanges`); only ever with an [`ApprovedChange`].
    ApprovalIntegration,
}

impl<'a> Actor<'a> {
    fn caller(self) -> Option<&'a Caller> {
        match self {
            Actor::Caller(caller) => Some(caller),
            Actor::Trigger(_) | Actor::ApprovalIntegration => None,
        }
    }
}

/// A trigger's invocation: the partner's request body (recorded as the audit entry's
/// `triggerBody`) and the trigger's updated document, written in the same transaction.
pub struct TriggerFire {
    pub body: Value,
    pub write: EntityWrite,
}

pub fn flag_ref(project: &str, key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Flag, project, key)
}

const FLAG_READ_ONLY: &[&str] = &[
    "/key",
    "/_version",
    "/creationDate",
    "/experiments",
    "/goalIds",
];

/// `POST /api/v2/flags/{projectKey}/{featureFlagKey}/copy` body (`FlagCopyConfigPost`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagCopyBody {
    pub source: FlagCopyEnvironment,
    pub target: FlagCopyEnvironment,
    #[serde(default)]
    pub comment: Option<String>,
    /// Only copy these parts (updateOn, updateRules, updateFallthrough, updateOffVariation,
    /// updatePrerequisites, updateTargets).
    #[serde(default)]
    pub included_actions: Option<Vec<String>>,
    /// Copy everything except these parts.
    #[serde(default)]
    pub excluded_actions: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagCopyEnvironment {
    pub key: String,
    /// Fail with 409 unless the environment's flag configuration is at this version.
    #[serde(default)]
    pub current_version: Option<i64>,
}

const COPYABLE_ACTIONS: &[&str] = &[
    "updateOn",
    "updateRules",
    "updateFallthrough",
    "updateOffVariation",
    "updatePrerequisites",
    "updateTargets",
];

pub fn flag_outbox(
    project: &str,
    flag: &str,
    version: i64,
    action: &str,
    environments: &[String],
) -> OutboxRow {
    OutboxRow {
        topic: "flag".into(),
        payload: json!({
            "kind": "flag", "action": action, "project": project, "flag": flag,
            "version": version, "environments": environments,
        })
        .to_string(),
    }
}

/// How a flag change is described in its audit entry.
struct FlagAuditText {
    title_verb: String,
    lines: Vec<String>,
}

fn describe_changes(
    changes: &[FlagChange],
    after: &FeatureFlag,
    applied: Option<&[AppliedInstruction]>,
) -> FlagAuditText {
    let lines = match applied {
        Some(applied) => applied
            .iter()
            .map(|a| match &a.environment {
                Some(env) => format!("{} in `{env}`", a.description),
                None => a.description.clone(),
            })
            .collect(),
        None => changes
            .iter()
            .map(|c| {
                let what = match c.action {
                    "updateOn" => {
                        let on = c
                            .environment
                            .as_ref()
                            .and_then(|e| after.environments.get(e))
                            .is_some_and(|cfg| cfg.on);
                        if on {
                            "Turned on the flag".to_string()
                        } else {
                            "Turned off the flag".to_string()
                        }
                    }
                    other => format!("Changed the flag ({other})"),
                };
                match &c.environment {
                    Some(env) => format!("{what} in `{env}`"),
                    None => what,
                }
            })
            .collect(),
    };
    let title_verb = match changes {
        [
            FlagChange {
                action: "updateOn",
                environment: Some(env),
            },
        ] => {
            if after.environments.get(env).is_some_and(|c| c.on) {
                "turned on the flag".to_string()
            } else {
                "turned off the flag".to_string()
            }
        }
        [
            FlagChange {
                action: "updateGlobalArchived",
                ..
            },
        ] if after.archived => "archived the flag".into(),
        [
            FlagChange {
                action: "updateGlobalArchived",
                ..
            },
        ] => "restored the flag".into(),
        _ => "updated the flag".into(),
    };
    FlagAuditText { title_verb, lines }
}

/// One access per change; flag-wide changes concern every environment.
fn flag_accesses(
    context: &ProjectContext,
    flag: &FeatureFlag,
    changes: &[FlagChange],
) -> (Vec<Access>, Vec<String>) {
    let mut accesses = Vec::new();
    let mut resources: Vec<String> = Vec::new();
    for change in changes {
        let envs: Vec<&String> = match &change.environment {
            Some(env) => vec![env],
            None => flag.environments.keys().collect(),
        };
        for env in envs {
            let resource = context.flag_resource(env, &flag.key, &flag.tags);
            accesses.push(access(change.action, &resource));
            let text = audit_resource(&resource);
            if !resources.contains(&text) {
                resources.push(text);
            }
        }
    }
    (accesses, resources)
}

/// The flag in every environment of the project: flag-wide actions need permission in all.
fn flag_in_every_environment(context: &ProjectContext, flag: &FeatureFlag) -> Vec<Resource> {
    flag.environments
        .keys()
        .map(|env| context.flag_resource(env, &flag.key, &flag.tags))
        .collect()
}

impl Services {
    pub async fn get_flag(&self, project: &str, key: &str) -> ApiResult<(FeatureFlag, i64)> {
        self.load(&flag_ref(project, key))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("flag \"{key}\" in project \"{project}\"")))
    }

    pub async fn list_flags(&self, project: &str) -> ApiResult<Vec<FeatureFlag>> {
        Ok(self
            .load_all::<FeatureFlag>(EntityKind::Flag, project)
            .await?
            .into_iter()
            .map(|(f, _)| f)
            .collect())
    }

    pub async fn create_flag(
        &self,
        caller: &Caller,
        project_key: &str,
        body: FeatureFlagBody,
        clone_from: Option<&str>,
    ) -> ApiResult<FeatureFlag> {
        let now = now_millis();
        let context = self.project_context(project_key).await?;
        let project = &context.project;
        let environments: Vec<String> =
            context.environments.iter().map(|e| e.key.clone()).collect();
        let mut flag = match clone_from {
            None => FeatureFlag::create(
                body,
                &environments,
                project.default_client_side_availability,
                now,
            )?,
            Some(source_key) => {
                let (source, _) = self.get_flag(project_key, source_key).await?;
                clone_flag(&source, body, now)?
            }
        };
        for prerequisite in flag
            .environments
            .values()
            .flat_map(|c| c.prerequisites.iter())
        {
            let (other, _) = self
                .get_flag(project_key, &prerequisite.key)
                .await
                .map_err(|_| {
                    ApiError::invalid(format!(
                        "prerequisite flag \"{}\" does not exist in project \"{project_key}\"",
                        prerequisite.key
                    ))
                })?;
            if prerequisite.variation >= other.variations.len() {
                return Err(ApiError::invalid(format!(
                    "prerequisite \"{}\" has no variation {}",
                    prerequisite.key, prerequisite.variation
                )));
            }
        }
        self.check_reserved_custom_properties(None, &flag.custom_properties)
            .await?;
        flag.version = 1;
        let flag_resources = flag_in_every_environment(&context, &flag);
        let resources: Vec<String> = flag_resources.iter().map(audit_resource).collect();
        let mut accesses: Vec<Access> = flag_resources
            .iter()
            .map(|r| access("createFlag", r))
            .collect();
        if let Some(source_key) = clone_from {
            let (source, _) = self.get_flag(project_key, source_key).await?;
            for r in flag_in_every_environment(&context, &source) {
                accesses.push(access("cloneFlag", &r));
            }
        }
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: flag_ref(project_key, &flag.key),
                version: flag.version,
                doc: encode(&flag)?,
                aliases: Vec::new(),
            }],
            audit: AuditDraft {
                kind: "flag",
                name: flag.name.clone(),
                accesses,
                target_resources: resources,
                parent: None,
                title_verb: "created the flag".into(),
                description: vec![match clone_from {
                    Some(source) => {
                        format!("Created the flag *{}* as a clone of `{source}`", flag.name)
                    }
                    None => format!("Created the flag *{}*", flag.name),
                }],
                comment: None,
                site_path: format!("/{project_key}/features/{}", flag.key),
                delta: None,
                previous_version: None,
                current_version: Some(to_value(&flag)),
            },
            outbox: vec![flag_outbox(
                project_key,
                &flag.key,
                flag.version,
                "create",
                &environments,
            )],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(|e| match e {
                CommitError::Api(ApiError::Conflict(_)) => ApiError::Conflict(format!(
                    "a flag with key \"{}\" already exists in project \"{project_key}\"",
                    flag.key
                )),
                CommitError::Api(e) => e,
                CommitError::Conflict(what) => ApiError::Conflict(what),
            })?;
        Ok(flag)
    }

    /// Applies a PATCH in any of the three formats.
    pub async fn patch_flag(
        &self,
        caller: &Caller,
        project: &str,
        key: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<(FeatureFlag, ProjectContext)> {
        let request = parse_patch_request(body, semantic, PatchFormats::All)?;
        self.patch_flag_request(caller, project, key, &request, None)
            .await
    }

    /// Applies a parsed patch; `approved` when it is the change of an approved request.
    pub async fn patch_flag_request(
        &self,
        caller: &Caller,
        project: &str,
        key: &str,
        request: &PatchRequest,
        approved: Option<&ApprovedChange>,
    ) -> ApiResult<(FeatureFlag, ProjectContext)> {
        let target = flag_ref(project, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| {
            self.patch_flag_once(Actor::Caller(caller), project, key, request, approved)
        })
        .await
    }

    /// A semantic patch applied by a flag trigger: authorized when the trigger was made, so
    /// no caller is checked; the trigger's own write (its counters) commits with the change.
    /// Returns `None` when the flag was already as the trigger wants it. The caller holds the
    /// flag's lock (it read the trigger's version under it). A trigger holds no
    /// `bypassRequiredApproval`: in an environment that requires approval it is refused.
    /// Applies an approved request's change with no caller: the approval integration
    /// approved it and the environment applies approved changes automatically.
    pub async fn patch_flag_as_approval_integration(
        &self,
        project: &str,
        key: &str,
        request: &PatchRequest,
        approved: &ApprovedChange,
    ) -> ApiResult<FeatureFlag> {
        let target = flag_ref(project, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| {
            self.patch_flag_once(
                Actor::ApprovalIntegration,
                project,
                key,
                request,
                Some(approved),
            )
        })
        .await
        .map(|(flag, _)| flag)
    }

    pub async fn patch_flag_by_trigger(
        &self,
        fire: &TriggerFire,
        project: &str,
        key: &str,
        instructions: Value,
    ) -> ApiResult<Option<FeatureFlag>> {
        let request = parse_patch_request(instructions, true, PatchFormats::All)?;
        let before = self.get_flag(project, key).await?.1;
        let (after, _) = self
            .with_retries(|| {
                self.patch_flag_once(Actor::Trigger(fire), project, key, &request, None)
            })
            .await?;
        Ok((after.version != before).then_some(after))
    }

    /// The flag a patch would produce, with the instructions applied (semantic patch only).
    pub async fn flag_after_patch(
        &self,
        project: &str,
        before: &FeatureFlag,
        version: i64,
        request: &PatchRequest,
        now: UnixMillis,
    ) -> ApiResult<(FeatureFlag, Option<Vec<AppliedInstruction>>)> {
        Ok(match request {
            PatchRequest::Semantic(patch) => {
                let prerequisites = self.prerequisite_flags(project, patch).await?;
                let resolve = |flag_key: &str, variation_id: &str| -> Result<usize, ModelError> {
                    let other = prerequisites
                        .get(flag_key)
                        .ok_or_else(|| ModelError::invalid(format!("prerequisite flag \"{flag_key}\" does not exist in project \"{project}\"")))?;
                    other
                        .variation_index_by_id(variation_id)
                        .ok_or_else(|| ModelError::invalid(format!("variationId \"{variation_id}\" is not a variation of prerequisite flag \"{flag_key}\"")))
                };
                let (after, applied) = apply_to_flag(before, patch, &resolve, now)?;
                (after, Some(applied))
            }
            other => (
                apply_document_patch(before, other, version, FLAG_READ_ONLY)?,
                None,
            ),
        })
    }

    async fn patch_flag_once(
        &self,
        actor: Actor<'_>,
        project: &str,
        key: &str,
        request: &PatchRequest,
        approved: Option<&ApprovedChange>,
    ) -> Result<(FeatureFlag, ProjectContext), CommitError> {
        let now = now_millis();
        let (before, version) = self.get_flag(project, key).await?;
        if let Some(approved) = approved {
            approved.check_version("flag", key, version, || to_value(&before))?;
        }
        let context = self.project_context(project).await?;
        let (mut after, applied) = self
            .flag_after_patch(project, &before, version, request, now)
            .await?;
        finalize_flag_change(&before, &mut after, version, now)?;
        self.check_reserved_custom_properties(
            Some(&before.custom_properties),
            &after.custom_properties,
        )
        .await?;
        let changes = flag_changes(&before, &after);
        if changes.is_empty() {
            if let Some(caller) = actor.caller() {
                caller.require("viewProject", &context.project_resource())?;
            }
            return Ok((before, context));
        }
        self.check_prerequisite_keys(project, &before, &after)
            .await?;
        if after.archived && !before.archived {
            self.refuse_if_prerequisite(project, key, "archived")
                .await?;
        }
        // Judged as the flag was and as it will be: a change cannot escape a tag-based policy
        // by changing the tags it is judged by.
        if let Some(caller) = actor.caller() {
            for a in flag_accesses(&context, &before, &changes).0 {
                caller.require(&a.action, &a.resource)?;
            }
        }
        let touched: Vec<String> = {
            let mut envs: Vec<String> = changes
                .iter()
                .filter_map(|c| c.environment.clone())
                .collect();
            if changes.iter().any(|c| c.environment.is_none()) {
                envs = after.environments.keys().cloned().collect();
            }
            envs.sort();
            envs.dedup();
            envs
        };
        require_approval(
            actor.caller(),
            &context,
            &touched,
            &format!("flag \"{key}\""),
            |env| context.flag_resource(env, key, &before.tags),
            &[&before.tags, &after.tags],
            approved,
        )?;
        let (accesses, resources) = flag_accesses(&context, &after, &changes);
        let text = describe_changes(&changes, &after, applied.as_deref());
        let mut writes = vec![EntityWrite::Update {
            target: flag_ref(project, key),
            expected_version: version,
            version: after.version,
            doc: encode(&after)?,
            aliases: None,
        }];
        if let Actor::Trigger(fire) = actor {
            writes.push(fire.write.clone());
        }
        let change = PendingChange {
            writes,
            audit: AuditDraft {
                kind: "flag",
                name: after.name.clone(),
                accesses,
                target_resources: resources,
                parent: None,
                title_verb: text.title_verb,
                description: text.lines,
                comment: request.comment().map(String::from),
                site_path: format!("/{project}/features/{key}"),
                delta: Some(request.delta()),
                previous_version: Some(to_value(&before)),
                current_version: Some(to_value(&after)),
            },
            outbox: vec![flag_outbox(project, key, after.version, "update", &touched)],
        };
        match actor {
            Actor::Caller(caller) => self.commit(Some(caller), now, change).await?,
            Actor::Trigger(fire) => {
                self.commit_with(None, now, change, Some(fire.body.clone()))
                    .await?
            }
            Actor::ApprovalIntegration => self.commit(None, now, change).await?,
        };
        Ok((after, context))
    }

    /// The flags named by prerequisite instructions, so their variation ids can be resolved.
    async fn prerequisite_flags(
        &self,
        project: &str,
        patch: &flagstaff_model::semantic::SemanticPatch,
    ) -> ApiResult<HashMap<String, FeatureFlag>> {
        let mut keys: Vec<String> = Vec::new();
        for instruction in &patch.instructions {
            if let Some(k) = instruction.get("key").and_then(Value::as_str) {
                keys.push(k.to_string());
            }
            if let Some(list) = instruction.get("prerequisites").and_then(Value::as_array) {
                keys.extend(
                    list.iter()
                        .filter_map(|p| p.get("key").and_then(Value::as_str))
                        .map(String::from),
                );
            }
        }
        let mut flags = HashMap::new();
        for k in keys {
            if !flags.contains_key(&k)
                && let Some((flag, _)) = self.load::<FeatureFlag>(&flag_ref(project, &k)).await?
            {
                flags.insert(k, flag);
            }
        }
        Ok(flags)
    }

    /// Prerequisites added by any patch format must name existing flags and variations.
    async fn check_prerequisite_keys(
        &self,
        project: &str,
        before: &FeatureFlag,
        after: &FeatureFlag,
    ) -> ApiResult<()> {
        for (env, config) in &after.environments {
            for p in &config.prerequisites {
                let existed = before
                    .environments
                    .get(env)
                    .is_some_and(|c| c.prerequisites.contains(p));
                if existed {
                    continue;
                }
                let Some((other, _)) = self.load::<FeatureFlag>(&flag_ref(project, &p.key)).await?
                else {
                    return Err(ApiError::invalid(format!(
                        "environments.{env}.prerequisites: flag \"{}\" does not exist in project \"{project}\"",
                        p.key
                    )));
                };
                if p.variation >= other.variations.len() {
                    return Err(ApiError::invalid(format!(
                        "environments.{env}.prerequisites: flag \"{}\" has no variation {}",
                        p.key, p.variation
                    )));
                }
            }
        }
        Ok(())
    }

    /// Flags other flags depend on cannot be archived or deleted: their evaluation would
    /// silently change.
    async fn refuse_if_prerequisite(&self, project: &str, key: &str, what: &str) -> ApiResult<()> {
        let dependents: Vec<String> = self
            .list_flags(project)
            .await?
            .into_iter()
            .filter(|f| {
                f.key != key
                    && f.environments
                        .values()
                        .any(|c| c.prerequisites.iter().any(|p| p.key == key))
            })
            .map(|f| f.key)
            .collect();
        if dependents.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(format!(
            "flag \"{key}\" cannot be {what}: it is a prerequisite of {}; remove those prerequisites first",
            dependents
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    pub async fn delete_flag(&self, caller: &Caller, project: &str, key: &str) -> ApiResult<()> {
        let target = flag_ref(project, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (flag, version) = self.get_flag(project, key).await?;
            self.refuse_if_prerequisite(project, key, "deleted").await?;
            let context = self.project_context(project).await?;
            let flag_resources = flag_in_every_environment(&context, &flag);
            let resources: Vec<String> = flag_resources.iter().map(audit_resource).collect();
            let environments: Vec<String> = flag.environments.keys().cloned().collect();
            require_approval(
                Some(caller),
                &context,
                &environments,
                &format!("flag \"{key}\""),
                |env| context.flag_resource(env, key, &flag.tags),
                &[&flag.tags],
                None,
            )?;
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: target.clone(),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    kind: "flag",
                    name: flag.name.clone(),
                    accesses: flag_resources
                        .iter()
                        .map(|r| access("deleteFlag", r))
                        .collect(),
                    target_resources: resources,
                    parent: None,
                    title_verb: "deleted the flag".into(),
                    description: vec![format!("Deleted the flag *{}*", flag.name)],
                    comment: None,
                    site_path: format!("/{project}/features"),
                    delta: None,
                    previous_version: Some(to_value(&flag)),
                    current_version: None,
                },
                outbox: vec![flag_outbox(
                    project,
                    key,
                    version + 1,
                    "delete",
                    &environments,
                )],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }

    pub async fn copy_flag_config(
        &self,
        caller: &Caller,
        project: &str,
        key: &str,
        body: FlagCopyBody,
    ) -> ApiResult<FeatureFlag> {
        for action in body
            .included_actions
            .iter()
            .chain(body.excluded_actions.iter())
            .flatten()
        {
            if !COPYABLE_ACTIONS.contains(&action.as_str()) {
                return Err(ApiError::invalid(format!(
                    "\"{action}\" cannot be copied: use one of {}",
                    COPYABLE_ACTIONS.join(", ")
                )));
            }
        }
        if body.included_actions.is_some() && body.excluded_actions.is_some() {
            return Err(ApiError::invalid(
                "give includedActions or excludedActions, not both",
            ));
        }
        if body.source.key == body.target.key {
            return Err(ApiError::invalid(
                "source and target must be different environments",
            ));
        }
        let target = flag_ref(project, key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (before, version) = self.get_flag(project, key).await?;
            let config_of = |env: &FlagCopyEnvironment| -> ApiResult<FlagConfig> {
                let config = before
                    .environments
                    .get(&env.key)
                    .cloned()
                    .ok_or_else(|| ApiError::not_found(format!("environment \"{}\" in project \"{project}\"", env.key)))?;
                if let Some(expected) = env.current_version
                    && expected != config.version
                {
                    return Err(ApiError::OptimisticLock(format!(
                        "Conflict. Optimistic lock error: the flag's configuration in \"{}\" is at version {}, not {expected}",
                        env.key, config.version
                    )));
                }
                Ok(config)
            };
            let source = config_of(&body.source)?;
            let mut target_config = config_of(&body.target)?;
            copy_parts(&source, &mut target_config, |action| match (&body.included_actions, &body.excluded_actions) {
                (Some(included), _) => included.iter().any(|a| a == action),
                (None, Some(excluded)) => !excluded.iter().any(|a| a == action),
                (None, None) => true,
            });
            let mut after = before.clone();
            after.environments.insert(body.target.key.clone(), target_config);
            finalize_flag_change(&before, &mut after, version, now)?;
            let changes = flag_changes(&before, &after);
            if changes.is_empty() {
                self.require_view_project(caller, project).await?;
            return Ok(before);
            }
            let context = self.project_context(project).await?;
            let source_resource = context.flag_resource(&body.source.key, key, &before.tags);
            let target_resource = context.flag_resource(&body.target.key, key, &before.tags);
            require_approval(
                Some(caller),
                &context,
                std::slice::from_ref(&body.target.key),
                &format!("flag \"{key}\""),
                |env| context.flag_resource(env, key, &before.tags),
                &[&before.tags],
                None,
            )?;
            let change = PendingChange {
                writes: vec![EntityWrite::Update { target: target.clone(), expected_version: version, version: after.version, doc: encode(&after)?, aliases: None }],
                audit: AuditDraft {
                    kind: "flag",
                    name: after.name.clone(),
                    accesses: vec![access("copyFlagConfigFrom", &source_resource), access("copyFlagConfigTo", &target_resource)],
                    target_resources: vec![audit_resource(&target_resource)],
                    parent: None,
                    title_verb: "copied the flag settings of".into(),
                    description: vec![format!("Copied the flag settings from `{}` to `{}`", body.source.key, body.target.key)],
                    comment: body.comment.clone(),
                    site_path: format!("/{project}/{}/features/{key}", body.target.key),
                    delta: None,
                    previous_version: Some(to_value(&before)),
                    current_version: Some(to_value(&after)),
                },
                outbox: vec![flag_outbox(project, key, after.version, "update", std::slice::from_ref(&body.target.key))],
            };
            self.commit(Some(caller), now, change).await?;
            Ok(after)
        })
        .await
    }
}

fn copy_parts(source: &FlagConfig, target: &mut FlagConfig, wanted: impl Fn(&str) -> bool) {
    if wanted("updateOn") {
        target.on = source.on;
    }
    if wanted("updateRules") {
        target.rules = source.rules.clone();
    }
    if wanted("updateFallthrough") {
        target.fallthrough = source.fallthrough.clone();
    }
    if wanted("updateOffVariation") {
        target.off_variation = source.off_variation;
    }
    if wanted("updatePrerequisites") {
        target.prerequisites = source.prerequisites.clone();
    }
    if wanted("updateTargets") {
        target.targets = source.targets.clone();
        target.context_targets = source.context_targets.clone();
    }
}

/// `POST /flags/{p}?clone=source`: a new flag with the source's variations, settings and
/// targeting, under the key and name of the request.
fn clone_flag(
    source: &FeatureFlag,
    body: FeatureFlagBody,
    now: UnixMillis,
) -> ApiResult<FeatureFlag> {
    flagstaff_model::keys::validate_key("flag", &body.key)?;
    let mut flag = source.clone();
    flag.key = body.key;
    flag.name = body.name;
    if let Some(d) = body.description {
        flag.description = d;
    }
    if let Some(tags) = body.tags {
        flag.tags = tags;
        flagstaff_model::keys::normalize_tags(&mut flag.tags);
    }
    if let Some(t) = body.temporary {
        flag.temporary = t;
    }
    flag.creation_date = now;
    flag.archived = false;
    flag.archived_date = None;
    let environments: BTreeMap<String, FlagConfig> = source
        .environments
        .iter()
        .map(|(k, c)| {
            let mut fresh = FlagConfig::new(
                flag.defaults.unwrap_or(flagstaff_model::flag::Defaults {
                    on_variation: 0,
                    off_variation: 1,
                }),
                now,
            );
            fresh.copy_targeting_from(c);
            (k.clone(), fresh)
        })
        .collect();
    flag.environments = environments;
    flag.validate()?;
    Ok(flag)
}
