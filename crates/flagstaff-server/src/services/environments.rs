//! Environments: create (optionally cloning another environment's targeting), JSON Patch,
//! delete, and SDK/mobile key resets. Adding or removing an environment also adds or
//! removes its configuration on every flag of the project, in the same transaction.

use flagstaff_model::environment::{
    Environment, EnvironmentPost, ExpiringKey, new_mobile_key, new_sdk_key,
};
use flagstaff_model::flag::{Defaults, FeatureFlag, FlagConfig};
use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_model::{UnixMillis, audit::AuditParent};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite, OutboxRow};
use serde_json::{Value, json};

use super::{
    AuditDraft, PendingChange, Services, access, audit_resource, changed_fields, encode,
    now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn environment_ref(project: &str, env: &str) -> EntityRef {
    EntityRef::new(EntityKind::Environment, project, env)
}

/// The unique names an environment is found by: its SDK key (and a previous one that has not
/// expired), its mobile key and its client-side ID.
pub fn environment_aliases(env: &Environment, now: UnixMillis) -> Vec<String> {
    let mut aliases = vec![
        format!("sdk:{}", env.api_key),
        format!("mob:{}", env.mobile_key),
        format!("clientside:{}", env.id),
    ];
    if let Some(old) = &env.previous_api_key
        && old.expiry > now
    {
        aliases.push(format!("sdk:{}", old.key));
    }
    aliases
}

pub fn environment_from_post(post: &EnvironmentPost, now: UnixMillis) -> ApiResult<Environment> {
    Ok(Environment::create(post, now)?)
}

fn environment_action(field: &str) -> &'static str {
    match field {
        "name" => "updateName",
        "color" => "updateColor",
        "defaultTtl" => "updateTtl",
        "secureMode" => "updateSecureMode",
        "defaultTrackEvents" => "updateDefaultTrackEvents",
        "requireComments" => "updateRequireComments",
        "confirmChanges" => "updateConfirmChanges",
        "tags" => "updateTags",
        "critical" => "updateCritical",
        "apiKey" => "updateApiKey",
        "mobileKey" => "updateMobileKey",
        "approvalSettings" => "updateApprovalSettings",
        _ => "updateEnvironment",
    }
}

const ENVIRONMENT_READ_ONLY: &[&str] = &[
    "/_id",
    "/key",
    "/apiKey",
    "/mobileKey",
    "/previousApiKey",
    "/_version",
    "/_creationDate",
];

fn environment_outbox(project: &str, env: &str, action: &str) -> OutboxRow {
    OutboxRow {
        topic: "environment".into(),
        payload:
            json!({"kind": "environment", "action": action, "project": project, "environment": env})
                .to_string(),
    }
}

fn flag_update(project: &str, flag: &FeatureFlag, expected_version: i64) -> ApiResult<EntityWrite> {
    Ok(EntityWrite::Update {
        target: EntityRef::new(EntityKind::Flag, project, flag.key.clone()),
        expected_version,
        version: flag.version,
        doc: encode(flag)?,
        aliases: None,
    })
}

/// Which environment change an [`Services::environment_change`] call makes.
enum EnvironmentChange<'a> {
    Patch(&'a PatchRequest),
    ResetSdkKey { expiry: Option<UnixMillis> },
    ResetMobileKey,
}

