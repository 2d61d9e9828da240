//! The account, its members, teams, custom roles and API access tokens, as stored.
//!
//! Policies are kept as LaunchDarkly statement JSON; the server validates and compiles them
//! with `flagstaff-policy` when they are written and when a caller's permissions are built.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub creation_date: UnixMillis,
}

/// Built-in roles a member or token can have.
pub const BASE_ROLES: &[&str] = &["no_access", "reader", "writer", "admin", "owner"];

/// Role attributes: named lists of values substituted into `${roleAttribute/name}`.
pub type RoleAttributes = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    #[serde(rename = "_id")]
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Built-in role: `owner`, `admin`, `writer`, `reader` or `no_access`.
    pub role: String,
    /// Keys of custom roles; when present they replace the built-in role's permissions.
    #[serde(default)]
    pub custom_roles: Vec<String>,
    #[serde(default)]
    pub role_attributes: RoleAttributes,
    pub creation_date: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<UnixMillis>,
    #[serde(default)]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomRole {
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// LaunchDarkly policy statements.
    #[schema(value_type = Vec<Object>)]
    pub policy: Vec<Value>,
    /// `reader` or `no_access`: what the role allows beyond its policy.
    pub base_permissions: String,
    /// `organization`, `project` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_category: Option<String>,
    pub creation_date: UnixMillis,
    #[serde(default)]
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    #[serde(rename = "_id")]
    pub id: String,
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub custom_role_keys: Vec<String>,
    #[serde(default)]
    pub member_ids: Vec<String>,
    #[serde(default)]
    pub role_attributes: RoleAttributes,
    pub creation_date: UnixMillis,
    /// When the team last changed (`_lastModified`); 0 for teams stored before it was kept.
    #[serde(default)]
    pub last_modified: UnixMillis,
    #[serde(default)]
    pub version: i64,
}

/// A secret replaced by a reset that keeps working until `expiry`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringSecret {
    pub secret_hash: String,
    pub expiry: UnixMillis,
}

/// An API access token. Only the SHA-256 of the secret is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The member who created the token.
    pub owner_id: String,
    /// The member a personal token acts for (the creator, for service tokens).
    pub member_id: String,
    /// Built-in role scope, when the token is scoped by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub custom_role_ids: Vec<String>,
    /// Inline policy statements.
    #[serde(default)]
    pub inline_role: Vec<Value>,
    pub service_token: bool,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The secret's last four characters, shown in listings and audit entries.
    pub ending: String,
    pub default_api_version: i64,
    pub creation_date: UnixMillis,
    pub last_modified: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<ExpiringSecret>,
    #[serde(default)]
    pub version: i64,
}

/// `POST /api/v2/roles`. The policy stays JSON here so that the server can validate it with
/// `flagstaff_policy::parse_policy`, whose errors name the statement, field and character.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomRolePost {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub policy: Value,
    /// `reader` or `no_access` (the default).
    #[serde(default)]
    pub base_permissions: Option<String>,
    /// `organization`, `project` or `any`; immutable once created.
    #[serde(default)]
    pub resource_category: Option<String>,
}

/// Values a custom role's `resourceCategory` may take.
pub const RESOURCE_CATEGORIES: &[&str] = &["organization", "project", "any"];

/// One element of `POST /api/v2/members` (LaunchDarkly's `NewMemberForm`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMemberForm {
    pub email: String,
    /// Accepted for compatibility and ignored: Flagstaff members have no passwords.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// `reader` (the default), `writer`, `admin` or `no_access`.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub custom_roles: Option<Vec<String>>,
    #[serde(default)]
    pub team_keys: Option<Vec<String>>,
    #[serde(default)]
    pub role_attributes: Option<RoleAttributes>,
}

/// Built-in roles a member can be invited with (`owner` is only ever granted by a PATCH).
pub const INVITE_ROLES: &[&str] = &["reader", "writer", "admin", "no_access"];

/// `POST /api/v2/teams` (LaunchDarkly's `teamPostInput`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TeamPost {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub custom_role_keys: Option<Vec<String>>,
    #[serde(default, rename = "memberIDs")]
    pub member_ids: Option<Vec<String>>,
    #[serde(default)]
    pub role_attributes: Option<RoleAttributes>,
    /// Not supported yet: a non-empty list is refused.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub permission_grants: Option<Vec<Value>>,
}

/// `POST /api/v2/tokens` (LaunchDarkly's `AccessTokenPost`): exactly one of `role`,
/// `customRoleIds` and `inlineRole` scopes the token.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessTokenPost {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `reader`, `writer` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub custom_role_ids: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub inline_role: Option<Value>,
    #[serde(default)]
    pub service_token: Option<bool>,
    #[serde(default)]
    pub default_api_version: Option<i64>,
    /// Flagstaff extension: the member a personal token acts for, when not the caller's own
    /// (Flagstaff has no web UI in which members would create their first token). The caller
    /// needs `createAccessToken` on `member/<id>:token/*` and at least the member's access.
    #[serde(default)]
    pub member_id: Option<String>,
}

/// Built-in roles that can scope an access token.
pub const TOKEN_ROLES: &[&str] = &["reader", "writer", "admin"];

/// API versions a token's `defaultApiVersion` may name.
pub const API_VERSIONS: &[i64] = &[20160426, 20191212, 20210729, 20220603, 20240415];

/// The current API version, the default for new tokens.
pub const CURRENT_API_VERSION: i64 = 20240415;

/// A plausible e-mail address: one `@`, a non-empty local part, a dotted domain, no
/// whitespace or control characters, at most 254 characters. Delivery is never attempted.
pub fn validate_email(email: &str) -> Result<(), String> {
    if email.is_empty() {
        return Err("email must not be empty".into());
    }
    if email.len() > 254 {
        return Err(format!("email \"{email}\" is longer than 254 characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("email \"{email}\" must not contain whitespace"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(format!(
            "email \"{email}\" is not an e-mail address: it has no '@'"
        ));
    };
    if local.is_empty() || domain.contains('@') {
        return Err(format!(
            "email \"{email}\" is not an e-mail address: expected exactly one '@' after a non-empty name"
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
        return Err(format!(
            "email \"{email}\" is not an e-mail address: the domain \"{domain}\" needs a dot, e.g. example.com"
        ));
    }
    Ok(())
}

/// Whether `token` has the `api-<uuid>` form of LaunchDarkly access tokens.
pub fn is_api_token_format(token: &str) -> bool {
    token
        .strip_prefix("api-")
        .is_some_and(|rest| uuid::Uuid::parse_str(rest).is_ok() && rest.len() == 36)
}

pub fn new_api_token() -> String {
    format!("api-{}", uuid::Uuid::new_v4())
}

/// The last four characters of a secret.
pub fn secret_ending(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format() {
        assert!(is_api_token_format(&new_api_token()));
        assert!(is_api_token_format(
            "api-00000000-0000-0000-0000-000000000000"
        ));
        assert!(!is_api_token_format("api-nope"));
        assert!(!is_api_token_format(
            "sdk-00000000-0000-0000-0000-000000000000"
        ));
        assert_eq!(secret_ending("api-abcdef"), "cdef");
        assert_eq!(secret_ending("ab"), "ab");
    }

    #[test]
    fn emails() {
        assert!(validate_email("ada@example.com").is_ok());
        assert!(validate_email("a.b+c@sub.example.org").is_ok());
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@x.com",
            "a da@x.com",
            "ada@x..com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
    }
}
