//! The resource types of LaunchDarkly's policy language and where each one nests.

use std::fmt;
use std::str::FromStr;

macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, parent $parent:expr; )*) => {
        /// A resource type, as written before the `/` of a specifier segment (`proj`, `flag`, …).
        ///
        /// Every type has one fixed place in the hierarchy ([`ResourceKind::parent`]): a flag is
        /// always `proj/…:env/…:flag/…`, a personal token `member/…:token/…`. Specifiers with a
        /// type this table doesn't know, or in the wrong place, are rejected when parsed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum ResourceKind {
            $( $(#[$doc])* $variant, )*
        }

        impl ResourceKind {
            /// Every known type, in declaration order.
            pub const ALL: &'static [ResourceKind] = &[$(ResourceKind::$variant),*];

            /// The type as written in specifiers (`proj`, `relay-proxy-config`, …).
            pub fn as_str(self) -> &'static str {
                match self { $(ResourceKind::$variant => $name,)* }
            }

            /// The type this one is scoped in (`env` for `flag`), `None` for top-level types.
            pub fn parent(self) -> Option<ResourceKind> {
                match self { $(ResourceKind::$variant => $parent,)* }
            }

            /// Looks a type up by its specifier name (case-sensitive).
            pub fn from_name(name: &str) -> Option<ResourceKind> {
                match name { $($name => Some(ResourceKind::$variant),)* _ => None }
            }
        }
    };
}

use ResourceKind as K;

kinds! {
    /// `acct`: the account itself (billing, SAML/SCIM, sessions). Written without a name.
    Account = "acct", parent None;
    /// `proj/*`.
    Project = "proj", parent None;
    /// `proj/*:env/*`.
    Environment = "env", parent Some(K::Project);
    /// `proj/*:env/*:flag/*` (flags are per environment).
    Flag = "flag", parent Some(K::Environment);
    /// `proj/*:env/*:segment/*`.
    Segment = "segment", parent Some(K::Environment);
    /// `proj/*:env/*:destination/*` (Data Export destinations).
    Destination = "destination", parent Some(K::Environment);
    /// `proj/*:env/*:experiment/*`.
    Experiment = "experiment", parent Some(K::Environment);
    /// `proj/*:env/*:holdout/*`.
    Holdout = "holdout", parent Some(K::Environment);
    /// `proj/*:env/*:request/*` (pending change requests).
    Request = "request", parent Some(K::Environment);
    /// `proj/*:env/*:user/*` (legacy).
    User = "user", parent Some(K::Environment);
    /// `proj/*:metric/*`.
    Metric = "metric", parent Some(K::Project);
    /// `proj/*:metric-group/*`.
    MetricGroup = "metric-group", parent Some(K::Project);
    /// `proj/*:context-kind/*`.
    ContextKind = "context-kind", parent Some(K::Project);
    /// `proj/*:layer/*`.
    Layer = "layer", parent Some(K::Project);
    /// `proj/*:release-pipeline/*`.
    ReleasePipeline = "release-pipeline", parent Some(K::Project);
    /// `proj/*:aiconfig/*`.
    AiConfig = "aiconfig", parent Some(K::Project);
    /// `proj/*:ai-model-config/*`.
    AiModelConfig = "ai-model-config", parent Some(K::Project);
    /// `proj/*:view/*`.
    View = "view", parent Some(K::Project);
    /// `member/*`.
    Member = "member", parent None;
    /// `member/*:token/*` (personal access tokens).
    Token = "token", parent Some(K::Member);
    /// `service-token/*`.
    ServiceToken = "service-token", parent None;
    /// `role/*` (custom roles).
    Role = "role", parent None;
    /// `team/*`.
    Team = "team", parent None;
    /// `webhook/*`.
    Webhook = "webhook", parent None;
    /// `integration/*` (audit-log subscriptions and other integration configurations).
    Integration = "integration", parent None;
    /// `relay-proxy-config/*` (Relay Proxy automatic configurations).
    RelayProxyConfig = "relay-proxy-config", parent None;
    /// `code-reference-repository/*`.
    CodeReferenceRepository = "code-reference-repository", parent None;
    /// `application/*`.
    Application = "application", parent None;
    /// `template/*`.
    Template = "template", parent None;
    /// `pending-request/*`.
    PendingRequest = "pending-request", parent None;
    /// `domain-verification/*`.
    DomainVerification = "domain-verification", parent None;
}

impl ResourceKind {
    /// Number of types nested above this one (0 for top-level types).
    pub fn depth(self) -> usize {
        let mut depth = 0;
        let mut at = self;
        while let Some(p) = at.parent() {
            depth += 1;
            at = p;
        }
        depth
    }

    /// The specifier that names every resource of this type: `proj/*:env/*:flag/*`, `acct`.
    pub fn wildcard_specifier(self) -> String {
        let own = if self == ResourceKind::Account {
            "acct".to_string()
        } else {
            format!("{}/*", self.as_str())
        };
        match self.parent() {
            Some(p) => format!("{}:{own}", p.wildcard_specifier()),
            None => own,
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceKind::from_name(s).ok_or_else(|| format!("unknown resource type \"{s}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (i, &k) in ResourceKind::ALL.iter().enumerate() {
            assert_eq!(ResourceKind::from_name(k.as_str()), Some(k));
            // CompiledPolicy indexes its buckets by `kind as usize`.
            assert_eq!(k as usize, i);
        }
        assert_eq!(
            ResourceKind::Flag.wildcard_specifier(),
            "proj/*:env/*:flag/*"
        );
        assert_eq!(ResourceKind::Token.wildcard_specifier(), "member/*:token/*");
        assert_eq!(ResourceKind::Account.wildcard_specifier(), "acct");
        assert_eq!(ResourceKind::Segment.depth(), 2);
        assert_eq!(ResourceKind::from_name("Proj"), None);
    }
}
