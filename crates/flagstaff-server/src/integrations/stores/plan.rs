//! The pure parts of persistent-store sync: whether to push, what changed since the last
//! push, the Relay Proxy layout's values, and the request a featureStore manifest renders.
//! No I/O here, so every decision is unit-tested.

use std::collections::BTreeMap;

use flagstaff_manifest::Integration;
use flagstaff_manifest::preview::{Preview, PreviewError, PreviewInput, Target, preview};
use serde_json::{Map, Value, json};

/// What the engine does with the environment as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Replace the whole store (first push, after a restart, after a failure).
    Full,
    /// Write only what changed since the last successful push.
    Incremental,
    /// The store already holds this version (or a newer one): nothing to send.
    UpToDate,
}

/// Coalescing and ordering in one rule: the engine always looks at the latest state, so a
/// burst of changes becomes one push, and it never sends a version older than the one the
/// store holds (a full resync may rewrite the same version, which is harmless).
pub fn decide(pushed_version: i64, current_version: i64, needs_full: bool) -> Push {
    if current_version < pushed_version {
        Push::UpToDate
    } else if needs_full {
        Push::Full
    } else if current_version > pushed_version {
        Push::Incremental
    } else {
        Push::UpToDate
    }
}

/// Retry delay after `failures` consecutive failures: doubling from `base`, capped.
pub fn backoff(
    failures: u32,
    base: std::time::Duration,
    max: std::time::Duration,
) -> std::time::Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// The key partners' edge SDKs read the environment from: `LD-Env-<clientSideId>`.
pub fn feature_store_key(client_side_id: &str) -> String {
    format!("LD-Env-{client_side_id}")
}

/// One item to write: its key, SDK version and JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemWrite {
    pub key: String,
    pub version: u64,
    pub json: String,
}

/// The writes that bring a store from `before` (key → version last pushed) to `now`:
/// changed or new items, and tombstones for items that disappeared, versioned `deleted_at`
/// (the environment version that no longer has them, so a later re-create wins).
pub fn diff<T: serde::Serialize>(
    before: &BTreeMap<String, u64>,
    now: &BTreeMap<String, T>,
    version_of: impl Fn(&T) -> u64,
    deleted_at: u64,
) -> Vec<ItemWrite> {
    let mut writes = Vec::new();
    for (key, item) in now {
        let version = version_of(item);
        if before.get(key) != Some(&version) {
            writes.push(ItemWrite {
                key: key.clone(),
                version,
                json: serde_json::to_string(item).unwrap_or_default(),
            });
        }
    }
    for key in before.keys().filter(|k| !now.contains_key(*k)) {
        writes.push(ItemWrite {
            key: key.clone(),
            version: deleted_at,
            json: tombstone(key, deleted_at),
        });
    }
    writes
}

/// A deleted item as the SDKs' Redis stores write it; readers look only at `deleted`.
pub fn tombstone(key: &str, version: u64) -> String {
    json!({"key": key, "version": version, "deleted": true}).to_string()
}

/// The template values of a feature-store push: the configuration's form values plus
/// `_featureStoreKey` and `envId` (the client-side id).
pub fn feature_store_values(
    form_values: &Map<String, Value>,
    client_side_id: &str,
) -> Map<String, Value> {
    let mut values = form_values.clone();
    values.insert(
        "_featureStoreKey".into(),
        Value::from(feature_store_key(client_side_id)),
    );
    values.insert("envId".into(), Value::from(client_side_id));
    values
}

/// The push request for `payload` (`{"flags":…,"segments":…}`), or the validation request:
/// the same function `flagstaff integrations preview` uses, so what is previewed is what is
/// sent.
pub fn render(
    integration: &Integration,
    validation: bool,
    form_values: &Map<String, Value>,
    client_side_id: &str,
    payload: &Value,
) -> Result<Preview, PreviewError> {
    let input = PreviewInput {
        form_values: feature_store_values(form_values, client_side_id),
        oauth: None,
        compat: flagstaff_template::Compat::Go,
        standard_payload: None,
    };
    let target = if validation {
        Target::FeatureStoreValidation
    } else {
        Target::FeatureStore
    };
    preview(integration, &target, payload, &input)
}

