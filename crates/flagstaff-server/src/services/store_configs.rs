//! Persistent-store configurations of an environment: featureStore delivery configurations
//! (`/api/v2/integration-capabilities/featureStore/...`) and big-segment stores
//! (`/api/v2/integration-capabilities/big-segment-store/...`). Form values go through the same
//! validation and sealing as every integration configuration (`webhooks.rs`
//! `prepare_values`); the sync engines (`integrations/stores`) pick changes up after commit.

use flagstaff_model::patch::{PatchRequest, apply_document_patch};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::webhooks::{ConfigTarget, masked_values, validate_name, validate_tags};
use super::{AuditDraft, PendingChange, Services, access, now_millis};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::integrations::Integrations;
use crate::integrations::stores::{StoreCapability, StoreConfigDoc};

pub fn store_config_ref(project: &str, env: &str, id: &str) -> EntityRef {
    EntityRef::new(EntityKind::StoreConfig, format!("{project}/{env}"), id)
}

/// What a client sends to create a configuration (`IntegrationDeliveryConfigurationPost`)
/// and what a JSON Patch edits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfigFields {
    #[serde(default)]
    pub name: String,
    pub config: Map<String, Value>,
    /// LaunchDarkly's default: off until turned on.
    #[serde(default)]
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
}

fn resource(doc_key: &str, tags: &[String]) -> Resource {
    Resource::integration(doc_key, tags)
}

fn capability_target(capability: StoreCapability, client_side_id: &str) -> ConfigTarget<'_> {
    match capability {
        StoreCapability::FeatureStore => ConfigTarget::FeatureStore { client_side_id },
        StoreCapability::BigSegmentStore => ConfigTarget::BigSegmentStore,
    }
}

impl Services {
    /// The configuration's values as the API shows them (secrets masked).
    pub fn masked_store_config(
        &self,
        integrations: &Integrations,
        doc: &StoreConfigDoc,
    ) -> Map<String, Value> {
        let catalogue = integrations.catalogue.current();
        let Some(integration) = catalogue.get(&doc.integration_key) else {
            return Map::new();
        };
        match capability_target(doc.capability, "").form_variables(integration) {
            Ok(variables) => masked_values(variables, &doc.config),
            Err(_) => Map::new(),
        }
    }

    pub async fn list_store_configs(
        &self,
        capability: StoreCapability,
        project: &str,
        env: &str,
    ) -> ApiResult<Vec<(StoreConfigDoc, i64)>> {
        self.get_environment(project, env).await?;
        Ok(self
            .load_all::<StoreConfigDoc>(EntityKind::StoreConfig, &format!("{project}/{env}"))
            .await?
            .into_iter()
            .filter(|(doc, _)| doc.capability == capability)
            .collect())
    }

