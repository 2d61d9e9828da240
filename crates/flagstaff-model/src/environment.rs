//! Environments: each has an SDK key, a mobile key and a client-side ID (its `_id`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::keys::{normalize_tags, validate_key, validate_name, validate_tags};
use crate::{ModelError, UnixMillis};

/// The stored environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    /// The client-side ID.
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    /// The SDK key (`sdk-…`).
    pub api_key: String,
    /// The mobile key (`mob-…`).
    pub mobile_key: String,
    pub color: String,
    pub default_ttl: i64,
    pub secure_mode: bool,
    pub default_track_events: bool,
    pub require_comments: bool,
    pub confirm_changes: bool,
    pub tags: Vec<String>,
    pub critical: bool,
    /// An SDK key replaced by a reset that stays valid until `expiry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_api_key: Option<ExpiringKey>,
    /// Whether changes to flags and segments here need an approved approval request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_settings: Option<crate::approval::ApprovalSettings>,
    #[serde(rename = "_version")]
    pub version: i64,
    #[serde(rename = "_creationDate")]
    pub creation_date: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExpiringKey {
    pub key: String,
    pub expiry: UnixMillis,
}

/// `POST /api/v2/projects/{projectKey}/environments` body (`EnvironmentPost`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentPost {
    pub name: String,
    pub key: String,
    pub color: String,
    #[serde(default)]
    pub default_ttl: Option<i64>,
    #[serde(default)]
    pub secure_mode: Option<bool>,
    #[serde(default)]
    pub default_track_events: Option<bool>,
    #[serde(default)]
    pub confirm_changes: Option<bool>,
    #[serde(default)]
    pub require_comments: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Clone flag targeting from another environment of the same project.
    #[serde(default)]
    pub source: Option<EnvironmentSource>,
    #[serde(default)]
    pub critical: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSource {
    pub key: String,
    #[serde(default)]
    pub version: Option<i64>,
}

pub fn new_sdk_key() -> String {
    format!("sdk-{}", uuid::Uuid::new_v4())
}

pub fn new_mobile_key() -> String {
    format!("mob-{}", uuid::Uuid::new_v4())
}

impl Environment {
    pub fn create(body: &EnvironmentPost, now: UnixMillis) -> Result<Self, ModelError> {
        let mut tags = body.tags.clone().unwrap_or_default();
        normalize_tags(&mut tags);
        let env = Environment {
            id: crate::new_object_id(),
            key: body.key.clone(),
            name: body.name.clone(),
            api_key: new_sdk_key(),
            mobile_key: new_mobile_key(),
            color: body.color.clone(),
            default_ttl: body.default_ttl.unwrap_or(0),
            secure_mode: body.secure_mode.unwrap_or(false),
            default_track_events: body.default_track_events.unwrap_or(false),
            require_comments: body.require_comments.unwrap_or(false),
            confirm_changes: body.confirm_changes.unwrap_or(false),
            tags,
            critical: body.critical.unwrap_or(false),
            previous_api_key: None,
            approval_settings: None,
            version: 1,
            creation_date: now,
        };
        env.validate()?;
        Ok(env)
    }

    /// The environments LaunchDarkly creates with a project when none are given.
    pub fn defaults() -> Vec<EnvironmentPost> {
        [
            ("production", "Production", "417505"),
            ("test", "Test", "F5A623"),
        ]
        .into_iter()
        .map(|(key, name, color)| EnvironmentPost {
            name: name.into(),
            key: key.into(),
            color: color.into(),
            default_ttl: None,
            secure_mode: None,
            default_track_events: None,
            confirm_changes: None,
            require_comments: None,
            tags: None,
            source: None,
            critical: Some(key == "production"),
        })
        .collect()
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        validate_key("environment", &self.key)?;
        validate_name("environment", &self.name)?;
        validate_tags(&self.tags)?;
        let hex = self.color.len() == 6 && self.color.chars().all(|c| c.is_ascii_hexdigit());
        if !hex {
            return Err(ModelError::invalid(format!(
                "color \"{}\" must be six hexadecimal digits without '#', e.g. 417505",
                self.color
            )));
        }
        if !(0..=60 * 24).contains(&self.default_ttl) {
            return Err(ModelError::invalid(format!(
                "defaultTtl {} must be between 0 and 1440 minutes",
                self.default_ttl
            )));
        }
        if let Some(settings) = &self.approval_settings {
            settings.validate()?;
        }
        Ok(())
    }

    /// Whether `key` is this environment's SDK key, or its previous one not yet expired.
    pub fn accepts_sdk_key(&self, key: &str, now: UnixMillis) -> bool {
        self.api_key == key
            || self
                .previous_api_key
                .as_ref()
                .is_some_and(|old| old.key == key && old.expiry > now)
    }
}
