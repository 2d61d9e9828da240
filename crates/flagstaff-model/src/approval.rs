//! Approvals: an environment's approval settings (LaunchDarkly's `approvalSettings`) and the
//! pure rules of an approval request — which resources need one, how reviews decide its
//! status, and the digest that binds it to the exact change it was made for.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{ModelError, UnixMillis};

/// The approval service LaunchDarkly itself provides (and Flagstaff, natively).
pub const NATIVE_SERVICE_KIND: &str = "launchdarkly";

/// An environment's approval settings, as in LaunchDarkly's environment representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Every flag and segment in the environment needs an approved request to change.
    pub required: bool,
    #[serde(default)]
    pub bypass_approvals_for_pending_changes: bool,
    /// Approvals needed before a request may be applied (1 to 5).
    #[serde(default = "one")]
    pub min_num_approvals: i64,
    /// Whether the member who asked may also approve or decline.
    #[serde(default)]
    pub can_review_own_request: bool,
    /// Whether a declined request may still be applied once someone approved it.
    #[serde(default)]
    pub can_apply_declined_changes: bool,
    #[serde(default)]
    pub auto_apply_approved_changes: bool,
    /// `launchdarkly` (native) or the key of an approval integration.
    #[serde(default = "native")]
    pub service_kind: String,
    /// The approval integration's environment form variables.
    #[serde(default)]
    pub service_config: serde_json::Map<String, Value>,
    /// Only resources with one of these tags need approval (when `required` is false).
    #[serde(default)]
    pub required_approval_tags: Vec<String>,
    /// The integration configuration (its top-level form values, e.g. a custom approval
    /// service's URL and API key) an approval integration uses in this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_kind_configuration_id: Option<String>,
    /// Flagstaff extension: an approved request may still be applied after its resource
    /// moved on, as long as nothing the request could change was touched (see
    /// [`change_scope_digest`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub apply_after_unrelated_changes: bool,
}

fn one() -> i64 {
    1
}

fn native() -> String {
    NATIVE_SERVICE_KIND.to_string()
}

impl ApprovalSettings {
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(1..=5).contains(&self.min_num_approvals) {
            return Err(ModelError::invalid(format!(
                "approvalSettings.minNumApprovals {} must be between 1 and 5",
                self.min_num_approvals
            )));
        }
        if self.service_kind.trim().is_empty() {
            return Err(ModelError::invalid(
                "approvalSettings.serviceKind must name an approval service, e.g. launchdarkly",
            ));
        }
        crate::keys::validate_tags(&self.required_approval_tags)?;
        Ok(())
    }

    /// Whether a resource with these tags needs an approved request to change.
    pub fn covers(&self, tags: &[String]) -> bool {
        self.required
            || tags
                .iter()
                .any(|t| self.required_approval_tags.iter().any(|r| r == t))
    }
}

/// One review of an approval request (`ReviewResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Review {
    #[serde(rename = "_id")]
    pub id: String,
    /// `approve`, `decline` or `comment`.
    pub kind: String,
    pub creation_date: UnixMillis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_token_id: Option<String>,
}

impl Review {
    /// Who reviewed: a member, or a service token (which has no member of its own).
    pub fn reviewer(&self) -> String {
        match (&self.service_token_id, &self.member_id) {
            (Some(token), _) => format!("token:{token}"),
            (None, Some(member)) => member.clone(),
            (None, None) => String::new(),
        }
    }
}

pub const REVIEW_KINDS: &[&str] = &["approve", "decline", "comment"];

/// `approved`, `declined` or `pending`: each reviewer's latest approve/decline counts once.
/// One decline is enough to decline; `min_approvals` distinct approvals approve.
pub fn review_status(reviews: &[Review], min_approvals: i64) -> &'static str {
    let mut latest: Vec<(String, &str)> = Vec::new();
    for r in reviews.iter().filter(|r| r.kind != "comment") {
        let who = r.reviewer();
        match latest.iter_mut().find(|(w, _)| *w == who) {
            Some(entry) => entry.1 = &r.kind,
            None => latest.push((who, &r.kind)),
        }
    }
    if latest.iter().any(|(_, k)| *k == "decline") {
        "declined"
    } else if latest.iter().filter(|(_, k)| *k == "approve").count() as i64 >= min_approvals {
        "approved"
    } else {
        "pending"
    }
}

/// Whether a request whose reviews stand at `status` may be applied under `settings`.
pub fn may_apply(reviews: &[Review], status: &str, settings: &ApprovalSettings) -> bool {
    match status {
        "approved" => true,
        "declined" => {
            settings.can_apply_declined_changes && reviews.iter().any(|r| r.kind == "approve")
        }
        _ => false,
    }
}

