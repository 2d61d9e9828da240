//! "You cannot grant what you do not have": whether a policy someone wants to hand out (a
//! service token's scope, a custom role's policy, a member's or team's roles) allows anything
//! the granting caller's own permissions do not.
//!
//! Policies are sets of globs, so the check works on *regions* rather than on single
//! resources. For every allow statement of the grant and every (action pattern, resource
//! specifier) pair it names, the caller must **cover the whole region**:
//!
//! * some allow statement of one of the caller's roles covers it — its action globs match the
//!   grant's action pattern read literally (`update*` is covered by `*` and by `update*`, not
//!   by `updateOn`) and one of its specifiers covers the grant's specifier read literally
//!   (names as globs, every tag and property selector of the caller's specifier present in the
//!   grant's); for `notActions` / `notResources` statements, none of the excluded patterns
//!   may even *overlap* the region;
//! * and no deny statement of that same role overlaps the region (two `*` globs overlap when
//!   some text matches both; tags and properties are assumed to overlap);
//! * and every ceiling of the caller's permissions (a personal token's member) covers it too.
//!
//! This is sound — whatever the grant allows, the caller is allowed — and conservative: a grant
//! can be refused although the union of several of the caller's statements would cover it.
//! The grant's own deny statements are ignored (they only make the grant smaller). A grant
//! statement with `notActions` is the region "every action" minus its exclusions; one with
//! `notResources` is checked as every resource of every type.

use flagstaff_policy::{
    ActionSet, Effect, Permissions, ResourceKind, ResourceSet, ResourceSpec, Statement, glob_match,
};

