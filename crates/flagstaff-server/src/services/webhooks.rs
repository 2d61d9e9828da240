//! Webhooks (`/api/v2/webhooks`) and integration configurations (audit-log subscriptions):
//! the destinations change-history entries are delivered to. Secrets are sealed before they
//! are stored and never returned.

use flagstaff_manifest::Integration;
use flagstaff_model::patch::{PatchRequest, apply_document_patch};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{AuditDraft, CommitError, PendingChange, Services, access, audit_resource, now_millis};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::integrations::delivery::{config_secret_aad, webhook_secret_aad};
use crate::integrations::{
    Integrations, SubscriptionDoc, WebhookDoc, integration_destination, webhook_destination,
};

/// What the API shows instead of a secret.
pub const SECRET_MASK: &str = "**********";

pub fn webhook_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::Webhook, "", id)
}

pub fn subscription_ref(integration_key: &str, id: &str) -> EntityRef {
    EntityRef::new(EntityKind::IntegrationConfig, integration_key, id)
}

/// Alias resolving a configuration id without its integration key.
pub fn subscription_alias(id: &str) -> String {
    format!("intcfg:{id}")
}

/// The fields of a webhook a client sets (create body, and the document JSON Patch edits).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub sign: bool,
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<Value>,
}

/// The fields of an integration configuration a client sets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionFields {
    pub name: String,
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default = "default_on")]
    pub on: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<Value>,
}

fn default_on() -> bool {
    true
}

pub(super) fn validate_name(name: &str) -> ApiResult<()> {
    if name.chars().count() > 256 {
        return Err(ApiError::invalid("name must be at most 256 characters"));
    }
    Ok(())
}

pub(super) fn validate_tags(tags: &[String]) -> ApiResult<()> {
    for tag in tags {
        if tag.is_empty()
            || tag.len() > 64
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(ApiError::invalid(format!(
                "tag `{tag}` is invalid: tags are 1-64 letters, digits, '.', '_' or '-'"
            )));
        }
    }
    Ok(())
}

fn validate_statements(statements: Option<&Value>) -> ApiResult<()> {
    if let Some(statements) = statements {
        let mut normalized = statements.clone();
        if let Value::Array(items) = &mut normalized {
            for item in items {
                if let Value::Object(statement) = item {
                    statement
                        .entry("effect")
                        .or_insert_with(|| Value::from("allow"));
                }
            }
        }
        flagstaff_policy::parse_policy(&normalized)
            .map_err(|e| ApiError::invalid(format!("statements: {e}")))?;
    }
    Ok(())
}

pub(super) fn seal(integrations: &Integrations, aad: &str, value: &str) -> ApiResult<String> {
    integrations
        .secrets
        .seal_for(aad.as_bytes(), value)
        .map_err(|e| ApiError::Internal(format!("cannot encrypt a secret: {e}")))
}

/// The policy resource of a webhook.
fn webhook_resource(doc: &WebhookDoc) -> Resource {
    Resource::webhook(&doc.id, &doc.tags)
}

/// The policy resource of an integration configuration: `integration/<integrationKey>`.
fn subscription_resource(integration_key: &str, tags: &[String]) -> Resource {
    Resource::integration(integration_key, tags)
}

impl Services {
    pub(crate) async fn check_outbound_url(
        &self,
        integrations: &Integrations,
        url: &str,
    ) -> ApiResult<()> {
        if !flagstaff_manifest::config::is_absolute_http_url(url) {
            return Err(ApiError::invalid(format!(
                "url `{url}` is not an absolute http(s) URL"
            )));
        }
        integrations
            .outbound
            .check_url(url)
            .await
            .map_err(|e| ApiError::invalid(format!("url: {e}")))
    }

    pub async fn list_webhooks(&self) -> ApiResult<Vec<WebhookDoc>> {
        Ok(self
            .load_all::<WebhookDoc>(EntityKind::Webhook, "")
            .await?
            .into_iter()
            .map(|(doc, _)| doc)
            .collect())
    }

