//! Semantic patch instructions for segments.
//!
//! [`apply_to_segment`] applies every instruction to a copy of the segment and returns the copy
//! only when all of them succeed. `version` and `lastModifiedDate` are left to the caller.
//! Clause, rule-list and name/description/tags handling is shared with the flag instructions
//! (`semantic::flag`).

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::flag::{
    ClauseParams, RuleClauses, ValuesParams, apply_metadata_instruction, apply_rule_instruction,
    at_instruction, build_clauses, insert_rule, instruction_kind, list, map_message, params,
    plural, rule_label, rule_mut, unknown_kind,
};
use super::{AppliedInstruction, SemanticPatch};
use crate::flag::Clause;
use crate::segment::{Segment, SegmentRule, SegmentTarget};
use crate::{ModelError, new_uuid};

/// Every segment instruction kind Flagstaff supports.
pub const SEGMENT_KINDS: &[&str] = &[
    "addIncludedTargets",
    "removeIncludedTargets",
    "addExcludedTargets",
    "removeExcludedTargets",
    "addIncludedUsers",
    "removeIncludedUsers",
    "addExcludedUsers",
    "removeExcludedUsers",
    "addRule",
    "removeRule",
    "reorderRules",
    "addClauses",
    "removeClauses",
    "updateClause",
    "addValuesToClause",
    "removeValuesFromClause",
    "updateRuleDescription",
    "updateRuleRolloutAndContextKind",
    "updateName",
    "updateDescription",
    "addTags",
    "removeTags",
];

/// LaunchDarkly's big-segment instructions, which Flagstaff does not implement.
const BIG_SEGMENT_KINDS: &[&str] = &[
    "addBigSegmentIncludedTargets",
    "addBigSegmentExcludedTargets",
    "removeBigSegmentIncludedTargets",
    "removeBigSegmentExcludedTargets",
    "processBigSegmentImport",
];

/// Applies a semantic patch to `segment`, all or nothing. `patch.environment_key` is not used
/// (a segment belongs to one environment), so every [`AppliedInstruction::environment`] is
/// `None`. The result has passed [`Segment::validate`].
pub fn apply_to_segment(
    segment: &Segment,
    patch: &SemanticPatch,
) -> Result<(Segment, Vec<AppliedInstruction>), ModelError> {
    if patch.instructions.is_empty() {
        return Err(ModelError::invalid(
            "semantic patch needs at least one instruction",
        ));
    }
    let mut out = segment.clone();
    let mut applied = Vec::with_capacity(patch.instructions.len());
    for (i, instruction) in patch.instructions.iter().enumerate() {
        let kind = instruction_kind(i, instruction)?;
        let step = if SEGMENT_KINDS.contains(&kind) {
            apply_segment_instruction(&mut out, kind, instruction)
        } else if BIG_SEGMENT_KINDS.contains(&kind) {
            Err(ModelError::invalid(
                "big segment instructions are not supported by Flagstaff",
            ))
        } else {
            return Err(unknown_kind(i, kind, &[SEGMENT_KINDS]));
        };
        let (action, description) = step.map_err(|e| at_instruction(i, kind, e))?;
        applied.push(AppliedInstruction {
            kind: kind.to_string(),
            action,
            environment: None,
            description,
        });
    }
    out.validate()
        .map_err(|e| map_message(e, |m| format!("the patched segment is invalid: {m}")))?;
    Ok((out, applied))
}

