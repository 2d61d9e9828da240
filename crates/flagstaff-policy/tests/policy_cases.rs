//! Conformance table: (roles, role attributes, action, concrete resource) → decision.
//!
//! Each line of `CASES` is `roles | attributes | action | resource | expected`:
//! * roles: names from `POLICIES` joined by `+` (several roles: the most permissive wins);
//!   `@reader`, `@writer`, `@admin`, `@owner`, `@no_access` are the base roles; `^name` is the
//!   custom role `name` with `basePermissions: reader`; `TOKEN within MEMBER` bounds a token's
//!   roles by its member's.
//! * attributes: `name=v1,v2;other=v3` role attributes for every custom role on the line.
//! * resource: a concrete resource in specifier syntax, literal; `{critical:true}` is a property.
//! * expected: `allow`, `deny` (a deny statement matched, none allowed) or `none` (nothing
//!   matched).

use std::sync::Arc;

use flagstaff_policy::{
    Authorizer, BasePermissions, BaseRole, CompiledPolicy, Decision, Permissions, Resource,
    RoleAttributes, parse_policy_str,
};

const POLICIES: &[(&str, &str)] = &[
    ("empty", r#"[]"#),
    (
        "prod-flags",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/production:flag/*"]}]"#,
    ),
    (
        "updateOn-prod",
        r#"[{"effect":"allow","actions":["updateOn"],"resources":["proj/*:env/production:flag/*"]}]"#,
    ),
    (
        "update-glob",
        r#"[{"effect":"allow","actions":["update*"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "suffix-glob",
        r#"[{"effect":"allow","actions":["*Flag"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "mid-action-glob",
        r#"[{"effect":"allow","actions":["update*Targets"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "exact-proj",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/default:env/*:flag/*"]}]"#,
    ),
    (
        "prefix-proj",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/mobile-*:env/*:flag/*"]}]"#,
    ),
    (
        "mid-glob",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/ops_*_temp"]}]"#,
    ),
    (
        "exact-flag",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/example-project:env/production:flag/example-flag"]}]"#,
    ),
    (
        "tag1",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;tag1"]}]"#,
    ),
    (
        "tag1and2",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;tag1,tag2"]}]"#,
    ),
    (
        "tag1or2",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;tag1"]},
                    {"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;tag2"]}]"#,
    ),
    (
        "tag-glob",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;team-*"]}]"#,
    ),
    (
        "qa-env-flags",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*;qa_*:flag/*"]}]"#,
    ),
    (
        "qa-env",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*;qa_*"]}]"#,
    ),
    (
        "proj-tag",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*;mobile:env/*:flag/*"]}]"#,
    ),
    (
        "critical-deny",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                         {"effect":"deny","actions":["*"],"resources":["proj/*:env/*;{critical:true}:flag/*"]}]"#,
    ),
    (
        "non-critical",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*;{critical:false}:flag/*"]}]"#,
    ),
    (
        "critical-env",
        r#"[{"effect":"allow","actions":["updateName"],"resources":["proj/*:env/*;{critical:true}"]}]"#,
    ),
    (
        "tag-and-prop",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*;qa_*,{critical:true}:flag/*"]}]"#,
    ),
    (
        "unknown-prop",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*;{color:blue}:flag/*"]}]"#,
    ),
    (
        "not-actions",
        r#"[{"effect":"allow","notActions":["deleteFlag"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "not-actions-glob",
        r#"[{"effect":"allow","notActions":["delete*","update*Archived"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "not-resources",
        r#"[{"effect":"allow","actions":["*"],"notResources":["proj/secret:env/*:flag/*"]}]"#,
    ),
    (
        "not-both",
        r#"[{"effect":"allow","notActions":["deleteFlag"],"notResources":["proj/secret:env/*:flag/*"]}]"#,
    ),
    (
        "private-projects",
        r#"[{"effect":"allow","actions":["viewProject"],"resources":["proj/*"]},
                            {"effect":"deny","actions":["viewProject"],"notResources":["proj/public-*"]}]"#,
    ),
    (
        "hide-others",
        r#"[{"effect":"deny","actions":["viewProject"],"notResources":["proj/mine"]}]"#,
    ),
    (
        "deny-delete",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                       {"effect":"deny","actions":["deleteFlag"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "prod-toggle-only",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                            {"effect":"deny","notActions":["updateOn","updateTargets"],"resources":["proj/*:env/production:flag/*"]}]"#,
    ),
    (
        "deny-only",
        r#"[{"effect":"deny","actions":["*"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "deny-tagged",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                       {"effect":"deny","actions":["*"],"resources":["proj/*:env/*:flag/*;locked"]}]"#,
    ),
    (
        "deny-first-order",
        r#"[{"effect":"deny","actions":["updateOn"],"resources":["proj/*:env/*:flag/*"]},
                            {"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "acct-all",
        r#"[{"effect":"allow","actions":["*"],"resources":["acct"]}]"#,
    ),
    (
        "acct-saml",
        r#"[{"effect":"allow","actions":["updateSaml*"],"resources":["acct"]}]"#,
    ),
    (
        "members",
        r#"[{"effect":"allow","actions":["*"],"resources":["member/*"]}]"#,
    ),
    (
        "tokens",
        r#"[{"effect":"allow","actions":["*"],"resources":["member/*:token/*"]}]"#,
    ),
    (
        "own-tokens",
        r#"[{"effect":"allow","actions":["*"],"resources":["member/m1:token/*"]}]"#,
    ),
    (
        "no-token-create",
        r#"[{"effect":"allow","actions":["*"],"resources":["member/*:token/*"]},
                           {"effect":"deny","actions":["createAccessToken"],"resources":["member/*:token/*"]}]"#,
    ),
    (
        "segments",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:segment/*"]}]"#,
    ),
    (
        "metrics",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:metric/*"]}]"#,
    ),
    (
        "projects",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*"]}]"#,
    ),
    (
        "envs",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*"]}]"#,
    ),
    (
        "multi-res",
        r#"[{"effect":"allow","actions":["updateOn"],"resources":["proj/a:env/*:flag/*","proj/b:env/*:flag/*"]}]"#,
    ),
    (
        "multi-action",
        r#"[{"effect":"allow","actions":["updateOn","updateRules"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "top-level",
        r#"[{"effect":"allow","actions":["*"],"resources":["webhook/*","integration/*","relay-proxy-config/*",
                     "code-reference-repository/*","application/*","template/*","pending-request/*","domain-verification/*",
                     "service-token/*","role/*","team/*"]}]"#,
    ),
    (
        "env-scoped",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:destination/*","proj/*:env/*:experiment/*",
                      "proj/*:env/*:holdout/*","proj/*:env/*:request/*"]}]"#,
    ),
    (
        "proj-scoped",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:context-kind/*","proj/*:metric-group/*",
                       "proj/*:layer/*","proj/*:release-pipeline/*","proj/*:aiconfig/*","proj/*:view/*"]}]"#,
    ),
    (
        "webhook-tags",
        r#"[{"effect":"allow","actions":["*"],"resources":["webhook/*;ops"]}]"#,
    ),
    (
        "attr-proj",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/${roleAttribute/projectKey}:env/*:flag/*"]}]"#,
    ),
    (
        "attr-tag",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;${roleAttribute/flagTag}"]}]"#,
    ),
    (
        "attr-embedded",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/team-${roleAttribute/team}-*:env/*:flag/*"]}]"#,
    ),
    (
        "attr-two",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/${roleAttribute/projectKey}:env/${roleAttribute/envKey}:flag/*"]}]"#,
    ),
    (
        "attr-not",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                    {"effect":"deny","actions":["*"],"notResources":["proj/${roleAttribute/projectKey}:env/*:flag/*"]}]"#,
    ),
    (
        "attr-deny",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                     {"effect":"deny","actions":["deleteFlag"],"resources":["proj/${roleAttribute/projectKey}:env/*:flag/*"]}]"#,
    ),
    (
        "case-proj",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/Default:env/*:flag/*"]}]"#,
    ),
    (
        "case-action",
        r#"[{"effect":"allow","actions":["updateon"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "case-tag",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*;Beta"]}]"#,
    ),
    (
        "writer-flags",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*","proj/*:env/*:segment/*"]}]"#,
    ),
    (
        "token-inline",
        r#"[{"effect":"allow","actions":["updateOn"],"resources":["proj/*:env/*:flag/*"]}]"#,
    ),
    (
        "token-all",
        r#"[{"effect":"allow","actions":["*"],"notResources":[]}]"#,
    ),
    (
        "member-deny-prod",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*:env/*:flag/*"]},
                            {"effect":"deny","actions":["*"],"resources":["proj/*:env/production:flag/*"]}]"#,
    ),
    (
        "segment-tags",
        r#"[{"effect":"allow","actions":["updateIncluded","updateExcluded"],"resources":["proj/*:env/*:segment/*;beta-*"]}]"#,
    ),
    (
        "metric-tags",
        r#"[{"effect":"allow","actions":["*"],"resources":["proj/*;mobile:metric/*;revenue"]}]"#,
    ),
];

/// Resources used below (to keep lines readable).
const PROD: &str = "proj/default:env/production;{critical:true}";
const TEST: &str = "proj/default:env/test;{critical:false}";

const CASES: &str = r#"
# ---- globs in names: exact, prefix, *, middle ----
prod-flags       |  | updateOn        | PROD:flag/my-flag                                   | allow
prod-flags       |  | deleteFlag      | PROD:flag/other                                     | allow
prod-flags       |  | updateOn        | TEST:flag/my-flag                                   | none
prod-flags       |  | updateOn        | proj/other:env/production;{critical:true}:flag/x    | allow
prod-flags       |  | updateOn        | proj/default:env/production-eu:flag/x               | none
exact-proj       |  | updateOn        | TEST:flag/x                                         | allow
exact-proj       |  | updateOn        | proj/default2:env/test:flag/x                       | none
exact-proj       |  | updateOn        | proj/defaul:env/test:flag/x                         | none
prefix-proj      |  | updateOn        | proj/mobile-ios:env/test:flag/x                     | allow
prefix-proj      |  | updateOn        | proj/mobile-:env/test:flag/x                        | allow
prefix-proj      |  | updateOn        | proj/mobile:env/test:flag/x                         | none
prefix-proj      |  | updateOn        | proj/web-mobile-ios:env/test:flag/x                 | none
mid-glob         |  | updateOn        | TEST:flag/ops_db_temp                               | allow
mid-glob         |  | updateOn        | TEST:flag/ops__temp                                 | allow
mid-glob         |  | updateOn        | TEST:flag/ops_temp                                  | none
mid-glob         |  | updateOn        | TEST:flag/ops_db_temp2                              | none
exact-flag       |  | updateOn        | proj/example-project:env/production:flag/example-flag | allow
exact-flag       |  | updateOn        | proj/example-project:env/production:flag/example-flag2 | none
exact-flag       |  | updateOn        | proj/example-project:env/test:flag/example-flag     | none
# ---- globs in actions ----
updateOn-prod    |  | updateOn        | PROD:flag/f                                         | allow
updateOn-prod    |  | updateOnline    | PROD:flag/f                                         | none
updateOn-prod    |  | updateRules     | PROD:flag/f                                         | none
update-glob      |  | updateOn        | TEST:flag/f                                         | allow
update-glob      |  | updateFallthrough | TEST:flag/f                                       | allow
update-glob      |  | update          | TEST:flag/f                                         | allow
update-glob      |  | deleteFlag      | TEST:flag/f                                         | none
update-glob      |  | createFlag      | TEST:flag/f                                         | none
suffix-glob      |  | createFlag      | TEST:flag/f                                         | allow
suffix-glob      |  | deleteFlag      | TEST:flag/f                                         | allow
suffix-glob      |  | cloneFlag       | TEST:flag/f                                         | allow
suffix-glob      |  | updateOn        | TEST:flag/f                                         | none
mid-action-glob  |  | updateTargets   | TEST:flag/f                                         | allow
mid-action-glob  |  | updateExpiringTargets | TEST:flag/f                                   | allow
mid-action-glob  |  | updateRules     | TEST:flag/f                                         | none
multi-action     |  | updateRules     | TEST:flag/f                                         | allow
multi-action     |  | updateOn        | TEST:flag/f                                         | allow
multi-action     |  | updateTargets   | TEST:flag/f                                         | none
# ---- tags: one, several (AND), OR by statements, globs, on parents ----
tag1             |  | updateOn        | TEST:flag/f;tag1                                    | allow
tag1             |  | updateOn        | TEST:flag/f;tag0,tag1,tag9                          | allow
tag1             |  | updateOn        | TEST:flag/f;tag2                                    | none
tag1             |  | updateOn        | TEST:flag/f                                         | none
tag1             |  | updateOn        | TEST:flag/f;tag10                                   | none
tag1and2         |  | updateOn        | TEST:flag/f;tag1,tag2                               | allow
tag1and2         |  | updateOn        | TEST:flag/f;tag2,tag1,tag3                          | allow
tag1and2         |  | updateOn        | TEST:flag/f;tag1                                    | none
tag1and2         |  | updateOn        | TEST:flag/f;tag2                                    | none
tag1and2         |  | updateOn        | TEST:flag/f                                         | none
tag1or2          |  | updateOn        | TEST:flag/f;tag1                                    | allow
tag1or2          |  | updateOn        | TEST:flag/f;tag2                                    | allow
tag1or2          |  | updateOn        | TEST:flag/f;tag3                                    | none
tag-glob         |  | updateOn        | TEST:flag/f;team-a                                  | allow
tag-glob         |  | updateOn        | TEST:flag/f;other,team-                             | allow
tag-glob         |  | updateOn        | TEST:flag/f;teama                                   | none
qa-env-flags     |  | updateOn        | proj/p:env/qa1;qa_1,{critical:false}:flag/f         | allow
qa-env-flags     |  | updateOn        | proj/p:env/qa1;{critical:false}:flag/f;qa_1         | none
qa-env-flags     |  | updateOn        | proj/p:env/qa1;qa_1                                 | none
qa-env           |  | updateName      | proj/p:env/qa1;qa_1                                 | allow
qa-env           |  | updateOn        | proj/p:env/qa1;qa_1:flag/f                          | none
qa-env           |  | updateName      | proj/p:env/qa1                                      | none
proj-tag         |  | updateOn        | proj/p;mobile:env/test:flag/f                       | allow
proj-tag         |  | updateOn        | proj/p;web:env/test:flag/f                          | none
proj-tag         |  | updateOn        | proj/p:env/test;mobile:flag/f;mobile                | none
webhook-tags     |  | updateUrl       | webhook/w1;ops,dev                                  | allow
webhook-tags     |  | updateUrl       | webhook/w1;dev                                      | none
segment-tags     |  | updateIncluded  | proj/p:env/test:segment/s;beta-users                | allow
segment-tags     |  | updateRules     | proj/p:env/test:segment/s;beta-users                | none
segment-tags     |  | updateIncluded  | proj/p:env/test:segment/s                           | none
metric-tags      |  | updateName      | proj/p;mobile:metric/m;revenue                      | allow
metric-tags      |  | updateName      | proj/p:metric/m;revenue                             | none
metric-tags      |  | updateName      | proj/p;mobile:metric/m                              | none
# ---- property selectors ----
critical-deny    |  | updateOn        | TEST:flag/f                                         | allow
critical-deny    |  | updateOn        | PROD:flag/f                                         | deny
critical-deny    |  | updateOn        | proj/default:env/production:flag/f                  | allow
non-critical     |  | updateOn        | TEST:flag/f                                         | allow
non-critical     |  | updateOn        | PROD:flag/f                                         | none
non-critical     |  | updateOn        | proj/default:env/test:flag/f                        | none
critical-env     |  | updateName      | PROD                                                | allow
critical-env     |  | updateName      | TEST                                                | none
critical-env     |  | updateName      | PROD:flag/f                                         | none
tag-and-prop     |  | updateOn        | proj/p:env/qa;qa_x,{critical:true}:flag/f           | allow
tag-and-prop     |  | updateOn        | proj/p:env/qa;qa_x,{critical:false}:flag/f          | none
tag-and-prop     |  | updateOn        | proj/p:env/qa;{critical:true}:flag/f                | none
unknown-prop     |  | updateOn        | PROD:flag/f                                         | none
unknown-prop     |  | updateOn        | proj/p:env/e;{color:blue}:flag/f                    | allow
# ---- notActions / notResources ----
not-actions      |  | updateOn        | TEST:flag/f                                         | allow
not-actions      |  | deleteFlag      | TEST:flag/f                                         | none
not-actions      |  | deleteFlag      | TEST:segment/s                                      | none
not-actions      |  | updateOn        | TEST                                                | none
not-actions-glob |  | deleteFlag      | TEST:flag/f                                         | none
not-actions-glob |  | updateGlobalArchived | TEST:flag/f                                    | none
not-actions-glob |  | updateOn        | TEST:flag/f                                         | allow
not-resources    |  | updateOn        | TEST:flag/f                                         | allow
not-resources    |  | updateOn        | proj/secret:env/test:flag/f                         | none
not-resources    |  | deleteProject   | proj/secret                                         | allow
not-resources    |  | createMember    | member/m1                                           | allow
not-resources    |  | updateOrganization | acct                                             | allow
not-both         |  | updateOn        | TEST:flag/f                                         | allow
not-both         |  | deleteFlag      | TEST:flag/f                                         | none
not-both         |  | updateOn        | proj/secret:env/test:flag/f                         | none
private-projects |  | viewProject     | proj/public-docs                                    | allow
private-projects |  | viewProject     | proj/internal                                       | deny
private-projects |  | viewProject     | proj/public-docs:env/test                           | deny
private-projects |  | updateTags      | proj/internal                                       | none
^hide-others     |  | viewProject     | proj/mine                                           | allow
^hide-others     |  | viewProject     | proj/theirs                                         | deny
^hide-others     |  | viewSdkKey      | proj/theirs:env/test                                | allow
^hide-others     |  | updateOn        | proj/mine:env/test:flag/f                           | none
# ---- deny precedence inside one policy ----
deny-delete      |  | updateOn        | TEST:flag/f                                         | allow
deny-delete      |  | deleteFlag      | TEST:flag/f                                         | deny
deny-first-order |  | updateOn        | TEST:flag/f                                         | deny
deny-first-order |  | updateRules     | TEST:flag/f                                         | allow
prod-toggle-only |  | updateOn        | PROD:flag/f                                         | allow
prod-toggle-only |  | updateTargets   | PROD:flag/f                                         | allow
prod-toggle-only |  | updateRules     | PROD:flag/f                                         | deny
prod-toggle-only |  | updateRules     | TEST:flag/f                                         | allow
deny-only        |  | updateOn        | TEST:flag/f                                         | deny
deny-only        |  | updateOn        | TEST                                                | none
deny-tagged      |  | updateOn        | TEST:flag/f;locked                                  | deny
deny-tagged      |  | updateOn        | TEST:flag/f;open                                    | allow
empty            |  | viewProject     | proj/p                                              | none
# ---- several roles: the most permissive wins ----
deny-only+prod-flags |  | updateOn    | PROD:flag/f                                         | allow
deny-only+prod-flags |  | updateOn    | TEST:flag/f                                         | deny
deny-delete+suffix-glob | | deleteFlag | TEST:flag/f                                        | allow
tag1+tag-glob    |  | updateOn        | TEST:flag/f;other                                   | none
tag1+tag1and2    |  | updateOn        | TEST:flag/f;tag1                                    | allow
critical-deny+updateOn-prod | | updateOn | PROD:flag/f                                     | allow
critical-deny+updateOn-prod | | updateRules | PROD:flag/f                                  | deny
empty+empty      |  | updateOn        | TEST:flag/f                                         | none
deny-only+deny-tagged | | updateOn   | TEST:flag/f;locked                                  | deny
deny-only+deny-tagged | | updateOn   | TEST:flag/f                                         | allow
@reader+deny-only |  | viewProject    | proj/p                                              | allow
@reader+deny-only |  | updateOn       | TEST:flag/f                                         | deny
@no_access+prod-flags | | updateOn   | PROD:flag/f                                         | allow
@no_access+prod-flags | | updateOn   | TEST:flag/f                                         | none
# ---- role attributes ----
attr-proj        | projectKey=default | updateOn | TEST:flag/f                             | allow
attr-proj        | projectKey=default | updateOn | proj/other:env/test:flag/f              | none
attr-proj        | projectKey=a,b     | updateOn | proj/b:env/test:flag/f                  | allow
attr-proj        | projectKey=a,b     | updateOn | proj/a:env/test:flag/f                  | allow
attr-proj        | projectKey=a,b     | updateOn | proj/c:env/test:flag/f                  | none
attr-proj        | projectKey=*       | updateOn | proj/c:env/test:flag/f                  | error
attr-proj        |                    | updateOn | TEST:flag/f                             | error
attr-proj        | other=default      | updateOn | TEST:flag/f                             | error
attr-proj        | projectKey=        | updateOn | TEST:flag/f                             | error
attr-tag         | flagTag=beta       | updateOn | TEST:flag/f;beta                        | allow
attr-tag         | flagTag=beta       | updateOn | TEST:flag/f;gamma                       | none
attr-embedded    | team=red           | updateOn | proj/team-red-web:env/test:flag/f       | allow
attr-embedded    | team=red           | updateOn | proj/team-blue-web:env/test:flag/f      | none
attr-two         | projectKey=p;envKey=dev,qa | updateOn | proj/p:env/qa:flag/f            | allow
attr-two         | projectKey=p;envKey=dev,qa | updateOn | proj/p:env/prod:flag/f          | none
attr-two         | projectKey=p       | updateOn | proj/p:env/qa:flag/f                    | error
attr-not         | projectKey=a,b     | updateOn | proj/a:env/test:flag/f                  | allow
attr-not         | projectKey=a,b     | updateOn | proj/b:env/test:flag/f                  | allow
attr-not         | projectKey=a,b     | updateOn | proj/c:env/test:flag/f                  | deny
attr-deny        | projectKey=a       | deleteFlag | proj/a:env/test:flag/f                | deny
attr-deny        | projectKey=a       | deleteFlag | proj/b:env/test:flag/f                | allow
# ---- acct, members, tokens and other top-level types ----
acct-all         |  | updateOrganization | acct                                             | allow
acct-all         |  | updateOrganization | proj/acct                                        | none
acct-saml        |  | updateSamlEnabled  | acct                                             | allow
acct-saml        |  | updateRequireMfa   | acct                                             | none
members          |  | createMember    | member/m1                                           | allow
members          |  | createAccessToken | member/m1:token/t1                                | none
tokens           |  | createAccessToken | member/m1:token/t1                                | allow
tokens           |  | createMember    | member/m1                                           | none
tokens           |  | createAccessToken | service-token/t1                                  | none
own-tokens       |  | deleteAccessToken | member/m1:token/t1                                | allow
own-tokens       |  | deleteAccessToken | member/m2:token/t1                                | none
no-token-create  |  | createAccessToken | member/m1:token/t1                                | deny
no-token-create  |  | resetAccessToken  | member/m1:token/t1                                | allow
top-level        |  | updateUrl       | webhook/w                                           | allow
top-level        |  | createIntegration | integration/datadog                               | allow
top-level        |  | updateRelayAutoConfigurationName | relay-proxy-config/r1              | allow
top-level        |  | createCodeRefsRepository | code-reference-repository/repo             | allow
top-level        |  | createApplication | application/app                                   | allow
top-level        |  | viewTemplate    | template/t                                          | allow
top-level        |  | updatePendingRequest | pending-request/r                              | allow
top-level        |  | createDomainVerification | domain-verification/d                      | allow
top-level        |  | resetAccessToken | service-token/s                                    | allow
top-level        |  | updatePolicy    | role/r                                              | allow
top-level        |  | updateTeamMembers | team/t                                            | allow
top-level        |  | createMember    | member/m                                            | none
top-level        |  | updateUrl       | proj/p:env/e:flag/webhook                           | none
env-scoped       |  | createDestination | TEST:destination/d                                | allow
env-scoped       |  | createExperiment  | TEST:experiment/x                                 | allow
env-scoped       |  | createHoldout   | TEST:holdout/h                                      | allow
env-scoped       |  | createPendingRequest | TEST:request/r                                 | allow
env-scoped       |  | updateOn        | TEST:flag/f                                         | none
proj-scoped      |  | createContextKind | proj/p:context-kind/user                          | allow
proj-scoped      |  | updateName      | proj/p:metric-group/g                               | allow
proj-scoped      |  | updateName      | proj/p:layer/l                                      | allow
proj-scoped      |  | updateName      | proj/p:release-pipeline/l                           | allow
proj-scoped      |  | updateName      | proj/p:aiconfig/a                                   | allow
proj-scoped      |  | updateName      | proj/p:view/v                                       | allow
proj-scoped      |  | updateName      | proj/p:metric/m                                     | none
# ---- nesting depth and type mismatches ----
projects         |  | updateTags      | proj/p                                              | allow
projects         |  | updateTags      | proj/p:env/e                                        | none
projects         |  | updateOn        | TEST:flag/f                                         | none
envs             |  | updateTags      | TEST                                                | allow
envs             |  | updateTags      | proj/p                                              | none
envs             |  | updateOn        | TEST:flag/f                                         | none
prod-flags       |  | updateOn        | PROD                                                | none
prod-flags       |  | updateOn        | PROD:segment/my-flag                                | none
segments         |  | updateIncluded  | TEST:segment/s                                      | allow
segments         |  | updateIncluded  | TEST:flag/s                                         | none
metrics          |  | updateName      | proj/p:metric/m                                     | allow
metrics          |  | updateName      | TEST:flag/m                                         | none
multi-res        |  | updateOn        | proj/a:env/e:flag/f                                 | allow
multi-res        |  | updateOn        | proj/b:env/e:flag/f                                 | allow
multi-res        |  | updateOn        | proj/c:env/e:flag/f                                 | none
# ---- case sensitivity ----
case-proj        |  | updateOn        | proj/Default:env/test:flag/f                        | allow
case-proj        |  | updateOn        | TEST:flag/f                                         | none
case-action      |  | updateOn        | TEST:flag/f                                         | none
case-action      |  | updateon        | TEST:flag/f                                         | allow
case-tag         |  | updateOn        | TEST:flag/f;beta                                    | none
case-tag         |  | updateOn        | TEST:flag/f;Beta                                    | allow
update-glob      |  | UpdateOn        | TEST:flag/f                                         | none
# ---- base roles ----
@reader          |  | viewProject     | proj/p                                              | allow
@reader          |  | viewSdkKey      | TEST                                                | allow
@reader          |  | viewTeam        | team/t                                              | allow
@reader          |  | updateOn        | TEST:flag/f                                         | none
@reader          |  | createProject   | proj/p                                              | none
@reader          |  | createAccessToken | member/m:token/t                                  | none
@writer          |  | updateOn        | PROD:flag/f                                         | allow
@writer          |  | createProject   | proj/p                                              | allow
@writer          |  | createEnvironment | TEST                                              | allow
@writer          |  | createWebhook   | webhook/w                                           | allow
@writer          |  | createIntegration | integration/slack                                 | allow
@writer          |  | createMetric    | proj/p:metric/m                                     | allow
@writer          |  | viewTeam        | team/t                                              | allow
@writer          |  | createMember    | member/m                                            | none
@writer          |  | updateRole      | member/m                                            | none
@writer          |  | createRole      | role/r                                              | none
@writer          |  | updateTeamMembers | team/t                                            | none
@writer          |  | deleteAccessToken | member/m:token/t                                  | none
@writer          |  | createAccessToken | service-token/t                                   | none
@writer          |  | updateOrganization | acct                                             | none
@admin           |  | createMember    | member/m                                            | allow
@admin           |  | createRole      | role/r                                              | allow
@admin           |  | deleteAccessToken | member/m:token/t                                  | allow
@admin           |  | updateSamlEnabled | acct                                              | allow
@admin           |  | updateRequireMfa | acct                                               | allow
@admin           |  | updateAccountOwner | acct                                             | none
@admin           |  | updatePaymentCard | acct                                              | none
@admin           |  | updateSubscription | acct                                             | none
@owner           |  | updateAccountOwner | acct                                             | allow
@owner           |  | updateOn        | PROD:flag/f                                         | allow
@owner           |  | createMember    | member/m                                            | allow
@no_access       |  | viewProject     | proj/p                                              | none
@no_access       |  | updateOn        | TEST:flag/f                                         | none
^writer-flags    |  | viewProject     | proj/p                                              | allow
^writer-flags    |  | updateOn        | TEST:flag/f                                         | allow
^writer-flags    |  | createProject   | proj/p                                              | none
writer-flags     |  | viewProject     | proj/p                                              | none
# ---- tokens: never more than the member ----
token-inline within @writer |  | updateOn   | TEST:flag/f                               | allow
token-inline within @writer |  | updateRules | TEST:flag/f                              | none
token-inline within @reader |  | updateOn   | TEST:flag/f                               | none
token-all within @reader    |  | viewProject | proj/p                                   | allow
token-all within @reader    |  | updateOn   | TEST:flag/f                               | none
token-all within member-deny-prod | | updateOn | TEST:flag/f                            | allow
token-all within member-deny-prod | | updateOn | PROD:flag/f                            | deny
token-all within @no_access |  | viewProject | proj/p                                   | none
@writer within @reader      |  | updateOn   | TEST:flag/f                               | none
@writer within @admin       |  | updateOn   | TEST:flag/f                               | allow
@admin within @writer       |  | createMember | member/m                                | none
empty within @owner         |  | updateOn   | TEST:flag/f                               | none
token-inline within critical-deny | | updateOn | PROD:flag/f                           | deny
@writer within no-token-create | | createAccessToken | member/m1:token/t1             | deny
@writer within no-token-create | | resetAccessToken  | member/m1:token/t1             | none
@reader within @writer      |  | updateOn   | TEST:flag/f                               | none
token-all within attr-proj  | projectKey=a | updateOn | proj/a:env/e:flag/f             | allow
token-all within attr-proj  | projectKey=a | updateOn | proj/b:env/e:flag/f             | none
"#;

fn policy(name: &str) -> &'static str {
    POLICIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no policy named {name}"))
}

fn attributes(text: &str) -> RoleAttributes {
    let mut out = RoleAttributes::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, values) = part.split_once('=').expect("name=values");
        out.insert(
            name.to_string(),
            values
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    out
}

fn role(name: &str, attrs: &RoleAttributes) -> Result<Arc<CompiledPolicy>, String> {
    if let Some(base) = name.strip_prefix('@') {
        return Ok(BaseRole::from_name(base)
            .unwrap_or_else(|| panic!("no base role {base}"))
            .policy());
    }
    let (name, base) = match name.strip_prefix('^') {
        Some(n) => (n, BasePermissions::Reader),
        None => (name, BasePermissions::NoAccess),
    };
    let statements = parse_policy_str(policy(name)).map_err(|e| format!("{name}: {e}"))?;
    CompiledPolicy::compile_role(&statements, base, attrs)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

fn permissions(roles: &str, attrs: &RoleAttributes) -> Result<Permissions, String> {
    let set = |text: &str| -> Result<Permissions, String> {
        let mut p = Permissions::default();
        for name in text.split('+').map(str::trim) {
            p.push(role(name, attrs)?);
        }
        Ok(p)
    };
    match roles.split_once(" within ") {
        Some((token, member)) => Ok(set(token)?.bounded_by(set(member)?)),
        None => set(roles),
    }
}

#[test]
fn conformance_table() {
    let mut count = 0;
    let mut failures = Vec::new();
    for (n, line) in CASES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 5, "line {}: {line}", n + 1);
        let (roles, attrs, action, resource, expected) =
            (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let resource_text = resource.replace("PROD", PROD).replace("TEST", TEST);
        let resource = Resource::parse(&resource_text)
            .unwrap_or_else(|e| panic!("line {}: resource {resource_text}: {e}", n + 1));
        count += 1;
        let got = match permissions(roles, &attributes(attrs)) {
            Ok(p) => match p.decide(action, &resource) {
                Decision::Allowed => "allow".to_string(),
                Decision::Denied => "deny".to_string(),
                Decision::NotMatched => "none".to_string(),
            },
            Err(e) => {
                if expected != "error" {
                    failures.push(format!("line {}: {line}\n    compile error: {e}", n + 1));
                }
                "error".to_string()
            }
        };
        if got != expected {
            failures.push(format!("line {}: {line}\n    got {got}", n + 1));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 150, "only {count} cases");
    println!("{count} policy cases passed");
}

#[test]
fn every_policy_round_trips_to_the_same_json() {
    for (name, text) in POLICIES {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        let statements = parse_policy_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            flagstaff_policy::policy_to_json(&statements),
            value,
            "{name}"
        );
        let via_serde: Vec<flagstaff_policy::Statement> =
            serde_json::from_value(value.clone()).unwrap();
        assert_eq!(serde_json::to_value(&via_serde).unwrap(), value, "{name}");
    }
}
