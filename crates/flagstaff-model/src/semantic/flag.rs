//! Semantic patch instructions for feature flags.
//!
//! [`apply_to_flag`] applies every instruction of a [`SemanticPatch`] to a copy of the flag and
//! returns the copy only when all of them succeed, together with one [`AppliedInstruction`] per
//! instruction for the audit log. Versions and `lastModified` are left alone: the caller bumps
//! them uniformly after comparing the result with the original.
//!
//! The helpers marked `pub(crate)` (instruction parsing, clauses, rule-list editing, name /
//! description / tags) are shared with the segment instructions in `semantic::segment`.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{AppliedInstruction, SemanticPatch};
use crate::flag::{
    Clause, CustomProperty, Defaults, FeatureFlag, FlagConfig, OPERATORS, Prerequisite, Rollout,
    Rule, Target, Variation, WeightedVariation, is_known_operator, json_type,
};
use crate::keys::{normalize_tags, validate_name, validate_tags};
use crate::{ModelError, UnixMillis, new_uuid};

/// Flag instruction kinds that change one environment's configuration: they need the patch's
/// `environmentKey`.
pub const FLAG_ENVIRONMENT_KINDS: &[&str] = &[
    "turnFlagOn",
    "turnFlagOff",
    "addRule",
    "removeRule",
    "reorderRules",
    "replaceRules",
    "addClauses",
    "removeClauses",
    "updateClause",
    "addValuesToClause",
    "removeValuesFromClause",
    "updateRuleVariationOrRollout",
    "updateRuleDescription",
    "updateRuleTrackEvents",
    "addTargets",
    "removeTargets",
    "addUserTargets",
    "removeUserTargets",
    "addContextTargets",
    "removeContextTargets",
    "replaceTargets",
    "replaceUserTargets",
    "clearTargets",
    "clearUserTargets",
    "updateFallthroughVariationOrRollout",
    "updateOffVariation",
    "addPrerequisite",
    "removePrerequisite",
    "updatePrerequisite",
    "replacePrerequisites",
    "updateTrackEvents",
    "updateTrackEventsFallthrough",
];

/// Flag instruction kinds that change the flag in every environment; `environmentKey` is
/// ignored for these.
pub const FLAG_WIDE_KINDS: &[&str] = &[
    "addVariation",
    "removeVariation",
    "updateVariation",
    "updateDefaultVariation",
    "updateName",
    "updateDescription",
    "addTags",
    "removeTags",
    "updateMaintainerMember",
    "updateMaintainerTeam",
    "updateMaintainer",
    "removeMaintainer",
    "archiveFlag",
    "restoreFlag",
    "deprecateFlag",
    "restoreDeprecatedFlag",
    "makeFlagPermanent",
    "makeFlagTemporary",
    "turnOnClientSideAvailability",
    "turnOffClientSideAvailability",
    "updateClientSideAvailability",
    "addCustomProperties",
    "replaceCustomProperties",
    "removeCustomProperties",
];

/// Applies a semantic patch to `flag`, all or nothing.
///
/// `prerequisite_variation(flag_key, variation_id)` resolves a prerequisite flag's variation
/// `_id` to its index (the caller looks the other flag up); its error is reported with the
/// instruction's index. `now` dates `archiveFlag` and `deprecateFlag`.
///
/// The result has `kind` recomputed and has passed [`FeatureFlag::validate`]; `_version`,
/// per-environment `version` and `lastModified` are unchanged.
pub fn apply_to_flag(
    flag: &FeatureFlag,
    patch: &SemanticPatch,
    prerequisite_variation: &dyn Fn(&str, &str) -> Result<usize, ModelError>,
    now: UnixMillis,
) -> Result<(FeatureFlag, Vec<AppliedInstruction>), ModelError> {
    if patch.instructions.is_empty() {
        return Err(ModelError::invalid(
            "semantic patch needs at least one instruction",
        ));
    }
    let mut out = flag.clone();
    let mut applied = Vec::with_capacity(patch.instructions.len());
    for (i, instruction) in patch.instructions.iter().enumerate() {
        let kind = instruction_kind(i, instruction)?;
        let step = if FLAG_ENVIRONMENT_KINDS.contains(&kind) {
            apply_environment_instruction(
                &mut out,
                patch.environment_key.as_deref(),
                kind,
                instruction,
                prerequisite_variation,
            )
            .map(|(action, env, description)| (action, Some(env), description))
        } else if FLAG_WIDE_KINDS.contains(&kind) {
            apply_flag_wide_instruction(&mut out, kind, instruction, now)
                .map(|(action, description)| (action, None, description))
        } else if kind == "deleteFlag" {
            Err(ModelError::invalid(
                "deleteFlag is not supported in a semantic patch: delete the flag with DELETE /api/v2/flags/{projectKey}/{flagKey}",
            ))
        } else {
            return Err(unknown_kind(
                i,
                kind,
                &[FLAG_ENVIRONMENT_KINDS, FLAG_WIDE_KINDS],
            ));
        };
        let (action, environment, description) = step.map_err(|e| at_instruction(i, kind, e))?;
        applied.push(AppliedInstruction {
            kind: kind.to_string(),
            action,
            environment,
            description,
        });
    }
    out.kind = out.derived_kind();
    out.validate()
        .map_err(|e| map_message(e, |m| format!("the patched flag is invalid: {m}")))?;
    Ok((out, applied))
}

// ---------------------------------------------------------------------------------------------
// Shared instruction machinery (also used by semantic::segment)
// ---------------------------------------------------------------------------------------------

/// The `kind` of instruction `i`, or a clear error when it is missing or not a string.
pub(crate) fn instruction_kind(
    i: usize,
    instruction: &Map<String, Value>,
) -> Result<&str, ModelError> {
    match instruction.get("kind") {
        Some(Value::String(kind)) => Ok(kind),
        Some(other) => Err(ModelError::invalid(format!(
            "instruction {i}: \"kind\" must be a string, got {}",
            json_type(other)
        ))),
        None => Err(ModelError::invalid(format!(
            "instruction {i}: missing \"kind\": each instruction is an object such as {{\"kind\": \"turnFlagOn\"}}"
        ))),
    }
}

/// Deserializes an instruction's parameters (everything but `kind`) into `T`.
pub(crate) fn params<T: DeserializeOwned>(
    instruction: &Map<String, Value>,
) -> Result<T, ModelError> {
    let mut map = instruction.clone();
    map.remove("kind");
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ModelError::invalid(format!("invalid parameters: {e}")))
}

/// Prefixes an error with the instruction it came from, keeping its variant.
pub(crate) fn at_instruction(i: usize, kind: &str, e: ModelError) -> ModelError {
    map_message(e, |m| format!("instruction {i} ({kind}): {m}"))
}

pub(crate) fn unknown_kind(i: usize, kind: &str, lists: &[&[&str]]) -> ModelError {
    let supported: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
    ModelError::invalid(format!(
        "instruction {i}: unknown semantic patch instruction kind \"{kind}\"; supported kinds: {}",
        supported.join(", ")
    ))
}

pub(crate) fn map_message(e: ModelError, f: impl FnOnce(&str) -> String) -> ModelError {
    match e {
        ModelError::Invalid(m) => ModelError::Invalid(f(&m)),
        ModelError::PatchFailed(m) => ModelError::PatchFailed(f(&m)),
        ModelError::VersionConflict(m) => ModelError::VersionConflict(f(&m)),
    }
}

/// Strings joined for a description: `a, b, c`.
pub(crate) fn list(values: &[String]) -> String {
    values.join(", ")
}

/// A JSON value as shown to people: strings without quotes, anything else as JSON.
pub(crate) fn value_label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn value_list(values: &[Value]) -> String {
    values
        .iter()
        .map(value_label)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Instructions without parameters reject any.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ValueParams {
    pub value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ValuesParams {
    pub values: Vec<String>,
}

/// `updateName`, `updateDescription`, `addTags` and `removeTags`, the same for flags and
/// segments. Returns `None` for any other kind.
pub(crate) fn apply_metadata_instruction(
    what: &str,
    name: &mut String,
    description: &mut String,
    tags: &mut Vec<String>,
    kind: &str,
    instruction: &Map<String, Value>,
) -> Result<Option<(&'static str, String)>, ModelError> {
    Ok(Some(match kind {
        "updateName" => {
            let p: ValueParams = params(instruction)?;
            validate_name(what, &p.value)?;
            *name = p.value;
            ("updateName", format!("Changed the name to *{name}*"))
        }
        "updateDescription" => {
            let p: ValueParams = params(instruction)?;
            *description = p.value;
            let text = if description.is_empty() {
                "Removed the description".to_string()
            } else {
                format!("Changed the description to *{description}*")
            };
            ("updateDescription", text)
        }
        "addTags" => {
            let p: ValuesParams = params(instruction)?;
            validate_tags(&p.values)?;
            tags.extend(p.values.iter().cloned());
            normalize_tags(tags);
            ("updateTags", format!("Added tags {}", list(&p.values)))
        }
        "removeTags" => {
            let p: ValuesParams = params(instruction)?;
            tags.retain(|t| !p.values.contains(t));
            ("updateTags", format!("Removed tags {}", list(&p.values)))
        }
        _ => return Ok(None),
    }))
}

/// A clause as semantic-patch instructions give it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClauseParams {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    #[serde(default)]
    pub context_kind: Option<String>,
    #[serde(default)]
    pub attribute: Option<String>,
    pub op: String,
    pub values: Vec<Value>,
    #[serde(default)]
    pub negate: Option<bool>,
}

/// Builds a clause with a fresh `_id` (unless one is given), checking the operator.
pub(crate) fn build_clause(p: ClauseParams) -> Result<Clause, ModelError> {
    if !is_known_operator(&p.op) {
        return Err(ModelError::invalid(format!(
            "clause op \"{}\" is not a LaunchDarkly operator (one of {})",
            p.op,
            OPERATORS.join(", ")
        )));
    }
    let attribute = match p.attribute {
        Some(a) if !a.is_empty() => a,
        // LaunchDarkly's own examples give segmentMatch clauses the attribute "segmentMatch".
        _ if p.op == "segmentMatch" => "segmentMatch".to_string(),
        _ => {
            return Err(ModelError::invalid(format!(
                "a clause with op \"{}\" needs an attribute",
                p.op
            )));
        }
    };
    Ok(Clause {
        id: p.id.filter(|id| !id.is_empty()).unwrap_or_else(new_uuid),
        attribute,
        op: p.op,
        values: p.values,
        context_kind: p.context_kind,
        negate: p.negate.unwrap_or(false),
    })
}

pub(crate) fn build_clauses(ps: Vec<ClauseParams>) -> Result<Vec<Clause>, ModelError> {
    let clauses = ps
        .into_iter()
        .map(build_clause)
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_clause_ids(&clauses)?;
    Ok(clauses)
}

fn check_unique_clause_ids(clauses: &[Clause]) -> Result<(), ModelError> {
    let mut seen = HashSet::new();
    for c in clauses {
        if !seen.insert(c.id.as_str()) {
            return Err(ModelError::invalid(format!(
                "two clauses have the _id \"{}\": clause ids must be unique within a rule",
                c.id
            )));
        }
    }
    Ok(())
}

/// What the shared rule instructions need from a flag rule or a segment rule.
pub(crate) trait RuleClauses {
    fn rule_id(&self) -> &str;
    fn rule_description(&self) -> Option<&str>;
    fn set_rule_description(&mut self, description: Option<String>);
    fn clauses(&self) -> &[Clause];
    fn clauses_mut(&mut self) -> &mut Vec<Clause>;
}

impl RuleClauses for Rule {
    fn rule_id(&self) -> &str {
        &self.id
    }
    fn rule_description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    fn set_rule_description(&mut self, description: Option<String>) {
        self.description = description;
    }
    fn clauses(&self) -> &[Clause] {
        &self.clauses
    }
    fn clauses_mut(&mut self) -> &mut Vec<Clause> {
        &mut self.clauses
    }
}

/// `rule "Beta users"` when the rule has a description, ``rule `id` `` otherwise.
pub(crate) fn rule_label<R: RuleClauses>(rule: &R) -> String {
    match rule.rule_description().filter(|d| !d.is_empty()) {
        Some(d) => format!("rule \"{d}\""),
        None => format!("rule `{}`", rule.rule_id()),
    }
}

fn rule_ids<R: RuleClauses>(rules: &[R]) -> String {
    if rules.is_empty() {
        "there are no rules".to_string()
    } else {
        let ids: Vec<&str> = rules.iter().map(|r| r.rule_id()).collect();
        format!("rule ids: {}", ids.join(", "))
    }
}

pub(crate) fn rule_mut<'a, R: RuleClauses>(
    rules: &'a mut [R],
    id: &str,
) -> Result<&'a mut R, ModelError> {
    match rules.iter().position(|r| r.rule_id() == id) {
        Some(i) => Ok(&mut rules[i]),
        None => Err(ModelError::invalid(format!(
            "ruleId \"{id}\" does not match any rule ({})",
            rule_ids(rules)
        ))),
    }
}