    pub async fn get_webhook(&self, id: &str) -> ApiResult<(WebhookDoc, i64)> {
        self.load(&webhook_ref(id))
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("Unknown webhook ID: {id}")))
    }

    pub async fn create_webhook(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        fields: WebhookFields,
    ) -> ApiResult<WebhookDoc> {
        validate_name(fields.name.as_deref().unwrap_or_default())?;
        validate_tags(&fields.tags)?;
        validate_statements(fields.statements.as_ref())?;
        self.check_outbound_url(integrations, &fields.url).await?;
        let id = flagstaff_model::new_object_id();
        let secret = match (fields.sign, fields.secret.filter(|s| !s.is_empty())) {
            (false, _) => None,
            (true, Some(secret)) => Some(secret),
            // LaunchDarkly generates a secret when signing is on and none is given.
            (true, None) => Some(uuid::Uuid::new_v4().simple().to_string()),
        };
        let doc = WebhookDoc {
            id: id.clone(),
            name: fields.name,
            url: fields.url,
            secret: match secret {
                Some(s) => Some(seal(integrations, &webhook_secret_aad(&id), &s)?),
                None => None,
            },
            sign: fields.sign,
            on: fields.on,
            tags: fields.tags,
            statements: fields.statements,
            disabled_reason: None,
        };
        let resource = webhook_resource(&doc);
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: webhook_ref(&id),
                version: 1,
                doc: super::encode(&doc)?,
                aliases: vec![],
            }],
            audit: AuditDraft::single(
                "webhook",
                doc.name.clone().unwrap_or_else(|| id.clone()),
                "createWebhook",
                &resource,
                "created the webhook",
                "created the webhook",
                "/settings/integrations/webhooks",
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        Ok(doc)
    }

    pub async fn patch_webhook(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        id: &str,
        request: &PatchRequest,
    ) -> ApiResult<WebhookDoc> {
        let target = webhook_ref(id);
        let _guard = self.lock(&target).await;
        let (before, version) = self.get_webhook(id).await?;
        let fields = WebhookFields {
            name: before.name.clone(),
            url: before.url.clone(),
            secret: before.secret.as_ref().map(|_| SECRET_MASK.to_string()),
            sign: before.sign,
            on: before.on,
            tags: before.tags.clone(),
            statements: before.statements.clone(),
        };
        let after = apply_document_patch(&fields, request, version, &[])?;
        validate_name(after.name.as_deref().unwrap_or_default())?;
        validate_tags(&after.tags)?;
        validate_statements(after.statements.as_ref())?;
        if after.url != before.url {
            self.check_outbound_url(integrations, &after.url).await?;
        }
        let secret = match after.secret.as_deref() {
            Some(SECRET_MASK) => before.secret.clone(),
            Some("") | None if after.sign => match before.secret.clone() {
                Some(existing) => Some(existing),
                None => Some(seal(
                    integrations,
                    &webhook_secret_aad(id),
                    &uuid::Uuid::new_v4().simple().to_string(),
                )?),
            },
            Some("") | None => None,
            Some(new) => Some(seal(integrations, &webhook_secret_aad(id), new)?),
        };
        let mut actions = Vec::new();
        if after.name != before.name {
            actions.push("updateName");
        }
        if after.url != before.url {
            actions.push("updateUrl");
        }
        if secret != before.secret || after.sign != before.sign {
            actions.push("updateSecret");
        }
        if after.on != before.on {
            actions.push("updateOn");
        }
        if after.tags != before.tags {
            actions.push("updateTags");
        }
        if after.statements != before.statements {
            actions.push("updateStatements");
        }
        let doc = WebhookDoc {
            id: before.id.clone(),
            name: after.name,
            url: after.url,
            secret,
            sign: after.sign,
            on: after.on,
            tags: after.tags,
            statements: after.statements,
            disabled_reason: if after.on {
                None
            } else {
                before.disabled_reason.clone()
            },
        };
        if actions.is_empty() {
            return Ok(before);
        }
        let resource = webhook_resource(&doc);
        let mut audit = AuditDraft::single(
            "webhook",
            doc.name.clone().unwrap_or_else(|| id.to_string()),
            actions[0],
            &resource,
            "updated the webhook",
            format!("changed {}", actions.join(", ")),
            "/settings/integrations/webhooks",
        );
        audit.accesses = actions.iter().map(|a| access(a, &resource)).collect();
        audit.comment = request.comment().map(String::from);
        let encoded = super::encode(&doc)?;
        self.commit_destination_update(
            caller,
            integrations,
            (target, version, encoded),
            audit,
            (&webhook_destination(id), doc.on),
        )
        .await?;
        Ok(doc)
    }

    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        id: &str,
    ) -> ApiResult<()> {
        let target = webhook_ref(id);
        let _guard = self.lock(&target).await;
        let (doc, version) = self.get_webhook(id).await?;
        let resource = webhook_resource(&doc);
        let change = PendingChange {
            writes: vec![EntityWrite::Delete {
                target,
                expected_version: version,
            }],
            audit: AuditDraft::single(
                "webhook",
                doc.name.clone().unwrap_or_else(|| id.to_string()),
                "deleteWebhook",
                &resource,
                "deleted the webhook",
                "deleted the webhook",
                "/settings/integrations/webhooks",
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations).await
    }

    /// Commits an edit of a destination's document; a destination that is (back) on starts
    /// with a clean consecutive-failure count.
    async fn commit_destination_update(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        (target, version, doc): (EntityRef, i64, String),
        audit: AuditDraft,
        (destination, on): (&str, bool),
    ) -> ApiResult<()> {
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target,
                expected_version: version,
                version: version + 1,
                doc,
                aliases: None,
            }],
            audit,
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        if on {
            integrations.destinations.reset_failures(destination);
        }
        Ok(())
    }

    /// Commits a destination change and refreshes the delivery routes.
    pub(super) async fn commit_destination(
        &self,
        caller: &Caller,
        change: PendingChange,
        integrations: &Integrations,
    ) -> ApiResult<()> {
        self.commit(Some(caller), now_millis(), change)
            .await
            .map_err(CommitError::concurrent_change)?;
        integrations
            .destinations
            .reload(self.store.as_ref(), &integrations.catalogue)
            .await;
        Ok(())
    }

    // -- integration configurations ------------------------------------------------------

    pub fn integration(
        &self,
        integrations: &Integrations,
        key: &str,
    ) -> ApiResult<std::sync::Arc<Integration>> {
        integrations
            .catalogue
            .current()
            .get(key)
            .cloned()
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Unknown integration key: {key} (GET /api/v2/integration-manifests lists them)"
                ))
            })
    }

    pub async fn list_subscriptions(
        &self,
        integration_key: &str,
    ) -> ApiResult<Vec<SubscriptionDoc>> {
        Ok(self
            .load_all::<SubscriptionDoc>(EntityKind::IntegrationConfig, integration_key)
            .await?
            .into_iter()
            .map(|(doc, _)| doc)
            .collect())
    }

    pub async fn get_subscription(
        &self,
        integration_key: &str,
        id: &str,
    ) -> ApiResult<(SubscriptionDoc, i64)> {
        self.load(&subscription_ref(integration_key, id))
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "Unknown integration configuration: {integration_key}/{id}"
                ))
            })
    }

    /// Finds a configuration by id alone (`/api/v2/integration-configurations/{id}`).
    pub async fn find_subscription(&self, id: &str) -> ApiResult<(SubscriptionDoc, i64)> {
        let target = self
            .store
            .resolve_alias(&subscription_alias(id))
            .await?
            .ok_or_else(|| {
                ApiError::NotFound(format!("Unknown integration configuration: {id}"))
            })?;
        self.get_subscription(&target.scope, &target.key).await
    }

    /// Validates form values against the manifest, seals secrets (keeping the stored value
    /// where the client sent back the mask) and checks the rendered endpoint is allowed.
    async fn prepare_config(
        &self,
        integrations: &Integrations,
        integration: &Integration,
        id: &str,
        config: &Map<String, Value>,
        previous: Option<&Map<String, Value>>,
    ) -> ApiResult<Map<String, Value>> {
        self.prepare_values(
            integrations,
            integration,
            ConfigTarget::AuditLogEventsHook,
            id,
            config,
            previous,
        )
        .await
    }

    /// [`Self::prepare_config`] for any capability's form variables: validated, secrets
    /// sealed (the mask keeps the stored value), and the destination the values select
    /// checked against the outbound policy.
    pub(crate) async fn prepare_values(
        &self,
        integrations: &Integrations,
        integration: &Integration,
        target: ConfigTarget<'_>,
        id: &str,
        config: &Map<String, Value>,
        previous: Option<&Map<String, Value>>,
    ) -> ApiResult<Map<String, Value>> {
        let manifest = &integration.manifest;
        let variables = target.form_variables(integration)?;
        if let ConfigTarget::BigSegmentStore = target {
            // Refused before the form is checked: no values make a DynamoDB store work here.
            let db_style = manifest
                .capabilities
                .as_ref()
                .and_then(|c| c.big_segment_store.as_ref())
                .map(|s| s.db_style);
            if db_style != Some(flagstaff_manifest::model::BigSegmentDbStyle::Redis) {
                return Err(ApiError::invalid(format!(
                    "integration `{}` is not supported as a big-segment store: Flagstaff writes Redis (the `redis` integration)",
                    integration.key
                )));
            }
        }
        let hook = match target {
            ConfigTarget::AuditLogEventsHook => {
                let capabilities = manifest.capabilities.as_ref();
                let hook = capabilities.and_then(|c| c.audit_log_events_hook.as_ref());
                // Approval integrations are configured too (their top-level form values, used
                // by environments that delegate approvals to them); they are never routed
                // audit events.
                if hook.is_none() && capabilities.and_then(|c| c.approval.as_ref()).is_none() {
                    return Err(ApiError::invalid(format!(
                        "integration `{}` has no auditLogEventsHook or approval capability to configure",
                        integration.key
                    )));
                }
                hook
            }
            _ => None,
        };
        let oauth_base_uri =
            super::integration_oauth::connected_base_uri(self.store.as_ref(), integration).await?;
        // A masked secret sent back unchanged means "keep the stored one".
        let mut incoming = config.clone();
        let mut kept = Map::new();
        for variable in variables {
            if variable.is_secret
                && incoming.get(&variable.key).and_then(Value::as_str) == Some(SECRET_MASK)
            {
                incoming.remove(&variable.key);
                if let Some(stored) = previous.and_then(|p| p.get(&variable.key)) {
                    kept.insert(variable.key.clone(), stored.clone());
                }
            }
        }
        let mut check_values = incoming.clone();
        for key in kept.keys() {
            // Present for validation; the real value stays sealed.
            check_values.insert(key.clone(), Value::from("sealed"));
        }
        let validated = flagstaff_manifest::config::validate_form_values(variables, &check_values)
            .map_err(|errors| {
                ApiError::invalid(format!(
                    "config is invalid: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
        let mut plain = validated.clone();
        for (key, value) in &incoming {
            plain.insert(key.clone(), value.clone());
        }
        if let Some(endpoint) = hook.and_then(|h| h.endpoint.as_ref()) {
            // The real base URI (the token is not needed to check where requests go).
            let oauth = match &oauth_base_uri {
                Some(base) => flagstaff_manifest::context::oauth_context(true, base, "token"),
                None => Value::Null,
            };
            let context = flagstaff_manifest::context::endpoint_context(
                &plain,
                &oauth,
                &Value::Object(Map::new()),
            );
            let url = match integration
                .templates
                .inline
                .get("/capabilities/auditLogEventsHook/endpoint/url")
            {
                Some(template) => template
                    .render(&context, flagstaff_template::RenderOptions::default())
                    .map_err(|e| {
                        ApiError::invalid(format!("the endpoint URL does not render: {e}"))
                    })?,
                None => endpoint.url.clone(),
            };
            self.check_outbound_url(integrations, &url).await?;
        }
        if let ConfigTarget::BigSegmentStore = target {
            // The same URL the sync engine connects to, checked against the outbound policy.
            let url = crate::integrations::stores::big_segments::redis_url(&plain)
                .map_err(ApiError::invalid)?;
            let target = flagstaff_outbound::RedisTarget::parse(&url)
                .map_err(|e| ApiError::invalid(format!("host: {e}")))?;
            target
                .check(integrations.outbound.policy())
                .await
                .map_err(|e| ApiError::invalid(format!("host: {e}")))?;
        }
        if let ConfigTarget::FeatureStore { client_side_id } = target {
            self.check_feature_store_destination(
                integrations,
                integration,
                &plain,
                kept.contains_key("url"),
                client_side_id,
            )
            .await?;
        }
        let mut stored = Map::new();
        for (key, value) in validated {
            let secret = variables.iter().any(|v| v.key == key && v.is_secret);
            if let Some(sealed) = kept.get(&key) {
                stored.insert(key, sealed.clone());
            } else if secret && let Value::String(plain) = &value {
                let aad = config_secret_aad(&integration.key, id, &key);
                stored.insert(key, Value::String(seal(integrations, &aad, plain)?));
            } else {
                stored.insert(key, value);
            }
        }
        Ok(stored)
    }

    /// Where a featureStore configuration writes must be allowed: the Redis server of
    /// `redis-feature-store`, the rendered endpoint of the others.
    async fn check_feature_store_destination(
        &self,
        integrations: &Integrations,
        integration: &Integration,
        plain: &Map<String, Value>,
        url_kept: bool,
        client_side_id: &str,
    ) -> ApiResult<()> {
        use crate::integrations::stores::{REDIS_FEATURE_STORE, plan};
        if integration.key == REDIS_FEATURE_STORE {
            if url_kept {
                // Unchanged and already checked when it was saved; checked again per connect.
                return Ok(());
            }
            let url = plain.get("url").and_then(Value::as_str).unwrap_or_default();
            let target = flagstaff_outbound::RedisTarget::parse(url)
                .map_err(|e| ApiError::invalid(format!("url: {e}")))?;
            return target
                .check(integrations.outbound.policy())
                .await
                .map_err(|e| ApiError::invalid(format!("url: {e}")));
        }
        let rendered = plan::render(
            integration,
            false,
            plain,
            client_side_id,
            &serde_json::json!({"flags": {}, "segments": {}}),
        )
        .map_err(|e| ApiError::invalid(format!("the featureStore request does not render: {e}")))?;
        if let flagstaff_manifest::preview::Preview::Request(request) = rendered {
            self.check_outbound_url(integrations, &request.url).await?;
        }
        Ok(())
    }

    pub async fn create_subscription(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        integration_key: &str,
        fields: SubscriptionFields,
    ) -> ApiResult<SubscriptionDoc> {
        let integration = self.integration(integrations, integration_key)?;
        if fields.name.trim().is_empty() {
            return Err(ApiError::invalid("name is required"));
        }
        validate_name(&fields.name)?;
        validate_tags(&fields.tags)?;
        validate_statements(fields.statements.as_ref())?;
        let id = uuid::Uuid::new_v4().to_string();
        let config = self
            .prepare_config(integrations, &integration, &id, &fields.config, None)
            .await?;
        let doc = SubscriptionDoc {
            id: id.clone(),
            integration_key: integration_key.to_string(),
            name: fields.name,
            config,
            on: fields.on,
            tags: fields.tags,
            statements: fields.statements,
            created_at: now_millis(),
            disabled_reason: None,
        };
        let resource = subscription_resource(integration_key, &doc.tags);
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: subscription_ref(integration_key, &id),
                version: 1,
                doc: super::encode(&doc)?,
                aliases: vec![subscription_alias(&id)],
            }],
            audit: AuditDraft::single(
                "integration",
                doc.name.clone(),
                "createIntegration",
                &resource,
                format!("added the {} integration", integration.manifest.name),
                format!("added integration configuration `{}`", doc.name),
                format!("/settings/integrations/{integration_key}"),
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations)
            .await?;
        Ok(doc)
    }

    pub async fn patch_subscription(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        integration_key: &str,
        id: &str,
        request: &PatchRequest,
    ) -> ApiResult<SubscriptionDoc> {
        let integration = self.integration(integrations, integration_key)?;
        let target = subscription_ref(integration_key, id);
        let _guard = self.lock(&target).await;
        let (before, version) = self.get_subscription(integration_key, id).await?;
        let fields = SubscriptionFields {
            name: before.name.clone(),
            config: masked_config(&integration, &before.config),
            on: before.on,
            tags: before.tags.clone(),
            statements: before.statements.clone(),
        };
        let after = apply_document_patch(&fields, request, version, &[])?;
        if after.name.trim().is_empty() {
            return Err(ApiError::invalid("name must not be empty"));
        }
        validate_name(&after.name)?;
        validate_tags(&after.tags)?;
        validate_statements(after.statements.as_ref())?;
        let config = if after.config == fields.config {
            before.config.clone()
        } else {
            self.prepare_config(
                integrations,
                &integration,
                id,
                &after.config,
                Some(&before.config),
            )
            .await?
        };
        if after.on && !before.on {
            // Turning on a requiresOAuth integration needs a connection, as configuring does.
            super::integration_oauth::connected_base_uri(self.store.as_ref(), &integration).await?;
        }
        let mut actions = configuration_actions(
            (&before.name, &after.name),
            (&before.config, &config),
            (before.on, after.on),
            (&before.tags, &after.tags),
        );
        if after.statements != before.statements {
            actions.push("updateStatements");
        }
        if actions.is_empty() {
            return Ok(before);
        }
        let doc = SubscriptionDoc {
            id: before.id.clone(),
            integration_key: before.integration_key.clone(),
            name: after.name,
            config,
            on: after.on,
            tags: after.tags,
            statements: after.statements,
            created_at: before.created_at,
            disabled_reason: if after.on {
                None
            } else {
                before.disabled_reason.clone()
            },
        };
        let resource = subscription_resource(integration_key, &doc.tags);
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
        let encoded = super::encode(&doc)?;
        self.commit_destination_update(
            caller,
            integrations,
            (target, version, encoded),
            audit,
            (&integration_destination(integration_key, id), doc.on),
        )
        .await?;
        Ok(doc)
    }

    pub async fn delete_subscription(
        &self,
        caller: &Caller,
        integrations: &Integrations,
        integration_key: &str,
        id: &str,
    ) -> ApiResult<()> {
        let target = subscription_ref(integration_key, id);
        let _guard = self.lock(&target).await;
        let (doc, version) = self.get_subscription(integration_key, id).await?;
        let resource = subscription_resource(integration_key, &doc.tags);
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
                format!("deleted integration configuration `{}`", doc.name),
                format!("/settings/integrations/{integration_key}"),
            ),
            outbox: vec![],
        };
        self.commit_destination(caller, change, integrations).await
    }

    /// Turns a destination off after repeated delivery failures: a system change with its own
    /// audit entry (which is itself delivered to the other destinations).
    pub async fn disable_destination(
        &self,
        integrations: &Integrations,
        destination: &str,
        reason: &str,
    ) -> ApiResult<()> {
        let parts: Vec<&str> = destination.splitn(3, '/').collect();
        let (target, name, resource, kind, doc) = match parts.as_slice() {
            ["webhook", id] => {
                let target = webhook_ref(id);
                let _guard = self.lock(&target).await;
                let Some((mut doc, version)) = self.load::<WebhookDoc>(&target).await? else {
                    return Ok(());
                };
                if !doc.on {
                    return Ok(());
                }
                doc.on = false;
                doc.disabled_reason = Some(reason.to_string());
                let resource = webhook_resource(&doc);
                (
                    (target, version),
                    doc.name.clone().unwrap_or_else(|| id.to_string()),
                    resource,
                    "webhook",
                    super::encode(&doc)?,
                )
            }
            ["integration", key, id] => {
                let target = subscription_ref(key, id);
                let _guard = self.lock(&target).await;
                let Some((mut doc, version)) = self.load::<SubscriptionDoc>(&target).await? else {
                    return Ok(());
                };
                if !doc.on {
                    return Ok(());
                }
                doc.on = false;
                doc.disabled_reason = Some(reason.to_string());
                let resource = subscription_resource(key, &doc.tags);
                (
                    (target, version),
                    doc.name.clone(),
                    resource,
                    "integration",
                    super::encode(&doc)?,
                )
            }
            _ => return Ok(()),
        };
        let (target, version) = target;
        integrations.destinations.turn_off(destination);
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target,
                expected_version: version,
                version: version + 1,
                doc,
                aliases: None,
            }],
            audit: AuditDraft {
                accesses: vec![access("updateOn", &resource)],
                target_resources: vec![audit_resource(&resource)],
                ..AuditDraft::single(
                    if kind == "webhook" {
                        "webhook"
                    } else {
                        "integration"
                    },
                    name,
                    "updateOn",
                    &resource,
                    format!("turned off the {kind}"),
                    reason.to_string(),
                    "/settings/integrations",
                )
            },
            outbox: vec![],
        };
        self.commit(None, now_millis(), change)
            .await
            .map_err(CommitError::already_exists)?;
        integrations
            .destinations
            .reload(self.store.as_ref(), &integrations.catalogue)
            .await;
        tracing::warn!(destination, reason, "delivery destination turned off");
        Ok(())
    }
}

