//! Audit log entries in LaunchDarkly's `AuditLogEntryRep` shape (without `_links`, which the
//! server adds). The entry is written in the same transaction as the change it records.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ResourceAccess {
    pub action: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditMember {
    #[serde(rename = "_id")]
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

impl AuditMember {
    /// "First Last" when known, the email otherwise.
    pub fn display_name(&self) -> String {
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => format!("{f} {l}"),
            (Some(f), None) => f.clone(),
            (None, Some(l)) => l.clone(),
            (None, None) => self.email.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditToken {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    /// The last four characters of the token.
    pub ending: String,
    pub service_token: bool,
}

/// The OAuth application a change was made through (LaunchDarkly's `AuthorizedAppDataRep`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditApp {
    /// The client id.
    #[serde(rename = "_id")]
    pub id: String,
    pub is_scim: bool,
    pub name: String,
    /// Who registered the client.
    pub maintainer_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditTarget {
    pub name: String,
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditParent {
    pub name: String,
    pub resource: String,
}

/// The stored audit entry, detail fields included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(rename = "_accountId")]
    pub account_id: String,
    pub date: UnixMillis,
    pub accesses: Vec<ResourceAccess>,
    /// `flag`, `project`, `environment`, `segment`, …
    pub kind: String,
    pub name: String,
    pub description: String,
    pub short_description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<AuditMember>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<AuditToken>,
    /// Set when the change was made with an OAuth access token (instead of `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AuditApp>,
    pub title_verb: String,
    pub title: String,
    pub target: AuditTarget,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<AuditParent>,
    /// The patch body as sent (JSON Patch, merge document or semantic instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub delta: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub previous_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub current_version: Option<Value>,
    /// The request body of the flag trigger that made this change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub trigger_body: Option<Value>,
}

/// The fields only the detailed representation (`GET /auditlog/{id}`) carries.
pub const DETAIL_ONLY_FIELDS: &[&str] =
    &["delta", "previousVersion", "currentVersion", "triggerBody"];

impl AuditEntry {
    /// Whether free-text search `q` matches this entry (case-insensitive, over the texts a
    /// reader sees and the resources it touched).
    pub fn matches_query(&self, q: &str) -> bool {
        let q = q.to_lowercase();
        let hay = [
            &self.name,
            &self.description,
            &self.short_description,
            &self.title,
            &self.kind,
        ];
        hay.iter().any(|s| s.to_lowercase().contains(&q))
            || self
                .comment
                .as_ref()
                .is_some_and(|c| c.to_lowercase().contains(&q))
            || self
                .target
                .resources
                .iter()
                .any(|r| r.to_lowercase().contains(&q))
            || self.accesses.iter().any(|a| a.action.to_lowercase() == q)
    }
}
