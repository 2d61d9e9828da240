//! Concrete resources: what a request (or an audit entry) touches, with the tags and
//! properties of every level, so that specifiers like `proj/*;mobile:env/*;{critical:true}:flag/*`
//! can be decided.

use std::fmt;

use crate::kind::ResourceKind;
use crate::spec::{ResourceSpec, SpecError, parse_spec};

/// One level of a concrete resource: `kind/key` with the resource's tags and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNode {
    pub kind: ResourceKind,
    /// The key (or id). Empty for `acct`.
    pub key: String,
    pub tags: Vec<String>,
    /// Properties that `{name:value}` selectors test, e.g. `("critical", "true")` on
    /// environments. Values are compared as text.
    pub properties: Vec<(String, String)>,
}

/// A concrete resource, outermost level first: `proj/default:env/production:flag/my-flag`.
///
/// Build it with the constructors and the nesting methods, giving the tags (and, for
/// environments, `critical`) of **every** level, because policies can select on them:
///
/// ```
/// use flagstaff_policy::Resource;
/// let flag = Resource::project("default", &[])
///     .env("production", &[], true)
///     .flag("my-flag", &["beta".to_string()]);
/// assert_eq!(flag.to_string(), "proj/default:env/production:flag/my-flag;beta");
/// ```
///
/// `Display` gives the specifier string audit entries carry (types, keys and tags; properties
/// are not part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    nodes: Vec<ResourceNode>,
}

fn node(kind: ResourceKind, key: &str, tags: &[String]) -> ResourceNode {
    ResourceNode {
        kind,
        key: key.to_string(),
        tags: tags.to_vec(),
        properties: Vec::new(),
    }
}

impl Resource {
    /// A top-level resource of any type (`member/abc`, `webhook/123`, …).
    pub fn top(kind: ResourceKind, key: &str, tags: &[String]) -> Self {
        debug_assert!(kind.parent().is_none(), "{kind} is not a top-level type");
        Self {
            nodes: vec![node(kind, key, tags)],
        }
    }

    /// Nests a resource of `kind` inside this one (`…:metric/m`).
    pub fn child(mut self, kind: ResourceKind, key: &str, tags: &[String]) -> Self {
        debug_assert_eq!(
            kind.parent(),
            self.nodes.last().map(|n| n.kind),
            "{kind} does not nest there"
        );
        self.nodes.push(node(kind, key, tags));
        self
    }

