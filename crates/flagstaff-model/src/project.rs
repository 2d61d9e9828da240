//! Projects and their create body.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::environment::EnvironmentPost;
use crate::flag::ClientSideAvailability;
use crate::keys::{normalize_tags, validate_key, validate_name, validate_tags};
use crate::{ModelError, UnixMillis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamingConvention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// The stored project. Its environments are separate entities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Project {
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    pub tags: Vec<String>,
    pub include_in_snippet_by_default: bool,
    pub default_client_side_availability: ClientSideAvailability,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naming_convention: Option<NamingConvention>,
    #[serde(rename = "_version")]
    pub version: i64,
    #[serde(rename = "_creationDate")]
    pub creation_date: UnixMillis,
}

/// `POST /api/v2/projects` body (`ProjectPost`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectPost {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub include_in_snippet_by_default: Option<bool>,
    #[serde(default)]
    pub default_client_side_availability: Option<ClientSideAvailability>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Environments to create; LaunchDarkly creates `production` and `test` when omitted.
    #[serde(default)]
    pub environments: Option<Vec<EnvironmentPost>>,
    #[serde(default)]
    pub naming_convention: Option<NamingConvention>,
}

pub const NAMING_CASES: &[&str] = &[
    "camelCase",
    "upperCamelCase",
    "snakeCase",
    "kebabCase",
    "constantCase",
];

impl Project {
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_key("project", &self.key)?;
        validate_name("project", &self.name)?;
        validate_tags(&self.tags)?;
        if let Some(case) = self
            .naming_convention
            .as_ref()
            .and_then(|n| n.case.as_ref())
            && !NAMING_CASES.contains(&case.as_str())
        {
            return Err(ModelError::invalid(format!(
                "namingConvention.case \"{case}\" must be one of {}",
                NAMING_CASES.join(", ")
            )));
        }
        Ok(())
    }

    pub fn create(body: &ProjectPost, id: String, now: UnixMillis) -> Result<Self, ModelError> {
        let mut tags = body.tags.clone().unwrap_or_default();
        normalize_tags(&mut tags);
        let availability =
            body.default_client_side_availability
                .unwrap_or(ClientSideAvailability {
                    using_mobile_key: true,
                    using_environment_id: body.include_in_snippet_by_default.unwrap_or(false),
                });
        let project = Project {
            id,
            key: body.key.clone(),
            name: body.name.clone(),
            tags,
            include_in_snippet_by_default: availability.using_environment_id,
            default_client_side_availability: availability,
            naming_convention: body.naming_convention.clone(),
            version: 1,
            creation_date: now,
        };
        project.validate()?;
        Ok(project)
    }
}
