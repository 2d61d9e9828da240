//! Deciding: compiled policies, roles combined, tokens bounded by their members.

use std::sync::Arc;

use crate::attributes::RoleAttributes;
use crate::base_roles::BasePermissions;
use crate::error::PolicyError;
use crate::glob::Glob;
use crate::kind::ResourceKind;
use crate::resource::Resource;
use crate::spec::ResourceSpec;
use crate::statement::{ActionSet, Effect, ResourceSet, Statement};

/// The outcome of checking one (action, resource).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An allow statement matched and (in that policy) no deny statement did.
    Allowed,
    /// A deny statement matched (and, across roles, no role allowed).
    Denied,
    /// No statement matched: denied by default.
    NotMatched,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allowed
    }

    /// Across roles: the most permissive wins (`Allowed` > `Denied` > `NotMatched`).
    pub fn or(self, other: Decision) -> Decision {
        use Decision::*;
        match (self, other) {
            (Allowed, _) | (_, Allowed) => Allowed,
            (Denied, _) | (_, Denied) => Denied,
            _ => NotMatched,
        }
    }

    /// Intersection (a personal token within its member): allowed only when both allow;
    /// otherwise `Denied` if either explicitly denies, else `NotMatched`.
    pub fn and(self, other: Decision) -> Decision {
        use Decision::*;
        match (self, other) {
            (Allowed, Allowed) => Allowed,
            (Denied, _) | (_, Denied) => Denied,
            _ => NotMatched,
        }
    }
}

/// Anything that decides (action, resource) pairs: a [`CompiledPolicy`] (one role), a
/// [`Permissions`] (several roles, possibly bounded by another set), a [`crate::BaseRole`].
pub trait Authorizer {
    fn decide(&self, action: &str, resource: &Resource) -> Decision;

    fn allows(&self, action: &str, resource: &Resource) -> bool {
        self.decide(action, resource).is_allowed()
    }

    /// For event filters (webhooks, integration subscriptions): whether any of an audit
    /// entry's `accesses` (action, resource) is allowed.
    fn allows_any<'a>(&self, accesses: impl IntoIterator<Item = (&'a str, &'a Resource)>) -> bool
    where
        Self: Sized,
    {
        accesses.into_iter().any(|(a, r)| self.allows(a, r))
    }
}

/// Whether `grant` allows something `ceiling` does not, for this (action, resource): what a
/// personal token must never do relative to its member.
pub fn exceeds(
    grant: &impl Authorizer,
    ceiling: &impl Authorizer,
    action: &str,
    resource: &Resource,
) -> bool {
    grant.allows(action, resource) && !ceiling.allows(action, resource)
}

/// One segment of a compiled specifier.
#[derive(Debug, Clone)]
struct CompiledSegment {
    kind: ResourceKind,
    name: Glob,
    tags: Box<[Glob]>,
    properties: Box<[(Box<str>, Glob)]>,
}

/// A specifier with its globs compiled and its types resolved.
#[derive(Debug, Clone)]
pub(crate) struct CompiledSpec {
    leaf: ResourceKind,
    segments: Box<[CompiledSegment]>,
}

impl CompiledSpec {
    /// `None` for unknown types or unresolved placeholders.
    pub(crate) fn compile(spec: &ResourceSpec) -> Option<Self> {
        if !spec.role_attributes().is_empty() {
            return None;
        }
        let mut segments = Vec::with_capacity(spec.segments.len());
        for seg in &spec.segments {
            let kind = ResourceKind::from_name(&seg.kind)?;
            segments.push(CompiledSegment {
                kind,
                name: if kind == ResourceKind::Account {
                    Glob::Any
                } else {
                    Glob::new(&seg.name)
                },
                tags: seg.tags.iter().map(|t| Glob::new(t)).collect(),
                properties: seg
                    .properties
                    .iter()
                    .map(|p| (p.name.as_str().into(), Glob::new(&p.value)))
                    .collect(),
            });
        }
        Some(Self {
            leaf: segments.last()?.kind,
            segments: segments.into(),
        })
    }

    #[inline]
    pub(crate) fn matches(&self, resource: &Resource) -> bool {
        let nodes = resource.nodes();
        if self.leaf != resource.kind() || self.segments.len() != nodes.len() {
            return false;
        }
        self.segments.iter().zip(nodes).all(|(p, n)| {
            p.kind == n.kind
                && p.name.matches(&n.key)
                // Several tags: AND (LaunchDarkly, "Using tags": `flag/*;tag1,tag2` is "flags
                // tagged tag1 and tag2"; OR is written as separate specifiers).
                && p.tags.iter().all(|t| n.tags.iter().any(|have| t.matches(have)))
                && p.properties.iter().all(|(name, value)| {
                    n.properties
                        .iter()
                        .any(|(k, v)| **k == **name && value.matches(v))
                })
        })
    }
}

