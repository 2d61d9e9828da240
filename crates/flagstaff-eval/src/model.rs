//! The server-side SDK data model: flags and segments as LaunchDarkly's SDKs receive them.
//!
//! **Deserialisation is lenient**, with the defaults of LaunchDarkly's Go model: a missing (or
//! `null`) array is empty, a missing string is `""`, a missing `on`/`deleted`/`trackEvents` is
//! false, a missing `offVariation` is undefined, a missing `fallthrough` is `{}` (which makes an
//! evaluation that reaches it `MALFORMED_FLAG`). Unknown properties are ignored.
//!
//! **Serialisation is canonical**: the field order and presence rules of the Go marshaller, which
//! every SDK accepts (the Rust SDK rejects a flag that lacks e.g. `salt`, `targets`, `rules` or
//! a rule's `trackEvents`). Arrays are always written; `offVariation`, `debugEventsUntilDate` and a
//! segment's `generation` are written as `null` when undefined; a rule's `id` only when non-empty;
//! `variation`/`rollout` only when defined (a rollout only when it has variations); a rollout's
//! `kind`, `contextKind`, `seed`, `bucketBy` and a weighted variation's `untracked` only when set;
//! `clientSideAvailability` only when it came in explicitly (`clientSide` always);
//! `unbounded`, `unboundedContextKind`, `samplingRatio`, `excludeFromSummaries` and `migration`
//! only when set.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Deserialises `null` as the type's default (Go's model treats them the same).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn none_or_empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(str::is_empty)
}

/// A feature flag in the server-side SDK format.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Flag {
    /// Flag key, unique per environment.
    #[serde(deserialize_with = "nullable")]
    pub key: String,
    /// Bumped on every change.
    #[serde(deserialize_with = "nullable")]
    pub version: u64,
    /// Targeting on; if false the off variation is served with reason `OFF`.
    #[serde(deserialize_with = "nullable")]
    pub on: bool,
    /// Flags that must be on and return a given variation.
    #[serde(deserialize_with = "nullable")]
    pub prerequisites: Vec<Prerequisite>,
    /// Individual `user` targets (legacy placement).
    #[serde(deserialize_with = "nullable")]
    pub targets: Vec<Target>,
    /// Individual targets for any context kind.
    #[serde(deserialize_with = "nullable")]
    pub context_targets: Vec<Target>,
    /// Targeting rules; the first that matches wins.
    #[serde(deserialize_with = "nullable")]
    pub rules: Vec<FlagRule>,
    /// Used when targeting is on and nothing matched.
    #[serde(deserialize_with = "nullable")]
    pub fallthrough: VariationOrRollout,
    /// Served when off or a prerequisite fails; `None` serves no value.
    pub off_variation: Option<i64>,
    /// The variation values.
    #[serde(deserialize_with = "nullable")]
    pub variations: Vec<Value>,
    /// Which client-side credentials may see the flag, if given explicitly.
    pub client_side_availability: Option<ClientSideAvailability>,
    /// Legacy copy of `clientSideAvailability.usingEnvironmentId` (read only when
    /// `client_side_availability` is `None`).
    #[serde(deserialize_with = "nullable")]
    pub client_side: bool,
    /// Part of the bucketing hash input.
    #[serde(deserialize_with = "nullable")]
    pub salt: String,
    /// Send full feature events for every evaluation.
    #[serde(deserialize_with = "nullable")]
    pub track_events: bool,
    /// Send full feature events when the fallthrough was used.
    #[serde(deserialize_with = "nullable")]
    pub track_events_fallthrough: bool,
    /// Debug events until this Unix time in milliseconds.
    pub debug_events_until_date: Option<u64>,
    /// Tombstone marker.
    #[serde(deserialize_with = "nullable")]
    pub deleted: bool,
    /// Event sampling ratio (1/N).
    pub sampling_ratio: Option<i64>,
    /// Leave the flag out of summary events.
    #[serde(deserialize_with = "nullable")]
    pub exclude_from_summaries: bool,
    /// Migration flag settings.
    pub migration: Option<MigrationSettings>,
}