impl RuleClauses for SegmentRule {
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

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContextTargetsParams {
    context_kind: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddRuleParams {
    #[serde(default)]
    clauses: Vec<ClauseParams>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    rollout_context_kind: Option<String>,
    #[serde(default)]
    bucket_by: Option<String>,
    #[serde(default)]
    before_rule_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleRolloutParams {
    rule_id: String,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    context_kind: Option<String>,
}

fn check_weight(weight: Option<i64>) -> Result<(), ModelError> {
    match weight {
        Some(w) if !(0..=100_000).contains(&w) => Err(ModelError::invalid(format!(
            "weight {w} is out of range: weights are 0-100000 (thousandths of a percent)"
        ))),
        _ => Ok(()),
    }
}

fn add_values(list: &mut Vec<String>, values: &[String]) {
    let mut present: HashSet<String> = list.iter().cloned().collect();
    for v in values {
        if present.insert(v.clone()) {
            list.push(v.clone());
        }
    }
}

fn remove_values(list: &mut Vec<String>, values: &[String]) {
    let unwanted: HashSet<&str> = values.iter().map(String::as_str).collect();
    list.retain(|v| !unwanted.contains(v.as_str()));
}

/// User keys live in `included` / `excluded`, other kinds in `includedContexts` /
/// `excludedContexts` (one entry per kind; empty entries are dropped).
fn change_targets(
    users: &mut Vec<String>,
    contexts: &mut Vec<SegmentTarget>,
    context_kind: &str,
    values: &[String],
    add: bool,
) -> Result<(), ModelError> {
    if context_kind.is_empty() {
        return Err(ModelError::invalid("contextKind must not be empty"));
    }
    if context_kind == "user" {
        if add {
            add_values(users, values);
        } else {
            remove_values(users, values);
        }
        return Ok(());
    }
    match contexts.iter_mut().find(|t| t.context_kind == context_kind) {
        Some(entry) if add => add_values(&mut entry.values, values),
        Some(entry) => remove_values(&mut entry.values, values),
        None if add && !values.is_empty() => contexts.push(SegmentTarget {
            context_kind: context_kind.to_string(),
            values: values.to_vec(),
        }),
        None => {}
    }
    contexts.retain(|t| !t.values.is_empty());
    Ok(())
}

fn apply_segment_instruction(
    segment: &mut Segment,
    kind: &str,
    instruction: &Map<String, Value>,
) -> Result<(&'static str, String), ModelError> {
    if let Some(done) = apply_metadata_instruction(
        "segment",
        &mut segment.name,
        &mut segment.description,
        &mut segment.tags,
        kind,
        instruction,
    )? {
        return Ok(done);
    }
    if let Some(description) = apply_rule_instruction(&mut segment.rules, kind, instruction)? {
        return Ok(("updateRules", description));
    }
    Ok(match kind {
        "addIncludedTargets"
        | "removeIncludedTargets"
        | "addExcludedTargets"
        | "removeExcludedTargets"
        | "addIncludedUsers"
        | "removeIncludedUsers"
        | "addExcludedUsers"
        | "removeExcludedUsers" => {
            let (context_kind, values) = if kind.ends_with("Users") {
                let p: ValuesParams = params(instruction)?;
                ("user".to_string(), p.values)
            } else {
                let p: ContextTargetsParams = params(instruction)?;
                (p.context_kind, p.values)
            };
            if segment.unbounded {
                return Err(ModelError::invalid(
                    "this is a big segment: its targets are managed with big segment imports, which Flagstaff does not support",
                ));
            }
            let add = kind.starts_with("add");
            let included = kind.contains("Included");
            let (users, contexts) = if included {
                (&mut segment.included, &mut segment.included_contexts)
            } else {
                (&mut segment.excluded, &mut segment.excluded_contexts)
            };
            change_targets(users, contexts, &context_kind, &values, add)?;
            let noun = if context_kind == "user" {
                "targets".to_string()
            } else {
                format!("{context_kind} targets")
            };
            let text = format!(
                "{} {} {} {} the {} list",
                if add { "Added" } else { "Removed" },
                noun,
                list(&values),
                if add { "to" } else { "from" },
                if included { "included" } else { "excluded" }
            );
            let action = if included {
                "updateIncluded"
            } else {
                "updateExcluded"
            };
            (action, text)
        }
        "addRule" => {
            let p: AddRuleParams = params(instruction)?;
            check_weight(p.weight)?;
            let rule = SegmentRule {
                id: new_uuid(),
                clauses: build_clauses(p.clauses)?,
                weight: p.weight,
                rollout_context_kind: p.rollout_context_kind.filter(|k| !k.is_empty()),
                bucket_by: p.bucket_by.filter(|b| !b.is_empty()),
                description: p.description.filter(|d| !d.is_empty()),
            };
            let text = format!("Added a rule with {}", plural(rule.clauses.len(), "clause"));
            insert_rule(&mut segment.rules, rule, p.before_rule_id.as_deref())?;
            ("updateRules", text)
        }
        "updateRuleRolloutAndContextKind" => {
            let p: RuleRolloutParams = params(instruction)?;
            check_weight(p.weight)?;
            let rule = rule_mut(&mut segment.rules, &p.rule_id)?;
            rule.weight = p.weight;
            rule.rollout_context_kind = p.context_kind.filter(|k| !k.is_empty());
            let text = match rule.weight {
                Some(w) => format!(
                    "Changed {} to include {}% of matching {} contexts",
                    rule_label(&*rule),
                    w as f64 / 1000.0,
                    rule.rollout_context_kind.as_deref().unwrap_or("user")
                ),
                None => format!("Removed the percentage rollout of {}", rule_label(&*rule)),
            };
            ("updateRules", text)
        }
        other => {
            return Err(ModelError::invalid(format!(
                "instruction kind \"{other}\" is not a segment instruction"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn segment() -> Segment {
        Segment::create(
            serde_json::from_value(json!({"key":"beta","name":"Beta","tags":["x"]})).unwrap(),
            1,
        )
        .unwrap()
    }

    fn apply(
        s: &Segment,
        instructions: Value,
    ) -> Result<(Segment, Vec<AppliedInstruction>), ModelError> {
        let patch: SemanticPatch =
            serde_json::from_value(json!({ "instructions": instructions })).unwrap();
        apply_to_segment(s, &patch)
    }

    fn ok(s: &Segment, instructions: Value) -> (Segment, Vec<AppliedInstruction>) {
        apply(s, instructions).unwrap()
    }

    fn err(s: &Segment, instructions: Value) -> String {
        apply(s, instructions).unwrap_err().to_string()
    }

    /// A segment with one rule ("Staff", one clause).
    fn with_rule() -> (Segment, String, String) {
        let (s, _) = ok(
            &segment(),
            json!([{"kind":"addRule","description":"Staff",
                    "clauses":[{"contextKind":"user","attribute":"email","op":"endsWith","values":["@x.com"]}]}]),
        );
        let (rid, cid) = (s.rules[0].id.clone(), s.rules[0].clauses[0].id.clone());
        (s, rid, cid)
    }

    #[test]
    fn included_and_excluded_targets() {
        let s = segment();
        let (t, applied) = ok(
            &s,
            json!([{"kind":"addIncludedTargets","contextKind":"user","values":["u1","u2"]},
                   {"kind":"addIncludedUsers","values":["u2","u3"]},
                   {"kind":"addIncludedTargets","contextKind":"org","values":["o1"]},
                   {"kind":"addExcludedTargets","contextKind":"org","values":["o9"]},
                   {"kind":"addExcludedUsers","values":["u9"]}]),
        );
        assert_eq!(t.included, vec!["u1", "u2", "u3"]);
        assert_eq!(t.excluded, vec!["u9"]);
        assert_eq!(
            t.included_contexts,
            vec![SegmentTarget {
                context_kind: "org".into(),
                values: vec!["o1".into()]
            }]
        );
        assert_eq!(t.excluded_contexts[0].values, vec!["o9"]);
        let actions: Vec<&str> = applied.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![
                "updateIncluded",
                "updateIncluded",
                "updateIncluded",
                "updateExcluded",
                "updateExcluded"
            ]
        );
        assert_eq!(
            applied[0].description,
            "Added targets u1, u2 to the included list"
        );
        assert_eq!(
            applied[2].description,
            "Added org targets o1 to the included list"
        );
        assert!(applied.iter().all(|a| a.environment.is_none()));
        assert_eq!(t.version, s.version);

        let (u, applied) = ok(
            &t,
            json!([{"kind":"removeIncludedTargets","contextKind":"user","values":["u1"]},
                   {"kind":"removeIncludedUsers","values":["u2","nobody"]},
                   {"kind":"removeIncludedTargets","contextKind":"org","values":["o1"]},
                   {"kind":"removeExcludedTargets","contextKind":"org","values":["o9"]},
                   {"kind":"removeExcludedUsers","values":["u9"]}]),
        );
        assert_eq!(u.included, vec!["u3"]);
        assert!(u.excluded.is_empty());
        assert!(u.included_contexts.is_empty(), "empty entries are dropped");
        assert!(u.excluded_contexts.is_empty());
        assert_eq!(
            applied[4].description,
            "Removed targets u9 from the excluded list"
        );

        let e = err(&s, json!([{"kind":"addIncludedTargets","values":["u1"]}]));
        assert!(e.contains("missing field `contextKind`"), "{e}");
        let e = err(
            &s,
            json!([{"kind":"addIncludedUsers","values":["u1"],"contextKind":"user"}]),
        );
        assert!(e.contains("unknown field `contextKind`"), "{e}");
    }

    #[test]
    fn big_segments_refuse_target_lists() {
        let mut s = segment();
        s.unbounded = true;
        let e = err(&s, json!([{"kind":"addIncludedUsers","values":["u1"]}]));
        assert!(e.contains("big segment"), "{e}");
        let e = err(
            &segment(),
            json!([{"kind":"addBigSegmentIncludedTargets","values":["u1"]}]),
        );
        assert!(e.starts_with("instruction 0 (addBigSegmentIncludedTargets): big segment instructions are not supported"), "{e}");
    }

    #[test]
    fn add_remove_and_reorder_rules() {
        let (s, rid, cid) = with_rule();
        assert_eq!(s.rules[0].description.as_deref(), Some("Staff"));
        assert!(!cid.is_empty());
        let (t, applied) = ok(
            &s,
            json!([{"kind":"addRule","beforeRuleId":rid,"weight":50000,"rolloutContextKind":"org","bucketBy":"key",
                    "clauses":[{"attribute":"plan","op":"in","values":["pro"]}]}]),
        );
        assert_eq!(t.rules.len(), 2);
        assert_eq!(t.rules[1].id, rid);
        assert_eq!(t.rules[0].weight, Some(50000));
        assert_eq!(t.rules[0].rollout_context_kind.as_deref(), Some("org"));
        assert_eq!(t.rules[0].bucket_by.as_deref(), Some("key"));
        assert_eq!(applied[0].action, "updateRules");
        assert_eq!(applied[0].description, "Added a rule with 1 clause");
        let new_id = t.rules[0].id.clone();

        let (u, _) = ok(&t, json!([{"kind":"reorderRules","ruleIds":[rid, new_id]}]));
        assert_eq!(u.rules[0].id, rid);
        let e = err(&t, json!([{"kind":"reorderRules","ruleIds":[rid]}]));
        assert!(
            e.contains("ruleIds must list every current rule exactly once"),
            "{e}"
        );

        let (u, applied) = ok(&t, json!([{"kind":"removeRule","ruleId":rid}]));
        assert_eq!(u.rules.len(), 1);
        assert_eq!(applied[0].description, "Removed rule \"Staff\"");

        let e = err(&s, json!([{"kind":"addRule","clauses":[],"weight":100001}]));
        assert!(e.contains("out of range"), "{e}");
        let e = err(
            &s,
            json!([{"kind":"addRule","clauses":[],"beforeRuleId":"nope"}]),
        );
        assert!(e.contains("beforeRuleId \"nope\""), "{e}");
        let e = err(
            &s,
            json!([{"kind":"addRule","clauses":[{"attribute":"a","op":"is","values":[]}]}]),
        );
        assert!(
            e.contains("op \"is\" is not a LaunchDarkly operator"),
            "{e}"
        );
    }

    #[test]
    fn clause_instructions() {
        let (s, rid, cid) = with_rule();
        let (t, _) = ok(
            &s,
            json!([{"kind":"addClauses","ruleId":rid,"clauses":[{"attribute":"country","op":"in","values":["US"]}]}]),
        );
        assert_eq!(t.rules[0].clauses.len(), 2);
        let (u, _) = ok(
            &t,
            json!([{"kind":"removeClauses","ruleId":rid,"clauseIds":[cid]}]),
        );
        assert_eq!(u.rules[0].clauses.len(), 1);
        assert_eq!(u.rules[0].clauses[0].attribute, "country");

        let (u, _) = ok(
            &s,
            json!([{"kind":"updateClause","ruleId":rid,"clauseId":cid,
                    "clause":{"attribute":"name","op":"startsWith","values":["A"],"negate":true}}]),
        );
        assert_eq!(u.rules[0].clauses[0].id, cid);
        assert_eq!(u.rules[0].clauses[0].op, "startsWith");
        assert!(u.rules[0].clauses[0].negate);

        let (u, _) = ok(
            &s,
            json!([{"kind":"addValuesToClause","ruleId":rid,"clauseId":cid,"values":["@y.com"]},
                   {"kind":"removeValuesFromClause","ruleId":rid,"clauseId":cid,"values":["@x.com"]}]),
        );
        assert_eq!(u.rules[0].clauses[0].values, vec![json!("@y.com")]);

        let (u, applied) = ok(
            &s,
            json!([{"kind":"updateRuleDescription","ruleId":rid,"description":"Employees"}]),
        );
        assert_eq!(u.rules[0].description.as_deref(), Some("Employees"));
        assert_eq!(applied[0].action, "updateRules");

        let e = err(
            &s,
            json!([{"kind":"updateClause","ruleId":"nope","clauseId":cid,
                                 "clause":{"attribute":"a","op":"in","values":[]}}]),
        );
        assert!(
            e.starts_with("instruction 0 (updateClause): ruleId \"nope\" does not match any rule"),
            "{e}"
        );
        let e = err(
            &s,
            json!([{"kind":"addValuesToClause","ruleId":rid,"clauseId":"nope","values":[1]}]),
        );
        assert!(e.contains("clauseId \"nope\""), "{e}");
    }

    #[test]
    fn rule_rollout_and_context_kind() {
        let (s, rid, _) = with_rule();
        let (t, applied) = ok(
            &s,
            json!([{"kind":"updateRuleRolloutAndContextKind","ruleId":rid,"weight":25000,"contextKind":"org"}]),
        );
        assert_eq!(t.rules[0].weight, Some(25000));
        assert_eq!(t.rules[0].rollout_context_kind.as_deref(), Some("org"));
        assert_eq!(applied[0].action, "updateRules");
        assert_eq!(
            applied[0].description,
            "Changed rule \"Staff\" to include 25% of matching org contexts"
        );
        let e = err(
            &s,
            json!([{"kind":"updateRuleRolloutAndContextKind","ruleId":rid,"weight":-1,"contextKind":"user"}]),
        );
        assert!(e.contains("out of range"), "{e}");
    }

    #[test]
    fn name_description_and_tags() {
        let s = segment();
        let (t, applied) = ok(
            &s,
            json!([{"kind":"updateName","value":"Beta testers"},
                   {"kind":"updateDescription","value":"People"},
                   {"kind":"addTags","values":["y","a"]},
                   {"kind":"removeTags","values":["x"]}]),
        );
        assert_eq!(t.name, "Beta testers");
        assert_eq!(t.description, "People");
        assert_eq!(t.tags, vec!["a", "y"]);
        let actions: Vec<&str> = applied.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            vec![
                "updateName",
                "updateDescription",
                "updateTags",
                "updateTags"
            ]
        );
        let e = err(&s, json!([{"kind":"updateName","value":""}]));
        assert!(e.contains("segment name must not be empty"), "{e}");
    }

    #[test]
    fn unknown_kinds_and_atomicity() {
        let s = segment();
        let before = s.clone();
        let e = err(
            &s,
            json!([{"kind":"updateName","value":"N"},{"kind":"turnFlagOn"}]),
        );
        assert!(
            e.starts_with("instruction 1: unknown semantic patch instruction kind \"turnFlagOn\"; supported kinds: addIncludedTargets, "),
            "{e}"
        );
        let e = err(
            &s,
            json!([{"kind":"updateName","value":"N"},{"kind":"removeRule","ruleId":5}]),
        );
        assert!(
            e.starts_with("instruction 1 (removeRule): invalid parameters: invalid type"),
            "{e}"
        );
        assert_eq!(s, before);
        assert!(err(&s, json!([{}])).contains("missing \"kind\""));
        assert!(err(&s, json!([])).contains("at least one instruction"));
    }
}