/// Which capability's form variables a configuration holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ConfigTarget<'a> {
    AuditLogEventsHook,
    /// `capabilities.featureStore.formVariables`; the environment's client-side id renders
    /// the endpoint that is checked.
    FeatureStore {
        client_side_id: &'a str,
    },
    /// The manifest's top-level form variables (host, port, credentials).
    BigSegmentStore,
}

impl ConfigTarget<'_> {
    pub(crate) fn form_variables(
        self,
        integration: &Integration,
    ) -> ApiResult<&[flagstaff_manifest::model::FormVariable]> {
        let capabilities = integration.manifest.capabilities.as_ref();
        match self {
            ConfigTarget::AuditLogEventsHook => Ok(&integration.manifest.form_variables),
            ConfigTarget::FeatureStore { .. } => capabilities
                .and_then(|c| c.feature_store.as_ref())
                .map(|s| s.form_variables.as_slice())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "integration `{}` has no featureStore capability",
                        integration.key
                    ))
                }),
            ConfigTarget::BigSegmentStore => capabilities
                .and_then(|c| c.big_segment_store.as_ref())
                .map(|_| integration.manifest.form_variables.as_slice())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "integration `{}` has no bigSegmentStore capability",
                        integration.key
                    ))
                }),
        }
    }
}

