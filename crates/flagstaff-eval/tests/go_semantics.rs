//! Evaluator behaviour pinned to LaunchDarkly's reference (Go) evaluator, including the places
//! where LaunchDarkly's Rust crate differs (the differential test avoids those inputs), plus the
//! API around evaluation: Big Segments, prerequisite events, typed variations, depth limits.

use std::sync::Arc;

use flagstaff_eval::{
    BigSegmentMembership, BigSegmentProvider, BigSegmentQuery, BigSegmentsStatus, Context, Detail,
    ErrorKind, InMemoryStore, MAX_DEPTH, PrerequisiteEvent, Reason, SdkData, ValueType, evaluate,
    evaluate_key, evaluate_with_recorder,
};
use serde_json::{Value, json};

fn store(flags: Value, segments: Value) -> InMemoryStore {
    let data: SdkData =
        serde_json::from_value(json!({ "flags": flags, "segments": segments })).expect("data");
    InMemoryStore::from_data(data)
}

fn ctx(v: Value) -> Context {
    Context::from_json(&v).expect("context")
}

fn eval(store: &InMemoryStore, key: &str, context: &Context) -> Value {
    serde_json::to_value(evaluate_key(store, key, context)).expect("detail JSON")
}

fn bool_flag(extra: Value) -> Value {
    let mut f = json!({"on": true, "variations": [true, false], "offVariation": 1,
        "fallthrough": {"variation": 1}});
    for (k, v) in extra.as_object().expect("object") {
        f[k] = v.clone();
    }
    f
}

fn matches_rule(clause: Value) -> Value {
    bool_flag(json!({"rules": [{"id": "r", "variation": 0, "clauses": [clause]}]}))
}

const MATCH: &str = "RULE_MATCH";

fn kind_of(result: &Value) -> &str {
    result["reason"]["kind"].as_str().expect("kind")
}

#[test]
fn prerequisite_with_an_error_result_fails_the_prerequisite() {
    // DIVERGENCE 1: the prerequisite's fallthrough index is out of range.
    let s = store(
        json!({
            "f": bool_flag(json!({"prerequisites": [{"key": "p", "variation": 0}]})),
            "p": bool_flag(json!({"fallthrough": {"variation": 9}})),
        }),
        json!({}),
    );
    assert_eq!(
        eval(&s, "f", &ctx(json!({"kind":"user","key":"u"}))),
        json!({"value": false, "variationIndex": 1,
            "reason": {"kind": "PREREQUISITE_FAILED", "prerequisiteKey": "p"}})
    );
}

#[test]
fn prerequisite_with_a_malformed_clause_fails_everything() {
    let s = store(
        json!({
            "f": bool_flag(json!({"prerequisites": [{"key": "p", "variation": 0}]})),
            "p": matches_rule(json!({"contextKind": "user", "attribute": "/a~", "op": "in", "values": [1]})),
        }),
        json!({}),
    );
    assert_eq!(
        eval(&s, "f", &ctx(json!({"kind":"user","key":"u"}))),
        json!({"value": null, "reason": {"kind": "ERROR", "errorKind": "MALFORMED_FLAG"}})
    );
}

#[test]
fn a_failed_prerequisite_can_still_satisfy_its_parent_and_is_not_a_cycle() {
    // DIVERGENCE 2: m fails its own prerequisite, serving its off variation 0, which is what f
    // wants; f then visits m again.
    let s = store(
        json!({
            "f": bool_flag(json!({"prerequisites": [{"key": "m", "variation": 0}, {"key": "m", "variation": 0}]})),
            "m": {"on": true, "variations": [true, false], "offVariation": 0, "fallthrough": {"variation": 1},
                  "prerequisites": [{"key": "nosuch", "variation": 0}]},
        }),
        json!({}),
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"user","key":"u"})))),
        "FALLTHROUGH"
    );
}

#[test]
fn segment_included_contexts_of_kind_user_apply_only_to_multi_kind_contexts() {
    // DIVERGENCE 3.
    let s = store(
        json!({"f": matches_rule(json!({"attribute": "", "op": "segmentMatch", "values": ["s"]}))}),
        json!({"s": {"includedContexts": [{"contextKind": "user", "values": ["u"]}]}}),
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"user","key":"u"})))),
        "FALLTHROUGH"
    );
    assert_eq!(
        kind_of(&eval(
            &s,
            "f",
            &ctx(json!({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}}))
        )),
        MATCH
    );
}

