//! Projects: create (with their environments), JSON Patch, delete (with everything inside).

use flagstaff_model::environment::Environment;
use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_model::project::{Project, ProjectPost};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite, OutboxRow};
use serde_json::{Value, json};

use super::environments::{environment_aliases, environment_from_post};
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, changed_fields,
    encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn project_ref(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Project, "", key)
}

/// LaunchDarkly action names for changes to a project's top-level fields.
fn project_action(field: &str) -> &'static str {
    match field {
        "name" => "updateProjectName",
        "tags" => "updateTags",
        "includeInSnippetByDefault" => "updateIncludeInSnippetByDefault",
        "defaultClientSideAvailability" => "updateDefaultClientSideAvailability",
        _ => "updateProject",
    }
}

const PROJECT_READ_ONLY: &[&str] = &["/_id", "/key", "/_version", "/_creationDate"];

pub fn project_outbox(project: &str, action: &str) -> OutboxRow {
    OutboxRow {
        topic: "project".into(),
        payload: json!({"kind": "project", "action": action, "project": project}).to_string(),
    }
}

impl Services {
    pub async fn get_project(&self, key: &str) -> ApiResult<(Project, i64)> {
        self.load(&project_ref(key))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("project \"{key}\"")))
    }

    pub async fn list_projects(&self) -> ApiResult<Vec<Project>> {
        Ok(self
            .load_all::<Project>(EntityKind::Project, "")
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    pub async fn create_project(
        &self,
        caller: &Caller,
        body: ProjectPost,
    ) -> ApiResult<(Project, Vec<Environment>)> {
        let now = now_millis();
        let project = Project::create(&body, flagstaff_model::new_object_id(), now)?;
        let posts = body
            .environments
            .clone()
            .unwrap_or_else(Environment::defaults);
        if posts.is_empty() {
            return Err(ApiError::invalid(
                "a project needs at least one environment: omit `environments` to get production and test",
            ));
        }
        let mut environments: Vec<Environment> = Vec::with_capacity(posts.len());
        for post in &posts {
            if post.source.is_some() {
                return Err(ApiError::invalid(format!(
                    "environment \"{}\": `source` (cloning) is only possible when adding an environment to an existing project",
                    post.key
                )));
            }
            if environments.iter().any(|e| e.key == post.key) {
                return Err(ApiError::invalid(format!(
                    "environment key \"{}\" is given twice",
                    post.key
                )));
            }
            environments.push(environment_from_post(post, now)?);
        }
        let mut writes = vec![EntityWrite::Insert {
            target: project_ref(&project.key),
            version: project.version,
            doc: encode(&project)?,
            aliases: Vec::new(),
        }];
        let project_resource = Resource::project(&project.key, &project.tags);
        let mut accesses = vec![access("createProject", &project_resource)];
        for env in &environments {
            writes.push(EntityWrite::Insert {
                target: EntityRef::new(
                    EntityKind::Environment,
                    project.key.clone(),
                    env.key.clone(),
                ),
                version: env.version,
                doc: encode(env)?,
                aliases: environment_aliases(env, now),
            });
            accesses.push(access(
                "createEnvironment",
                &project_resource
                    .clone()
                    .env(&env.key, &env.tags, env.critical),
            ));
        }
        let change = PendingChange {
            writes,
            audit: AuditDraft {
                kind: "project",
                name: project.name.clone(),
                accesses,
                target_resources: vec![audit_resource(&project_resource)],
                parent: None,
                title_verb: "created the project".into(),
                description: vec![format!(
                    "Created the project *{}* with environments {}",
                    project.name,
                    environments
                        .iter()
                        .map(|e| format!("*{}*", e.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )],
                comment: None,
                site_path: format!("/settings/projects/{}", project.key),
                delta: None,
                previous_version: None,
                current_version: Some(to_value(&project)),
            },
            outbox: vec![project_outbox(&project.key, "create")],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(|e| match e {
                CommitError::Api(ApiError::Conflict(_)) => ApiError::Conflict(format!(
                    "a project with key \"{}\" already exists",
                    project.key
                )),
                CommitError::Api(e) => e,
                CommitError::Conflict(what) => ApiError::Conflict(what),
            })?;
        Ok((project, environments))
    }

    pub async fn patch_project(
        &self,
        caller: &Caller,
        key: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<Project> {
        let request = parse_patch_request(body, semantic, PatchFormats::JsonPatchOnly)?;
        let target = project_ref(key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.patch_project_once(caller, key, &request))
            .await
    }

    async fn patch_project_once(
        &self,
        caller: &Caller,
        key: &str,
        request: &PatchRequest,
    ) -> Result<Project, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_project(key).await?;
        let mut after: Project =
            apply_document_patch(&before, request, version, PROJECT_READ_ONLY)?;
        flagstaff_model::keys::normalize_tags(&mut after.tags);
        // includeInSnippetByDefault is the old name of defaultClientSideAvailability.usingEnvironmentId.
        if after.include_in_snippet_by_default != before.include_in_snippet_by_default {
            after.default_client_side_availability.using_environment_id =
                after.include_in_snippet_by_default;
        } else {
            after.include_in_snippet_by_default =
                after.default_client_side_availability.using_environment_id;
        }
        after.validate()?;
        let before_json = to_value(&before);
        let fields = changed_fields(&before_json, &to_value(&after));
        if fields.is_empty() {
            self.require_view_project(caller, key).await?;
            return Ok(before);
        }
        after.version = version + 1;
        // Judged as it was and as it will be: a tag change cannot move a project into or out
        // of a policy's reach unnoticed.
        for f in &fields {
            caller.require(project_action(f), &Resource::project(key, &before.tags))?;
        }
        let resource = Resource::project(key, &after.tags);
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: project_ref(key),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "project",
                name: after.name.clone(),
                accesses: fields
                    .iter()
                    .map(|f| access(project_action(f), &resource))
                    .collect(),
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the project".into(),
                description: fields.iter().map(|f| format!("Changed `{f}`")).collect(),
                comment: request.comment().map(String::from),
                site_path: format!("/settings/projects/{key}"),
                delta: Some(request.delta()),
                previous_version: Some(before_json),
                current_version: Some(to_value(&after)),
            },
            outbox: vec![project_outbox(key, "update")],
        };
        self.commit(Some(caller), now, change).await?;
        Ok(after)
    }

    pub async fn delete_project(&self, caller: &Caller, key: &str) -> ApiResult<()> {
        let target = project_ref(key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (project, version) = self.get_project(key).await?;
            let resource = Resource::project(key, &project.tags);
            let mut writes = vec![
                EntityWrite::DeleteScope {
                    scope: key.to_string(),
                },
                EntityWrite::Delete {
                    target: project_ref(key),
                    expected_version: version,
                },
            ];
            writes.extend(self.environment_member_deletes(key).await?);
            let change = PendingChange {
                writes,
                audit: AuditDraft {
                    previous_version: Some(to_value(&project)),
                    ..AuditDraft::single(
                        "project",
                        project.name.clone(),
                        "deleteProject",
                        &resource,
                        "deleted the project",
                        format!(
                            "Deleted the project *{}* and everything in it",
                            project.name
                        ),
                        "/settings/projects",
                    )
                },
                outbox: vec![project_outbox(key, "delete")],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }
}