/// Inserts `rule` before the rule `before` (or at the end).
pub(crate) fn insert_rule<R: RuleClauses>(
    rules: &mut Vec<R>,
    rule: R,
    before: Option<&str>,
) -> Result<(), ModelError> {
    if rules.iter().any(|r| r.rule_id() == rule.rule_id()) {
        return Err(ModelError::invalid(format!(
            "a rule with _id \"{}\" already exists",
            rule.rule_id()
        )));
    }
    match before {
        None => rules.push(rule),
        Some(id) => match rules.iter().position(|r| r.rule_id() == id) {
            Some(i) => rules.insert(i, rule),
            None => {
                return Err(ModelError::invalid(format!(
                    "beforeRuleId \"{id}\" does not match any rule ({})",
                    rule_ids(rules)
                )));
            }
        },
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleIdParams {
    rule_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReorderRulesParams {
    rule_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddClausesParams {
    rule_id: String,
    clauses: Vec<ClauseParams>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RemoveClausesParams {
    rule_id: String,
    clause_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateClauseParams {
    rule_id: String,
    clause_id: String,
    clause: ClauseParams,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClauseValuesParams {
    rule_id: String,
    clause_id: String,
    values: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleDescriptionParams {
    rule_id: String,
    description: String,
}

fn clause_index<R: RuleClauses>(rule: &R, clause_id: &str) -> Result<usize, ModelError> {
    rule.clauses()
        .iter()
        .position(|c| c.id == clause_id)
        .ok_or_else(|| {
            let ids: Vec<&str> = rule.clauses().iter().map(|c| c.id.as_str()).collect();
            ModelError::invalid(format!(
                "clauseId \"{clause_id}\" does not match any clause of {} (clause ids: {})",
                rule_label(rule),
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ))
        })
}

/// The rule-list instructions flags and segments share: removeRule, reorderRules, addClauses,
/// removeClauses, updateClause, addValuesToClause, removeValuesFromClause and
/// updateRuleDescription. Returns the description, or `None` for any other kind.
pub(crate) fn apply_rule_instruction<R: RuleClauses>(
    rules: &mut Vec<R>,
    kind: &str,
    instruction: &Map<String, Value>,
) -> Result<Option<String>, ModelError> {
    let description = match kind {
        "removeRule" => {
            // LaunchDarkly: "Does nothing if the rule does not exist."
            let p: RuleIdParams = params(instruction)?;
            match rules.iter().position(|r| r.rule_id() == p.rule_id) {
                Some(i) => {
                    let removed = rules.remove(i);
                    format!("Removed {}", rule_label(&removed))
                }
                None => format!("Rule `{}` was already removed", p.rule_id),
            }
        }
        "reorderRules" => {
            let p: ReorderRulesParams = params(instruction)?;
            let wanted: HashSet<&str> = p.rule_ids.iter().map(String::as_str).collect();
            let current: HashSet<&str> = rules.iter().map(|r| r.rule_id()).collect();
            if wanted.len() != p.rule_ids.len() || wanted != current {
                return Err(ModelError::invalid(format!(
                    "ruleIds must list every current rule exactly once ({})",
                    rule_ids(rules)
                )));
            }
            let order: HashMap<&str, usize> = p
                .rule_ids
                .iter()
                .enumerate()
                .map(|(i, id)| (id.as_str(), i))
                .collect();
            rules.sort_by_key(|r| order[r.rule_id()]);
            "Reordered the rules".to_string()
        }
        "addClauses" => {
            let p: AddClausesParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            let added = build_clauses(p.clauses)?;
            let n = added.len();
            rule.clauses_mut().extend(added);
            check_unique_clause_ids(rule.clauses())?;
            format!("Added {} to {}", plural(n, "clause"), rule_label(&*rule))
        }
        "removeClauses" => {
            let p: RemoveClausesParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            for id in &p.clause_ids {
                clause_index(&*rule, id)?;
            }
            rule.clauses_mut().retain(|c| !p.clause_ids.contains(&c.id));
            format!(
                "Removed {} from {}",
                plural(p.clause_ids.len(), "clause"),
                rule_label(&*rule)
            )
        }
        "updateClause" => {
            let p: UpdateClauseParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            let ci = clause_index(&*rule, &p.clause_id)?;
            let mut clause = build_clause(p.clause)?;
            clause.id = p.clause_id;
            rule.clauses_mut()[ci] = clause;
            format!("Updated a clause of {}", rule_label(&*rule))
        }
        "addValuesToClause" => {
            let p: ClauseValuesParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            let ci = clause_index(&*rule, &p.clause_id)?;
            let clause = &mut rule.clauses_mut()[ci];
            for v in &p.values {
                if !clause.values.contains(v) {
                    clause.values.push(v.clone());
                }
            }
            format!(
                "Added values {} to a clause of {}",
                value_list(&p.values),
                rule_label(&*rule)
            )
        }
        "removeValuesFromClause" => {
            let p: ClauseValuesParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            let ci = clause_index(&*rule, &p.clause_id)?;
            rule.clauses_mut()[ci]
                .values
                .retain(|v| !p.values.contains(v));
            format!(
                "Removed values {} from a clause of {}",
                value_list(&p.values),
                rule_label(&*rule)
            )
        }
        "updateRuleDescription" => {
            let p: RuleDescriptionParams = params(instruction)?;
            let rule = rule_mut(rules, &p.rule_id)?;
            let id = rule.rule_id().to_string();
            if p.description.is_empty() {
                rule.set_rule_description(None);
                format!("Removed the description of rule `{id}`")
            } else {
                let text = format!(
                    "Changed the description of rule `{id}` to *{}*",
                    p.description
                );
                rule.set_rule_description(Some(p.description));
                text
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(description))
}

// ---------------------------------------------------------------------------------------------
// Variations, serving and rollouts
// ---------------------------------------------------------------------------------------------

/// `*name*` when the variation has a name, `*value*` otherwise.
fn variation_label(variations: &[Variation], idx: usize) -> String {
    match variations.get(idx) {
        Some(v) => match v.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => format!("*{name}*"),
            None => format!("*{}*", value_label(&v.value)),
        },
        None => format!("variation {idx}"),
    }
}

fn variation_index(variations: &[Variation], id: &str, what: &str) -> Result<usize, ModelError> {
    variations.iter().position(|v| v.id == id).ok_or_else(|| {
        let known: Vec<String> = variations
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{} ({})", v.id, variation_label(variations, i)))
            .collect();
        ModelError::invalid(format!(
            "{what} \"{id}\" is not a variation of this flag (its variations: {})",
            known.join(", ")
        ))
    })
}

fn format_weight(weight: i64) -> String {
    if weight % 1000 == 0 {
        format!("{}%", weight / 1000)
    } else {
        format!("{}%", weight as f64 / 1000.0)
    }
}

fn serve_label(
    variations: &[Variation],
    variation: Option<usize>,
    rollout: Option<&Rollout>,
) -> String {
    match (variation, rollout) {
        (Some(v), _) => variation_label(variations, v),
        (None, Some(r)) => {
            let parts: Vec<String> = r
                .variations
                .iter()
                .map(|w| {
                    format!(
                        "{} {}",
                        format_weight(w.weight),
                        variation_label(variations, w.variation)
                    )
                })
                .collect();
            format!("a percentage rollout ({})", parts.join(", "))
        }
        (None, None) => "nothing".to_string(),
    }
}

/// `variationId` or `rolloutWeights` (+ `rolloutBucketBy`, `rolloutContextKind`) resolved to
/// what a rule or the fallthrough serves.
fn resolve_serve(
    variations: &[Variation],
    variation_id: Option<String>,
    rollout_weights: Option<BTreeMap<String, i64>>,
    rollout_bucket_by: Option<String>,
    rollout_context_kind: Option<String>,
) -> Result<(Option<usize>, Option<Rollout>), ModelError> {
    match (variation_id, rollout_weights) {
        (Some(_), Some(_)) => Err(ModelError::invalid(
            "give either variationId or rolloutWeights, not both",
        )),
        (None, None) => Err(ModelError::invalid(
            "give variationId (serve one variation) or rolloutWeights (a percentage rollout, {variationId: weight})",
        )),
        (Some(id), None) => {
            if rollout_bucket_by.is_some() || rollout_context_kind.is_some() {
                return Err(ModelError::invalid(
                    "rolloutBucketBy and rolloutContextKind only apply to a percentage rollout: give rolloutWeights instead of variationId",
                ));
            }
            Ok((Some(variation_index(variations, &id, "variationId")?), None))
        }
        (None, Some(weights)) => {
            let mut weighted = Vec::with_capacity(weights.len());
            let mut total = 0i64;
            for (id, weight) in &weights {
                let idx = variation_index(variations, id, "rolloutWeights key")?;
                if !(0..=100_000).contains(weight) {
                    return Err(ModelError::invalid(format!(
                        "rolloutWeights[\"{id}\"] = {weight} is out of range: weights are 0-100000 (thousandths of a percent)"
                    )));
                }
                total += weight;
                weighted.push(WeightedVariation {
                    variation: idx,
                    weight: *weight,
                    untracked: false,
                });
            }
            if total != 100_000 {
                return Err(ModelError::invalid(format!(
                    "rolloutWeights add up to {total}; they must add up to 100000 (100%)"
                )));
            }
            weighted.sort_by_key(|w| w.variation);
            Ok((
                None,
                Some(Rollout {
                    variations: weighted,
                    bucket_by: rollout_bucket_by.filter(|b| !b.is_empty()),
                    context_kind: Some(
                        rollout_context_kind
                            .filter(|k| !k.is_empty())
                            .unwrap_or_else(|| "user".to_string()),
                    ),
                    seed: None,
                }),
            ))
        }
    }
}

/// Null values, type changes and duplicate values are refused (`except` is the variation
/// being updated).
fn check_variation_value(
    variations: &[Variation],
    value: &Value,
    except: Option<usize>,
) -> Result<(), ModelError> {
    if value.is_null() {
        return Err(ModelError::invalid(
            "a variation value cannot be null: use a boolean, string, number, array or object",
        ));
    }
    for (i, v) in variations.iter().enumerate() {
        if Some(i) == except {
            continue;
        }
        if json_type(&v.value) != json_type(value) {
            return Err(ModelError::invalid(format!(
                "the value {value} is a {} but this flag's variations are {}s: all variations of a flag must have the same type",
                json_type(value),
                json_type(&v.value)
            )));
        }
        if v.value == *value {
            return Err(ModelError::invalid(format!(
                "variation {i} already has the value {value}: variation values must be unique"
            )));
        }
    }
    Ok(())
}

fn serves(variation: Option<usize>, rollout: Option<&Rollout>, idx: usize) -> bool {
    variation == Some(idx)
        || rollout.is_some_and(|r| {
            r.variations
                .iter()
                .any(|w| w.variation == idx && w.weight > 0)
        })
}

/// Everywhere variation `idx` is in use (a rollout share of 0 and an empty target list do not
/// count).
fn variation_uses(flag: &FeatureFlag, idx: usize) -> Vec<String> {
    let mut uses = Vec::new();
    if let Some(d) = &flag.defaults {
        if d.on_variation == idx {
            uses.push("the default on variation (defaults.onVariation)".to_string());
        }
        if d.off_variation == idx {
            uses.push("the default off variation (defaults.offVariation)".to_string());
        }
    }
    for (env, c) in &flag.environments {
        if c.targets
            .iter()
            .chain(&c.context_targets)
            .any(|t| t.variation == idx && !t.values.is_empty())
        {
            uses.push(format!("{env}: individual targets"));
        }
        if c.off_variation == Some(idx) {
            uses.push(format!("{env}: off variation"));
        }
        if serves(c.fallthrough.variation, c.fallthrough.rollout.as_ref(), idx) {
            uses.push(format!("{env}: default rule"));
        }
        for (ri, r) in c.rules.iter().enumerate() {
            if serves(r.variation, r.rollout.as_ref(), idx) {
                uses.push(format!("{env}: rule {} ({})", ri + 1, rule_label(r)));
            }
        }
    }
    uses
}

fn shift(i: &mut usize, removed: usize) {
    if *i > removed {
        *i -= 1;
    }
}

fn shift_serve(variation: &mut Option<usize>, rollout: Option<&mut Rollout>, removed: usize) {
    if let Some(v) = variation {
        shift(v, removed);
    }
    if let Some(r) = rollout {
        r.variations.retain(|w| w.variation != removed);
        for w in &mut r.variations {
            shift(&mut w.variation, removed);
        }
    }
}

/// Removes an unused variation and renumbers every index above it.
fn remove_variation_at(flag: &mut FeatureFlag, idx: usize) {
    flag.variations.remove(idx);
    if let Some(d) = &mut flag.defaults {
        shift(&mut d.on_variation, idx);
        shift(&mut d.off_variation, idx);
    }
    for c in flag.environments.values_mut() {
        for list in [&mut c.targets, &mut c.context_targets] {
            list.retain(|t| t.variation != idx);
            for t in list.iter_mut() {
                shift(&mut t.variation, idx);
            }
        }
        if let Some(off) = &mut c.off_variation {
            shift(off, idx);
        }
        shift_serve(
            &mut c.fallthrough.variation,
            c.fallthrough.rollout.as_mut(),
            idx,
        );
        for r in &mut c.rules {
            shift_serve(&mut r.variation, r.rollout.as_mut(), idx);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Individual targets
// ---------------------------------------------------------------------------------------------

fn target_kind(t: &Target) -> &str {
    t.context_kind.as_deref().unwrap_or("user")
}

/// User targets live in `targets`, every other context kind in `contextTargets`.
fn target_list<'a>(config: &'a mut FlagConfig, context_kind: &str) -> &'a mut Vec<Target> {
    if context_kind == "user" {
        &mut config.targets
    } else {
        &mut config.context_targets
    }
}

fn add_targets(
    config: &mut FlagConfig,
    variations: &[Variation],
    context_kind: &str,
    variation: usize,
    values: &[String],
) -> Result<(), ModelError> {
    if context_kind.is_empty() {
        return Err(ModelError::invalid("contextKind must not be empty"));
    }
    if values.is_empty() {
        return Ok(());
    }
    let list = target_list(config, context_kind);
    let wanted: HashSet<&str> = values.iter().map(String::as_str).collect();
    for t in list.iter() {
        if target_kind(t) != context_kind || t.variation == variation {
            continue;
        }
        if let Some(v) = t.values.iter().find(|v| wanted.contains(v.as_str())) {
            return Err(ModelError::invalid(format!(
                "{context_kind} \"{v}\" is already individually targeted to {}: a context can be targeted to only one variation, remove it from that variation first",
                variation_label(variations, t.variation)
            )));
        }
    }
    let pos = match list
        .iter()
        .position(|t| target_kind(t) == context_kind && t.variation == variation)
    {
        Some(p) => p,
        None => {
            list.push(Target {
                values: Vec::new(),
                variation,
                context_kind: Some(context_kind.to_string()),
            });
            list.len() - 1
        }
    };
    let entry = &mut list[pos];
    let mut present: HashSet<String> = entry.values.iter().cloned().collect();
    for v in values {
        if present.insert(v.clone()) {
            entry.values.push(v.clone());
        }
    }
    Ok(())
}

fn remove_targets(
    config: &mut FlagConfig,
    context_kind: &str,
    variation: usize,
    values: &[String],
) {
    let list = target_list(config, context_kind);
    let unwanted: HashSet<&str> = values.iter().map(String::as_str).collect();
    for t in list.iter_mut() {
        if target_kind(t) == context_kind && t.variation == variation {
            t.values.retain(|v| !unwanted.contains(v.as_str()));
        }
    }
    list.retain(|t| !t.values.is_empty());
}

fn targets_text(verb: &str, prep: &str, context_kind: &str, values: &[String], to: &str) -> String {
    let noun = if context_kind == "user" {
        "targets".to_string()
    } else {
        format!("{context_kind} targets")
    };
    format!("{verb} {noun} {} {prep} {to}", list(values))
}

// ---------------------------------------------------------------------------------------------
// Environment-scoped instructions
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleSpec {
    #[serde(default)]
    clauses: Vec<ClauseParams>,
    #[serde(default)]
    before_rule_id: Option<String>,
    #[serde(default)]
    variation_id: Option<String>,
    #[serde(default)]
    rollout_weights: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    rollout_bucket_by: Option<String>,
    #[serde(default)]
    rollout_context_kind: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    track_events: Option<bool>,
    #[serde(default, rename = "ref")]
    rule_ref: Option<String>,
}

fn build_rule(variations: &[Variation], spec: RuleSpec) -> Result<Rule, ModelError> {
    let (variation, rollout) = resolve_serve(
        variations,
        spec.variation_id,
        spec.rollout_weights,
        spec.rollout_bucket_by,
        spec.rollout_context_kind,
    )?;
    Ok(Rule {
        id: new_uuid(),
        variation,
        rollout,
        clauses: build_clauses(spec.clauses)?,
        track_events: spec.track_events.unwrap_or(false),
        description: spec.description.filter(|d| !d.is_empty()),
        disabled: None,
        r#ref: spec.rule_ref.filter(|r| !r.is_empty()),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplaceRulesParams {
    rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ServeParams {
    #[serde(default)]
    variation_id: Option<String>,
    #[serde(default)]
    rollout_weights: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    rollout_bucket_by: Option<String>,
    #[serde(default)]
    rollout_context_kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleServeParams {
    rule_id: String,
    #[serde(default)]
    variation_id: Option<String>,
    #[serde(default)]
    rollout_weights: Option<BTreeMap<String, i64>>,
    #[serde(default)]
    rollout_bucket_by: Option<String>,
    #[serde(default)]
    rollout_context_kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleTrackEventsParams {
    rule_id: String,
    track_events: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TrackEventsParams {
    track_events: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TargetsParams {
    values: Vec<String>,
    #[serde(default)]
    context_kind: Option<String>,
    variation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserTargetsParams {
    values: Vec<String>,
    variation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContextTargetsParams {
    values: Vec<String>,
    context_kind: String,
    variation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplaceTargetsParams {
    targets: Vec<TargetsParams>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplaceUserTargetsParams {
    targets: Vec<UserTargetsParams>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VariationIdParams {
    variation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrerequisiteParams {
    key: String,
    variation_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PrerequisiteKeyParams {
    key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplacePrerequisitesParams {
    prerequisites: Vec<PrerequisiteParams>,
}

fn apply_environment_instruction(
    flag: &mut FeatureFlag,
    environment_key: Option<&str>,
    kind: &str,
    instruction: &Map<String, Value>,
    prerequisite_variation: &dyn Fn(&str, &str) -> Result<usize, ModelError>,
) -> Result<(&'static str, String, String), ModelError> {
    let env = environment_key.filter(|e| !e.is_empty()).ok_or_else(|| {
        ModelError::invalid(
            "this instruction changes one environment's targeting: give \"environmentKey\" in the semantic patch body",
        )
    })?;
    if !flag.environments.contains_key(env) {
        let known: Vec<&str> = flag.environments.keys().map(String::as_str).collect();
        return Err(ModelError::invalid(format!(
            "environmentKey \"{env}\" is not an environment of this project (environments: {})",
            known.join(", ")
        )));
    }
    let FeatureFlag {
        key,
        variations,
        environments,
        ..
    } = flag;
    let config = environments
        .get_mut(env)
        .ok_or_else(|| ModelError::invalid(format!("environment \"{env}\" not found")))?;
    let (action, description) = apply_to_config(
        config,
        variations,
        key,
        kind,
        instruction,
        prerequisite_variation,
    )?;
    Ok((action, env.to_string(), description))
}

fn apply_to_config(
    config: &mut FlagConfig,
    variations: &[Variation],
    flag_key: &str,
    kind: &str,
    instruction: &Map<String, Value>,
    prerequisite_variation: &dyn Fn(&str, &str) -> Result<usize, ModelError>,
) -> Result<(&'static str, String), ModelError> {
    if let Some(description) = apply_rule_instruction(&mut config.rules, kind, instruction)? {
        let action = if kind == "updateRuleDescription" {
            "updateFlagRuleDescription"
        } else {
            "updateRules"
        };
        return Ok((action, description));
    }
    let var = |id: &str| variation_index(variations, id, "variationId");
    Ok(match kind {
        "turnFlagOn" | "turnFlagOff" => {
            params::<NoParams>(instruction)?;
            config.on = kind == "turnFlagOn";
            let text = if config.on {
                "Turned on the flag"
            } else {
                "Turned off the flag"
            };
            ("updateOn", text.to_string())
        }
        "addRule" => {
            let spec: RuleSpec = params(instruction)?;
            let before = spec.before_rule_id.clone();
            let rule = build_rule(variations, spec)?;
            let text = format!(
                "Added a rule serving {}",
                serve_label(variations, rule.variation, rule.rollout.as_ref())
            );
            insert_rule(&mut config.rules, rule, before.as_deref())?;
            ("updateRules", text)
        }
        "replaceRules" => {
            let p: ReplaceRulesParams = params(instruction)?;
            let mut rules = Vec::with_capacity(p.rules.len());
            for (ri, spec) in p.rules.into_iter().enumerate() {
                if spec.before_rule_id.is_some() {
                    return Err(ModelError::invalid(format!(
                        "rules[{ri}]: beforeRuleId does not apply to replaceRules, list the rules in the order you want"
                    )));
                }
                rules.push(
                    build_rule(variations, spec)
                        .map_err(|e| map_message(e, |m| format!("rules[{ri}]: {m}")))?,
                );
            }
            let text = format!("Replaced the rules with {}", plural(rules.len(), "rule"));
            config.rules = rules;
            ("updateRules", text)
        }
        "updateRuleVariationOrRollout" => {
            let p: RuleServeParams = params(instruction)?;
            let (variation, rollout) = resolve_serve(
                variations,
                p.variation_id,
                p.rollout_weights,
                p.rollout_bucket_by,
                p.rollout_context_kind,
            )?;
            let rule = rule_mut(&mut config.rules, &p.rule_id)?;
            rule.variation = variation;
            rule.rollout = rollout;
            let text = format!(
                "Changed {} to serve {}",
                rule_label(&*rule),
                serve_label(variations, rule.variation, rule.rollout.as_ref())
            );
            ("updateRules", text)
        }
        "updateRuleTrackEvents" => {
            let p: RuleTrackEventsParams = params(instruction)?;
            let rule = rule_mut(&mut config.rules, &p.rule_id)?;
            rule.track_events = p.track_events;
            let text = format!(
                "Turned {} event tracking for {}",
                if p.track_events { "on" } else { "off" },
                rule_label(&*rule)
            );
            ("updateTrackEvents", text)
        }
        "addTargets"
        | "removeTargets"
        | "addUserTargets"
        | "removeUserTargets"
        | "addContextTargets"
        | "removeContextTargets" => {
            let (values, context_kind, variation_id) = match kind {
                "addTargets" | "removeTargets" => {
                    let p: TargetsParams = params(instruction)?;
                    let ck = p.context_kind.unwrap_or_else(|| "user".to_string());
                    (p.values, ck, p.variation_id)
                }
                "addUserTargets" | "removeUserTargets" => {
                    let p: UserTargetsParams = params(instruction)?;
                    (p.values, "user".to_string(), p.variation_id)
                }
                _ => {
                    let p: ContextTargetsParams = params(instruction)?;
                    (p.values, p.context_kind, p.variation_id)
                }
            };
            let variation = var(&variation_id)?;
            let to = variation_label(variations, variation);
            let text = if kind.starts_with("add") {
                add_targets(config, variations, &context_kind, variation, &values)?;
                targets_text("Added", "to", &context_kind, &values, &to)
            } else {
                remove_targets(config, &context_kind, variation, &values);
                targets_text("Removed", "from", &context_kind, &values, &to)
            };
            ("updateTargets", text)
        }
        "replaceTargets" => {
            let p: ReplaceTargetsParams = params(instruction)?;
            config.targets.clear();
            config.context_targets.clear();
            for (ti, t) in p.targets.into_iter().enumerate() {
                let at = |e: ModelError| map_message(e, |m| format!("targets[{ti}]: {m}"));
                let variation = var(&t.variation_id).map_err(at)?;
                let ck = t.context_kind.unwrap_or_else(|| "user".to_string());
                add_targets(config, variations, &ck, variation, &t.values).map_err(at)?;
            }
            (
                "updateTargets",
                "Replaced the individual targets".to_string(),
            )
        }
        "replaceUserTargets" => {
            let p: ReplaceUserTargetsParams = params(instruction)?;
            config.targets.retain(|t| target_kind(t) != "user");
            for (ti, t) in p.targets.into_iter().enumerate() {
                let at = |e: ModelError| map_message(e, |m| format!("targets[{ti}]: {m}"));
                let variation = var(&t.variation_id).map_err(at)?;
                add_targets(config, variations, "user", variation, &t.values).map_err(at)?;
            }
            (
                "updateTargets",
                "Replaced the individual user targets".to_string(),
            )
        }
        "clearTargets" | "clearUserTargets" => {
            let p: VariationIdParams = params(instruction)?;
            let variation = var(&p.variation_id)?;
            let users_only = kind == "clearUserTargets";
            config
                .targets
                .retain(|t| t.variation != variation || (users_only && target_kind(t) != "user"));
            if !users_only {
                config.context_targets.retain(|t| t.variation != variation);
            }
            let text = format!(
                "Removed all individual {}targets from {}",
                if users_only { "user " } else { "" },
                variation_label(variations, variation)
            );
            ("updateTargets", text)
        }
        "updateFallthroughVariationOrRollout" => {
            let p: ServeParams = params(instruction)?;
            let (variation, rollout) = resolve_serve(
                variations,
                p.variation_id,
                p.rollout_weights,
                p.rollout_bucket_by,
                p.rollout_context_kind,
            )?;
            config.fallthrough.variation = variation;
            config.fallthrough.rollout = rollout;
            let text = format!(
                "Changed the default rule to serve {}",
                serve_label(variations, variation, config.fallthrough.rollout.as_ref())
            );
            ("updateFallthrough", text)
        }
        "updateOffVariation" => {
            let p: VariationIdParams = params(instruction)?;
            let variation = var(&p.variation_id)?;
            config.off_variation = Some(variation);
            let text = format!(
                "Changed the off variation to {}",
                variation_label(variations, variation)
            );
            ("updateOffVariation", text)
        }
        "addPrerequisite" => {
            let p: PrerequisiteParams = params(instruction)?;
            if p.key == flag_key {
                return Err(ModelError::invalid("a flag cannot be its own prerequisite"));
            }
            if config.prerequisites.iter().any(|x| x.key == p.key) {
                return Err(ModelError::invalid(format!(
                    "flag \"{}\" is already a prerequisite: use updatePrerequisite to change its variation",
                    p.key
                )));
            }
            let variation = prerequisite_variation(&p.key, &p.variation_id)?;
            config.prerequisites.push(Prerequisite {
                key: p.key.clone(),
                variation,
            });
            let text = format!("Added prerequisite `{}` (variation {variation})", p.key);
            ("updatePrerequisites", text)
        }
        "updatePrerequisite" => {
            let p: PrerequisiteParams = params(instruction)?;
            let pos = config
                .prerequisites
                .iter()
                .position(|x| x.key == p.key)
                .ok_or_else(|| {
                    ModelError::invalid(format!(
                        "flag \"{}\" is not a prerequisite: use addPrerequisite",
                        p.key
                    ))
                })?;
            let variation = prerequisite_variation(&p.key, &p.variation_id)?;
            config.prerequisites[pos].variation = variation;
            let text = format!("Changed prerequisite `{}` to variation {variation}", p.key);
            ("updatePrerequisites", text)
        }
        "removePrerequisite" => {
            // LaunchDarkly: "Does nothing if this prerequisite does not exist."
            let p: PrerequisiteKeyParams = params(instruction)?;
            config.prerequisites.retain(|x| x.key != p.key);
            (
                "updatePrerequisites",
                format!("Removed prerequisite `{}`", p.key),
            )
        }
        "replacePrerequisites" => {
            let p: ReplacePrerequisitesParams = params(instruction)?;
            let mut prerequisites: Vec<Prerequisite> = Vec::with_capacity(p.prerequisites.len());
            for (pi, pre) in p.prerequisites.into_iter().enumerate() {
                let at = |e: ModelError| map_message(e, |m| format!("prerequisites[{pi}]: {m}"));
                if pre.key == flag_key {
                    return Err(at(ModelError::invalid(
                        "a flag cannot be its own prerequisite",
                    )));
                }
                if prerequisites.iter().any(|x| x.key == pre.key) {
                    return Err(at(ModelError::invalid(format!(
                        "flag \"{}\" is listed twice",
                        pre.key
                    ))));
                }
                let variation = prerequisite_variation(&pre.key, &pre.variation_id).map_err(at)?;
                prerequisites.push(Prerequisite {
                    key: pre.key,
                    variation,
                });
            }
            let keys: Vec<String> = prerequisites
                .iter()
                .map(|p| format!("`{}`", p.key))
                .collect();
            let text = if keys.is_empty() {
                "Removed all prerequisites".to_string()
            } else {
                format!("Replaced the prerequisites with {}", list(&keys))
            };
            config.prerequisites = prerequisites;
            ("updatePrerequisites", text)
        }
        "updateTrackEvents" => {
            let p: TrackEventsParams = params(instruction)?;
            config.track_events = p.track_events;
            let text = format!(
                "Turned {} event tracking",
                if p.track_events { "on" } else { "off" }
            );
            ("updateTrackEvents", text)
        }
        "updateTrackEventsFallthrough" => {
            let p: TrackEventsParams = params(instruction)?;
            config.track_events_fallthrough = p.track_events;
            let text = format!(
                "Turned {} event tracking for the default rule",
                if p.track_events { "on" } else { "off" }
            );
            ("updateTrackEvents", text)
        }
        other => {
            return Err(ModelError::invalid(format!(
                "instruction kind \"{other}\" is not an environment instruction"
            )));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Flag-wide instructions
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddVariationParams {
    value: Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateVariationParams {
    variation_id: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// LaunchDarkly's own example spells these `OnVariationValue` / `OffVariationValue`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateDefaultVariationParams {
    #[serde(default, alias = "OnVariationValue")]
    on_variation_value: Option<Value>,
    #[serde(default, alias = "OffVariationValue")]
    off_variation_value: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientSideAvailabilityParams {
    #[serde(default)]
    using_mobile_key: Option<bool>,
    #[serde(default)]
    using_environment_id: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CustomPropertyParams {
    key: String,
    name: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RemoveCustomPropertyParams {
    key: String,
    /// Accepted (LaunchDarkly's example sends it) and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    values: Vec<String>,
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

fn apply_flag_wide_instruction(
    flag: &mut FeatureFlag,
    kind: &str,
    instruction: &Map<String, Value>,
    now: UnixMillis,
) -> Result<(&'static str, String), ModelError> {
    if let Some(done) = apply_metadata_instruction(
        "flag",
        &mut flag.name,
        &mut flag.description,
        &mut flag.tags,
        kind,
        instruction,
    )? {
        return Ok(done);
    }
    Ok(match kind {
        "addVariation" => {
            let p: AddVariationParams = params(instruction)?;
            check_variation_value(&flag.variations, &p.value, None)?;
            flag.variations.push(Variation {
                id: new_uuid(),
                value: p.value,
                name: non_empty(p.name),
                description: non_empty(p.description),
            });
            let text = format!(
                "Added variation {}",
                variation_label(&flag.variations, flag.variations.len() - 1)
            );
            ("updateFlagVariations", text)
        }
        "removeVariation" => {
            let p: VariationIdParams = params(instruction)?;
            let idx = variation_index(&flag.variations, &p.variation_id, "variationId")?;
            let label = variation_label(&flag.variations, idx);
            if flag.variations.len() <= 2 {
                return Err(ModelError::invalid(format!(
                    "cannot remove variation {label}: a flag needs at least two variations"
                )));
            }
            let uses = variation_uses(flag, idx);
            if !uses.is_empty() {
                return Err(ModelError::invalid(format!(
                    "cannot remove variation {label}: it is in use ({}); serve another variation there first",
                    uses.join("; ")
                )));
            }
            remove_variation_at(flag, idx);
            ("updateFlagVariations", format!("Removed variation {label}"))
        }
        "updateVariation" => {
            let p: UpdateVariationParams = params(instruction)?;
            let idx = variation_index(&flag.variations, &p.variation_id, "variationId")?;
            if p.value.is_none() && p.name.is_none() && p.description.is_none() {
                return Err(ModelError::invalid(
                    "give at least one of value, name and description",
                ));
            }
            let before = variation_label(&flag.variations, idx);
            if let Some(value) = p.value {
                check_variation_value(&flag.variations, &value, Some(idx))?;
                flag.variations[idx].value = value;
            }
            if let Some(name) = p.name {
                flag.variations[idx].name = non_empty(Some(name));
            }
            if let Some(description) = p.description {
                flag.variations[idx].description = non_empty(Some(description));
            }
            let after = variation_label(&flag.variations, idx);
            let text = if before == after {
                format!("Updated variation {after}")
            } else {
                format!("Updated variation {before} to {after}")
            };
            ("updateFlagVariations", text)
        }
        "updateDefaultVariation" => {
            let p: UpdateDefaultVariationParams = params(instruction)?;
            if p.on_variation_value.is_none() && p.off_variation_value.is_none() {
                return Err(ModelError::invalid(
                    "give onVariationValue and/or offVariationValue (variation values, not ids)",
                ));
            }
            let n = flag.variations.len();
            let mut defaults = flag.defaults.unwrap_or(Defaults {
                on_variation: 0,
                off_variation: n.saturating_sub(1),
            });
            let find = |value: &Value, what: &str| -> Result<usize, ModelError> {
                flag.variations
                    .iter()
                    .position(|v| v.value == *value)
                    .ok_or_else(|| {
                        let values: Vec<String> =
                            flag.variations.iter().map(|v| v.value.to_string()).collect();
                        ModelError::invalid(format!(
                            "{what} {value} is not the value of any variation of this flag (values: {})",
                            values.join(", ")
                        ))
                    })
            };
            let mut parts = Vec::new();
            if let Some(value) = &p.on_variation_value {
                defaults.on_variation = find(value, "onVariationValue")?;
                parts.push(format!(
                    "the default on variation to {}",
                    variation_label(&flag.variations, defaults.on_variation)
                ));
            }
            if let Some(value) = &p.off_variation_value {
                defaults.off_variation = find(value, "offVariationValue")?;
                parts.push(format!(
                    "the default off variation to {}",
                    variation_label(&flag.variations, defaults.off_variation)
                ));
            }
            flag.defaults = Some(defaults);
            (
                "updateFlagDefaultVariations",
                format!("Changed {}", parts.join(" and ")),
            )
        }
        "updateMaintainerMember" | "updateMaintainer" => {
            let p: ValueParams = params(instruction)?;
            if p.value.is_empty() {
                return Err(ModelError::invalid("value must be a member id"));
            }
            let text = format!("Changed the maintainer to member `{}`", p.value);
            flag.maintainer_id = Some(p.value);
            flag.maintainer_team_key = None;
            ("updateMaintainer", text)
        }
        "updateMaintainerTeam" => {
            let p: ValueParams = params(instruction)?;
            if p.value.is_empty() {
                return Err(ModelError::invalid("value must be a team key"));
            }
            let text = format!("Changed the maintainer to team `{}`", p.value);
            flag.maintainer_team_key = Some(p.value);
            flag.maintainer_id = None;
            ("updateMaintainer", text)
        }
        "removeMaintainer" => {
            params::<NoParams>(instruction)?;
            flag.maintainer_id = None;
            flag.maintainer_team_key = None;
            ("updateMaintainer", "Removed the maintainer".to_string())
        }
        "archiveFlag" | "restoreFlag" => {
            params::<NoParams>(instruction)?;
            let archive = kind == "archiveFlag";
            if archive != flag.archived {
                flag.archived = archive;
                flag.archived_date = archive.then_some(now);
            }
            for c in flag.environments.values_mut() {
                c.archived = archive;
            }
            let text = if archive {
                "Archived the flag"
            } else {
                "Restored the flag"
            };
            ("updateGlobalArchived", text.to_string())
        }
        "deprecateFlag" | "restoreDeprecatedFlag" => {
            params::<NoParams>(instruction)?;
            let deprecate = kind == "deprecateFlag";
            if deprecate != flag.deprecated {
                flag.deprecated = deprecate;
                flag.deprecated_date = deprecate.then_some(now);
            }
            let text = if deprecate {
                "Deprecated the flag"
            } else {
                "Restored the deprecated flag"
            };
            ("updateDeprecated", text.to_string())
        }
        "makeFlagPermanent" | "makeFlagTemporary" => {
            params::<NoParams>(instruction)?;
            flag.temporary = kind == "makeFlagTemporary";
            let text = if flag.temporary {
                "Marked the flag as temporary"
            } else {
                "Marked the flag as permanent"
            };
            ("updateTemporary", text.to_string())
        }
        "turnOnClientSideAvailability" | "turnOffClientSideAvailability" => {
            let p: ValueParams = params(instruction)?;
            let on = kind == "turnOnClientSideAvailability";
            let which = match p.value.as_str() {
                "usingMobileKey" => {
                    flag.client_side_availability.using_mobile_key = on;
                    "SDKs using a mobile key"
                }
                "usingEnvironmentId" => {
                    flag.client_side_availability.using_environment_id = on;
                    "SDKs using the client-side ID"
                }
                other => {
                    return Err(ModelError::invalid(format!(
                        "value \"{other}\" is not a client-side availability: use \"usingMobileKey\" or \"usingEnvironmentId\""
                    )));
                }
            };
            flag.include_in_snippet = flag.client_side_availability.using_environment_id;
            let text = format!(
                "Turned {} availability for {which}",
                if on { "on" } else { "off" }
            );
            ("updateClientSideFlagAvailability", text)
        }
        "updateClientSideAvailability" => {
            let p: ClientSideAvailabilityParams = params(instruction)?;
            if p.using_mobile_key.is_none() && p.using_environment_id.is_none() {
                return Err(ModelError::invalid(
                    "give usingMobileKey and/or usingEnvironmentId",
                ));
            }
            let csa = &mut flag.client_side_availability;
            if let Some(v) = p.using_mobile_key {
                csa.using_mobile_key = v;
            }
            if let Some(v) = p.using_environment_id {
                csa.using_environment_id = v;
            }
            flag.include_in_snippet = csa.using_environment_id;
            let text = format!(
                "Changed client-side availability to usingMobileKey: {}, usingEnvironmentId: {}",
                csa.using_mobile_key, csa.using_environment_id
            );
            ("updateClientSideFlagAvailability", text)
        }
        "addCustomProperties" | "replaceCustomProperties" => {
            let p: CustomPropertyParams = params(instruction)?;
            if p.key.is_empty() {
                return Err(ModelError::invalid("key must not be empty"));
            }
            if p.name.trim().is_empty() {
                return Err(ModelError::invalid("name must not be empty"));
            }
            let entry = flag
                .custom_properties
                .entry(p.key.clone())
                .or_insert_with(|| CustomProperty {
                    name: String::new(),
                    value: Vec::new(),
                });
            entry.name = p.name;
            let text = if kind == "addCustomProperties" {
                for v in &p.values {
                    if !entry.value.contains(v) {
                        entry.value.push(v.clone());
                    }
                }
                format!(
                    "Added values {} to custom property *{}*",
                    list(&p.values),
                    entry.name
                )
            } else {
                entry.value = p.values;
                format!(
                    "Set custom property *{}* to {}",
                    entry.name,
                    list(&entry.value)
                )
            };
            ("updateFlagCustomProperties", text)
        }
        "removeCustomProperties" => {
            let p: RemoveCustomPropertyParams = params(instruction)?;
            if let Some(prop) = flag.custom_properties.get_mut(&p.key) {
                prop.value.retain(|v| !p.values.contains(v));
                if prop.value.is_empty() {
                    flag.custom_properties.remove(&p.key);
                }
            }
            let text = format!(
                "Removed values {} from custom property `{}`",
                list(&p.values),
                p.key
            );
            ("updateFlagCustomProperties", text)
        }
        other => {
            return Err(ModelError::invalid(format!(
                "instruction kind \"{other}\" is not a flag-wide instruction"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::{ClientSideAvailability, FlagKind};
    use serde_json::json;

    fn create(body: Value) -> FeatureFlag {
        FeatureFlag::create(
            serde_json::from_value(body).unwrap(),
            &["production".into(), "test".into()],
            ClientSideAvailability::default(),
            1,
        )
        .unwrap()
    }

    fn boolean() -> FeatureFlag {
        create(json!({"key":"f","name":"F"}))
    }

    /// Variations a, b, c; defaults on a, off c.
    fn multi() -> FeatureFlag {
        create(json!({"key":"m","name":"M",
            "variations":[{"value":"a"},{"value":"b","name":"Bee"},{"value":"c"}]}))
    }

    fn resolver(key: &str, variation_id: &str) -> Result<usize, ModelError> {
        match (key, variation_id) {
            ("other", "other-true") => Ok(0),
            ("other", "other-false") => Ok(1),
            ("other", _) => Err(ModelError::invalid(format!(
                "variationId \"{variation_id}\" is not a variation of flag \"other\""
            ))),
            _ => Err(ModelError::invalid(format!(
                "flag \"{key}\" does not exist"
            ))),
        }
    }

    fn apply(
        flag: &FeatureFlag,
        env: Option<&str>,
        instructions: Value,
    ) -> Result<(FeatureFlag, Vec<AppliedInstruction>), ModelError> {
        let mut body = json!({ "instructions": instructions });
        if let Some(env) = env {
            body["environmentKey"] = json!(env);
        }
        let patch: SemanticPatch = serde_json::from_value(body).unwrap();
        apply_to_flag(flag, &patch, &resolver, 777)
    }

    fn prod(
        flag: &FeatureFlag,
        instructions: Value,
    ) -> Result<(FeatureFlag, Vec<AppliedInstruction>), ModelError> {
        apply(flag, Some("production"), instructions)
    }

    fn ok(flag: &FeatureFlag, instructions: Value) -> (FeatureFlag, Vec<AppliedInstruction>) {
        prod(flag, instructions).unwrap()
    }

    fn err(flag: &FeatureFlag, instructions: Value) -> String {
        prod(flag, instructions).unwrap_err().to_string()
    }

    fn vid(flag: &FeatureFlag, i: usize) -> String {
        flag.variations[i].id.clone()
    }

    /// A boolean flag with one production rule serving `false`, with one clause.
    fn with_rule() -> (FeatureFlag, String, String) {
        let f = boolean();
        let (f, _) = ok(
            &f,
            json!([{"kind":"addRule","variationId":vid(&f,1),"description":"Beta",
                    "clauses":[{"attribute":"email","op":"endsWith","values":["@x.com"]}]}]),
        );
        let rule = &f.environments["production"].rules[0];
        let (rid, cid) = (rule.id.clone(), rule.clauses[0].id.clone());
        (f, rid, cid)
    }

    #[test]
    fn turn_on_and_off() {
        let f = boolean();
        let (g, applied) = ok(&f, json!([{"kind":"turnFlagOn"}]));
        assert!(g.environments["production"].on);
        assert!(!g.environments["test"].on);
        assert_eq!(g.version, f.version);
        assert_eq!(g.environments["production"].version, 1);
        assert_eq!(
            g.environments["production"].last_modified,
            f.environments["production"].last_modified
        );
        assert_eq!(
            applied,
            vec![AppliedInstruction {
                kind: "turnFlagOn".into(),
                action: "updateOn",
                environment: Some("production".into()),
                description: "Turned on the flag".into(),
            }]
        );
        let (h, applied) = ok(&g, json!([{"kind":"turnFlagOff"}]));
        assert!(!h.environments["production"].on);
        assert_eq!(applied[0].description, "Turned off the flag");
        // Extra parameters are refused.
        assert!(
            err(&f, json!([{"kind":"turnFlagOn","value":true}])).contains("unknown field `value`")
        );
    }

    #[test]
    fn environment_key_required_and_checked() {
        let f = boolean();
        let e = apply(&f, None, json!([{"kind":"turnFlagOn"}])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "instruction 0 (turnFlagOn): this instruction changes one environment"
            )
        );
        let e = apply(&f, Some("staging"), json!([{"kind":"turnFlagOn"}])).unwrap_err();
        assert!(e.to_string().contains("\"staging\""), "{e}");
        assert!(e.to_string().contains("production, test"), "{e}");
        // Flag-wide instructions ignore the environment key, even an unknown one.
        let (g, applied) = apply(
            &f,
            Some("staging"),
            json!([{"kind":"updateName","value":"New"}]),
        )
        .unwrap();
        assert_eq!(g.name, "New");
        assert_eq!(applied[0].environment, None);
        assert_eq!(applied[0].description, "Changed the name to *New*");
    }

    #[test]
    fn unknown_missing_and_malformed_kinds() {
        let f = boolean();
        let e = err(&f, json!([{"kind":"turnFlagOn"},{"kind":"explode"}]));
        assert!(
            e.starts_with("instruction 1: unknown semantic patch instruction kind \"explode\"; supported kinds: turnFlagOn, "),
            "{e}"
        );
        assert!(e.contains("removeCustomProperties"));
        assert!(err(&f, json!([{"values":["x"]}])).contains("instruction 0: missing \"kind\""));
        assert!(err(&f, json!([{"kind":3}])).contains("\"kind\" must be a string"));
        assert!(err(&f, json!([{"kind":"deleteFlag"}])).contains("DELETE /api/v2/flags"));
        let e = prod(&f, json!([])).unwrap_err();
        assert!(e.to_string().contains("at least one instruction"));
    }

    #[test]
    fn wrong_and_unknown_params_are_invalid() {
        let f = boolean();
        let e = prod(
            &f,
            json!([{"kind":"updateTrackEvents","trackEvents":"yes"}]),
        )
        .unwrap_err();
        assert!(matches!(e, ModelError::Invalid(_)));
        assert!(
            e.to_string()
                .starts_with("instruction 0 (updateTrackEvents): invalid parameters: invalid type"),
            "{e}"
        );
        let e = err(
            &f,
            json!([{"kind":"addTargets","values":["u"],"variationId":vid(&f,0),"colour":1}]),
        );
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = err(&f, json!([{"kind":"addTargets","values":["u"]}]));
        assert!(e.contains("missing field `variationId`"), "{e}");
    }

    #[test]
    fn add_rule_with_variation_and_position() {
        let (f, rid, cid) = with_rule();
        let rule = &f.environments["production"].rules[0];
        assert_eq!(rule.variation, Some(1));
        assert_eq!(rule.description.as_deref(), Some("Beta"));
        assert!(!rid.is_empty() && !cid.is_empty());
        assert!(f.environments["test"].rules.is_empty());
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addRule","variationId":vid(&f,0),"beforeRuleId":rid,"trackEvents":true,"ref":"r1",
                    "clauses":[{"_id":"c1","contextKind":"org","attribute":"key","op":"in","values":["o"],"negate":true},
                               {"op":"segmentMatch","values":["beta"]}]}]),
        );
        let rules = &g.environments["production"].rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].id, rid);
        let new = &rules[0];
        assert_eq!(new.variation, Some(0));
        assert!(new.track_events);
        assert_eq!(new.r#ref.as_deref(), Some("r1"));
        assert_eq!(new.clauses[0].id, "c1");
        assert_eq!(new.clauses[0].context_kind.as_deref(), Some("org"));
        assert!(new.clauses[0].negate);
        assert_eq!(new.clauses[1].attribute, "segmentMatch");
        assert_eq!(applied[0].action, "updateRules");
        assert_eq!(applied[0].description, "Added a rule serving *true*");
    }

    #[test]
    fn add_rule_with_rollout() {
        let f = multi();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addRule","clauses":[],"rolloutBucketBy":"email",
                    "rolloutWeights":{(vid(&f,2)):25000,(vid(&f,0)):75000}}]),
        );
        let r = g.environments["production"].rules[0]
            .rollout
            .clone()
            .unwrap();
        assert_eq!(
            r.variations,
            vec![
                WeightedVariation {
                    variation: 0,
                    weight: 75000,
                    untracked: false
                },
                WeightedVariation {
                    variation: 2,
                    weight: 25000,
                    untracked: false
                },
            ]
        );
        assert_eq!(r.bucket_by.as_deref(), Some("email"));
        assert_eq!(r.context_kind.as_deref(), Some("user"));
        assert_eq!(r.seed, None);
        assert_eq!(
            applied[0].description,
            "Added a rule serving a percentage rollout (75% *a*, 25% *c*)"
        );
    }

    #[test]
    fn add_rule_failures() {
        let f = boolean();
        let e = err(
            &f,
            json!([{"kind":"turnFlagOn"},{"kind":"turnFlagOff"},{"kind":"addRule","variationId":"x","clauses":[]}]),
        );
        assert!(
            e.starts_with(
                "instruction 2 (addRule): variationId \"x\" is not a variation of this flag"
            ),
            "{e}"
        );
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[],"rolloutWeights":{(vid(&f,0)):50000}}]),
        );
        assert!(e.contains("add up to 50000"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[],"rolloutWeights":{(vid(&f,0)):150000,(vid(&f,1)):-50000}}]),
        );
        assert!(e.contains("out of range"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[],"rolloutWeights":{"nope":100000}}]),
        );
        assert!(e.contains("rolloutWeights key \"nope\""), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[],"variationId":vid(&f,0),"rolloutWeights":{(vid(&f,0)):100000}}]),
        );
        assert!(e.contains("not both"), "{e}");
        let e = err(&f, json!([{"kind":"addRule","clauses":[]}]));
        assert!(e.contains("give variationId"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[{"attribute":"a","op":"equals","values":[1]}],"variationId":vid(&f,0)}]),
        );
        assert!(
            e.contains("op \"equals\" is not a LaunchDarkly operator"),
            "{e}"
        );
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[{"op":"in","values":[1]}],"variationId":vid(&f,0)}]),
        );
        assert!(e.contains("needs an attribute"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addRule","clauses":[],"variationId":vid(&f,0),"beforeRuleId":"zzz"}]),
        );
        assert!(
            e.contains("beforeRuleId \"zzz\" does not match any rule (there are no rules)"),
            "{e}"
        );
    }

    #[test]
    fn remove_reorder_and_replace_rules() {
        let (f, rid, _) = with_rule();
        let (f, _) = ok(
            &f,
            json!([{"kind":"addRule","variationId":vid(&f,0),"clauses":[]}]),
        );
        let rid2 = f.environments["production"].rules[1].id.clone();
        let (g, applied) = ok(&f, json!([{"kind":"reorderRules","ruleIds":[rid2, rid]}]));
        let ids: Vec<&str> = g.environments["production"]
            .rules
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, vec![rid2.as_str(), rid.as_str()]);
        assert_eq!(applied[0].action, "updateRules");
        for bad in [
            json!([rid.clone()]),
            json!([rid.clone(), rid.clone()]),
            json!([rid.clone(), "x"]),
        ] {
            let e = err(&f, json!([{"kind":"reorderRules","ruleIds":bad}]));
            assert!(
                e.contains("ruleIds must list every current rule exactly once"),
                "{e}"
            );
        }
        let (g, applied) = ok(&f, json!([{"kind":"removeRule","ruleId":rid}]));
        assert_eq!(g.environments["production"].rules.len(), 1);
        assert_eq!(applied[0].description, "Removed rule \"Beta\"");
        // LaunchDarkly: removing a rule that does not exist does nothing.
        let (h, _) = ok(&g, json!([{"kind":"removeRule","ruleId":"gone"}]));
        assert_eq!(h, g);
        let (g, applied) = ok(
            &f,
            json!([{"kind":"replaceRules","rules":[
                {"variationId":vid(&f,0),"description":"Only","trackEvents":true,
                 "clauses":[{"contextKind":"user","attribute":"segmentMatch","op":"segmentMatch","values":["test"]}]}]}]),
        );
        let rules = &g.environments["production"].rules;
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].description.as_deref(), Some("Only"));
        assert!(rules[0].track_events);
        assert_eq!(applied[0].description, "Replaced the rules with 1 rule");
        let e = err(
            &f,
            json!([{"kind":"replaceRules","rules":[{"variationId":"x","clauses":[]}]}]),
        );
        assert!(e.contains("rules[0]: variationId \"x\""), "{e}");
    }

    #[test]
    fn clause_instructions() {
        let (f, rid, cid) = with_rule();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addClauses","ruleId":rid,"clauses":[{"attribute":"country","op":"in","values":["US"]}]}]),
        );
        let clauses = &g.environments["production"].rules[0].clauses;
        assert_eq!(clauses.len(), 2);
        assert_ne!(clauses[1].id, cid);
        assert_eq!(applied[0].description, "Added 1 clause to rule \"Beta\"");
        let new_cid = clauses[1].id.clone();

        let (h, _) = ok(
            &g,
            json!([{"kind":"removeClauses","ruleId":rid,"clauseIds":[cid]}]),
        );
        assert_eq!(h.environments["production"].rules[0].clauses.len(), 1);
        assert_eq!(h.environments["production"].rules[0].clauses[0].id, new_cid);

        let (h, _) = ok(
            &g,
            json!([{"kind":"updateClause","ruleId":rid,"clauseId":cid,
                    "clause":{"contextKind":"user","attribute":"country","op":"in","negate":false,"values":["MX","CA"]}}]),
        );
        let c = &h.environments["production"].rules[0].clauses[0];
        assert_eq!(c.id, cid);
        assert_eq!(c.attribute, "country");
        assert_eq!(c.values, vec![json!("MX"), json!("CA")]);

        let (h, _) = ok(
            &f,
            json!([{"kind":"addValuesToClause","ruleId":rid,"clauseId":cid,"values":["@y.com","@x.com"]}]),
        );
        assert_eq!(
            h.environments["production"].rules[0].clauses[0].values,
            vec![json!("@x.com"), json!("@y.com")]
        );
        let (h, applied) = ok(
            &h,
            json!([{"kind":"removeValuesFromClause","ruleId":rid,"clauseId":cid,"values":["@x.com"]}]),
        );
        assert_eq!(
            h.environments["production"].rules[0].clauses[0].values,
            vec![json!("@y.com")]
        );
        assert_eq!(applied[0].action, "updateRules");

        let e = err(
            &f,
            json!([{"kind":"addClauses","ruleId":"nope","clauses":[]}]),
        );
        assert!(
            e.starts_with(
                "instruction 0 (addClauses): ruleId \"nope\" does not match any rule (rule ids: "
            ),
            "{e}"
        );
        let e = err(
            &f,
            json!([{"kind":"removeClauses","ruleId":rid,"clauseIds":["nope"]}]),
        );
        assert!(
            e.contains("clauseId \"nope\" does not match any clause"),
            "{e}"
        );
        let e = err(
            &f,
            json!([{"kind":"addClauses","ruleId":rid,"clauses":[{"_id":cid,"attribute":"a","op":"in","values":[]}]}]),
        );
        assert!(e.contains("clause ids must be unique"), "{e}");
    }

    #[test]
    fn rule_serving_description_and_tracking() {
        let (f, rid, _) = with_rule();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"updateRuleVariationOrRollout","ruleId":rid,"variationId":vid(&f,0)}]),
        );
        assert_eq!(g.environments["production"].rules[0].variation, Some(0));
        assert_eq!(applied[0].action, "updateRules");
        assert_eq!(
            applied[0].description,
            "Changed rule \"Beta\" to serve *true*"
        );
        let (g, _) = ok(
            &g,
            json!([{"kind":"updateRuleVariationOrRollout","ruleId":rid,"rolloutContextKind":"org",
                    "rolloutWeights":{(vid(&f,0)):50000,(vid(&f,1)):50000}}]),
        );
        let r = &g.environments["production"].rules[0];
        assert_eq!(r.variation, None);
        assert_eq!(
            r.rollout.as_ref().unwrap().context_kind.as_deref(),
            Some("org")
        );

        let (g, applied) = ok(
            &f,
            json!([{"kind":"updateRuleDescription","ruleId":rid,"description":"Gamma"}]),
        );
        assert_eq!(
            g.environments["production"].rules[0].description.as_deref(),
            Some("Gamma")
        );
        assert_eq!(applied[0].action, "updateFlagRuleDescription");

        let (g, applied) = ok(
            &f,
            json!([{"kind":"updateRuleTrackEvents","ruleId":rid,"trackEvents":true}]),
        );
        assert!(g.environments["production"].rules[0].track_events);
        assert_eq!(applied[0].action, "updateTrackEvents");
        let e = err(
            &f,
            json!([{"kind":"updateRuleTrackEvents","ruleId":"nope","trackEvents":true}]),
        );
        assert!(e.contains("ruleId \"nope\""), "{e}");
    }

    #[test]
    fn add_and_remove_targets() {
        let f = boolean();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addTargets","values":["u1","u2"],"variationId":vid(&f,1)}]),
        );
        let c = &g.environments["production"];
        assert_eq!(
            c.targets,
            vec![Target {
                values: vec!["u1".into(), "u2".into()],
                variation: 1,
                context_kind: Some("user".into())
            }]
        );
        assert!(c.context_targets.is_empty());
        assert_eq!(applied[0].action, "updateTargets");
        assert_eq!(applied[0].description, "Added targets u1, u2 to *false*");

        let (g, applied) = ok(
            &g,
            json!([{"kind":"addTargets","contextKind":"org","values":["o1"],"variationId":vid(&f,0)},
                   {"kind":"addContextTargets","contextKind":"device","values":["d1"],"variationId":vid(&f,0)},
                   {"kind":"addUserTargets","values":["u3","u1"],"variationId":vid(&f,1)},
                   {"kind":"addTargets","contextKind":"org","values":["o1","o2"],"variationId":vid(&f,0)}]),
        );
        let c = &g.environments["production"];
        assert_eq!(c.targets[0].values, vec!["u1", "u2", "u3"]);
        assert_eq!(c.context_targets.len(), 2);
        assert_eq!(c.context_targets[0].context_kind.as_deref(), Some("org"));
        assert_eq!(c.context_targets[0].values, vec!["o1", "o2"]);
        assert_eq!(applied[0].description, "Added org targets o1 to *true*");

        // The same key in another variation of the same kind is refused; another kind is fine.
        let e = err(
            &g,
            json!([{"kind":"addUserTargets","values":["u2"],"variationId":vid(&f,0)}]),
        );
        assert!(
            e.contains("user \"u2\" is already individually targeted to *false*"),
            "{e}"
        );
        let e = err(
            &g,
            json!([{"kind":"addTargets","contextKind":"org","values":["o2"],"variationId":vid(&f,1)}]),
        );
        assert!(
            e.contains("org \"o2\" is already individually targeted to *true*"),
            "{e}"
        );
        ok(
            &g,
            json!([{"kind":"addTargets","contextKind":"org","values":["u2"],"variationId":vid(&f,1)}]),
        );
        let e = err(
            &g,
            json!([{"kind":"addContextTargets","values":["d"],"variationId":vid(&f,1)}]),
        );
        assert!(e.contains("missing field `contextKind`"), "{e}");

        let (h, applied) = ok(
            &g,
            json!([{"kind":"removeTargets","values":["u1","u2"],"variationId":vid(&f,1)},
                   {"kind":"removeUserTargets","values":["u3","zz"],"variationId":vid(&f,1)},
                   {"kind":"removeContextTargets","contextKind":"device","values":["d1"],"variationId":vid(&f,0)},
                   {"kind":"removeTargets","contextKind":"org","values":["o1"],"variationId":vid(&f,0)}]),
        );
        let c = &h.environments["production"];
        assert!(c.targets.is_empty(), "empty entries are dropped");
        assert_eq!(c.context_targets.len(), 1);
        assert_eq!(c.context_targets[0].values, vec!["o2"]);
        assert_eq!(
            applied[0].description,
            "Removed targets u1, u2 from *false*"
        );
    }

    #[test]
    fn replace_and_clear_targets() {
        let f = boolean();
        let (g, _) = ok(
            &f,
            json!([{"kind":"addTargets","values":["u1"],"variationId":vid(&f,0)},
                   {"kind":"addTargets","contextKind":"org","values":["o1"],"variationId":vid(&f,0)},
                   {"kind":"addTargets","values":["u2"],"variationId":vid(&f,1)}]),
        );
        let (h, _) = ok(
            &g,
            json!([{"kind":"replaceTargets","targets":[
                {"contextKind":"user","variationId":vid(&f,1),"values":["a","b"]},
                {"contextKind":"device","variationId":vid(&f,0),"values":["d"]}]}]),
        );
        let c = &h.environments["production"];
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].values, vec!["a", "b"]);
        assert_eq!(c.context_targets.len(), 1);
        assert_eq!(c.context_targets[0].context_kind.as_deref(), Some("device"));
        let e = err(
            &g,
            json!([{"kind":"replaceTargets","targets":[
                {"variationId":vid(&f,1),"values":["a"]},{"variationId":vid(&f,0),"values":["a"]}]}]),
        );
        assert!(
            e.contains("targets[1]: user \"a\" is already individually targeted"),
            "{e}"
        );

        let (h, _) = ok(
            &g,
            json!([{"kind":"replaceUserTargets","targets":[{"variationId":vid(&f,0),"values":["x"]}]}]),
        );
        let c = &h.environments["production"];
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].values, vec!["x"]);
        assert_eq!(c.context_targets.len(), 1, "non-user targets are kept");

        let (h, _) = ok(
            &g,
            json!([{"kind":"clearUserTargets","variationId":vid(&f,0)}]),
        );
        let c = &h.environments["production"];
        assert_eq!(c.targets.len(), 1);
        assert_eq!(c.targets[0].variation, 1);
        assert_eq!(c.context_targets.len(), 1);

        let (h, applied) = ok(&g, json!([{"kind":"clearTargets","variationId":vid(&f,0)}]));
        let c = &h.environments["production"];
        assert_eq!(c.targets.len(), 1);
        assert!(c.context_targets.is_empty());
        assert_eq!(
            applied[0].description,
            "Removed all individual targets from *true*"
        );
    }

    #[test]
    fn fallthrough_off_variation_and_tracking() {
        let f = boolean();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"updateFallthroughVariationOrRollout","variationId":vid(&f,1)},
                   {"kind":"updateOffVariation","variationId":vid(&f,0)},
                   {"kind":"updateTrackEvents","trackEvents":true},
                   {"kind":"updateTrackEventsFallthrough","trackEvents":true}]),
        );
        let c = &g.environments["production"];
        assert_eq!(c.fallthrough.variation, Some(1));
        assert_eq!(c.off_variation, Some(0));
        assert!(c.track_events && c.track_events_fallthrough);
        let actions: Vec<&str> = applied.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![
                "updateFallthrough",
                "updateOffVariation",
                "updateTrackEvents",
                "updateTrackEvents"
            ]
        );
        assert_eq!(
            applied[0].description,
            "Changed the default rule to serve *false*"
        );
        assert_eq!(
            applied[1].description,
            "Changed the off variation to *true*"
        );

        let (g, _) = ok(
            &g,
            json!([{"kind":"updateFallthroughVariationOrRollout","rolloutWeights":{(vid(&f,0)):10000,(vid(&f,1)):90000}}]),
        );
        let ft = &g.environments["production"].fallthrough;
        assert_eq!(ft.variation, None);
        assert_eq!(ft.rollout.as_ref().unwrap().variations.len(), 2);
        let e = err(
            &f,
            json!([{"kind":"updateFallthroughVariationOrRollout","variationId":vid(&f,0),"rolloutBucketBy":"x"}]),
        );
        assert!(e.contains("only apply to a percentage rollout"), "{e}");
        let e = err(&f, json!([{"kind":"updateOffVariation","variationId":"x"}]));
        assert!(e.contains("variationId \"x\" is not a variation"), "{e}");
    }

    #[test]
    fn prerequisites() {
        let f = boolean();
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addPrerequisite","key":"other","variationId":"other-true"}]),
        );
        assert_eq!(
            g.environments["production"].prerequisites,
            vec![Prerequisite {
                key: "other".into(),
                variation: 0
            }]
        );
        assert_eq!(applied[0].action, "updatePrerequisites");
        let e = err(
            &g,
            json!([{"kind":"addPrerequisite","key":"other","variationId":"other-false"}]),
        );
        assert!(e.contains("already a prerequisite"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addPrerequisite","key":"f","variationId":"x"}]),
        );
        assert!(e.contains("cannot be its own prerequisite"), "{e}");
        let e = err(
            &f,
            json!([{"kind":"addPrerequisite","key":"ghost","variationId":"x"}]),
        );
        assert_eq!(
            e,
            "instruction 0 (addPrerequisite): flag \"ghost\" does not exist"
        );

        let (h, _) = ok(
            &g,
            json!([{"kind":"updatePrerequisite","key":"other","variationId":"other-false"}]),
        );
        assert_eq!(h.environments["production"].prerequisites[0].variation, 1);
        let e = err(
            &f,
            json!([{"kind":"updatePrerequisite","key":"other","variationId":"other-false"}]),
        );
        assert!(e.contains("is not a prerequisite"), "{e}");
        let e = err(
            &g,
            json!([{"kind":"updatePrerequisite","key":"other","variationId":"bad"}]),
        );
        assert!(
            e.contains("variationId \"bad\" is not a variation of flag \"other\""),
            "{e}"
        );

        let (h, _) = ok(
            &g,
            json!([{"kind":"removePrerequisite","key":"other"},{"kind":"removePrerequisite","key":"never"}]),
        );
        assert!(h.environments["production"].prerequisites.is_empty());

        let (h, _) = ok(
            &g,
            json!([{"kind":"replacePrerequisites","prerequisites":[{"key":"other","variationId":"other-false"}]}]),
        );
        assert_eq!(h.environments["production"].prerequisites[0].variation, 1);
        let e = err(
            &g,
            json!([{"kind":"replacePrerequisites","prerequisites":[
                {"key":"other","variationId":"other-false"},{"key":"other","variationId":"other-true"}]}]),
        );
        assert!(
            e.contains("prerequisites[1]: flag \"other\" is listed twice"),
            "{e}"
        );
    }

    #[test]
    fn add_update_and_default_variations() {
        let f = boolean();
        let e = apply(&f, None, json!([{"kind":"addVariation","value":"x"}])).unwrap_err();
        assert!(
            e.to_string()
                .contains("is a string but this flag's variations are booleans"),
            "{e}"
        );
        let e = apply(&f, None, json!([{"kind":"addVariation","value":true}])).unwrap_err();
        assert!(e.to_string().contains("must be unique"), "{e}");

        let f = multi();
        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"addVariation","value":"d","name":"Dee","description":"4th"}]),
        )
        .unwrap();
        assert_eq!(g.variations.len(), 4);
        assert_eq!(g.variations[3].name.as_deref(), Some("Dee"));
        assert_eq!(applied[0].action, "updateFlagVariations");
        assert_eq!(applied[0].environment, None);
        assert_eq!(applied[0].description, "Added variation *Dee*");

        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"updateVariation","variationId":vid(&f,0),"value":"z","name":"Zed"}]),
        )
        .unwrap();
        assert_eq!(g.variations[0].value, json!("z"));
        assert_eq!(applied[0].description, "Updated variation *a* to *Zed*");
        let e = apply(
            &f,
            None,
            json!([{"kind":"updateVariation","variationId":vid(&f,0),"value":"b"}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be unique"), "{e}");
        let e = apply(
            &f,
            None,
            json!([{"kind":"updateVariation","variationId":vid(&f,0)}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one of"), "{e}");

        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"updateDefaultVariation","onVariationValue":"b","OffVariationValue":"a"}]),
        )
        .unwrap();
        assert_eq!(
            g.defaults,
            Some(Defaults {
                on_variation: 1,
                off_variation: 0
            })
        );
        assert_eq!(applied[0].action, "updateFlagDefaultVariations");
        assert_eq!(
            applied[0].description,
            "Changed the default on variation to *Bee* and the default off variation to *a*"
        );
        let e = apply(
            &f,
            None,
            json!([{"kind":"updateDefaultVariation","onVariationValue":"q"}]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("onVariationValue \"q\" is not the value of any variation"),
            "{e}"
        );
    }

    #[test]
    fn kind_is_recomputed() {
        let mut f = boolean();
        f.kind = FlagKind::Multivariate;
        let (g, _) = apply(&f, None, json!([{"kind":"updateName","value":"N"}])).unwrap();
        assert_eq!(g.kind, FlagKind::Boolean);
        let n = create(json!({"key":"n","name":"N","variations":[{"value":1},{"value":2}]}));
        let (g, _) = apply(&n, None, json!([{"kind":"addVariation","value":3}])).unwrap();
        assert_eq!(g.kind, FlagKind::Multivariate);
        assert_eq!(g.variations.len(), 3);
        assert_eq!(g.variations[2].value, json!(3));
    }

    #[test]
    fn remove_variation_refused_when_in_use_and_shifts_indexes() {
        let f = multi();
        // a is the default on variation and every environment's fallthrough.
        let e = apply(
            &f,
            None,
            json!([{"kind":"removeVariation","variationId":vid(&f,0)}]),
        )
        .unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with(
                "instruction 0 (removeVariation): cannot remove variation *a*: it is in use ("
            ),
            "{e}"
        );
        assert!(e.contains("defaults.onVariation"), "{e}");
        assert!(e.contains("production: default rule"), "{e}");
        assert!(e.contains("test: default rule"), "{e}");

        // c (index 2) is used by targets and a rule; b (index 1) is unused.
        let (g, _) = ok(
            &f,
            json!([{"kind":"addTargets","values":["u"],"variationId":vid(&f,2)},
                   {"kind":"addRule","variationId":vid(&f,2),"clauses":[]}]),
        );
        let e = apply(
            &g,
            None,
            json!([{"kind":"removeVariation","variationId":vid(&f,2)}]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("production: individual targets"),
            "{e}"
        );
        assert!(e.to_string().contains("production: rule 1"), "{e}");
        assert!(e.to_string().contains("production: off variation"), "{e}");

        let (h, applied) = apply(
            &g,
            None,
            json!([{"kind":"removeVariation","variationId":vid(&f,1)}]),
        )
        .unwrap();
        assert_eq!(applied[0].description, "Removed variation *Bee*");
        assert_eq!(h.variations.len(), 2);
        assert_eq!(h.variations[1].value, json!("c"));
        assert_eq!(
            h.defaults,
            Some(Defaults {
                on_variation: 0,
                off_variation: 1
            })
        );
        let p = &h.environments["production"];
        assert_eq!(p.off_variation, Some(1));
        assert_eq!(p.targets[0].variation, 1);
        assert_eq!(p.rules[0].variation, Some(1));
        assert_eq!(h.environments["test"].off_variation, Some(1));

        let b = boolean();
        let e = apply(
            &b,
            None,
            json!([{"kind":"removeVariation","variationId":vid(&b,0)}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least two variations"), "{e}");
    }

    #[test]
    fn zero_weight_rollout_share_is_not_a_use() {
        let f = multi();
        let (g, _) = ok(
            &f,
            json!([{"kind":"updateFallthroughVariationOrRollout",
                    "rolloutWeights":{(vid(&f,0)):100000,(vid(&f,1)):0}}]),
        );
        let (h, _) = apply(
            &g,
            None,
            json!([{"kind":"removeVariation","variationId":vid(&f,1)}]),
        )
        .unwrap();
        let r = h.environments["production"]
            .fallthrough
            .rollout
            .clone()
            .unwrap();
        assert_eq!(
            r.variations,
            vec![WeightedVariation {
                variation: 0,
                weight: 100000,
                untracked: false
            }]
        );
    }

    #[test]
    fn name_description_tags_and_maintainers() {
        let f = boolean();
        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"updateName","value":"New"},
                   {"kind":"updateDescription","value":"Desc"},
                   {"kind":"addTags","values":["b","a"]},
                   {"kind":"addTags","values":["c"]},
                   {"kind":"removeTags","values":["b"]},
                   {"kind":"updateMaintainerMember","value":"m1"}]),
        )
        .unwrap();
        assert_eq!(g.name, "New");
        assert_eq!(g.description, "Desc");
        assert_eq!(g.tags, vec!["a", "c"]);
        assert_eq!(g.maintainer_id.as_deref(), Some("m1"));
        let actions: Vec<&str> = applied.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![
                "updateName",
                "updateDescription",
                "updateTags",
                "updateTags",
                "updateTags",
                "updateMaintainer"
            ]
        );
        assert_eq!(applied[2].description, "Added tags b, a");
        let e = apply(&f, None, json!([{"kind":"updateName","value":" "}])).unwrap_err();
        assert!(e.to_string().contains("flag name must not be empty"), "{e}");
        let e = apply(&f, None, json!([{"kind":"addTags","values":["bad tag"]}])).unwrap_err();
        assert!(e.to_string().contains("tag \"bad tag\" is invalid"), "{e}");

        let (h, _) = apply(
            &g,
            None,
            json!([{"kind":"updateMaintainerTeam","value":"team-a"}]),
        )
        .unwrap();
        assert_eq!(
            (h.maintainer_id.as_deref(), h.maintainer_team_key.as_deref()),
            (None, Some("team-a"))
        );
        let (h, _) = apply(&h, None, json!([{"kind":"updateMaintainer","value":"m2"}])).unwrap();
        assert_eq!(
            (h.maintainer_id.as_deref(), h.maintainer_team_key.as_deref()),
            (Some("m2"), None)
        );
        let (h, applied) = apply(&h, None, json!([{"kind":"removeMaintainer"}])).unwrap();
        assert_eq!(
            (h.maintainer_id.as_deref(), h.maintainer_team_key.as_deref()),
            (None, None)
        );
        assert_eq!(applied[0].action, "updateMaintainer");
    }

    #[test]
    fn lifecycle_instructions() {
        let f = boolean();
        let (g, applied) = apply(&f, None, json!([{"kind":"archiveFlag"}])).unwrap();
        assert!(g.archived);
        assert_eq!(g.archived_date, Some(777));
        assert!(g.environments.values().all(|c| c.archived));
        assert_eq!(applied[0].action, "updateGlobalArchived");
        let (h, _) = apply(&g, None, json!([{"kind":"restoreFlag"}])).unwrap();
        assert!(!h.archived);
        assert_eq!(h.archived_date, None);
        assert!(h.environments.values().all(|c| !c.archived));

        let (g, applied) = apply(&f, None, json!([{"kind":"deprecateFlag"}])).unwrap();
        assert!(g.deprecated);
        assert_eq!(g.deprecated_date, Some(777));
        assert_eq!(applied[0].action, "updateDeprecated");
        let (h, _) = apply(&g, None, json!([{"kind":"restoreDeprecatedFlag"}])).unwrap();
        assert!(!h.deprecated);
        assert_eq!(h.deprecated_date, None);

        let (g, applied) = apply(&f, None, json!([{"kind":"makeFlagPermanent"}])).unwrap();
        assert!(!g.temporary);
        assert_eq!(applied[0].action, "updateTemporary");
        let (h, _) = apply(&g, None, json!([{"kind":"makeFlagTemporary"}])).unwrap();
        assert!(h.temporary);
    }

    #[test]
    fn client_side_availability() {
        let f = boolean();
        assert!(f.client_side_availability.using_mobile_key);
        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"turnOnClientSideAvailability","value":"usingEnvironmentId"},
                   {"kind":"turnOffClientSideAvailability","value":"usingMobileKey"}]),
        )
        .unwrap();
        assert!(g.client_side_availability.using_environment_id);
        assert!(!g.client_side_availability.using_mobile_key);
        assert!(g.include_in_snippet);
        assert_eq!(applied[0].action, "updateClientSideFlagAvailability");
        let (h, _) = apply(
            &g,
            None,
            json!([{"kind":"updateClientSideAvailability","usingEnvironmentId":false,"usingMobileKey":true}]),
        )
        .unwrap();
        assert!(!h.include_in_snippet);
        assert!(h.client_side_availability.using_mobile_key);
        let e = apply(
            &f,
            None,
            json!([{"kind":"turnOnClientSideAvailability","value":"usingCarrierPigeon"}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("usingMobileKey"), "{e}");
    }

    #[test]
    fn custom_properties() {
        let f = boolean();
        let (g, applied) = apply(
            &f,
            None,
            json!([{"kind":"addCustomProperties","key":"jira","name":"Jira","values":["A-1","A-2"]},
                   {"kind":"addCustomProperties","key":"jira","name":"Jira issues","values":["A-2","A-3"]}]),
        )
        .unwrap();
        let p = &g.custom_properties["jira"];
        assert_eq!(p.name, "Jira issues");
        assert_eq!(p.value, vec!["A-1", "A-2", "A-3"]);
        assert_eq!(applied[0].action, "updateFlagCustomProperties");
        let (h, _) = apply(
            &g,
            None,
            json!([{"kind":"replaceCustomProperties","key":"jira","name":"Jira","values":["B-1"]}]),
        )
        .unwrap();
        assert_eq!(h.custom_properties["jira"].value, vec!["B-1"]);
        let (h, _) = apply(
            &g,
            None,
            json!([{"kind":"removeCustomProperties","key":"jira","values":["A-1"]}]),
        )
        .unwrap();
        assert_eq!(h.custom_properties["jira"].value, vec!["A-2", "A-3"]);
        let (h, _) = apply(
            &h,
            None,
            json!([{"kind":"removeCustomProperties","key":"jira","values":["A-2","A-3"]}]),
        )
        .unwrap();
        assert!(h.custom_properties.is_empty());
        let e = apply(
            &f,
            None,
            json!([{"kind":"addCustomProperties","key":"k","name":"","values":[]}]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("name must not be empty"), "{e}");
    }

    #[test]
    fn all_or_nothing() {
        let f = boolean();
        let before = f.clone();
        let e = prod(
            &f,
            json!([{"kind":"turnFlagOn"},
                   {"kind":"addUserTargets","values":["u"],"variationId":"nope"}]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("instruction 1 (addUserTargets): "),
            "{e}"
        );
        assert_eq!(f, before);
        // Instructions see the effects of earlier ones.
        let (g, applied) = ok(
            &f,
            json!([{"kind":"addUserTargets","values":["u"],"variationId":vid(&f,0)},
                   {"kind":"removeUserTargets","values":["u"],"variationId":vid(&f,0)},
                   {"kind":"addUserTargets","values":["u"],"variationId":vid(&f,1)}]),
        );
        assert_eq!(applied.len(), 3);
        assert_eq!(g.environments["production"].targets[0].variation, 1);
    }
}