#[test]
fn weighted_segment_rule_without_the_rollout_kind_does_not_match() {
    // DIVERGENCE 4.
    let s = store(
        json!({"f": matches_rule(json!({"attribute": "", "op": "segmentMatch", "values": ["s"]}))}),
        json!({"s": {"rules": [{"clauses": [], "weight": 100000, "rolloutContextKind": "org"}]}}),
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"user","key":"u"})))),
        "FALLTHROUGH"
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"org","key":"o"})))),
        MATCH
    );
}

#[test]
fn zero_weight_experiment_for_a_context_without_the_kind_uses_the_last_bucket() {
    // DIVERGENCE 5: the last-bucket fallback reports inExperiment even for a missing kind.
    let s = store(
        json!({"f": {"on": true, "variations": ["a", "b"], "fallthrough": {"rollout": {
            "kind": "experiment", "contextKind": "org",
            "variations": [{"variation": 0, "weight": 0}, {"variation": 1, "weight": 0}]}}}}),
        json!({}),
    );
    assert_eq!(
        eval(&s, "f", &ctx(json!({"kind":"user","key":"u"}))),
        json!({"value": "b", "variationIndex": 1, "reason": {"kind": "FALLTHROUGH", "inExperiment": true}})
    );
    // With a positive weight, bucket 0 for the missing kind is not in the experiment.
    let s = store(
        json!({"f": {"on": true, "variations": ["a", "b"], "fallthrough": {"rollout": {
            "kind": "experiment", "contextKind": "org",
            "variations": [{"variation": 0, "weight": 1}, {"variation": 1, "weight": 99999}]}}}}),
        json!({}),
    );
    assert_eq!(
        eval(&s, "f", &ctx(json!({"kind":"user","key":"u"}))),
        json!({"value": "a", "variationIndex": 0, "reason": {"kind": "FALLTHROUGH"}})
    );
}

#[test]
fn only_the_plain_kind_attribute_is_special() {
    // DIVERGENCE 6: "/kind" is an ordinary reference to the selected context's kind.
    let multi = ctx(json!({"kind":"multi","user":{"key":"u"},"org":{"key":"o"}}));
    let s = store(
        json!({
            "plain": matches_rule(json!({"contextKind": "org", "attribute": "kind", "op": "in", "values": ["user"]})),
            "slash": matches_rule(json!({"contextKind": "org", "attribute": "/kind", "op": "in", "values": ["user"]})),
            "slash_org": matches_rule(json!({"contextKind": "org", "attribute": "/kind", "op": "in", "values": ["org"]})),
        }),
        json!({}),
    );
    assert_eq!(kind_of(&eval(&s, "plain", &multi)), MATCH);
    assert_eq!(kind_of(&eval(&s, "slash", &multi)), "FALLTHROUGH");
    assert_eq!(kind_of(&eval(&s, "slash_org", &multi)), MATCH);
}

#[test]
fn in_matches_primitives_only() {
    let c = ctx(json!({"kind":"user","key":"u","arr":[["a"]],"obj":{"x":1},"n":1}));
    let s = store(
        json!({
            "arr": matches_rule(json!({"attribute": "arr", "op": "in", "values": [["a"]]})),
            "obj": matches_rule(json!({"attribute": "obj", "op": "in", "values": [{"x":1}]})),
            "num": matches_rule(json!({"attribute": "n", "op": "in", "values": [1.0]})),
            "null": matches_rule(json!({"attribute": "arr", "op": "in", "values": [null]})),
        }),
        json!({}),
    );
    assert_eq!(kind_of(&eval(&s, "arr", &c)), "FALLTHROUGH");
    assert_eq!(kind_of(&eval(&s, "obj", &c)), "FALLTHROUGH");
    assert_eq!(kind_of(&eval(&s, "num", &c)), MATCH);
    assert_eq!(kind_of(&eval(&s, "null", &c)), "FALLTHROUGH");
}

#[test]
fn error_results_carry_no_variation_index() {
    // DIVERGENCE 7.
    let s = store(
        json!({"f": {"on": true, "variations": [true], "fallthrough": {"variation": 2}}}),
        json!({}),
    );
    let d = evaluate_key(&s, "f", &ctx(json!({"kind":"user","key":"u"})));
    assert_eq!(d.variation_index, None);
    assert_eq!(d.value, None);
}

#[test]
fn context_targets_refer_to_the_first_user_target_of_the_same_variation() {
    let s = store(
        json!({"f": {"on": true, "variations": ["a", "b"], "fallthrough": {"variation": 1},
            "targets": [{"variation": 0, "values": ["x"]}, {"variation": 0, "values": ["y"]}],
            "contextTargets": [{"contextKind": "user", "variation": 0, "values": []}]}}),
        json!({}),
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"user","key":"x"})))),
        "TARGET_MATCH"
    );
    assert_eq!(
        kind_of(&eval(&s, "f", &ctx(json!({"kind":"user","key":"y"})))),
        "FALLTHROUGH"
    );
}

