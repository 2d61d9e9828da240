//! ns per evaluation, flagstaff-eval side by side with LaunchDarkly's Rust evaluator
//! (`launchdarkly-server-sdk-evaluation` 2.2.1) on the same flags and contexts:
//!
//! ```sh
//! cargo bench -p flagstaff-eval --bench evaluate -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! LaunchDarkly's `Store` trait returns owned flags and segments, so its store clones them on
//! each lookup; that is how that API is used by its SDK.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flagstaff_eval::{Context, InMemoryStore, SdkData, evaluate};
use launchdarkly_server_sdk_evaluation as ld;
use serde_json::{Value, json};

struct LdStore {
    flags: HashMap<String, ld::Flag>,
    segments: HashMap<String, ld::Segment>,
}

impl ld::Store for LdStore {
    fn flag(&self, key: &str) -> Option<ld::Flag> {
        self.flags.get(key).cloned()
    }
    fn segment(&self, key: &str) -> Option<ld::Segment> {
        self.segments.get(key).cloned()
    }
}

struct Case {
    name: &'static str,
    flags: Value,
    segments: Value,
    context: Value,
    expect: &'static str,
}

fn cases() -> Vec<Case> {
    let base = |extra: Value| {
        let mut f = json!({"on": true, "variations": [false, true], "offVariation": 0,
            "fallthrough": {"variation": 1}, "salt": "salty"});
        for (k, v) in extra.as_object().expect("object") {
            f[k] = v.clone();
        }
        f
    };
    let targets: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let rules: Vec<Value> = (0..10)
        .map(|i| {
            json!({"id": format!("rule-{i}"), "variation": 0, "clauses": [
                {"contextKind": "user", "attribute": "email", "op": "matches",
                 "values": [format!("^[a-z.]+@team{i}\\.example\\.(com|org)$")]},
                {"contextKind": "user", "attribute": "version", "op": "semVerGreaterThan",
                 "values": [format!("{i}.2.0-beta.1")]}
            ]})
        })
        .collect();
    let included: Vec<String> = (0..10_000).map(|i| format!("member-{i}")).collect();
    vec![
        Case {
            name: "simple_boolean",
            flags: json!({"f": base(json!({}))}),
            segments: json!({}),
            context: json!({"kind": "user", "key": "user-1"}),
            expect: "FALLTHROUGH",
        },
        Case {
            name: "targets_1000",
            flags: json!({"f": base(json!({"targets": [{"variation": 0, "values": targets}]}))}),
            segments: json!({}),
            context: json!({"kind": "user", "key": "user-999"}),
            expect: "TARGET_MATCH",
        },
        Case {
            name: "rules_10_regex_semver",
            flags: json!({"f": base(json!({"rules": rules}))}),
            segments: json!({}),
            context: json!({"kind": "user", "key": "user-1", "email": "ann.smith@team9.example.org",
                "version": "9.3.1"}),
            expect: "RULE_MATCH",
        },
        Case {
            name: "prerequisites_3_deep",
            flags: json!({
                "f": base(json!({"prerequisites": [{"key": "p1", "variation": 1}]})),
                "p1": base(json!({"prerequisites": [{"key": "p2", "variation": 1}]})),
                "p2": base(json!({"prerequisites": [{"key": "p3", "variation": 1}]})),
                "p3": base(json!({})),
            }),
            segments: json!({}),
            context: json!({"kind": "user", "key": "user-1"}),
            expect: "FALLTHROUGH",
        },
        Case {
            name: "rollout_3_way",
            flags: json!({"f": {"on": true, "variations": ["a", "b", "c"], "salt": "salty",
                "fallthrough": {"rollout": {"variations": [
                    {"variation": 0, "weight": 33333}, {"variation": 1, "weight": 33333},
                    {"variation": 2, "weight": 33334}]}}}}),
            segments: json!({}),
            context: json!({"kind": "user", "key": "user-0123456789"}),
            expect: "FALLTHROUGH",
        },
        Case {
            name: "segment_10000_included",
            flags: json!({"f": base(json!({"rules": [{"id": "r", "variation": 0, "clauses": [
                {"attribute": "", "op": "segmentMatch", "values": ["big"]}]}]}))}),
            segments: json!({"big": {"included": included, "salt": "s"}}),
            context: json!({"kind": "user", "key": "member-9999"}),
            expect: "RULE_MATCH",
        },
    ]
}

fn bench(c: &mut Criterion) {
    for case in cases() {
        let data: SdkData =
            serde_json::from_value(json!({"flags": case.flags, "segments": case.segments}))
                .expect("data");
        let store = InMemoryStore::from_data(data);
        let context = Context::from_json(&case.context).expect("context");
        let flag = store.get_flag("f").expect("f");

        // LaunchDarkly's evaluator gets the canonical JSON of the very same flags.
        let canonical = serde_json::to_value(store.to_data()).expect("canonical JSON");
        let ld_store = LdStore {
            flags: serde_json::from_value(canonical["flags"].clone()).expect("LD flags"),
            segments: serde_json::from_value(canonical["segments"].clone()).expect("LD segments"),
        };
        let ld_context: ld::Context =
            serde_json::from_value(case.context.clone()).expect("LD context");
        let ld_flag = ld_store.flags["f"].clone();

        // Both evaluators agree before anything is timed.
        let ours = evaluate(flag, &context, &store);
        let theirs = ld::evaluate(&ld_store, &ld_flag, &ld_context, None);
        assert_eq!(ours.reason.kind(), case.expect, "{}", case.name);
        assert_eq!(
            ours.reason_json(),
            serde_json::to_value(&theirs.reason).expect("reason"),
            "{}",
            case.name
        );
        assert_eq!(
            ours.variation_index.map(|i| i as isize),
            theirs.variation_index
        );

        let mut group = c.benchmark_group(format!("eval_{}", case.name));
        group.bench_function("flagstaff", |b| {
            b.iter(|| evaluate(black_box(flag), black_box(&context), black_box(&store)))
        });
        group.bench_function("launchdarkly", |b| {
            b.iter(|| {
                ld::evaluate(
                    black_box(&ld_store),
                    black_box(&ld_flag),
                    black_box(&ld_context),
                    None,
                )
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