impl Flag {
    /// Whether clients using the environment ID (JavaScript) may see the flag.
    pub fn using_environment_id(&self) -> bool {
        self.client_side_availability
            .as_ref()
            .map_or(self.client_side, |c| c.using_environment_id)
    }

    /// Whether clients using a mobile key may see the flag (true for old-schema flags).
    pub fn using_mobile_key(&self) -> bool {
        self.client_side_availability
            .as_ref()
            .is_none_or(|c| c.using_mobile_key)
    }
}

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Flag", 20)?;
        s.serialize_field("key", &self.key)?;
        s.serialize_field("on", &self.on)?;
        s.serialize_field("prerequisites", &self.prerequisites)?;
        s.serialize_field("targets", &self.targets)?;
        s.serialize_field("contextTargets", &self.context_targets)?;
        s.serialize_field("rules", &self.rules)?;
        s.serialize_field("fallthrough", &self.fallthrough)?;
        s.serialize_field("offVariation", &self.off_variation)?;
        s.serialize_field("variations", &self.variations)?;
        match &self.client_side_availability {
            Some(csa) => s.serialize_field("clientSideAvailability", csa)?,
            None => s.skip_field("clientSideAvailability")?,
        }
        s.serialize_field("clientSide", &self.using_environment_id())?;
        s.serialize_field("salt", &self.salt)?;
        s.serialize_field("trackEvents", &self.track_events)?;
        s.serialize_field("trackEventsFallthrough", &self.track_events_fallthrough)?;
        s.serialize_field(
            "debugEventsUntilDate",
            &self.debug_events_until_date.filter(|d| *d != 0),
        )?;
        s.serialize_field("version", &self.version)?;
        s.serialize_field("deleted", &self.deleted)?;
        match &self.migration {
            Some(m) => s.serialize_field("migration", m)?,
            None => s.skip_field("migration")?,
        }
        match &self.sampling_ratio {
            Some(r) => s.serialize_field("samplingRatio", r)?,
            None => s.skip_field("samplingRatio")?,
        }
        if self.exclude_from_summaries {
            s.serialize_field("excludeFromSummaries", &true)?;
        } else {
            s.skip_field("excludeFromSummaries")?;
        }
        s.end()
    }
}

/// `clientSideAvailability`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientSideAvailability {
    /// Visible to clients using a mobile key.
    pub using_mobile_key: bool,
    /// Visible to clients using the client-side environment ID.
    pub using_environment_id: bool,
}

/// `migration` settings of a migration flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MigrationSettings {
    /// Consistency-check ratio (1/N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_ratio: Option<i64>,
}

/// A prerequisite: flag `key` must be on and return variation `variation`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prerequisite {
    /// The prerequisite flag's key.
    #[serde(deserialize_with = "nullable")]
    pub key: String,
    /// The variation index it must return.
    #[serde(deserialize_with = "nullable")]
    pub variation: i64,
}

/// An individual-targeting list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Target {
    /// The context kind (absent means `user`).
    #[serde(skip_serializing_if = "none_or_empty")]
    pub context_kind: Option<String>,
    /// The variation served to these keys.
    #[serde(deserialize_with = "nullable")]
    pub variation: i64,
    /// The context keys.
    #[serde(deserialize_with = "nullable")]
    pub values: Vec<String>,
}

/// A targeting rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FlagRule {
    /// Fixed variation served on a match (wins over `rollout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation: Option<i64>,
    /// Percentage rollout served on a match.
    #[serde(skip_serializing_if = "rollout_is_empty")]
    pub rollout: Option<Rollout>,
    /// Rule ID (goes into `RULE_MATCH` reasons as `ruleId`).
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub id: String,
    /// All must match; none means the rule matches everything.
    #[serde(deserialize_with = "nullable")]
    pub clauses: Vec<Clause>,
    /// Send full feature events when this rule matched.
    #[serde(deserialize_with = "nullable")]
    pub track_events: bool,
}