#[test]
fn go_regex_and_date_dialects() {
    let s = store(
        json!({
            "digits": matches_rule(json!({"attribute": "a", "op": "matches", "values": ["^\\d+$"]})),
            "date": matches_rule(json!({"attribute": "a", "op": "after", "values": ["2017-12-06T7:00:00Z"]})),
        }),
        json!({}),
    );
    assert_eq!(
        kind_of(&eval(
            &s,
            "digits",
            &ctx(json!({"kind":"user","key":"u","a":"123"}))
        )),
        MATCH
    );
    assert_eq!(
        kind_of(&eval(
            &s,
            "digits",
            &ctx(json!({"kind":"user","key":"u","a":"١٢٣"}))
        )),
        "FALLTHROUGH"
    );
    assert_eq!(
        kind_of(&eval(
            &s,
            "date",
            &ctx(json!({"kind":"user","key":"u","a":1_512_543_600_001u64}))
        )),
        MATCH
    );
}

#[test]
fn flag_not_found_and_deleted_flags() {
    let s = store(
        json!({"gone": {"on": true, "deleted": true, "variations": [1], "fallthrough": {"variation": 0}},
               "f": bool_flag(json!({"prerequisites": [{"key": "gone", "variation": 0}]}))}),
        json!({}),
    );
    let c = ctx(json!({"kind":"user","key":"u"}));
    assert_eq!(
        eval(&s, "nosuch", &c),
        json!({"value": null, "reason": {"kind": "ERROR", "errorKind": "FLAG_NOT_FOUND"}})
    );
    assert_eq!(
        eval(&s, "gone", &c)["reason"]["errorKind"],
        "FLAG_NOT_FOUND"
    );
    assert_eq!(
        eval(&s, "f", &c)["reason"],
        json!({"kind": "PREREQUISITE_FAILED", "prerequisiteKey": "gone"})
    );
}

#[test]
fn prerequisite_chains_deeper_than_the_limit_are_malformed() {
    let mut flags = serde_json::Map::new();
    for i in 0..=MAX_DEPTH + 1 {
        let mut f = bool_flag(json!({"fallthrough": {"variation": 0}}));
        if i <= MAX_DEPTH {
            f["prerequisites"] = json!([{"key": format!("f{}", i + 1), "variation": 0}]);
        }
        flags.insert(format!("f{i}"), f);
    }
    let s = store(Value::Object(flags), json!({}));
    let c = ctx(json!({"kind":"user","key":"u"}));
    assert_eq!(eval(&s, "f0", &c)["reason"]["errorKind"], "MALFORMED_FLAG");
    assert_eq!(eval(&s, "f2", &c)["reason"]["kind"], "FALLTHROUGH");
}

#[test]
fn prerequisite_events_are_reported() {
    let s = store(
        json!({
            "f": bool_flag(json!({"prerequisites": [{"key": "p", "variation": 1}, {"key": "q", "variation": 1}]})),
            "p": bool_flag(json!({})),
            "q": bool_flag(json!({"prerequisites": [{"key": "p", "variation": 1}]})),
        }),
        json!({}),
    );
    let c = ctx(json!({"kind":"user","key":"u"}));
    let flag = s.get_flag("f").expect("f");
    let mut events: Vec<PrerequisiteEvent<'_>> = Vec::new();
    let d = evaluate_with_recorder(flag, &c, &s, &mut events);
    assert_eq!(
        d.reason,
        Reason::Fallthrough {
            in_experiment: false
        }
    );
    let seen: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.prerequisite_of, e.flag.key()))
        .collect();
    assert_eq!(seen, [("f", "p"), ("q", "p"), ("f", "q")]);
}