/// A statement ready to decide.
#[derive(Debug, Clone)]
pub(crate) struct CompiledStatement {
    /// Index in [`CompiledPolicy::statements`].
    index: usize,
    not_actions: bool,
    actions: Box<[Glob]>,
    not_resources: bool,
    specs: Box<[CompiledSpec]>,
}

impl CompiledStatement {
    /// Compiles a statement without placeholders.
    pub(crate) fn compile(statement: &Statement, index: usize) -> Result<Self, PolicyError> {
        let mut specs = Vec::with_capacity(statement.resources.specs().len());
        for (item, spec) in statement.resources.specs().iter().enumerate() {
            match CompiledSpec::compile(spec) {
                Some(s) => specs.push(s),
                None => {
                    let field = statement.resources.field();
                    return Err(match spec.role_attributes().into_iter().next() {
                        Some(attribute) => PolicyError::MissingRoleAttribute {
                            statement: index,
                            field,
                            item,
                            attribute,
                        },
                        None => PolicyError::shape(
                            Some(index),
                            Some(field.as_str()),
                            format!("item {item}: \"{spec}\" has an unknown resource type"),
                        ),
                    });
                }
            }
        }
        Ok(Self {
            index,
            not_actions: matches!(statement.actions, ActionSet::NotActions(_)),
            actions: statement
                .actions
                .patterns()
                .iter()
                .map(|a| Glob::new(a))
                .collect(),
            not_resources: matches!(statement.resources, ResourceSet::NotResources(_)),
            specs: specs.into(),
        })
    }

    /// This statement as it applies to resources of type `kind` only: without the specifiers
    /// that name other types (they can never match such a resource). `None` when the
    /// statement cannot apply at all (`resources` naming other types only).
    fn for_kind(&self, kind: ResourceKind) -> Option<Self> {
        let specs: Box<[CompiledSpec]> = self
            .specs
            .iter()
            .filter(|s| s.leaf == kind)
            .cloned()
            .collect();
        if specs.is_empty() && !self.not_resources {
            return None;
        }
        Some(Self {
            index: self.index,
            not_actions: self.not_actions,
            actions: self.actions.clone(),
            not_resources: self.not_resources,
            specs,
        })
    }

    #[inline]
    pub(crate) fn matches(&self, action: &str, resource: &Resource) -> bool {
        if self.actions.iter().any(|g| g.matches(action)) == self.not_actions {
            return false;
        }
        self.specs.iter().any(|s| s.matches(resource)) != self.not_resources
    }
}

/// The decision of one policy and the statement that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    pub decision: Decision,
    /// Index in [`CompiledPolicy::statements`] of the deciding statement (the first matching
    /// deny, else the first matching allow); `None` for `NotMatched`.
    pub statement: Option<usize>,
}

/// The statements of one policy that can apply to resources of one type.
#[derive(Debug, Clone, Default)]
struct Bucket {
    denies: Box<[CompiledStatement]>,
    allows: Box<[CompiledStatement]>,
}

/// One role's policy, with role attributes substituted and globs compiled, and its statements
/// grouped by the resource type they can apply to: a decision only looks at the statements
/// for the resource's type, a few nanoseconds each. Deny statements are checked first; within
/// one policy a matching deny wins over any allow, and nothing matching means `NotMatched`
/// (denied).
#[derive(Debug, Clone, Default)]
pub struct CompiledPolicy {
    /// Indexed by `ResourceKind as usize`.
    buckets: Box<[Bucket]>,
    statements: Vec<Statement>,
}

impl CompiledPolicy {
    /// Compiles a policy whose specifiers have no `${roleAttribute/…}` placeholders (or fails
    /// with [`PolicyError::MissingRoleAttribute`]).
    pub fn new(statements: &[Statement]) -> Result<Self, PolicyError> {
        Self::compile(statements, &RoleAttributes::new())
    }

    /// Compiles a policy for one role assignment: placeholders are substituted from
    /// `attributes` (the member's or team's role attributes; a personal token uses its
    /// member's). A placeholder with no value is an error.
    pub fn compile(
        statements: &[Statement],
        attributes: &RoleAttributes,
    ) -> Result<Self, PolicyError> {
        let resolved = statements
            .iter()
            .enumerate()
            .map(|(i, s)| s.resolve(attributes, i))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_resolved(resolved)
    }

    /// Compiles a custom role: its policy plus what its `basePermissions` grant. With
    /// [`BasePermissions::Reader`] the role's members can view everything unless one of the
    /// role's own deny statements says otherwise (the reader statements join the same policy,
    /// so deny-overrides applies: `{"effect":"deny","actions":["viewProject"],
    /// "notResources":["proj/x"]}` hides every other project).
    pub fn compile_role(
        statements: &[Statement],
        base: BasePermissions,
        attributes: &RoleAttributes,
    ) -> Result<Self, PolicyError> {
        let mut resolved = statements
            .iter()
            .enumerate()
            .map(|(i, s)| s.resolve(attributes, i))
            .collect::<Result<Vec<_>, _>>()?;
        resolved.extend(base.statements());
        Self::from_resolved(resolved)
    }

