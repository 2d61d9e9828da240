//! Property tests over random policies and requests.

use std::sync::Arc;

use flagstaff_policy::{
    Authorizer, CompiledPolicy, Decision, Permissions, Resource, ResourceSpec, Statement, exceeds,
    glob_match, parse_policy, policy_to_json,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const ACTIONS: &[&str] = &[
    "updateOn",
    "updateRules",
    "deleteFlag",
    "createFlag",
    "viewProject",
    "updateName",
    "createAccessToken",
];
const ACTION_PATTERNS: &[&str] = &[
    "updateOn",
    "updateRules",
    "deleteFlag",
    "viewProject",
    "*",
    "update*",
    "*Flag",
    "delete*",
    "view*",
    "*Name",
];
const KEYS: &[&str] = &["a", "b", "ab"];
const NAME_PATTERNS: &[&str] = &["a", "b", "ab", "*", "a*", "*b"];
const TAGS: &[&str] = &["t1", "t2", "t3"];
const TAG_PATTERNS: &[&str] = &["t1", "t2", "t*"];

/// Resource shapes: (type, parent shape index).
const SHAPES: &[&[&str]] = &[
    &["proj"],
    &["proj", "env"],
    &["proj", "env", "flag"],
    &["proj", "env", "segment"],
    &["proj", "metric"],
    &["member"],
    &["member", "token"],
    &["acct"],
];

fn subset(items: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(items, 0..=max)
        .prop_map(|v| v.into_iter().map(String::from).collect())
}

/// One segment's text, concrete or pattern.
fn segment(
    kind: &'static str,
    names: &'static [&'static str],
    tags: &'static [&'static str],
    max_tags: usize,
) -> BoxedStrategy<String> {
    if kind == "acct" {
        return Just("acct".to_string()).boxed();
    }
    let critical = if kind == "env" {
        prop_oneof![
            Just(None),
            Just(Some("{critical:true}")),
            Just(Some("{critical:false}"))
        ]
        .boxed()
    } else {
        Just(None).boxed()
    };
    (
        proptest::sample::select(names),
        subset(tags, max_tags),
        critical,
    )
        .prop_map(move |(name, tags, critical)| {
            let mut mods: Vec<String> = tags;
            if let Some(c) = critical {
                mods.push(c.to_string());
            }
            if mods.is_empty() {
                format!("{kind}/{name}")
            } else {
                format!("{kind}/{name};{}", mods.join(","))
            }
        })
        .boxed()
}

fn joined(
    names: &'static [&'static str],
    tags: &'static [&'static str],
    max_tags: usize,
) -> impl Strategy<Value = String> {
    proptest::sample::select(SHAPES).prop_flat_map(move |shape| {
        shape
            .iter()
            .map(|k| segment(k, names, tags, max_tags))
            .collect::<Vec<_>>()
            .prop_map(|parts| parts.join(":"))
    })
}

/// A concrete resource: environments always carry `critical`.
fn resource() -> impl Strategy<Value = Resource> {
    proptest::sample::select(SHAPES).prop_flat_map(|shape| {
        shape
            .iter()
            .map(|&k| {
                (
                    proptest::sample::select(KEYS),
                    subset(TAGS, 3),
                    any::<bool>(),
                )
                    .prop_map(move |(key, tags, critical)| (k, key, tags, critical))
            })
            .collect::<Vec<_>>()
            .prop_map(|levels| {
                let mut text = Vec::new();
                for (kind, key, tags, critical) in levels {
                    if kind == "acct" {
                        text.push("acct".to_string());
                        continue;
                    }
                    let mut mods = tags;
                    if kind == "env" {
                        mods.push(format!("{{critical:{critical}}}"));
                    }
                    text.push(if mods.is_empty() {
                        format!("{kind}/{key}")
                    } else {
                        format!("{kind}/{key};{}", mods.join(","))
                    });
                }
                Resource::parse(&text.join(":")).expect("generated resources parse")
            })
    })
}