#[test]
fn typed_variations() {
    let s = store(
        json!({"f": {"on": true, "variations": [1.7, "s"], "fallthrough": {"variation": 0}}}),
        json!({}),
    );
    let c = ctx(json!({"kind":"user","key":"u"}));
    let d = evaluate_key(&s, "f", &c);
    assert_eq!(
        serde_json::to_value(d.clone().typed(ValueType::Bool, json!(false))).unwrap(),
        json!({"value": false, "reason": {"kind": "ERROR", "errorKind": "WRONG_TYPE"}})
    );
    assert_eq!(
        d.clone().typed(ValueType::Int, json!(0)).value.as_deref(),
        Some(&json!(1))
    );
    assert_eq!(
        d.clone()
            .typed(ValueType::Double, json!(0))
            .value
            .as_deref(),
        Some(&json!(1.7))
    );
    assert_eq!(d.typed(ValueType::Any, json!(0)).variation_index, Some(0));
    let missing = evaluate_key(&s, "nosuch", &c).typed(ValueType::String, json!("d"));
    assert_eq!(missing.value.as_deref(), Some(&json!("d")));
    assert_eq!(
        missing.reason,
        Reason::Error {
            error_kind: ErrorKind::FlagNotFound
        }
    );
    // A flag that is off without an off variation serves the default, reason OFF.
    let off = store(json!({"f": {"on": false, "variations": [true]}}), json!({}));
    let d: Detail<'static> = evaluate_key(&off, "f", &c)
        .or_default(json!(false))
        .into_owned();
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"value": false, "reason": {"kind": "OFF"}})
    );
}

struct Members(Vec<(&'static str, bool)>);

impl BigSegmentMembership for Members {
    fn check(&self, segment_ref: &str) -> Option<bool> {
        self.0
            .iter()
            .find(|(r, _)| *r == segment_ref)
            .map(|(_, b)| *b)
    }
}

struct Provider(BigSegmentsStatus);

impl BigSegmentProvider for Provider {
    fn membership(&self, context_key: &str) -> BigSegmentQuery {
        let members = match context_key {
            "in" => vec![("big.g2", true)],
            "out" => vec![("big.g2", false)],
            _ => vec![],
        };
        BigSegmentQuery {
            membership: Some(Arc::new(Members(members))),
            status: self.0,
        }
    }
}

#[test]
fn big_segments() {
    let data = || {
        store(
            json!({"f": matches_rule(json!({"attribute": "", "op": "segmentMatch", "values": ["big"]})),
                   "nogen": matches_rule(json!({"attribute": "", "op": "segmentMatch", "values": ["nogen"]}))}),
            json!({
                "big": {"unbounded": true, "generation": 2,
                        "rules": [{"clauses": [{"attribute": "r", "op": "in", "values": [true]}]}]},
                "nogen": {"unbounded": true, "included": ["in"]},
            }),
        )
    };
    let user = |k: &str, r: bool| ctx(json!({"kind":"user","key":k,"r":r}));
    // No provider: NOT_CONFIGURED, rules still apply.
    let s = data();
    let d = eval(&s, "f", &user("in", true));
    assert_eq!(
        d["reason"],
        json!({"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r","bigSegmentsStatus":"NOT_CONFIGURED"})
    );
    assert_eq!(
        eval(&s, "f", &user("in", false))["reason"]["kind"],
        "FALLTHROUGH"
    );
    // No generation: never matches, NOT_CONFIGURED.
    let d = eval(&s, "nogen", &user("in", true));
    assert_eq!(
        d["reason"],
        json!({"kind":"FALLTHROUGH","bigSegmentsStatus":"NOT_CONFIGURED"})
    );

    let mut s = data();
    s.set_big_segments(Box::new(Provider(BigSegmentsStatus::Stale)));
    assert_eq!(
        eval(&s, "f", &user("in", false))["reason"],
        json!({"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r","bigSegmentsStatus":"STALE"})
    );
    assert_eq!(
        eval(&s, "f", &user("out", true))["reason"],
        json!({"kind":"FALLTHROUGH","bigSegmentsStatus":"STALE"})
    );
    assert_eq!(eval(&s, "f", &user("other", true))["reason"]["kind"], MATCH);
    // A context without the Big Segment's kind is not queried.
    let d = eval(&s, "f", &ctx(json!({"kind":"org","key":"in"})));
    assert_eq!(d["reason"], json!({"kind":"FALLTHROUGH"}));
}

#[test]
fn invalid_contexts_are_user_not_specified() {
    let err = Context::from_json(&json!({"kind":"user","key":""})).unwrap_err();
    assert_eq!(err.to_string(), "context key cannot be empty");
    let d = Detail::error(ErrorKind::UserNotSpecified);
    assert_eq!(
        serde_json::to_value(d).unwrap(),
        json!({"value": null, "reason": {"kind":"ERROR","errorKind":"USER_NOT_SPECIFIED"}})
    );
}

#[test]
fn evaluation_borrows_from_the_flag() {
    let s = store(
        json!({"f": {"on": true, "variations": [{"big": [1, 2, 3]}], "fallthrough": {"variation": 0}}}),
        json!({}),
    );
    let flag = s.get_flag("f").expect("f");
    let d = evaluate(flag, &ctx(json!({"kind":"user","key":"u"})), &s);
    assert!(matches!(d.value, Some(std::borrow::Cow::Borrowed(_))));
}