/// The configuration as the API shows it: secret values replaced by the mask.
pub fn masked_config(integration: &Integration, config: &Map<String, Value>) -> Map<String, Value> {
    masked_values(&integration.manifest.form_variables, config)
}

/// Stored values with those of secret `variables` replaced by the mask.
pub fn masked_values(
    variables: &[flagstaff_manifest::model::FormVariable],
    config: &Map<String, Value>,
) -> Map<String, Value> {
    config
        .iter()
        .map(|(key, value)| {
            let secret = variables.iter().any(|v| &v.key == key && v.is_secret);
            if secret {
                (key.clone(), Value::from(SECRET_MASK))
            } else {
                (key.clone(), value.clone())
            }
        })
        .collect()
}

/// The audit actions of an edit to an integration configuration's common fields (name,
/// form values, on/off, tags), as `(before, after)` pairs.
pub(crate) fn configuration_actions(
    name: (&String, &String),
    config: (&Map<String, Value>, &Map<String, Value>),
    on: (bool, bool),
    tags: (&Vec<String>, &Vec<String>),
) -> Vec<&'static str> {
    let mut actions = Vec::new();
    if name.0 != name.1 {
        actions.push("updateName");
    }
    if config.0 != config.1 {
        actions.push("updateConfiguration");
    }
    if on.0 != on.1 {
        actions.push("updateOn");
    }
    if tags.0 != tags.1 {
        actions.push("updateTags");
    }
    actions
}
