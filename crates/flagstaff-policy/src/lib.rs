//! LaunchDarkly's policy language: resource specifiers
//! (`proj/default:env/production:flag/my-flag;tag1,tag2`), policy statements, custom and base
//! roles, and the decision whether a caller may take an action on a resource.
//!
//! Pure: no I/O, no clock. Used for authorization (custom roles, token inline policies), for
//! event filters (webhooks, integration subscriptions, Relay auto-configs), and for the audit
//! log's `spec` filter; audit entries name what they touched with [`ResourceSpec`] strings.
//!
//! # Deciding
//!
//! ```
//! use std::sync::Arc;
//! use flagstaff_policy::*;
//!
//! let policy = parse_policy_str(r#"[
//!     {"effect":"allow","actions":["*"],"resources":["proj/${roleAttribute/projectKey}:env/*:flag/*"]},
//!     {"effect":"deny","actions":["updateOn"],"resources":["proj/*:env/*;{critical:true}:flag/*"]}
//! ]"#).unwrap();
//! let attributes = RoleAttributes::from([("projectKey".to_string(), vec!["mobile".to_string()])]);
//! // A custom role with `basePermissions: reader`, assigned with these role attributes.
//! let role = CompiledPolicy::compile_role(&policy, BasePermissions::Reader, &attributes).unwrap();
//! let member = Permissions::new([Arc::new(role)]);
//!
//! let flag = |env: &str, critical: bool| {
//!     Resource::project("mobile", &[]).env(env, &[], critical).flag("checkout", &[])
//! };
//! assert_eq!(member.decide("updateOn", &flag("test", false)), Decision::Allowed);
//! assert_eq!(member.decide("updateOn", &flag("production", true)), Decision::Denied);
//! assert_eq!(member.decide("viewProject", &Resource::project("web", &[])), Decision::Allowed);
//! assert_eq!(member.decide("deleteProject", &Resource::project("mobile", &[])), Decision::NotMatched);
//!
//! // A personal token never exceeds its member.
//! let token = Permissions::new([BaseRole::Writer.policy()]).bounded_by(member.clone());
//! assert!(!token.allows("createProject", &Resource::project("new", &[])));
//! assert!(!exceeds(&token, &member, "createProject", &Resource::project("new", &[])));
//! ```
//!
//! Semantics (LaunchDarkly, "Using policies"; statement order never matters):
//! * **Inside one policy**, a matching `deny` wins over every `allow`; an `allow` with no
//!   matching `deny` allows; nothing matching is [`Decision::NotMatched`] (denied).
//! * **Across roles** ([`Permissions`]) the most permissive wins: allowed if any role allows.
//! * **Personal tokens** ([`Permissions::bounded_by`]): allowed only if the token's roles allow
//!   *and* its member's current permissions allow.
//! * A specifier matches resources of **exactly its shape**: `proj/*:env/*` matches
//!   environments, not the flags inside them. Names, tags, property values and actions are
//!   case-sensitive `*` globs. Several tags in one segment must **all** be present.
//!   `{property:value}` selectors test properties the concrete [`Resource`] carries
//!   (environments' `critical`).
//! * `notActions` / `notResources` apply to every action / resource (of any type) not listed.
//!
//! # For the server
//!
//! * Build a caller's [`Permissions`] from compiled roles: the member's custom roles (they
//!   **replace** the base role, LaunchDarkly "Managing role assignments") or else
//!   [`BaseRole::policy`], plus every team role. Compile each custom role per assignment with
//!   [`CompiledPolicy::compile_role`] and the member's (or, for team roles, the team's) role
//!   attributes; cache the result and rebuild it when a role, an assignment or attributes
//!   change. Base roles are compiled once per process.
//! * Personal tokens: `token_permissions.bounded_by(member_permissions)`, the member's side
//!   current at request time. Service tokens are not bounded.
//! * Give [`Resource`]s the tags of every level and each environment's `critical`
//!   ([`Resource::env`] requires it): a deny on `env/*;{critical:true}` can only apply to
//!   resources that say whether they are critical.
//! * Flag-wide changes (create, delete, name, tags, variations, …) are checked against the flag
//!   in **every** environment of the project.
//! * Base roles only allow, so what they don't grant is `NotMatched`, never `Denied`. Managing
//!   one's own personal tokens is LaunchDarkly's default for every member unless a role denies
//!   it: for `member/<self>:token/*` the check is `decide(..) != Decision::Denied` (whether a
//!   `no_access` member may, is the server's call).
//! * `_access.allowed/denied` reasons: [`CompiledPolicy::evaluate`] names the deciding
//!   statement in [`CompiledPolicy::statements`].
//! * Event filters (webhooks, integration subscriptions): no statements means every event;
//!   otherwise deliver when [`Authorizer::allows_any`] of the audit entry's accesses.

mod attributes;
mod base_roles;
mod compiled;
mod error;
mod glob;
mod kind;
mod resource;
mod spec;
mod statement;

pub use attributes::{MAX_EXPANSIONS, RoleAttributes};
pub use base_roles::{
    BasePermissions, BaseRole, OWNER_ONLY_ACCOUNT_ACTIONS, WRITER_EXCLUDED_KINDS,
};
pub use compiled::{
    Authorizer, CompiledPolicy, Decision, Evaluation, Permissions, decide, exceeds,
};
pub use error::{Field, PolicyError};
pub use glob::glob_match;
pub use kind::ResourceKind;
pub use resource::{Resource, ResourceNode};
pub use spec::{PropertySelector, ResourceSegment, ResourceSpec, SpecError};
pub use statement::{
    ActionSet, Effect, ResourceSet, Statement, parse_policy, parse_policy_str, policy_to_json,
    validate_action,
};