    pub async fn get_store_config(
        &self,
        capability: StoreCapability,
        (project, env, integration_key, id): (&str, &str, &str, &str),
    ) -> ApiResult<(StoreConfigDoc, i64)> {
        self.load::<StoreConfigDoc>(&store_config_ref(project, env, id))
            .await?
            .filter(|(doc, _)| {
                doc.capability == capability && doc.integration_key == integration_key
            })
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Unknown {integration_key} configuration {id} in {project}/{env}"
                ))
            })
    }

    pub async fn create_store_config(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        capability: StoreCapability,
        (project, env, integration_key): (&str, &str, &str),
        fields: StoreConfigFields,
    ) -> ApiResult<StoreConfigDoc> {
        let integration = self.integration(integrations, integration_key)?;
        let (environment, _) = self.get_environment(project, env).await?;
        validate_name(&fields.name)?;
        validate_tags(&fields.tags)?;
        let id = uuid::Uuid::new_v4().to_string();
        let config = self
            .prepare_values(
                integrations,
                &integration,
                capability_target(capability, &environment.id),
                &id,
                &fields.config,
                None,
            )
            .await?;
        let doc = StoreConfigDoc {
            id: id.clone(),
            capability,
            integration_key: integration_key.to_string(),
            project_key: project.to_string(),
            environment_key: env.to_string(),
            name: if fields.name.trim().is_empty() {
                integration.manifest.name.clone()
            } else {
                fields.name
            },
            config,
            on: fields.on,
            tags: fields.tags,
            created_at: now_millis(),
        };
        let resource = resource(integration_key, &doc.tags);
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: store_config_ref(project, env, &id),
                version: 1,
                doc: super::encode(&doc)?,
                aliases: vec![],
            }],
            audit: AuditDraft::single(
                "integration",
                doc.name.clone(),
                "createIntegration",
                &resource,
                format!("added the {} integration", integration.manifest.name),
                format!(
                    "added {} configuration `{}` for {project}/{env}",
                    integration.key, doc.name
                ),
                format!("/settings/integrations/{integration_key}"),
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        integrations.reload_store_sync().await;
        Ok(doc)
    }

    pub async fn patch_store_config(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        capability: StoreCapability,
        path: (&str, &str, &str, &str),
        request: &PatchRequest,
    ) -> ApiResult<StoreConfigDoc> {
        let (project, env, integration_key, id) = path;
        let integration = self.integration(integrations, integration_key)?;
        let target = store_config_ref(project, env, id);
        let _guard = self.lock(&target).await;
        let (before, version) = self.get_store_config(capability, path).await?;
        let (environment, _) = self.get_environment(project, env).await?;
        let fields = StoreConfigFields {
            name: before.name.clone(),
            config: self.masked_store_config(integrations, &before),
            on: before.on,
            tags: before.tags.clone(),
        };
        let after = apply_document_patch(&fields, request, version, &[])?;
        if after.name.trim().is_empty() {
            return Err(ApiError::invalid("name must not be empty"));
        }
        validate_name(&after.name)?;
        validate_tags(&after.tags)?;
        let config = if after.config == fields.config {
            before.config.clone()
        } else {
            self.prepare_values(
                integrations,
                &integration,
                capability_target(capability, &environment.id),
                id,
                &after.config,
                Some(&before.config),
            )
            .await?
        };
        let actions = super::webhooks::configuration_actions(
            (&before.name, &after.name),
            (&before.config, &config),
            (before.on, after.on),
            (&before.tags, &after.tags),
        );
        if actions.is_empty() {
            return Ok(before);
        }
        let doc = StoreConfigDoc {
            name: after.name,
            config,
            on: after.on,
            tags: after.tags,
            ..before
        };
        let resource = resource(integration_key, &doc.tags);
        let mut audit = AuditDraft::single(
            "integration",
            doc.name.clone(),
            actions[0],
            &resource,
            format!("updated the {} integration", integration.manifest.name),
            format!("changed {}", actions.join(", ")),
            format!("/settings/integrations/{integration_key}"),
        );
        audit.accesses = actions.iter().map(|a| access(a, &resource)).collect();
        audit.comment = request.comment().map(String::from);
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target,
                expected_version: version,
                version: version + 1,
                doc: super::encode(&doc)?,
                aliases: None,
            }],
            audit,
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        integrations.reload_store_sync().await;
        Ok(doc)
    }

    pub async fn delete_store_config(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        capability: StoreCapability,
        path: (&str, &str, &str, &str),
    ) -> ApiResult<()> {
        let (project, env, integration_key, id) = path;
        let target = store_config_ref(project, env, id);
        let _guard = self.lock(&target).await;
        let (doc, version) = self.get_store_config(capability, path).await?;
        let resource = resource(integration_key, &doc.tags);
        let change = PendingChange {
            writes: vec![EntityWrite::Delete {
                target,
                expected_version: version,
            }],
            audit: AuditDraft::single(
                "integration",
                doc.name.clone(),
                "deleteIntegration",
                &resource,
                "deleted the integration configuration",
                format!("deleted {integration_key} configuration `{}`", doc.name),
                format!("/settings/integrations/{integration_key}"),
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        integrations.reload_store_sync().await;
        self.store.store_sync_delete(id).await?;
        Ok(())
    }
}