impl FlagRule {
    /// The rule's variation-or-rollout.
    pub fn variation_or_rollout(&self) -> VariationOrRollout {
        VariationOrRollout {
            variation: self.variation,
            rollout: self.rollout.clone(),
        }
    }
}

fn rollout_is_empty(r: &Option<Rollout>) -> bool {
    r.as_ref().is_none_or(|r| r.variations.is_empty())
}

/// A fixed variation or a percentage rollout (fallthrough and rules).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VariationOrRollout {
    /// Fixed variation (wins over `rollout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variation: Option<i64>,
    /// Percentage rollout.
    #[serde(skip_serializing_if = "rollout_is_empty")]
    pub rollout: Option<Rollout>,
}

impl VariationOrRollout {
    /// A fixed variation.
    pub fn variation(index: i64) -> VariationOrRollout {
        VariationOrRollout {
            variation: Some(index),
            rollout: None,
        }
    }
}

/// Rollout or experiment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RolloutKind {
    /// A plain percentage rollout.
    #[default]
    Rollout,
    /// An experiment: always bucketed by key, and results say `inExperiment`.
    Experiment,
}

/// A percentage rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rollout {
    /// `rollout` (default) or `experiment`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_kind"
    )]
    pub kind: Option<RolloutKind>,
    /// The context kind to bucket (default `user`); its presence makes `bucketBy` an attribute
    /// reference rather than a literal name.
    #[serde(skip_serializing_if = "none_or_empty")]
    pub context_kind: Option<String>,
    /// Weighted variations (weights out of 100000).
    #[serde(deserialize_with = "nullable")]
    pub variations: Vec<WeightedVariation>,
    /// Hash seed; replaces `<flagKey>.<salt>` in the hash input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// The attribute to bucket by (default `key`; ignored by experiments).
    #[serde(skip_serializing_if = "none_or_empty")]
    pub bucket_by: Option<String>,
}

/// An unknown rollout kind is a plain rollout (Go: anything but `experiment`).
fn lenient_kind<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RolloutKind>, D::Error> {
    Ok(match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => None,
        Some("experiment") => Some(RolloutKind::Experiment),
        Some(_) => Some(RolloutKind::Rollout),
    })
}

impl Rollout {
    /// True for `kind: experiment`.
    pub fn is_experiment(&self) -> bool {
        self.kind == Some(RolloutKind::Experiment)
    }
}

/// One bucket of a rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightedVariation {
    /// The variation index.
    #[serde(deserialize_with = "nullable")]
    pub variation: i64,
    /// Weight out of 100000.
    #[serde(deserialize_with = "nullable")]
    pub weight: i64,
    /// Contexts in this bucket are not part of the experiment.
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub untracked: bool,
}

/// A clause operator. Unknown operators are kept (and never match).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `in`
    In,
    /// `endsWith`
    EndsWith,
    /// `startsWith`
    StartsWith,
    /// `matches`
    Matches,
    /// `contains`
    Contains,
    /// `lessThan`
    LessThan,
    /// `lessThanOrEqual`
    LessThanOrEqual,
    /// `greaterThan`
    GreaterThan,
    /// `greaterThanOrEqual`
    GreaterThanOrEqual,
    /// `before`
    Before,
    /// `after`
    After,
    /// `segmentMatch`
    SegmentMatch,
    /// `semVerEqual`
    SemVerEqual,
    /// `semVerLessThan`
    SemVerLessThan,
    /// `semVerGreaterThan`
    SemVerGreaterThan,
    /// Any other string.
    Unknown(String),
}

impl Default for Operator {
    fn default() -> Self {
        Operator::Unknown(String::new())
    }
}