    fn from_resolved(statements: Vec<Statement>) -> Result<Self, PolicyError> {
        let compiled = statements
            .iter()
            .enumerate()
            .map(|(i, s)| CompiledStatement::compile(s, i).map(|c| (s.effect, c)))
            .collect::<Result<Vec<_>, _>>()?;
        let buckets = ResourceKind::ALL
            .iter()
            .map(|&kind| {
                let pick = |effect: Effect| -> Box<[CompiledStatement]> {
                    compiled
                        .iter()
                        .filter(|(e, _)| *e == effect)
                        .filter_map(|(_, c)| c.for_kind(kind))
                        .collect()
                };
                Bucket {
                    denies: pick(Effect::Deny),
                    allows: pick(Effect::Allow),
                }
            })
            .collect();
        Ok(Self {
            buckets,
            statements,
        })
    }

    /// The statements this policy was compiled from, placeholders substituted (and, for
    /// [`Self::compile_role`], the base-permission statements appended). [`Evaluation`]
    /// indexes into this, for `_access` reasons.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    #[inline]
    fn bucket(&self, resource: &Resource) -> Option<&Bucket> {
        self.buckets.get(resource.kind() as usize)
    }

    pub fn evaluate(&self, action: &str, resource: &Resource) -> Evaluation {
        if let Some(bucket) = self.bucket(resource) {
            if let Some(s) = bucket.denies.iter().find(|s| s.matches(action, resource)) {
                return Evaluation {
                    decision: Decision::Denied,
                    statement: Some(s.index),
                };
            }
            if let Some(s) = bucket.allows.iter().find(|s| s.matches(action, resource)) {
                return Evaluation {
                    decision: Decision::Allowed,
                    statement: Some(s.index),
                };
            }
        }
        Evaluation {
            decision: Decision::NotMatched,
            statement: None,
        }
    }
}

impl Authorizer for CompiledPolicy {
    #[inline]
    fn decide(&self, action: &str, resource: &Resource) -> Decision {
        let Some(bucket) = self.bucket(resource) else {
            return Decision::NotMatched;
        };
        if bucket.denies.iter().any(|s| s.matches(action, resource)) {
            Decision::Denied
        } else if bucket.allows.iter().any(|s| s.matches(action, resource)) {
            Decision::Allowed
        } else {
            Decision::NotMatched
        }
    }
}

/// Decides with one uncompiled policy (compiles it on every call: prefer [`CompiledPolicy`]).
/// A policy that does not compile (e.g. unresolved role attributes) denies everything.
pub fn decide(statements: &[Statement], action: &str, resource: &Resource) -> Decision {
    match CompiledPolicy::new(statements) {
        Ok(p) => p.decide(action, resource),
        Err(_) => Decision::Denied,
    }
}

/// What a caller may do: the union of several roles (member's base or custom roles, team
/// roles; the most permissive wins), optionally intersected with ceilings (a personal token's
/// member, an OAuth app's authorizing member): allowed only if the roles and every ceiling
/// allow.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    roles: Vec<Arc<CompiledPolicy>>,
    ceilings: Vec<Arc<Permissions>>,
}

impl Permissions {
    pub fn new(roles: impl IntoIterator<Item = Arc<CompiledPolicy>>) -> Self {
        Self {
            roles: roles.into_iter().collect(),
            ceilings: Vec::new(),
        }
    }

    pub fn push(&mut self, role: Arc<CompiledPolicy>) {
        self.roles.push(role);
    }

    pub fn roles(&self) -> &[Arc<CompiledPolicy>] {
        &self.roles
    }

    /// These permissions, never exceeding `ceiling`: a personal token's own roles bounded by
    /// its member's current permissions (build the member's side per request or from a cache
    /// invalidated on role changes, so a downgraded member downgrades their tokens).
    pub fn bounded_by(mut self, ceiling: impl Into<Arc<Permissions>>) -> Self {
        self.ceilings.push(ceiling.into());
        self
    }

    pub fn ceilings(&self) -> &[Arc<Permissions>] {
        &self.ceilings
    }

    /// The decision of the roles alone (ignoring ceilings).
    pub fn decide_unbounded(&self, action: &str, resource: &Resource) -> Decision {
        let mut out = Decision::NotMatched;
        for role in &self.roles {
            match role.decide(action, resource) {
                Decision::Allowed => return Decision::Allowed,
                d => out = out.or(d),
            }
        }
        out
    }
}

impl Authorizer for Permissions {
    /// The roles' decision intersected ([`Decision::and`]) with every ceiling's: `Allowed`
    /// only if all allow, else `Denied` if any explicitly denies (so "a role forbids this"
    /// stays visible through a token), else `NotMatched`.
    fn decide(&self, action: &str, resource: &Resource) -> Decision {
        let mut out = self.decide_unbounded(action, resource);
        for c in &self.ceilings {
            if out == Decision::Denied {
                break;
            }
            out = out.and(c.decide(action, resource));
        }
        out
    }
}