/// The action part of a region.
#[derive(Debug, Clone)]
enum Actions<'a> {
    /// Every action the glob matches.
    Pattern(&'a str),
    /// Every action except those the globs match.
    AllExcept(&'a [String]),
}

/// Whether some text matches both `*` globs.
pub fn globs_overlap(a: &str, b: &str) -> bool {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // memo[i][j]: whether a[i..] and b[j..] can match a common text.
    let mut memo = vec![vec![None::<bool>; b.len() + 1]; a.len() + 1];
    fn go(a: &[char], b: &[char], i: usize, j: usize, memo: &mut Vec<Vec<Option<bool>>>) -> bool {
        if let Some(v) = memo[i][j] {
            return v;
        }
        let v = if i == a.len() && j == b.len() {
            true
        } else if i < a.len() && a[i] == '*' {
            go(a, b, i + 1, j, memo) || (j < b.len() && go(a, b, i, j + 1, memo))
        } else if j < b.len() && b[j] == '*' {
            go(a, b, i, j + 1, memo) || (i < a.len() && go(a, b, i + 1, j, memo))
        } else {
            i < a.len() && j < b.len() && a[i] == b[j] && go(a, b, i + 1, j + 1, memo)
        };
        memo[i][j] = Some(v);
        v
    }
    go(&a, &b, 0, 0, &mut memo)
}

/// Whether every action of `region` matches one of the statement's action globs.
fn actions_cover(set: &ActionSet, region: &Actions<'_>) -> bool {
    match (set, region) {
        (ActionSet::Actions(globs), Actions::Pattern(p)) => globs.iter().any(|g| glob_match(g, p)),
        (ActionSet::Actions(globs), Actions::AllExcept(_)) => {
            globs.iter().any(|g| glob_match(g, "*"))
        }
        (ActionSet::NotActions(excluded), Actions::Pattern(p)) => {
            !excluded.iter().any(|x| globs_overlap(x, p))
        }
        (ActionSet::NotActions(excluded), Actions::AllExcept(also_excluded)) => excluded
            .iter()
            .all(|x| also_excluded.iter().any(|g| glob_match(g, x))),
    }
}

/// Whether some action of `region` could match the statement's actions.
fn actions_overlap(set: &ActionSet, region: &Actions<'_>) -> bool {
    match (set, region) {
        (ActionSet::Actions(globs), Actions::Pattern(p)) => {
            globs.iter().any(|g| globs_overlap(g, p))
        }
        (ActionSet::Actions(globs), Actions::AllExcept(excluded)) => globs
            .iter()
            .any(|g| !excluded.iter().any(|x| glob_match(x, g))),
        (ActionSet::NotActions(excluded), Actions::Pattern(p)) => {
            !excluded.iter().any(|x| glob_match(x, p))
        }
        (ActionSet::NotActions(_), Actions::AllExcept(_)) => true,
    }
}

/// Whether two specifiers could match a common resource: same types at the same depth and
/// overlapping names (tags and properties are assumed to overlap).
fn specs_overlap(a: &ResourceSpec, b: &ResourceSpec) -> bool {
    a.segments.len() == b.segments.len()
        && a.segments
            .iter()
            .zip(&b.segments)
            .all(|(x, y)| x.kind == y.kind && (x.kind == "acct" || globs_overlap(&x.name, &y.name)))
}

fn resources_cover(set: &ResourceSet, region: &ResourceSpec) -> bool {
    match set {
        ResourceSet::Resources(specs) => specs.iter().any(|s| s.covers(region)),
        ResourceSet::NotResources(specs) => !specs.iter().any(|s| specs_overlap(s, region)),
    }
}

fn resources_overlap(set: &ResourceSet, region: &ResourceSpec) -> bool {
    match set {
        ResourceSet::Resources(specs) => specs.iter().any(|s| specs_overlap(s, region)),
        ResourceSet::NotResources(specs) => !specs.iter().any(|s| s.covers(region)),
    }
}

/// Whether one role (its compiled statements) allows every (action, resource) of the region.
fn role_covers(statements: &[Statement], actions: &Actions<'_>, region: &ResourceSpec) -> bool {
    let allowed = statements.iter().any(|s| {
        s.effect == Effect::Allow
            && actions_cover(&s.actions, actions)
            && resources_cover(&s.resources, region)
    });
    allowed
        && !statements.iter().any(|s| {
            s.effect == Effect::Deny
                && actions_overlap(&s.actions, actions)
                && resources_overlap(&s.resources, region)
        })
}

fn permissions_cover(p: &Permissions, actions: &Actions<'_>, region: &ResourceSpec) -> bool {
    p.roles()
        .iter()
        .any(|role| role_covers(role.statements(), actions, region))
        && p.ceilings()
            .iter()
            .all(|c| permissions_cover(c, actions, region))
}

/// The first (action pattern, resource specifier) region that `grant` allows and `ceiling`
/// does not cover, as text for an error message; `None` when the grant stays within the
/// ceiling. `grant` holds resolved statements (role attributes substituted).
pub fn first_excess(grant: &[Statement], ceiling: &Permissions) -> Option<String> {
    let every_kind: Vec<ResourceSpec> = ResourceKind::ALL
        .iter()
        .filter_map(|k| ResourceSpec::parse(&k.wildcard_specifier()).ok())
        .collect();
    for statement in grant.iter().filter(|s| s.effect == Effect::Allow) {
        let actions: Vec<Actions<'_>> = match &statement.actions {
            ActionSet::Actions(list) => list.iter().map(|a| Actions::Pattern(a)).collect(),
            ActionSet::NotActions(list) => vec![Actions::AllExcept(list)],
        };
        let resources: &[ResourceSpec] = match &statement.resources {
            ResourceSet::Resources(specs) => specs,
            ResourceSet::NotResources(_) => &every_kind,
        };
        for action in &actions {
            for resource in resources {
                if !permissions_cover(ceiling, action, resource) {
                    let action = match action {
                        Actions::Pattern(p) => format!("\"{p}\""),
                        Actions::AllExcept(x) => format!("every action except {}", x.join(", ")),
                    };
                    return Some(format!("{action} on \"{resource}\""));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use flagstaff_policy::{BaseRole, CompiledPolicy, parse_policy_str};
    use std::sync::Arc;

    fn perms(policy: &str) -> Permissions {
        let statements = parse_policy_str(policy).unwrap();
        Permissions::new([Arc::new(CompiledPolicy::new(&statements).unwrap())])
    }

    fn base(role: BaseRole) -> Permissions {
        Permissions::new([role.policy()])
    }

    fn grant(policy: &str) -> Vec<Statement> {
        parse_policy_str(policy).unwrap()
    }

    #[test]
    fn overlap() {
        for (a, b, want) in [
            ("*", "x", true),
            ("a*", "*b", true),
            ("a*", "b*", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("a*c", "ab*", true),
            ("*x*", "y", false),
            ("", "*", true),
            ("", "a", false),
        ] {
            assert_eq!(globs_overlap(a, b), want, "{a} / {b}");
            assert_eq!(globs_overlap(b, a), want, "{b} / {a}");
        }
    }

    #[test]
    fn base_roles_are_ordered() {
        for (i, higher) in BaseRole::ALL.iter().enumerate() {
            for (j, lower) in BaseRole::ALL.iter().enumerate() {
                let within = first_excess(&lower.statements(), &base(*higher)).is_none();
                assert_eq!(within, j <= i, "{lower} within {higher}");
            }
        }
    }

    #[test]
    fn globs_and_denies() {
        let writer_on_p = perms(
            r#"[{"effect":"allow","actions":["*"],"resources":["proj/p:env/*:flag/*"]},
                {"effect":"deny","actions":["updateOn"],"resources":["proj/p:env/production:flag/*"]}]"#,
        );
        let ok = grant(
            r#"[{"effect":"allow","actions":["updateTargets"],"resources":["proj/p:env/test:flag/*"]}]"#,
        );
        assert_eq!(first_excess(&ok, &writer_on_p), None);
        let other_project = grant(
            r#"[{"effect":"allow","actions":["updateOn"],"resources":["proj/*:env/test:flag/*"]}]"#,
        );
        assert!(first_excess(&other_project, &writer_on_p).is_some());
        let denied_action = grant(
            r#"[{"effect":"allow","actions":["update*"],"resources":["proj/p:env/*:flag/*"]}]"#,
        );
        assert!(first_excess(&denied_action, &writer_on_p).is_some());
        let tagged = perms(r#"[{"effect":"allow","actions":["*"],"resources":["proj/*;mobile"]}]"#);
        let with_tag = grant(
            r#"[{"effect":"allow","actions":["updateTags"],"resources":["proj/x;mobile,web"]}]"#,
        );
        assert_eq!(first_excess(&with_tag, &tagged), None);
        let without_tag =
            grant(r#"[{"effect":"allow","actions":["updateTags"],"resources":["proj/x"]}]"#);
        assert!(first_excess(&without_tag, &tagged).is_some());
    }

    #[test]
    fn admin_keeps_owner_actions() {
        let admin = base(BaseRole::Admin);
        let acct =
            grant(r#"[{"effect":"allow","actions":["updateAccountOwner"],"resources":["acct"]}]"#);
        assert!(first_excess(&acct, &admin).is_some());
        let saml = grant(r#"[{"effect":"allow","actions":["updateSaml*"],"resources":["acct"]}]"#);
        assert_eq!(first_excess(&saml, &admin), None);
        let everything =
            grant(r#"[{"effect":"allow","notActions":["viewProject"],"notResources":["proj/x"]}]"#);
        assert!(first_excess(&everything, &admin).is_some());
        assert_eq!(first_excess(&everything, &base(BaseRole::Owner)), None);
    }

    #[test]
    fn ceilings_bound() {
        let token = base(BaseRole::Owner).bounded_by(base(BaseRole::Reader));
        assert!(first_excess(&BaseRole::Writer.statements(), &token).is_some());
        assert_eq!(first_excess(&BaseRole::Reader.statements(), &token), None);
    }
}