impl Operator {
    /// The JSON name.
    pub fn as_str(&self) -> &str {
        match self {
            Operator::In => "in",
            Operator::EndsWith => "endsWith",
            Operator::StartsWith => "startsWith",
            Operator::Matches => "matches",
            Operator::Contains => "contains",
            Operator::LessThan => "lessThan",
            Operator::LessThanOrEqual => "lessThanOrEqual",
            Operator::GreaterThan => "greaterThan",
            Operator::GreaterThanOrEqual => "greaterThanOrEqual",
            Operator::Before => "before",
            Operator::After => "after",
            Operator::SegmentMatch => "segmentMatch",
            Operator::SemVerEqual => "semVerEqual",
            Operator::SemVerLessThan => "semVerLessThan",
            Operator::SemVerGreaterThan => "semVerGreaterThan",
            Operator::Unknown(s) => s,
        }
    }

    /// Parses a JSON name.
    pub fn parse(s: &str) -> Operator {
        match s {
            "in" => Operator::In,
            "endsWith" => Operator::EndsWith,
            "startsWith" => Operator::StartsWith,
            "matches" => Operator::Matches,
            "contains" => Operator::Contains,
            "lessThan" => Operator::LessThan,
            "lessThanOrEqual" => Operator::LessThanOrEqual,
            "greaterThan" => Operator::GreaterThan,
            "greaterThanOrEqual" => Operator::GreaterThanOrEqual,
            "before" => Operator::Before,
            "after" => Operator::After,
            "segmentMatch" => Operator::SegmentMatch,
            "semVerEqual" => Operator::SemVerEqual,
            "semVerLessThan" => Operator::SemVerLessThan,
            "semVerGreaterThan" => Operator::SemVerGreaterThan,
            other => Operator::Unknown(other.to_owned()),
        }
    }
}

impl Serialize for Operator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Operator::parse(
            &Option::<String>::deserialize(d)?.unwrap_or_default(),
        ))
    }
}

/// A rule clause.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Clause {
    /// The context kind the attribute belongs to (absent means `user`); its presence makes
    /// `attribute` an attribute reference rather than a literal name.
    #[serde(skip_serializing_if = "none_or_empty")]
    pub context_kind: Option<String>,
    /// The attribute (ignored by `segmentMatch`).
    #[serde(deserialize_with = "nullable")]
    pub attribute: String,
    /// The operator.
    pub op: Operator,
    /// The values to test against (segment keys for `segmentMatch`).
    #[serde(deserialize_with = "nullable")]
    pub values: Vec<Value>,
    /// Negate the result (not applied when the attribute or the context kind is missing).
    #[serde(deserialize_with = "nullable")]
    pub negate: bool,
}

/// A segment in the server-side SDK format.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Segment {
    /// Segment key.
    #[serde(deserialize_with = "nullable")]
    pub key: String,
    /// `user` keys always in the segment.
    #[serde(deserialize_with = "nullable")]
    pub included: Vec<String>,
    /// `user` keys never in the segment (unless also included).
    #[serde(deserialize_with = "nullable")]
    pub excluded: Vec<String>,
    /// Keys of other kinds always in the segment.
    #[serde(deserialize_with = "nullable")]
    pub included_contexts: Vec<SegmentTarget>,
    /// Keys of other kinds never in the segment.
    #[serde(deserialize_with = "nullable")]
    pub excluded_contexts: Vec<SegmentTarget>,
    /// Part of the bucketing hash input of weighted rules.
    #[serde(deserialize_with = "nullable")]
    pub salt: String,
    /// Segment rules; any match includes the context.
    #[serde(deserialize_with = "nullable")]
    pub rules: Vec<SegmentRule>,
    /// A Big Segment (membership lives in an external store).
    #[serde(skip_serializing_if = "is_false", deserialize_with = "nullable")]
    pub unbounded: bool,
    /// The kind Big Segment membership is keyed by (absent means `user`).
    #[serde(skip_serializing_if = "none_or_empty")]
    pub unbounded_context_kind: Option<String>,
    /// Bumped on every change.
    #[serde(deserialize_with = "nullable")]
    pub version: u64,
    /// Big Segment generation.
    pub generation: Option<i64>,
    /// Tombstone marker.
    #[serde(deserialize_with = "nullable")]
    pub deleted: bool,
}

