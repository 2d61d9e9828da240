//! The account, its members and their API access tokens (as stored; the REST surface for
//! members and tokens arrives with access control).

use serde::{Deserialize, Serialize};

use crate::UnixMillis;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub creation_date: UnixMillis,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub creation_date: UnixMillis,
}

/// An API access token. Only the SHA-256 of the secret is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub member_id: String,
    pub role: String,
    pub service_token: bool,
    /// Hex SHA-256 of the secret.
    pub secret_hash: String,
    /// The secret's last four characters, shown in listings and audit entries.
    pub ending: String,
    pub default_api_version: i64,
    pub creation_date: UnixMillis,
    pub last_modified: UnixMillis,
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
    }
}
