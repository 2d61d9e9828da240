//! LaunchDarkly's base roles (`reader`, `writer`, `admin`, `owner`, `no_access`) and custom
//! roles' `basePermissions`, expressed as ordinary policies.
//!
//! LaunchDarkly no longer publishes these as JSON; these are Flagstaff's definitions,
//! following the role descriptions:
//!
//! | role | policy |
//! | --- | --- |
//! | `no_access` | nothing |
//! | `reader` | allow `view*` on every resource type ("can see information but can't modify it") |
//! | `writer` | reader, plus allow `*` on every resource type except the account (`acct`), members (`member/*`), their tokens (`member/*:token/*`), service tokens, custom roles, teams and domain verifications ("can't add members or manage billing") |
//! | `admin` | allow `*` on every resource type except `acct`, plus allow every `acct` action except the owner's ([`OWNER_ONLY_ACCOUNT_ACTIONS`]: billing, the owner, deleting the account) |
//! | `owner` | allow `*` on every resource type |
//!
//! "Every resource type" is the list of [`ResourceKind::wildcard_specifier`]s, so a base role
//! never matches a resource of a type Flagstaff doesn't know. The base roles use only allow
//! statements: what they don't grant is `NotMatched`, never `Denied`, so the server can tell
//! "no role grants this" from "a role forbids this" (see the crate docs on personal tokens).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use crate::compiled::{Authorizer, CompiledPolicy, Decision};
use crate::kind::ResourceKind;
use crate::resource::Resource;
use crate::spec::{ResourceSpec, parse_spec};
use crate::statement::{ActionSet, Effect, ResourceSet, Statement};

/// `acct` actions only the account owner may take (admins get every other `acct` action).
pub const OWNER_ONLY_ACCOUNT_ACTIONS: &[&str] = &[
    "updateAccountOwner",
    "deleteAccount",
    "updateBillingContact",
    "getPaymentCard",
    "updatePaymentCard",
    "updateSubscription",
    "deleteSubscription",
];

/// Resource types a writer may not change (it may still view them).
pub const WRITER_EXCLUDED_KINDS: &[ResourceKind] = &[
    ResourceKind::Account,
    ResourceKind::Member,
    ResourceKind::Token,
    ResourceKind::ServiceToken,
    ResourceKind::Role,
    ResourceKind::Team,
    ResourceKind::DomainVerification,
];

/// A member's base role (the API's `role` string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BaseRole {
    NoAccess,
    Reader,
    Writer,
    Admin,
    Owner,
}

/// A custom role's `basePermissions`: what its members get besides its policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BasePermissions {
    /// `reader`: view everything (LaunchDarkly's default, "members can view all content").
    #[default]
    Reader,
    /// `no_access`: only what the policy allows.
    NoAccess,
}

fn all_kinds_except(excluded: &[ResourceKind]) -> Vec<ResourceSpec> {
    ResourceKind::ALL
        .iter()
        .filter(|k| !excluded.contains(k))
        .map(|k| parse_spec(&k.wildcard_specifier(), false).expect("wildcard specifiers parse"))
        .collect()
}

fn allow(actions: ActionSet, resources: Vec<ResourceSpec>) -> Statement {
    Statement::new(Effect::Allow, actions, ResourceSet::Resources(resources))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn reader_statements() -> Vec<Statement> {
    vec![allow(
        ActionSet::Actions(strings(&["view*"])),
        all_kinds_except(&[]),
    )]
}

impl BaseRole {
    pub const ALL: [BaseRole; 5] = [
        BaseRole::NoAccess,
        BaseRole::Reader,
        BaseRole::Writer,
        BaseRole::Admin,
        BaseRole::Owner,
    ];

    /// The API string: `reader`, `writer`, `admin`, `owner`, `no_access`.
    pub fn as_str(self) -> &'static str {
        match self {
            BaseRole::NoAccess => "no_access",
            BaseRole::Reader => "reader",
            BaseRole::Writer => "writer",
            BaseRole::Admin => "admin",
            BaseRole::Owner => "owner",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The role as policy statements (see the module docs).
    pub fn statements(self) -> Vec<Statement> {
        match self {
            BaseRole::NoAccess => Vec::new(),
            BaseRole::Reader => reader_statements(),
            BaseRole::Writer => {
                let mut s = reader_statements();
                s.push(allow(
                    ActionSet::Actions(strings(&["*"])),
                    all_kinds_except(WRITER_EXCLUDED_KINDS),
                ));
                s
            }
            BaseRole::Admin => vec![
                allow(
                    ActionSet::Actions(strings(&["*"])),
                    all_kinds_except(&[ResourceKind::Account]),
                ),
                allow(
                    ActionSet::NotActions(strings(OWNER_ONLY_ACCOUNT_ACTIONS)),
                    vec![parse_spec("acct", false).expect("acct parses")],
                ),
            ],
            BaseRole::Owner => vec![allow(
                ActionSet::Actions(strings(&["*"])),
                all_kinds_except(&[]),
            )],
        }
    }

    /// The compiled policy, built once per process and shared.
    pub fn policy(self) -> Arc<CompiledPolicy> {
        static POLICIES: OnceLock<Vec<Arc<CompiledPolicy>>> = OnceLock::new();
        let all = POLICIES.get_or_init(|| {
            BaseRole::ALL
                .iter()
                .map(|r| {
                    Arc::new(CompiledPolicy::new(&r.statements()).expect("base roles compile"))
                })
                .collect()
        });
        all[self as usize].clone()
    }
}

impl Authorizer for BaseRole {
    fn decide(&self, action: &str, resource: &Resource) -> Decision {
        self.policy().decide(action, resource)
    }
}

impl fmt::Display for BaseRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BaseRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(s).ok_or_else(|| {
            format!("unknown role \"{s}\": expected reader, writer, admin, owner or no_access")
        })
    }
}

impl BasePermissions {
    /// The API string: `reader` or `no_access`.
    pub fn as_str(self) -> &'static str {
        match self {
            BasePermissions::Reader => "reader",
            BasePermissions::NoAccess => "no_access",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "reader" => Some(BasePermissions::Reader),
            "no_access" => Some(BasePermissions::NoAccess),
            _ => None,
        }
    }

    /// The statements these base permissions add to a custom role's policy.
    pub fn statements(self) -> Vec<Statement> {
        match self {
            BasePermissions::Reader => reader_statements(),
            BasePermissions::NoAccess => Vec::new(),
        }
    }
}