fn statement_json(effect: Option<&'static str>) -> impl Strategy<Value = Value> {
    let effect = match effect {
        Some(e) => Just(e).boxed(),
        None => prop_oneof![Just("allow"), Just("deny")].boxed(),
    };
    (
        effect,
        any::<bool>(),
        proptest::collection::vec(proptest::sample::select(ACTION_PATTERNS), 1..3),
        any::<bool>(),
        proptest::collection::vec(joined(NAME_PATTERNS, TAG_PATTERNS, 2), 0..3),
    )
        .prop_map(|(effect, not_actions, actions, not_resources, resources)| {
            let mut obj = serde_json::Map::new();
            obj.insert("effect".into(), json!(effect));
            obj.insert(
                if not_actions { "notActions" } else { "actions" }.into(),
                json!(actions),
            );
            obj.insert(
                if not_resources {
                    "notResources"
                } else {
                    "resources"
                }
                .into(),
                json!(resources),
            );
            Value::Object(obj)
        })
}

fn policy_json() -> impl Strategy<Value = Value> {
    proptest::collection::vec(statement_json(None), 0..6).prop_map(Value::Array)
}

fn compile(policy: &Value) -> CompiledPolicy {
    CompiledPolicy::new(&parse_policy(policy).expect("generated policies parse"))
        .expect("generated policies compile")
}

fn permissions(policies: &[Value]) -> Permissions {
    Permissions::new(policies.iter().map(|p| Arc::new(compile(p))))
}

fn action() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(ACTIONS)
}

