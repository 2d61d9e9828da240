//! Feature flags: the global flag with its per-environment configurations, exactly as
//! LaunchDarkly's REST API v2 writes them (minus the derived `_links`, `_site` and
//! `_environmentName`, which the server adds when it renders a flag).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::keys::{normalize_tags, validate_key, validate_name, validate_tags};
use crate::{ModelError, UnixMillis, new_uuid};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlagKind {
    Boolean,
    Multivariate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Variation {
    #[serde(rename = "_id", default = "new_uuid")]
    pub id: String,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientSideAvailability {
    pub using_mobile_key: bool,
    pub using_environment_id: bool,
}

impl Default for ClientSideAvailability {
    fn default() -> Self {
        Self {
            using_mobile_key: true,
            using_environment_id: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomProperty {
    pub name: String,
    #[serde(default)]
    pub value: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    pub on_variation: usize,
    pub off_variation: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Experiments {
    pub baseline_idx: i64,
    pub items: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    pub values: Vec<String>,
    pub variation: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Clause {
    #[serde(rename = "_id", default = "new_uuid")]
    pub id: String,
    pub attribute: String,
    pub op: String,
    pub values: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<String>,
    #[serde(default)]
    pub negate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WeightedVariation {
    pub variation: usize,
    /// Thousandths of a percent: the weights of a rollout add up to 100000.
    pub weight: i64,
    #[serde(
        rename = "_untracked",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub untracked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    pub variations: Vec<WeightedVariation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
}

/// Either a fixed variation index or a percentage rollout (fallthrough and rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariationOrRollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "_id", default = "new_uuid")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variation: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    pub clauses: Vec<Clause>,
    #[serde(default)]
    pub track_events: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Prerequisite {
    pub key: String,
    pub variation: usize,
}

/// One environment's targeting of a flag (`FeatureFlagConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlagConfig {
    pub on: bool,
    pub archived: bool,
    pub salt: String,
    pub sel: String,
    pub last_modified: UnixMillis,
    pub version: i64,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub context_targets: Vec<Target>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub fallthrough: VariationOrRollout,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_variation: Option<usize>,
    #[serde(default)]
    pub prerequisites: Vec<Prerequisite>,
    #[serde(default)]
    pub track_events: bool,
    #[serde(default)]
    pub track_events_fallthrough: bool,
}

impl FlagConfig {
    /// A new environment's configuration: off, serving the flag's defaults.
    pub fn new(defaults: Defaults, now: UnixMillis) -> Self {
        Self {
            on: false,
            archived: false,
            salt: uuid::Uuid::new_v4().simple().to_string(),
            sel: uuid::Uuid::new_v4().simple().to_string(),
            last_modified: now,
            version: 1,
            targets: Vec::new(),
            context_targets: Vec::new(),
            rules: Vec::new(),
            fallthrough: VariationOrRollout {
                variation: Some(defaults.on_variation),
                rollout: None,
            },
            off_variation: Some(defaults.off_variation),
            prerequisites: Vec::new(),
            track_events: false,
            track_events_fallthrough: false,
        }
    }

    /// The parts of a configuration that "copy flag settings" and environment cloning carry over.
    pub fn copy_targeting_from(&mut self, source: &FlagConfig) {
        self.on = source.on;
        self.targets = source.targets.clone();
        self.context_targets = source.context_targets.clone();
        self.rules = source.rules.clone();
        self.fallthrough = source.fallthrough.clone();
        self.off_variation = source.off_variation;
        self.prerequisites = source.prerequisites.clone();
        self.track_events = source.track_events;
        self.track_events_fallthrough = source.track_events_fallthrough;
    }
}

/// The stored flag: every field LaunchDarkly returns except those derived at render time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureFlag {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub kind: FlagKind,
    #[serde(rename = "_version")]
    pub version: i64,
    pub creation_date: UnixMillis,
    pub variations: Vec<Variation>,
    pub temporary: bool,
    pub tags: Vec<String>,
    pub custom_properties: BTreeMap<String, CustomProperty>,
    pub archived: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_date: Option<UnixMillis>,
    #[serde(default)]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_date: Option<UnixMillis>,
    pub include_in_snippet: bool,
    pub client_side_availability: ClientSideAvailability,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintainer_team_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub experiments: Experiments,
    #[serde(default)]
    pub goal_ids: Vec<String>,
    /// Per-environment configuration, keyed by environment key.
    pub environments: BTreeMap<String, FlagConfig>,
}

/// `POST /api/v2/flags/{projectKey}` body (`FeatureFlagBody`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeatureFlagBody {
    pub name: String,
    pub key: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub client_side_availability: Option<ClientSideAvailability>,
    /// Deprecated by LaunchDarkly in favour of `clientSideAvailability`.
    #[serde(default)]
    pub include_in_snippet: Option<bool>,
    #[serde(default)]
    pub variations: Option<Vec<VariationBody>>,
    #[serde(default)]
    pub temporary: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub custom_properties: Option<BTreeMap<String, CustomProperty>>,
    #[serde(default)]
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub maintainer_id: Option<String>,
    #[serde(default)]
    pub maintainer_team_key: Option<String>,
    #[serde(default)]
    pub is_flag_on: Option<bool>,
    #[serde(default)]
    pub initial_prerequisites: Option<Vec<Prerequisite>>,
    /// Accepted for compatibility; only ordinary flags are supported.
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub migration_settings: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariationBody {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    pub value: Value,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl FeatureFlag {
    /// Builds a new flag from a create request for the given environment keys.
    pub fn create(
        body: FeatureFlagBody,
        environment_keys: &[String],
        default_availability: ClientSideAvailability,
        now: UnixMillis,
    ) -> Result<Self, ModelError> {
        validate_key("flag", &body.key)?;
        validate_name("flag", &body.name)?;
        if let Some(purpose) = &body.purpose {
            return Err(ModelError::invalid(format!(
                "flag purpose \"{purpose}\" is not supported: omit purpose to create an ordinary flag"
            )));
        }
        let variations: Vec<Variation> = match body.variations {
            None => vec![
                Variation {
                    id: new_uuid(),
                    value: Value::Bool(true),
                    name: None,
                    description: None,
                },
                Variation {
                    id: new_uuid(),
                    value: Value::Bool(false),
                    name: None,
                    description: None,
                },
            ],
            Some(list) => list
                .into_iter()
                .map(|v| Variation {
                    id: v.id.unwrap_or_else(new_uuid),
                    value: v.value,
                    name: v.name,
                    description: v.description,
                })
                .collect(),
        };
        let defaults = match body.defaults {
            Some(d) => d,
            // LaunchDarkly's default for boolean flags: serve `true` when on, `false` when off.
            None => Defaults {
                on_variation: 0,
                off_variation: variations.len().saturating_sub(1),
            },
        };
        let availability = match (body.client_side_availability, body.include_in_snippet) {
            (Some(a), _) => a,
            (None, Some(snippet)) => ClientSideAvailability {
                using_environment_id: snippet,
                using_mobile_key: default_availability.using_mobile_key,
            },
            (None, None) => default_availability,
        };
        let mut tags = body.tags.unwrap_or_default();
        normalize_tags(&mut tags);
        let mut environments = BTreeMap::new();
        for env in environment_keys {
            let mut config = FlagConfig::new(defaults, now);
            config.on = body.is_flag_on.unwrap_or(false);
            config.prerequisites = body.initial_prerequisites.clone().unwrap_or_default();
            environments.insert(env.clone(), config);
        }
        let mut flag = FeatureFlag {
            key: body.key,
            name: body.name,
            description: body.description.unwrap_or_default(),
            kind: FlagKind::Boolean,
            version: 1,
            creation_date: now,
            variations,
            temporary: body.temporary.unwrap_or(true),
            tags,
            custom_properties: body.custom_properties.unwrap_or_default(),
            archived: false,
            archived_date: None,
            deprecated: false,
            deprecated_date: None,
            include_in_snippet: availability.using_environment_id,
            client_side_availability: availability,
            maintainer_id: body.maintainer_id,
            maintainer_team_key: body.maintainer_team_key,
            defaults: Some(defaults),
            experiments: Experiments::default(),
            goal_ids: Vec::new(),
            environments,
        };
        flag.kind = flag.derived_kind();
        flag.validate()?;
        Ok(flag)
    }

    /// `boolean` when the variations are exactly `true` and `false`, `multivariate` otherwise.
    pub fn derived_kind(&self) -> FlagKind {
        let values: Vec<&Value> = self.variations.iter().map(|v| &v.value).collect();
        if values == [&Value::Bool(true), &Value::Bool(false)]
            || values == [&Value::Bool(false), &Value::Bool(true)]
        {
            FlagKind::Boolean
        } else {
            FlagKind::Multivariate
        }
    }

    /// Checks every invariant LaunchDarkly enforces on a stored flag. Used after each change,
    /// whichever patch format produced it, so no invalid flag is ever written.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_key("flag", &self.key)?;
        validate_name("flag", &self.name)?;
        validate_tags(&self.tags)?;
        let n = self.variations.len();
        if n < 2 {
            return Err(ModelError::invalid(format!(
                "a flag needs at least two variations, this one has {n}"
            )));
        }
        let first_type = json_type(&self.variations[0].value);
        for (i, v) in self.variations.iter().enumerate() {
            if v.value.is_null() {
                return Err(ModelError::invalid(format!(
                    "variation {i} has a null value: variation values must be booleans, strings, numbers, arrays or objects"
                )));
            }
            if json_type(&v.value) != first_type {
                return Err(ModelError::invalid(format!(
                    "variation {i} is a {} but variation 0 is a {first_type}: all variations of a flag must have the same type",
                    json_type(&v.value)
                )));
            }
        }
        for i in 0..n {
            for j in i + 1..n {
                if self.variations[i].value == self.variations[j].value {
                    return Err(ModelError::invalid(format!(
                        "variations {i} and {j} have the same value: variation values must be unique"
                    )));
                }
                if self.variations[i].id == self.variations[j].id {
                    return Err(ModelError::invalid(format!(
                        "variations {i} and {j} have the same _id"
                    )));
                }
            }
        }
        let check = |what: String, idx: usize| -> Result<(), ModelError> {
            if idx >= n {
                Err(ModelError::invalid(format!(
                    "{what} refers to variation {idx}, but the flag has only {n} variations (0-{})",
                    n - 1
                )))
            } else {
                Ok(())
            }
        };
        if let Some(d) = &self.defaults {
            check("defaults.onVariation".into(), d.on_variation)?;
            check("defaults.offVariation".into(), d.off_variation)?;
        }
        for (name, prop) in &self.custom_properties {
            if prop.name.trim().is_empty() {
                return Err(ModelError::invalid(format!(
                    "custom property \"{name}\" needs a name"
                )));
            }
        }
        for (env, c) in &self.environments {
            let at = |field: &str| format!("environments.{env}.{field}");
            if let Some(off) = c.off_variation {
                check(at("offVariation"), off)?;
            }
            validate_variation_or_rollout(&at("fallthrough"), &c.fallthrough, n, true)?;
            for (ti, t) in c.targets.iter().chain(c.context_targets.iter()).enumerate() {
                check(at(&format!("targets[{ti}].variation")), t.variation)?;
            }
            let mut rule_ids = std::collections::HashSet::new();
            for (ri, r) in c.rules.iter().enumerate() {
                if !rule_ids.insert(r.id.as_str()) {
                    return Err(ModelError::invalid(format!(
                        "{} has a duplicate _id {}",
                        at(&format!("rules[{ri}]")),
                        r.id
                    )));
                }
                let vr = VariationOrRollout {
                    variation: r.variation,
                    rollout: r.rollout.clone(),
                };
                validate_variation_or_rollout(&at(&format!("rules[{ri}]")), &vr, n, true)?;
                for (ci, clause) in r.clauses.iter().enumerate() {
                    if clause.attribute.is_empty() {
                        return Err(ModelError::invalid(format!(
                            "{}.attribute must not be empty",
                            at(&format!("rules[{ri}].clauses[{ci}]"))
                        )));
                    }
                    if !is_known_operator(&clause.op) {
                        return Err(ModelError::invalid(format!(
                            "{}.op \"{}\" is not a LaunchDarkly operator (one of {})",
                            at(&format!("rules[{ri}].clauses[{ci}]")),
                            clause.op,
                            OPERATORS.join(", ")
                        )));
                    }
                }
            }
            for p in &c.prerequisites {
                if p.key == self.key {
                    return Err(ModelError::invalid(format!(
                        "{}: a flag cannot be its own prerequisite",
                        at("prerequisites")
                    )));
                }
            }
        }
        Ok(())
    }

    pub fn variation_index_by_id(&self, id: &str) -> Option<usize> {
        self.variations.iter().position(|v| v.id == id)
    }
}

pub const OPERATORS: &[&str] = &[
    "in",
    "endsWith",
    "startsWith",
    "matches",
    "contains",
    "lessThan",
    "lessThanOrEqual",
    "greaterThan",
    "greaterThanOrEqual",
    "before",
    "after",
    "segmentMatch",
    "semVerEqual",
    "semVerLessThan",
    "semVerGreaterThan",
];

pub fn is_known_operator(op: &str) -> bool {
    OPERATORS.contains(&op)
}

fn validate_variation_or_rollout(
    what: &str,
    vr: &VariationOrRollout,
    variations: usize,
    required: bool,
) -> Result<(), ModelError> {
    match (&vr.variation, &vr.rollout) {
        (Some(_), Some(_)) => Err(ModelError::invalid(format!(
            "{what} has both a variation and a rollout: give exactly one"
        ))),
        (None, None) if required => Err(ModelError::invalid(format!(
            "{what} needs a variation or a rollout"
        ))),
        (None, None) => Ok(()),
        (Some(v), None) if *v >= variations => Err(ModelError::invalid(format!(
            "{what} refers to variation {v}, but the flag has only {variations} variations (0-{})",
            variations - 1
        ))),
        (Some(_), None) => Ok(()),
        (None, Some(r)) => {
            if r.variations.is_empty() {
                return Err(ModelError::invalid(format!(
                    "{what}.rollout needs at least one weighted variation"
                )));
            }
            let mut total = 0i64;
            for wv in &r.variations {
                if wv.variation >= variations {
                    return Err(ModelError::invalid(format!(
                        "{what}.rollout refers to variation {}, but the flag has only {variations} variations",
                        wv.variation
                    )));
                }
                if !(0..=100_000).contains(&wv.weight) {
                    return Err(ModelError::invalid(format!(
                        "{what}.rollout weight {} is out of range: weights are 0-100000 (thousandths of a percent)",
                        wv.weight
                    )));
                }
                total += wv.weight;
            }
            if total != 100_000 {
                return Err(ModelError::invalid(format!(
                    "{what}.rollout weights add up to {total}; they must add up to 100000"
                )));
            }
            Ok(())
        }
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> FeatureFlagBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn boolean_flag_defaults() {
        let f = FeatureFlag::create(
            body(json!({"key":"f","name":"F"})),
            &["production".into(), "test".into()],
            ClientSideAvailability::default(),
            5,
        )
        .unwrap();
        assert_eq!(f.kind, FlagKind::Boolean);
        assert_eq!(f.variations.len(), 2);
        assert_eq!(f.environments.len(), 2);
        let p = &f.environments["production"];
        assert_eq!(p.fallthrough.variation, Some(0));
        assert_eq!(p.off_variation, Some(1));
        assert!(!p.on);
        assert!(f.temporary);
    }

    #[test]
    fn multivariate_and_bad_indexes() {
        let f = FeatureFlag::create(
            body(json!({"key":"m","name":"M","variations":[{"value":"a"},{"value":"b"},{"value":"c"}],
                        "defaults":{"onVariation":2,"offVariation":0}})),
            &["production".into()],
            ClientSideAvailability::default(),
            5,
        )
        .unwrap();
        assert_eq!(f.kind, FlagKind::Multivariate);
        let err = FeatureFlag::create(
            body(
                json!({"key":"m","name":"M","variations":[{"value":"a"},{"value":"b"}],
                        "defaults":{"onVariation":2,"offVariation":0}}),
            ),
            &["production".into()],
            ClientSideAvailability::default(),
            5,
        )
        .unwrap_err();
        assert!(err.to_string().contains("variation 2"), "{err}");
    }

    #[test]
    fn mixed_types_and_duplicates_rejected() {
        for vars in [
            json!([{"value":"a"},{"value":1}]),
            json!([{"value":"a"},{"value":"a"}]),
            json!([{"value":"a"}]),
        ] {
            let r = FeatureFlag::create(
                body(json!({"key":"m","name":"M","variations":vars})),
                &[],
                ClientSideAvailability::default(),
                5,
            );
            assert!(r.is_err());
        }
    }

    #[test]
    fn unknown_fields_rejected() {
        let r: Result<FeatureFlagBody, _> =
            serde_json::from_value(json!({"key":"f","name":"F","colour":"red"}));
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("unknown field `colour`")
        );
    }
}
