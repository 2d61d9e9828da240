//! Flag links: external resources (an issue, a chat thread, a pull request) attached to a
//! flag. A link made by an integration carries metadata its manifest's `flagLink` capability
//! declares; the UI blocks are rendered from that manifest's templates when shown.

use flagstaff_manifest::Integration;
use flagstaff_manifest::config::is_absolute_http_url;
use flagstaff_manifest::model::MetadataType;
use flagstaff_model::UnixMillis;
use flagstaff_model::patch::{PatchFormats, apply_document_patch, parse_patch_request};
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    AuditDraft, CommitError, PendingChange, Services, access, encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn flag_link_scope(project: &str, flag: &str) -> String {
    format!("{project}/links:{flag}")
}

/// The stored link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagLink {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_key: Option<String>,
    pub timestamp: UnixMillis,
    pub deep_link: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub created_at: UnixMillis,
    pub member_id: String,
}

/// `POST /api/v2/flag-links/projects/{projectKey}/flags/{flagKey}` body (`flagLinkPost`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagLinkPost {
    pub key: Option<String>,
    pub integration_key: Option<String>,
    pub timestamp: Option<UnixMillis>,
    pub deep_link: String,
    pub title: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
}

/// What a link must satisfy: an absolute http(s) deep link; for an integration's link,
/// metadata the manifest declares, with URLs where it says `uri`.
pub fn validate_link(link: &FlagLink, integration: Option<&Integration>) -> ApiResult<()> {
    if !is_absolute_http_url(&link.deep_link) {
        return Err(ApiError::invalid(format!(
            "deepLink \"{}\" must be an absolute http or https URL",
            link.deep_link
        )));
    }
    if let Some(key) = &link.key {
        flagstaff_model::keys::validate_key("flag link", key)?;
    }
    for (name, value) in &link.metadata {
        if !value.is_string() {
            return Err(ApiError::invalid(format!(
                "metadata.{name} must be a string"
            )));
        }
    }
    let Some(integration) = integration else {
        return Ok(());
    };
    let declared = integration
        .manifest
        .capabilities
        .as_ref()
        .and_then(|c| c.flag_link.as_ref())
        .and_then(|f| f.metadata.as_ref());
    for (name, value) in &link.metadata {
        let text = value.as_str().unwrap_or_default();
        match declared.and_then(|d| d.get(name)) {
            None => {
                return Err(ApiError::invalid(format!(
                    "metadata.{name} is not declared by integration \"{}\": use {}",
                    integration.key,
                    declared
                        .map(|d| d.keys().cloned().collect::<Vec<_>>().join(", "))
                        .filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "no metadata".into())
                )));
            }
            Some(spec) if spec.kind == MetadataType::Uri && !is_absolute_http_url(text) => {
                return Err(ApiError::invalid(format!(
                    "metadata.{name} must be an absolute http or https URL"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

impl Services {
    pub async fn list_flag_links(&self, project: &str, flag: &str) -> ApiResult<Vec<FlagLink>> {
        self.get_flag(project, flag).await?;
        let mut links: Vec<FlagLink> = self
            .load_all::<FlagLink>(EntityKind::FlagLink, &flag_link_scope(project, flag))
            .await?
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        links.sort_by_key(|l| std::cmp::Reverse(l.timestamp));
        Ok(links)
    }

    pub async fn get_flag_link(
        &self,
        project: &str,
        flag: &str,
        id: &str,
    ) -> ApiResult<(FlagLink, i64)> {
        self.load(&EntityRef::new(
            EntityKind::FlagLink,
            flag_link_scope(project, flag),
            id,
        ))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("flag link \"{id}\"")))
    }

    /// One write of a link: `action` on the flag in every environment (links are flag-wide).
    async fn commit_flag_link(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        (action, verb): (&str, &str),
        write: EntityWrite,
        (before, after): (Option<&FlagLink>, Option<&FlagLink>),
    ) -> ApiResult<()> {
        let now = now_millis();
        let (flag_doc, _) = self.get_flag(project, flag).await?;
        let context = self.project_context(project).await?;
        let resources: Vec<_> = context
            .environments
            .iter()
            .map(|e| context.flag_resource(&e.key, flag, &flag_doc.tags))
            .collect();
        let link = after
            .or(before)
            .map(|l| l.deep_link.clone())
            .unwrap_or_default();
        let mut draft = AuditDraft::single(
            "flag",
            flag_doc.name.clone(),
            action,
            &context.project_resource(),
            format!("{verb} a flag link on"),
            format!("{verb} the link {link}"),
            format!("/{project}/features/{flag}"),
        );
        draft.accesses = resources.iter().map(|r| access(action, r)).collect();
        draft.target_resources = resources.iter().map(super::audit_resource).collect();
        draft.previous_version = before.map(to_value);
        draft.current_version = after.map(to_value);
        let change = PendingChange {
            writes: vec![write],
            audit: draft,
            outbox: Vec::new(),
        };
        self.commit(Some(caller), now, change)
            .await
            .map(|_| ())
            .map_err(CommitError::concurrent_change)
    }

    pub async fn create_flag_link(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        post: FlagLinkPost,
        integration: Option<&Integration>,
    ) -> ApiResult<FlagLink> {
        let now = now_millis();
        let link = FlagLink {
            id: flagstaff_model::new_object_id(),
            key: post.key,
            integration_key: integration.map(|i| i.key.clone()),
            timestamp: post.timestamp.unwrap_or(now),
            deep_link: post.deep_link,
            title: post.title,
            description: post.description,
            metadata: post.metadata,
            created_at: now,
            member_id: caller.member.id.clone(),
        };
        validate_link(&link, integration)?;
        if let Some(key) = &link.key
            && self
                .list_flag_links(project, flag)
                .await?
                .iter()
                .any(|l| l.key.as_ref() == Some(key))
        {
            return Err(ApiError::Conflict(format!(
                "flag \"{flag}\" already has a link with key \"{key}\""
            )));
        }
        let write = EntityWrite::Insert {
            target: EntityRef::new(
                EntityKind::FlagLink,
                flag_link_scope(project, flag),
                &link.id,
            ),
            version: 1,
            doc: encode(&link)?,
            aliases: Vec::new(),
        };
        self.commit_flag_link(
            caller,
            project,
            flag,
            ("createFlagLink", "added"),
            write,
            (None, Some(&link)),
        )
        .await?;
        Ok(link)
    }

    /// JSON Patch of `title`, `description`, `deepLink`, `metadata`, `timestamp`.
    pub async fn patch_flag_link(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        id: &str,
        body: Value,
        integration: impl Fn(&str) -> Option<std::sync::Arc<Integration>>,
    ) -> ApiResult<FlagLink> {
        // Callers who cannot see the project learn nothing from patch errors.
        self.require_view_project(caller, project).await?;
        let request = parse_patch_request(body, false, PatchFormats::All)?;
        let target = EntityRef::new(EntityKind::FlagLink, flag_link_scope(project, flag), id);
        let _guard = self.lock(&target).await;
        let (before, version) = self.get_flag_link(project, flag, id).await?;
        let after: FlagLink = apply_document_patch(
            &before,
            &request,
            version,
            &["/_id", "/key", "/integrationKey", "/createdAt", "/memberId"],
        )?;
        let manifest = before.integration_key.as_deref().and_then(&integration);
        validate_link(&after, manifest.as_deref())?;
        if after == before {
            self.require_view_project(caller, project).await?;
            return Ok(before);
        }
        let write = EntityWrite::Update {
            target,
            expected_version: version,
            version: version + 1,
            doc: encode(&after)?,
            aliases: None,
        };
        self.commit_flag_link(
            caller,
            project,
            flag,
            ("updateFlagLink", "updated"),
            write,
            (Some(&before), Some(&after)),
        )
        .await?;
        Ok(after)
    }

    pub async fn delete_flag_link(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        id: &str,
    ) -> ApiResult<()> {
        let target = EntityRef::new(EntityKind::FlagLink, flag_link_scope(project, flag), id);
        let _guard = self.lock(&target).await;
        let (before, version) = self.get_flag_link(project, flag, id).await?;
        let write = EntityWrite::Delete {
            target,
            expected_version: version,
        };
        self.commit_flag_link(
            caller,
            project,
            flag,
            ("deleteFlagLink", "removed"),
            write,
            (Some(&before), None),
        )
        .await
    }
}
