//! LaunchDarkly semantic patch: `{"comment"?, "environmentKey"?, "instructions": [{"kind": ...}]}`.
//!
//! Instructions are applied in order to a copy of the entity; either all succeed and the copy
//! is returned, or the first failure is reported and nothing changes.

use serde::Deserialize;
use serde_json::{Map, Value};

pub mod flag;
pub mod segment;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SemanticPatch {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub environment_key: Option<String>,
    pub instructions: Vec<Map<String, Value>>,
}

/// What one instruction did, for the audit entry: the LaunchDarkly action name
/// (`updateOn`, `updateRules`, …), the environment it touched (None for flag-wide settings)
/// and a one-line, human description (markdown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedInstruction {
    pub kind: String,
    pub action: &'static str,
    pub environment: Option<String>,
    pub description: String,
}