/// A reference glob matcher (backtracking), to check the compiled one.
fn naive_glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| naive_glob(rest, &t[i..])),
        Some((c, rest)) => t.first() == Some(c) && naive_glob(rest, &t[1..]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// A personal token (its roles bounded by its member's) is never allowed anything its
    /// member is not, whatever either's roles say.
    #[test]
    fn token_never_exceeds_member(
        token in proptest::collection::vec(policy_json(), 1..3),
        member in proptest::collection::vec(policy_json(), 1..4),
        action in action(),
        resource in resource(),
    ) {
        let member = permissions(&member);
        let token_roles = permissions(&token);
        let token = token_roles.clone().bounded_by(member.clone());
        if token.allows(action, &resource) {
            prop_assert!(member.allows(action, &resource));
            prop_assert!(token_roles.allows(action, &resource));
        }
        prop_assert!(!exceeds(&token, &member, action, &resource));
        // And the bound is exactly the intersection.
        prop_assert_eq!(
            token.allows(action, &resource),
            token_roles.allows(action, &resource) && member.allows(action, &resource)
        );
    }

    /// Adding a deny statement to a role never widens access, for that role or for the
    /// member holding it alongside other roles.
    #[test]
    fn adding_a_deny_never_widens(
        policy in policy_json(),
        others in proptest::collection::vec(policy_json(), 0..3),
        deny in statement_json(Some("deny")),
        action in action(),
        resource in resource(),
    ) {
        let mut with_deny = policy.as_array().unwrap().clone();
        with_deny.push(deny);
        let with_deny = Value::Array(with_deny);
        let before = compile(&policy).decide(action, &resource);
        let after = compile(&with_deny).decide(action, &resource);
        if after.is_allowed() {
            prop_assert!(before.is_allowed());
        }
        let mut roles_before = vec![policy.clone()];
        roles_before.extend(others.iter().cloned());
        let mut roles_after = vec![with_deny];
        roles_after.extend(others);
        if permissions(&roles_after).allows(action, &resource) {
            prop_assert!(permissions(&roles_before).allows(action, &resource));
        }
    }

    /// Allow `*` on everything, minus one deny: denied exactly where the deny matches.
    #[test]
    fn allow_all_minus_deny_is_denied_exactly_where_the_deny_matches(
        deny in statement_json(Some("deny")),
        action in action(),
        resource in resource(),
    ) {
        let policy = json!([{"effect":"allow","actions":["*"],"notResources":[]}, deny.clone()]);
        let deny = Statement::from_json(&deny, 0).unwrap();
        let decision = compile(&policy).decide(action, &resource);
        if deny.matches(action, &resource) {
            prop_assert_eq!(decision, Decision::Denied);
        } else {
            prop_assert_eq!(decision, Decision::Allowed);
        }
    }

    /// Statement order never matters; `evaluate` agrees with `decide` and names a statement
    /// that applies.
    #[test]
    fn order_does_not_matter(
        policy in policy_json(),
        action in action(),
        resource in resource(),
    ) {
        let compiled = compile(&policy);
        let evaluation = compiled.evaluate(action, &resource);
        prop_assert_eq!(evaluation.decision, compiled.decide(action, &resource));
        // The deciding statement really applies, with the decision's effect.
        if let Some(i) = evaluation.statement {
            let st = &compiled.statements()[i];
            prop_assert!(st.matches(action, &resource));
            prop_assert_eq!(
                st.effect == flagstaff_policy::Effect::Deny,
                evaluation.decision == Decision::Denied
            );
        } else {
            prop_assert_eq!(evaluation.decision, Decision::NotMatched);
        }
        let mut reversed = policy.as_array().unwrap().clone();
        reversed.reverse();
        prop_assert_eq!(
            compile(&policy).decide(action, &resource),
            compile(&Value::Array(reversed)).decide(action, &resource)
        );
    }

    /// Several roles: allowed iff some role allows.
    #[test]
    fn roles_union(
        roles in proptest::collection::vec(policy_json(), 0..4),
        action in action(),
        resource in resource(),
    ) {
        let any = roles.iter().any(|p| compile(p).allows(action, &resource));
        prop_assert_eq!(permissions(&roles).allows(action, &resource), any);
    }

    /// Policies serialize back to the JSON they were parsed from.
    #[test]
    fn policies_round_trip(policy in policy_json()) {
        let statements = parse_policy(&policy).unwrap();
        prop_assert_eq!(policy_to_json(&statements), policy);
    }

    /// Specifiers print back to their text; concrete resources print their audit form.
    #[test]
    fn specifiers_round_trip(text in joined(NAME_PATTERNS, TAG_PATTERNS, 2)) {
        let spec: ResourceSpec = text.parse().unwrap();
        prop_assert_eq!(spec.to_string(), text);
    }

    /// The compiled glob agrees with a backtracking matcher.
    #[test]
    fn glob_agrees_with_reference(pattern in "[ab*]{0,6}", text in "[ab]{0,6}") {
        prop_assert_eq!(
            glob_match(&pattern, &text),
            naive_glob(pattern.as_bytes(), text.as_bytes())
        );
    }
}

/// The generators are not vacuous: random (policy, action, resource) triples reach every
/// decision often, and random tokens are often allowed within random members.
#[test]
fn generators_reach_every_decision() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = (policy_json(), policy_json(), action(), resource());
    let mut seen = [0usize; 4];
    let n = 4000;
    for _ in 0..n {
        let (p, q, a, r) = strategy.new_tree(&mut runner).unwrap().current();
        let role = compile(&p);
        seen[match role.decide(a, &r) {
            Decision::Allowed => 0,
            Decision::Denied => 1,
            Decision::NotMatched => 2,
        }] += 1;
        let token = Permissions::new([Arc::new(role)]).bounded_by(permissions(&[q]));
        if token.allows(a, &r) {
            seen[3] += 1;
        }
    }
    println!(
        "allowed {} denied {} not matched {} token allowed {} of {n}",
        seen[0], seen[1], seen[2], seen[3]
    );
    for (i, count) in seen.iter().enumerate() {
        assert!(
            *count * 20 > n / 5,
            "outcome {i} reached only {count} times of {n}"
        );
    }
}