    /// Adds a property to the innermost level.
    pub fn with_property(mut self, name: &str, value: &str) -> Self {
        if let Some(last) = self.nodes.last_mut() {
            last.properties.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// `acct`.
    pub fn account() -> Self {
        Self {
            nodes: vec![node(ResourceKind::Account, "", &[])],
        }
    }

    /// `proj/<key>;<tags>`.
    pub fn project(key: &str, tags: &[String]) -> Self {
        Self::top(ResourceKind::Project, key, tags)
    }

    /// `…:env/<key>;<tags>` with the environment's `critical` property (always set, so that
    /// both `{critical:true}` and `{critical:false}` selectors decide correctly).
    pub fn env(self, key: &str, tags: &[String], critical: bool) -> Self {
        self.child(ResourceKind::Environment, key, tags)
            .with_property("critical", if critical { "true" } else { "false" })
    }

    /// `…:flag/<key>;<tags>` (inside an environment).
    pub fn flag(self, key: &str, tags: &[String]) -> Self {
        self.child(ResourceKind::Flag, key, tags)
    }

    /// `…:segment/<key>;<tags>` (inside an environment).
    pub fn segment(self, key: &str, tags: &[String]) -> Self {
        self.child(ResourceKind::Segment, key, tags)
    }

    /// `…:metric/<key>;<tags>` (inside a project).
    pub fn metric(self, key: &str, tags: &[String]) -> Self {
        self.child(ResourceKind::Metric, key, tags)
    }

    /// `member/<id>`.
    pub fn member(id: &str) -> Self {
        Self::top(ResourceKind::Member, id, &[])
    }

    /// `member/<member id>:token/<token id>` (a personal access token).
    pub fn personal_token(member_id: &str, token_id: &str) -> Self {
        Self::member(member_id).child(ResourceKind::Token, token_id, &[])
    }

    /// `service-token/<id>`.
    pub fn service_token(id: &str) -> Self {
        Self::top(ResourceKind::ServiceToken, id, &[])
    }

    /// `role/<key>`.
    pub fn role(key: &str) -> Self {
        Self::top(ResourceKind::Role, key, &[])
    }

    /// `team/<key>`.
    pub fn team(key: &str) -> Self {
        Self::top(ResourceKind::Team, key, &[])
    }

    /// `webhook/<id>`.
    pub fn webhook(id: &str, tags: &[String]) -> Self {
        Self::top(ResourceKind::Webhook, id, tags)
    }

    /// `integration/<key>`.
    pub fn integration(key: &str, tags: &[String]) -> Self {
        Self::top(ResourceKind::Integration, key, tags)
    }

    /// `relay-proxy-config/<id>`.
    pub fn relay_proxy_config(id: &str) -> Self {
        Self::top(ResourceKind::RelayProxyConfig, id, &[])
    }

    /// Parses a concrete resource, e.g. an audit entry's `accesses[].resource`. Everything is
    /// literal (a `*` is a key character here); `{name:value}` modifiers become properties.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let spec = parse_spec(text, false)?;
        Self::from_spec(&spec).map_err(|message| SpecError {
            position: 0,
            message,
        })
    }

    /// The resource a specifier names when read literally. Fails on unknown types.
    pub fn from_spec(spec: &ResourceSpec) -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(spec.segments.len());
        for seg in &spec.segments {
            let kind = ResourceKind::from_name(&seg.kind)
                .ok_or_else(|| format!("unknown resource type \"{}\"", seg.kind))?;
            nodes.push(ResourceNode {
                kind,
                key: seg.name.clone(),
                tags: seg.tags.clone(),
                properties: seg
                    .properties
                    .iter()
                    .map(|p| (p.name.clone(), p.value.clone()))
                    .collect(),
            });
        }
        if nodes.is_empty() {
            return Err("a resource needs at least one segment".into());
        }
        Ok(Self { nodes })
    }

    /// The specifier naming exactly this resource (types, keys, tags; no properties): the
    /// string form audit entries carry.
    pub fn to_spec(&self) -> ResourceSpec {
        let mut spec = ResourceSpec::new();
        for n in &self.nodes {
            spec = spec.with(n.kind.as_str(), &n.key, &n.tags);
        }
        spec
    }

    pub fn nodes(&self) -> &[ResourceNode] {
        &self.nodes
    }

    /// The innermost level's type (`flag` for a flag).
    pub fn kind(&self) -> ResourceKind {
        self.nodes[self.nodes.len() - 1].kind
    }

    /// The innermost level.
    pub fn leaf(&self) -> &ResourceNode {
        &self.nodes[self.nodes.len() - 1]
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_spec(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_matches_audit_specifiers() {
        let tags = vec!["tag1".to_string()];
        let r = Resource::project("default", &[])
            .env("production", &[], true)
            .flag("my-flag", &tags);
        assert_eq!(
            r.to_string(),
            ResourceSpec::flag("default", "production", "my-flag", &tags).to_string()
        );
        assert_eq!(Resource::account().to_string(), "acct");
        assert_eq!(
            Resource::personal_token("m1", "t1").to_string(),
            "member/m1:token/t1"
        );
        let parsed = Resource::parse("proj/p:env/e;{critical:true}:flag/*").unwrap();
        assert_eq!(
            parsed.nodes()[1].properties,
            vec![("critical".into(), "true".into())]
        );
        assert_eq!(parsed.leaf().key, "*");
        assert_eq!(parsed.kind(), ResourceKind::Flag);
        assert!(Resource::parse("proj/${roleAttribute/x}").is_err());
    }
}