/// Reads a validation response with the manifest's parser: `success` must point at a truthy
/// value; `errors` (optional) at the partner's messages. Missing means absent, not false.
pub fn validation_outcome(
    body: &[u8],
    success_pointer: &str,
    errors_pointer: Option<&str>,
) -> (bool, Vec<String>) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return (false, vec!["the validation response is not JSON".into()]);
    };
    let truthy = match value.pointer(success_pointer) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let errors = match errors_pointer.and_then(|p| value.pointer(p)) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                Value::Object(o) => o
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string()),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Null) | None => vec![],
        Some(other) => vec![other.to_string()],
    };
    (truthy, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn decide_coalesces_and_never_goes_backwards() {
        assert_eq!(decide(0, 5, true), Push::Full);
        assert_eq!(decide(5, 5, true), Push::Full);
        assert_eq!(decide(5, 9, false), Push::Incremental);
        assert_eq!(decide(9, 9, false), Push::UpToDate);
        // An older state than the store holds is never written, even for a full resync.
        assert_eq!(decide(9, 7, true), Push::UpToDate);
        assert_eq!(decide(9, 7, false), Push::UpToDate);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(backoff(1, base, max), Duration::from_millis(100));
        assert_eq!(backoff(2, base, max), Duration::from_millis(200));
        assert_eq!(backoff(4, base, max), Duration::from_millis(800));
        assert_eq!(backoff(30, base, max), max);
    }

    #[test]
    fn diff_writes_changes_and_tombstones_only() {
        let before: BTreeMap<String, u64> = [
            ("same".to_string(), 3),
            ("changed".into(), 4),
            ("gone".into(), 5),
        ]
        .into();
        let now: BTreeMap<String, Value> = [
            ("same".to_string(), json!({"key": "same", "version": 3})),
            ("changed".into(), json!({"key": "changed", "version": 8})),
            ("new".into(), json!({"key": "new", "version": 9})),
        ]
        .into();
        let version = |v: &Value| v["version"].as_u64().unwrap();
        let writes = diff(&before, &now, version, 10);
        let keys: Vec<(&str, u64)> = writes.iter().map(|w| (w.key.as_str(), w.version)).collect();
        assert_eq!(keys, vec![("changed", 8), ("new", 9), ("gone", 10)]);
        let gone: Value = serde_json::from_str(&writes[2].json).unwrap();
        assert_eq!(gone, json!({"key": "gone", "version": 10, "deleted": true}));
    }

    #[test]
    fn validation_pointers_follow_the_manifest() {
        let body = br#"{"success": true, "errors": []}"#;
        assert_eq!(
            validation_outcome(body, "/success", Some("/errors")),
            (true, vec![])
        );
        let body = br#"{"result": {"ok": false}, "errors": [{"code": 1, "message": "bad token"}]}"#;
        assert_eq!(
            validation_outcome(body, "/result/ok", Some("/errors")),
            (false, vec!["bad token".to_string()])
        );
        // Missing is absent, not an error message.
        assert_eq!(
            validation_outcome(b"{}", "/success", Some("/errors")),
            (false, vec![])
        );
        assert!(!validation_outcome(b"<html>", "/success", None).0);
    }

    #[test]
    fn template_values_carry_the_store_key_and_env_id() {
        let mut form = Map::new();
        form.insert("accountId".into(), Value::from("acc"));
        let values = feature_store_values(&form, "abc123");
        assert_eq!(values["_featureStoreKey"], "LD-Env-abc123");
        assert_eq!(values["envId"], "abc123");
        assert_eq!(values["accountId"], "acc");
    }
}