/// The digest that binds a request to its change: the resource, the version it was made
/// against and the instructions. Object keys are sorted first, so the digest does not
/// depend on how the instructions were spelled.
pub fn change_digest(resource_id: &str, resource_version: i64, instructions: &[Value]) -> String {
    let mut text = String::new();
    canonical(
        &Value::Array(vec![
            Value::String(resource_id.to_string()),
            Value::from(resource_version),
            Value::Array(instructions.to_vec()),
        ]),
        &mut text,
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What an approved request could change, as a digest: the resource's document without its
/// bookkeeping (`_version`, `version`, `lastModified`, `lastModifiedDate`) and, for a flag,
/// without the configurations of other environments. A request's instructions operate on
/// one environment's configuration and the flag-wide fields; if this digest is the same now
/// as when the request was made, the resource moved on only in ways the request could not
/// have seen (another environment changed), and applying it now makes exactly the change
/// that was reviewed.
pub fn change_scope_digest(kind: &str, environment: &str, document: &Value) -> String {
    let mut scoped = document.clone();
    if let Value::Object(map) = &mut scoped {
        for field in ["_version", "version", "lastModified", "lastModifiedDate"] {
            map.remove(field);
        }
        if kind == "flag"
            && let Some(Value::Object(envs)) = map.get_mut("environments")
        {
            envs.retain(|key, _| key == environment);
            if let Some(Value::Object(config)) = envs.get_mut(environment) {
                for field in ["version", "lastModified", "_summary"] {
                    config.remove(field);
                }
            }
        }
    }
    let mut text = String::new();
    canonical(&scoped, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(who: &str, kind: &str) -> Review {
        Review {
            id: format!("{who}-{kind}"),
            kind: kind.into(),
            creation_date: 0,
            comment: None,
            member_id: Some(who.into()),
            service_token_id: None,
        }
    }

    #[test]
    fn reviews_decide_status() {
        assert_eq!(review_status(&[], 1), "pending");
        assert_eq!(review_status(&[review("a", "comment")], 1), "pending");
        assert_eq!(review_status(&[review("a", "approve")], 1), "approved");
        // The same reviewer twice is one approval.
        let twice = [review("a", "approve"), review("a", "approve")];
        assert_eq!(review_status(&twice, 2), "pending");
        let two = [review("a", "approve"), review("b", "approve")];
        assert_eq!(review_status(&two, 2), "approved");
        let declined = [review("a", "approve"), review("b", "decline")];
        assert_eq!(review_status(&declined, 1), "declined");
        // A reviewer who changes their mind counts with their latest review.
        let changed = [review("b", "decline"), review("b", "approve")];
        assert_eq!(review_status(&changed, 1), "approved");
    }

    #[test]
    fn digest_binds_resource_version_and_instructions() {
        let a = change_digest("proj/p:env/e:flag/f", 3, &[json!({"kind": "turnFlagOn"})]);
        assert_eq!(
            a,
            change_digest("proj/p:env/e:flag/f", 3, &[json!({"kind": "turnFlagOn"})])
        );
        assert_ne!(
            a,
            change_digest("proj/p:env/e:flag/f", 4, &[json!({"kind": "turnFlagOn"})])
        );
        assert_ne!(
            a,
            change_digest("proj/p:env/e:flag/f", 3, &[json!({"kind": "turnFlagOff"})])
        );
        assert_ne!(
            a,
            change_digest("proj/p:env/e:flag/g", 3, &[json!({"kind": "turnFlagOn"})])
        );
        // Key order does not matter.
        assert_eq!(
            change_digest("r", 1, &[json!({"kind": "x", "values": [1]})]),
            change_digest("r", 1, &[json!({"values": [1], "kind": "x"})])
        );
    }

    #[test]
    fn scope_digest_ignores_other_environments_and_bookkeeping() {
        let flag = |prod_on: bool, test_on: bool, version: i64| {
            json!({"key": "f", "_version": version, "name": "F", "environments": {
                "production": {"on": prod_on, "version": version, "lastModified": version * 10},
                "test": {"on": test_on, "version": version},
            }})
        };
        let base = change_scope_digest("flag", "production", &flag(false, false, 1));
        assert_eq!(
            base,
            change_scope_digest("flag", "production", &flag(false, true, 2))
        );
        assert_ne!(
            base,
            change_scope_digest("flag", "production", &flag(true, false, 2))
        );
        let mut renamed = flag(false, false, 2);
        renamed["name"] = json!("G");
        assert_ne!(base, change_scope_digest("flag", "production", &renamed));
    }

    #[test]
    fn settings_cover_by_required_or_tag() {
        let mut s: ApprovalSettings =
            serde_json::from_value(json!({"required": false, "requiredApprovalTags": ["gated"]}))
                .unwrap();
        assert!(s.covers(&["gated".into()]));
        assert!(!s.covers(&["other".into()]));
        s.required = true;
        assert!(s.covers(&[]));
        s.min_num_approvals = 0;
        assert!(s.validate().is_err());
    }
}
