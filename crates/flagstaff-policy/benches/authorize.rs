//! ns per decision for a member with 3 roles totalling 50 statements.
//!
//! Run: `cargo bench -p flagstaff-policy --bench authorize -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use flagstaff_policy::{
    Authorizer, BasePermissions, BaseRole, CompiledPolicy, Decision, Permissions, Resource,
    RoleAttributes, parse_policy,
};
use serde_json::{Value, json};

/// Role 1, "flag maintainer" (custom role, basePermissions reader → +1 statement): 24
/// statements over project-scoped flags and segments, with role attributes, tags and a
/// critical-environment deny.
fn flag_maintainer() -> Value {
    let mut s = vec![
        json!({"effect":"allow","actions":["*"],"resources":["proj/${roleAttribute/projectKey}:env/*:flag/*"]}),
        json!({"effect":"allow","actions":["update*"],"resources":["proj/${roleAttribute/projectKey}:env/*:segment/*"]}),
        json!({"effect":"deny","actions":["deleteFlag","updateGlobalArchived"],"resources":["proj/*:env/*;{critical:true}:flag/*"]}),
        json!({"effect":"deny","notActions":["updateOn","updateTargets","createApprovalRequest"],"resources":["proj/*:env/production:flag/*;locked"]}),
    ];
    for i in 0..20 {
        s.push(json!({
            "effect": "allow",
            "actions": ["updateOn", "updateTargets", "updateRules"],
            "resources": [format!("proj/team-{i}-*:env/*;qa_*:flag/*;team-{i}")]
        }));
    }
    Value::Array(s)
}

/// Role 2, team "metrics" role: 15 statements.
fn metrics_team() -> Value {
    let mut s = vec![
        json!({"effect":"allow","actions":["*"],"resources":["proj/*:metric/*;revenue,checkout"]}),
        json!({"effect":"deny","actions":["deleteMetric"],"resources":["proj/*:metric/*;protected"]}),
    ];
    for i in 0..13 {
        s.push(json!({
            "effect": "allow",
            "actions": ["createMetric", "update*"],
            "resources": [format!("proj/analytics-{i}:metric/*"), format!("proj/analytics-{i}:metric-group/*")]
        }));
    }
    Value::Array(s)
}

/// Role 3, team "ops" role: 10 statements (account, webhooks, integrations, relay).
fn ops_team() -> Value {
    Value::Array(vec![
        json!({"effect":"allow","actions":["*"],"resources":["webhook/*","integration/*"]}),
        json!({"effect":"allow","actions":["*Relay*"],"resources":["relay-proxy-config/*"]}),
        json!({"effect":"allow","actions":["viewSdkKey"],"resources":["proj/*:env/*"]}),
        json!({"effect":"deny","actions":["viewSdkKey"],"resources":["proj/*:env/*;{critical:true}"]}),
        json!({"effect":"allow","actions":["updateSaml*","revokeSessions"],"resources":["acct"]}),
        json!({"effect":"deny","actions":["updateSamlEnabled"],"resources":["acct"]}),
        json!({"effect":"allow","actions":["createCodeRefsRepository","update*"],"resources":["code-reference-repository/*"]}),
        json!({"effect":"allow","notActions":["delete*"],"resources":["proj/ops:env/*:flag/*"]}),
        json!({"effect":"allow","actions":["update*"],"resources":["proj/ops:env/*"]}),
        json!({"effect":"deny","actions":["updateApiKey","updateMobileKey"],"resources":["proj/*:env/production"]}),
    ])
}

fn member() -> Permissions {
    let attrs = RoleAttributes::from([(
        "projectKey".to_string(),
        vec!["mobile".to_string(), "web".to_string()],
    )]);
    let maintainer = CompiledPolicy::compile_role(
        &parse_policy(&flag_maintainer()).unwrap(),
        BasePermissions::Reader,
        &attrs,
    )
    .unwrap();
    let metrics = CompiledPolicy::new(&parse_policy(&metrics_team()).unwrap()).unwrap();
    let ops = CompiledPolicy::new(&parse_policy(&ops_team()).unwrap()).unwrap();
    let total = maintainer.statements().len() + metrics.statements().len() + ops.statements().len();
    assert_eq!(total, 50);
    Permissions::new([Arc::new(maintainer), Arc::new(metrics), Arc::new(ops)])
}

fn bench(c: &mut Criterion) {
    let member = member();
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let cases: Vec<(&str, &str, Resource, Decision)> = vec![
        (
            "allowed/flag-matched-in-role-1",
            "updateOn",
            Resource::project("web", &[])
                .env("test", &tags(&["qa_1"]), false)
                .flag("checkout", &tags(&["beta"])),
            Decision::Allowed,
        ),
        (
            "allowed/env-matched-in-role-3",
            "updateName",
            Resource::project("ops", &[]).env("staging", &[], false),
            Decision::Allowed,
        ),
        (
            "denied/explicit-deny-critical-env",
            "deleteFlag",
            Resource::project("web", &[])
                .env("production", &[], true)
                .flag("checkout", &[]),
            Decision::Denied,
        ),
        (
            "denied/not-matched-full-scan",
            "updateOn",
            Resource::project("payments", &[])
                .env("production", &[], true)
                .flag("checkout", &tags(&["team-3"])),
            Decision::NotMatched,
        ),
    ];
    let mut group = c.benchmark_group("decide/3-roles-50-statements");
    for (name, action, resource, expected) in &cases {
        assert_eq!(member.decide(action, resource), *expected, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| black_box(&member).decide(black_box(action), black_box(resource)))
        });
    }
    group.finish();

    // A personal token with the writer base role, bounded by the same member.
    let token = Permissions::new([BaseRole::Writer.policy()]).bounded_by(member);
    let (_, action, resource, _) = &cases[0];
    assert!(token.allows(action, resource));
    c.bench_function("decide/personal-token-within-member/allowed", |b| {
        b.iter(|| black_box(&token).decide(black_box(action), black_box(resource)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
