//! Segments (`UserSegment`): per-environment lists of included and excluded contexts plus rules.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::flag::{Clause, is_known_operator};
use crate::keys::{normalize_tags, validate_key, validate_name, validate_tags};
use crate::{ModelError, UnixMillis};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentTarget {
    pub context_kind: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentRule {
    #[serde(rename = "_id", default = "crate::new_uuid")]
    pub id: String,
    pub clauses: Vec<Clause>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_context_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The stored segment; `_links` and `_flags` are added when it is rendered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub tags: Vec<String>,
    pub creation_date: UnixMillis,
    pub last_modified_date: UnixMillis,
    pub version: i64,
    pub deleted: bool,
    pub generation: i64,
    pub salt: String,
    #[serde(default)]
    pub included: Vec<String>,
    #[serde(default)]
    pub excluded: Vec<String>,
    #[serde(default)]
    pub included_contexts: Vec<SegmentTarget>,
    #[serde(default)]
    pub excluded_contexts: Vec<SegmentTarget>,
    #[serde(default)]
    pub rules: Vec<SegmentRule>,
    #[serde(default)]
    pub unbounded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unbounded_context_kind: Option<String>,
    /// The integration that keeps this segment in step with a partner's cohort (synced
    /// segments); such segments are written by that integration's syncs.
    #[serde(rename = "_external", default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    /// The partner's page of the cohort.
    #[serde(
        rename = "_externalLink",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub external_link: Option<String>,
}

/// `POST /api/v2/segments/{projectKey}/{environmentKey}` body (`SegmentBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SegmentBody {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub unbounded: Option<bool>,
    #[serde(default)]
    pub unbounded_context_kind: Option<String>,
}

impl Segment {
    pub fn create(body: SegmentBody, now: UnixMillis) -> Result<Self, ModelError> {
        let mut tags = body.tags.unwrap_or_default();
        normalize_tags(&mut tags);
        let segment = Segment {
            key: body.key,
            name: body.name,
            description: body.description.unwrap_or_default(),
            tags,
            creation_date: now,
            last_modified_date: now,
            version: 1,
            deleted: false,
            generation: 1,
            salt: uuid::Uuid::new_v4().simple().to_string(),
            included: Vec::new(),
            excluded: Vec::new(),
            included_contexts: Vec::new(),
            excluded_contexts: Vec::new(),
            rules: Vec::new(),
            unbounded: body.unbounded.unwrap_or(false),
            unbounded_context_kind: body.unbounded_context_kind,
            external: None,
            external_link: None,
        };
        segment.validate()?;
        Ok(segment)
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        validate_key("segment", &self.key)?;
        validate_name("segment", &self.name)?;
        validate_tags(&self.tags)?;
        let mut ids = std::collections::HashSet::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            if !ids.insert(rule.id.as_str()) {
                return Err(ModelError::invalid(format!(
                    "rules[{ri}] has a duplicate _id {}",
                    rule.id
                )));
            }
            if let Some(w) = rule.weight
                && !(0..=100_000).contains(&w)
            {
                return Err(ModelError::invalid(format!(
                    "rules[{ri}].weight {w} is out of range: weights are 0-100000 (thousandths of a percent)"
                )));
            }
            for (ci, clause) in rule.clauses.iter().enumerate() {
                if clause.attribute.is_empty() {
                    return Err(ModelError::invalid(format!(
                        "rules[{ri}].clauses[{ci}].attribute must not be empty"
                    )));
                }
                if !is_known_operator(&clause.op) {
                    return Err(ModelError::invalid(format!(
                        "rules[{ri}].clauses[{ci}].op \"{}\" is not a LaunchDarkly operator",
                        clause.op
                    )));
                }
            }
        }
        for t in self.included_contexts.iter().chain(&self.excluded_contexts) {
            if t.context_kind.is_empty() {
                return Err(ModelError::invalid(
                    "includedContexts/excludedContexts entries need a contextKind",
                ));
            }
        }
        Ok(())
    }
}