/// Keys of one context kind in a segment's `includedContexts`/`excludedContexts`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SegmentTarget {
    /// The context kind (absent means `user`).
    #[serde(skip_serializing_if = "none_or_empty")]
    pub context_kind: Option<String>,
    /// The context keys.
    #[serde(deserialize_with = "nullable")]
    pub values: Vec<String>,
}

/// A segment rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SegmentRule {
    /// Rule ID.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// All must match.
    #[serde(deserialize_with = "nullable")]
    pub clauses: Vec<Clause>,
    /// If set, only this share (out of 100000) of matching contexts are included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// Attribute to bucket by for `weight` (default `key`).
    #[serde(skip_serializing_if = "none_or_empty")]
    pub bucket_by: Option<String>,
    /// Context kind to bucket for `weight` (default `user`); its presence makes `bucketBy` an
    /// attribute reference.
    #[serde(skip_serializing_if = "none_or_empty")]
    pub rollout_context_kind: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_flag_json_matches_the_go_marshaller() {
        // The spec's example, in the Go marshaller's field order.
        let text = concat!(
            r#"{"key":"f1","on":true,"prerequisites":[],"targets":[],"contextTargets":[],"#,
            r#""rules":[{"variation":1,"id":"r1","clauses":[{"contextKind":"user","attribute":"email","op":"endsWith","#,
            r#""values":["@example.com"],"negate":false}],"trackEvents":false}],"#,
            r#""fallthrough":{"rollout":{"kind":"experiment","contextKind":"user","#,
            r#""variations":[{"variation":0,"weight":50000},{"variation":1,"weight":50000,"untracked":true}],"#,
            r#""seed":61}},"offVariation":0,"variations":[false,true],"#,
            r#""clientSideAvailability":{"usingMobileKey":true,"usingEnvironmentId":false},"clientSide":false,"#,
            r#""salt":"a1b2","trackEvents":false,"trackEventsFallthrough":false,"debugEventsUntilDate":null,"#,
            r#""version":3,"deleted":false}"#
        );
        let flag: Flag = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&flag).unwrap(), text);
    }

    #[test]
    fn canonical_segment_json_matches_the_go_marshaller() {
        let text = concat!(
            r#"{"key":"s1","included":["u1"],"excluded":[],"includedContexts":[{"contextKind":"org","values":["o1"]}],"#,
            r#""excludedContexts":[],"salt":"x","#,
            r#""rules":[{"id":"sr1","clauses":[{"contextKind":"user","attribute":"plan","op":"in","values":["gold"],"negate":false}],"#,
            r#""weight":25000,"bucketBy":"key","rolloutContextKind":"user"}],"#,
            r#""version":1,"generation":null,"deleted":false}"#
        );
        let seg: Segment = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&seg).unwrap(), text);
    }

    #[test]
    fn lenient_parsing_fills_go_defaults() {
        let flag: Flag = serde_json::from_value(json!({"key":"f","targets":null,"clientSide":true,
            "rules":[{"clauses":[{"op":"bogus","values":[1]}]}],"extra":1}))
        .unwrap();
        assert!(!flag.on);
        assert!(flag.targets.is_empty());
        assert_eq!(
            flag.rules[0].clauses[0].op,
            Operator::Unknown("bogus".into())
        );
        assert!(flag.using_environment_id() && flag.using_mobile_key());
        let out = serde_json::to_value(&flag).unwrap();
        assert_eq!(out["fallthrough"], json!({}));
        assert_eq!(out["offVariation"], Value::Null);
        assert_eq!(out["clientSide"], json!(true));
        assert!(out.get("clientSideAvailability").is_none());
        assert_eq!(
            out["rules"][0],
            json!({"clauses":[{"attribute":"","op":"bogus","values":[1],"negate":false}],"trackEvents":false})
        );
    }
}