impl Services {
    pub async fn get_environment(&self, project: &str, env: &str) -> ApiResult<(Environment, i64)> {
        self.load(&environment_ref(project, env))
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("environment \"{env}\" in project \"{project}\""))
            })
    }

    pub async fn list_environments(&self, project: &str) -> ApiResult<Vec<Environment>> {
        Ok(self
            .load_all::<Environment>(EntityKind::Environment, project)
            .await?
            .into_iter()
            .map(|(e, _)| e)
            .collect())
    }

    pub async fn create_environment(
        &self,
        caller: &Caller,
        project_key: &str,
        post: EnvironmentPost,
    ) -> ApiResult<Environment> {
        let (project, _) = self.get_project(project_key).await?;
        let target = environment_ref(project_key, &post.key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            if self.store.get(&target).await?.is_some() {
                return Err(ApiError::Conflict(format!(
                    "an environment with key \"{}\" already exists in project \"{project_key}\"",
                    post.key
                ))
                .into());
            }
            let env = environment_from_post(&post, now)?;
            let source = match &post.source {
                Some(source) => {
                    let (source_env, source_version) = self.get_environment(project_key, &source.key).await?;
                    if let Some(expected) = source.version
                        && expected != source_version
                    {
                        return Err(ApiError::OptimisticLock(format!(
                            "source environment \"{}\" is at version {source_version}, not {expected}",
                            source.key
                        ))
                        .into());
                    }
                    Some(source_env.key)
                }
                None => None,
            };
            let mut writes = vec![EntityWrite::Insert {
                target: target.clone(),
                version: env.version,
                doc: encode(&env)?,
                aliases: environment_aliases(&env, now),
            }];
            for (mut flag, version) in self.load_all::<FeatureFlag>(EntityKind::Flag, project_key).await? {
                let defaults = flag.defaults.unwrap_or(Defaults {
                    on_variation: 0,
                    off_variation: flag.variations.len().saturating_sub(1),
                });
                let mut config = FlagConfig::new(defaults, now);
                config.archived = flag.archived;
                if let Some(from) = source.as_ref().and_then(|s| flag.environments.get(s)) {
                    config.copy_targeting_from(from);
                }
                flag.environments.insert(env.key.clone(), config);
                flag.version = version + 1;
                writes.push(flag_update(project_key, &flag, version)?);
            }
            let resource = Resource::project(project_key, &project.tags).env(&env.key, &env.tags, env.critical);
            let mut description = vec![format!("Created the environment *{}*", env.name)];
            if let Some(s) = &source {
                description.push(format!("Copied flag targeting from *{s}*"));
            }
            let change = PendingChange {
                writes,
                audit: AuditDraft {
                    kind: "environment",
                    name: env.name.clone(),
                    accesses: vec![access("createEnvironment", &resource)],
                    target_resources: vec![audit_resource(&resource)],
                    parent: Some(AuditParent {
                        name: project.name.clone(),
                        resource: audit_resource(&Resource::project(project_key, &project.tags)),
                    }),
                    title_verb: "created the environment".into(),
                    description,
                    comment: None,
                    site_path: format!("/settings/projects/{project_key}/environments/{}", env.key),
                    delta: None,
                    previous_version: None,
                    // Keys are secrets: the audit log never records their values.
                    current_version: Some(redact_keys(to_value(&env))),
                },
                outbox: vec![environment_outbox(project_key, &env.key, "create")],
            };
            self.commit(Some(caller), now, change).await?;
            Ok(env)
        })
        .await
    }

    pub async fn patch_environment(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<Environment> {
        let request = parse_patch_request(body, semantic, PatchFormats::JsonPatchOnly)?;
        self.environment_change(caller, project, env, EnvironmentChange::Patch(&request))
            .await
    }

    pub async fn reset_sdk_key(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
        expiry: Option<UnixMillis>,
    ) -> ApiResult<Environment> {
        self.environment_change(
            caller,
            project,
            env,
            EnvironmentChange::ResetSdkKey { expiry },
        )
        .await
    }

    pub async fn reset_mobile_key(
        &self,
        caller: &Caller,
        project: &str,
        env: &str,
    ) -> ApiResult<Environment> {
        self.environment_change(caller, project, env, EnvironmentChange::ResetMobileKey)
            .await
    }

    async fn environment_change(
        &self,
        caller: &Caller,
        project: &str,
        env_key: &str,
        change: EnvironmentChange<'_>,
    ) -> ApiResult<Environment> {
        let target = environment_ref(project, env_key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (before, version) = self.get_environment(project, env_key).await?;
            let (mut after, comment, delta, title_verb) = match &change {
                EnvironmentChange::Patch(request) => {
                    let mut after: Environment = apply_document_patch(&before, request, version, ENVIRONMENT_READ_ONLY)?;
                    flagstaff_model::keys::normalize_tags(&mut after.tags);
                    after.validate()?;
                    (after, request.comment().map(String::from), Some(request.delta()), "updated the environment")
                }
                EnvironmentChange::ResetSdkKey { expiry } => {
                    let mut after = before.clone();
                    after.api_key = new_sdk_key();
                    after.previous_api_key = match expiry {
                        Some(at) if *at > now => Some(ExpiringKey { key: before.api_key.clone(), expiry: *at }),
                        Some(at) => {
                            return Err(ApiError::invalid(format!(
                                "expiry {at} is in the past: give a future Unix time in milliseconds, or omit it to revoke the old key now"
                            ))
                            .into());
                        }
                        None => None,
                    };
                    (after, None, None, "reset the SDK key of")
                }
                EnvironmentChange::ResetMobileKey => {
                    let mut after = before.clone();
                    after.mobile_key = new_mobile_key();
                    (after, None, None, "reset the mobile key of")
                }
            };
            let before_json = to_value(&before);
            let fields = changed_fields(&before_json, &to_value(&after));
            if fields.is_empty() {
                self.require_view_project(caller, project).await?;
            return Ok(before);
            }
            after.version = version + 1;
            let (project_entity, _) = self.get_project(project).await?;
            let resource = Resource::project(project, &project_entity.tags).env(env_key, &before.tags, before.critical);
            let keys_changed = after.api_key != before.api_key || after.mobile_key != before.mobile_key;
            let description = fields
                .iter()
                .filter(|f| f.as_str() != "previousApiKey")
                .map(|f| match f.as_str() {
                    "apiKey" => "Reset the SDK key".to_string(),
                    "mobileKey" => "Reset the mobile key".to_string(),
                    other => format!("Changed `{other}`"),
                })
                .collect();
            let pending = PendingChange {
                writes: vec![EntityWrite::Update {
                    target: target.clone(),
                    expected_version: version,
                    version: after.version,
                    doc: encode(&after)?,
                    aliases: keys_changed.then(|| environment_aliases(&after, now)),
                }],
                audit: AuditDraft {
                    kind: "environment",
                    name: after.name.clone(),
                    accesses: fields
                        .iter()
                        .filter(|f| f.as_str() != "previousApiKey")
                        .map(|f| access(environment_action(f), &resource))
                        .collect(),
                    target_resources: vec![audit_resource(&resource)],
                    parent: None,
                    title_verb: title_verb.into(),
                    description,
                    comment,
                    site_path: format!("/settings/projects/{project}/environments/{env_key}"),
                    delta,
                    // Keys are secrets: the audit log records that they changed, not their values.
                    previous_version: Some(redact_keys(before_json)),
                    current_version: Some(redact_keys(to_value(&after))),
                },
                outbox: vec![environment_outbox(project, env_key, "update")],
            };
            self.commit(Some(caller), now, pending).await?;
            Ok(after)
        })
        .await
    }

    pub async fn delete_environment(
        &self,
        caller: &Caller,
        project: &str,
        env_key: &str,
    ) -> ApiResult<()> {
        let target = environment_ref(project, env_key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (env, version) = self.get_environment(project, env_key).await?;
            if self.list_environments(project).await?.len() <= 1 {
                return Err(ApiError::invalid(format!(
                    "\"{env_key}\" is the last environment of project \"{project}\": a project needs at least one environment"
                ))
                .into());
            }
            let mut writes = vec![
                EntityWrite::Delete { target: target.clone(), expected_version: version },
                EntityWrite::DeleteScope { scope: format!("{project}/{env_key}") },
                EntityWrite::SegmentMembers(flagstaff_store::SegmentMembersWrite::DeleteEnvironment { environment_id: env.id.clone() }),
            ];
            for (mut flag, flag_version) in self.load_all::<FeatureFlag>(EntityKind::Flag, project).await? {
                if flag.environments.remove(env_key).is_some() {
                    flag.version = flag_version + 1;
                    writes.push(flag_update(project, &flag, flag_version)?);
                }
            }
            let (project_entity, _) = self.get_project(project).await?;
            let resource = Resource::project(project, &project_entity.tags).env(env_key, &env.tags, env.critical);
            let change = PendingChange {
                writes,
                audit: AuditDraft { previous_version: Some(redact_keys(to_value(&env))), ..AuditDraft::single("environment", env.name.clone(), "deleteEnvironment", &resource, "deleted the environment", format!("Deleted the environment *{}* with its segments and flag targeting", env.name), format!("/settings/projects/{project}")) },
                outbox: vec![environment_outbox(project, env_key, "delete")],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }
}

fn redact_keys(mut env: Value) -> Value {
    if let Some(obj) = env.as_object_mut() {
        for field in ["apiKey", "mobileKey"] {
            if let Some(Value::String(key)) = obj.get(field) {
                let tail: String = key
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                obj.insert(field.into(), Value::String(format!("…{tail}")));
            }
        }
        obj.remove("previousApiKey");
    }
    env
}
