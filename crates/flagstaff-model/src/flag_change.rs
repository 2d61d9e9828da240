//! What changed between two versions of a flag, in LaunchDarkly's action vocabulary, and the
//! bookkeeping every flag change gets whichever patch format produced it.

use serde_json::Value;

use crate::UnixMillis;
use crate::flag::FeatureFlag;
use crate::{ModelError, keys::normalize_tags};

/// One audited change: the LaunchDarkly action and, for targeting, the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub action: &'static str,
    pub environment: Option<String>,
}

fn flag_field_action(field: &str) -> &'static str {
    match field {
        "name" => "updateName",
        "description" => "updateDescription",
        "tags" => "updateTags",
        "variations" => "updateFlagVariations",
        "defaults" => "updateFlagDefaultVariations",
        "temporary" => "updateTemporary",
        "customProperties" => "updateFlagCustomProperties",
        "clientSideAvailability" | "includeInSnippet" => "updateClientSideFlagAvailability",
        "maintainerId" | "maintainerTeamKey" => "updateMaintainer",
        "archived" | "archivedDate" => "updateGlobalArchived",
        "deprecated" | "deprecatedDate" => "updateDeprecated",
        _ => "updateFlag",
    }
}

fn config_field_action(field: &str) -> &'static str {
    match field {
        "on" => "updateOn",
        "targets" | "contextTargets" => "updateTargets",
        "rules" => "updateRules",
        "fallthrough" => "updateFallthrough",
        "offVariation" => "updateOffVariation",
        "prerequisites" => "updatePrerequisites",
        "trackEvents" | "trackEventsFallthrough" => "updateTrackEvents",
        "salt" | "sel" => "updateFlagSalt",
        "archived" => "updateGlobalArchived",
        _ => "updateFlag",
    }
}

fn object_diff<'a>(before: &'a Value, after: &'a Value) -> Vec<&'a str> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else {
        return Vec::new();
    };
    let mut fields: Vec<&str> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.as_str())
        .collect();
    fields.extend(b.keys().filter(|k| !a.contains_key(*k)).map(String::as_str));
    fields
}

/// The actions that turn `before` into `after`, de-duplicated, flag-wide ones first.
pub fn flag_changes(before: &FeatureFlag, after: &FeatureFlag) -> Vec<FlagChange> {
    let b = serde_json::to_value(before).unwrap_or(Value::Null);
    let a = serde_json::to_value(after).unwrap_or(Value::Null);
    let mut changes: Vec<FlagChange> = Vec::new();
    let mut push = |action: &'static str, environment: Option<String>| {
        let c = FlagChange {
            action,
            environment,
        };
        if !changes.contains(&c) {
            changes.push(c);
        }
    };
    for field in object_diff(&b, &a) {
        match field {
            "environments" | "_version" | "kind" => {}
            other => push(flag_field_action(other), None),
        }
    }
    let global_archive = before.archived != after.archived;
    for (env, config) in &after.environments {
        let Some(old) = before.environments.get(env) else {
            continue;
        };
        if old == config {
            continue;
        }
        let (ob, oa) = (
            serde_json::to_value(old).unwrap_or(Value::Null),
            serde_json::to_value(config).unwrap_or(Value::Null),
        );
        for field in object_diff(&ob, &oa) {
            match field {
                "version" | "lastModified" => {}
                "archived" if global_archive => {}
                other => push(config_field_action(other), Some(env.clone())),
            }
        }
    }
    changes
}

/// Applies the server-managed parts of a change from `before` (stored at `stored_version`)
/// to `after`: read-only fields restored or refused, per-environment versions bumped where
/// the configuration changed, `kind` derived, the whole flag validated.
pub fn finalize_flag_change(
    before: &FeatureFlag,
    after: &mut FeatureFlag,
    stored_version: i64,
    now: UnixMillis,
) -> Result<(), ModelError> {
    if after.key != before.key {
        return Err(ModelError::invalid(
            "/key is read-only and cannot be changed by a patch",
        ));
    }
    if after.environments.len() != before.environments.len()
        || after
            .environments
            .keys()
            .any(|k| !before.environments.contains_key(k))
    {
        return Err(ModelError::invalid(
            "environments cannot be added to or removed from a flag by a patch: create or delete the environment instead",
        ));
    }
    after.creation_date = before.creation_date;
    after.experiments = before.experiments.clone();
    after.goal_ids = before.goal_ids.clone();
    normalize_tags(&mut after.tags);
    after.kind = after.derived_kind();
    after.include_in_snippet = after.client_side_availability.using_environment_id;
    if after.archived && !before.archived {
        after.archived_date = Some(now);
        for c in after.environments.values_mut() {
            c.archived = true;
        }
    } else if !after.archived && before.archived {
        after.archived_date = None;
        for c in after.environments.values_mut() {
            c.archived = false;
        }
    }
    if after.deprecated && !before.deprecated {
        after.deprecated_date = Some(now);
    } else if !after.deprecated {
        after.deprecated_date = None;
    }
    for (env, config) in after.environments.iter_mut() {
        let old = &before.environments[env];
        config.version = old.version;
        config.last_modified = old.last_modified;
        if config != old {
            config.version = old.version + 1;
            config.last_modified = now;
        }
    }
    after.version = stored_version + 1;
    after.validate()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flag::{ClientSideAvailability, FeatureFlagBody};
    use serde_json::json;

    fn flag() -> FeatureFlag {
        let body: FeatureFlagBody = serde_json::from_value(json!({"key":"f","name":"F"})).unwrap();
        FeatureFlag::create(
            body,
            &["production".into(), "test".into()],
            ClientSideAvailability::default(),
            1,
        )
        .unwrap()
    }

    #[test]
    fn toggling_bumps_only_that_environment() {
        let before = flag();
        let mut after = before.clone();
        after.environments.get_mut("production").unwrap().on = true;
        finalize_flag_change(&before, &mut after, 1, 99).unwrap();
        assert_eq!(after.version, 2);
        assert_eq!(after.environments["production"].version, 2);
        assert_eq!(after.environments["production"].last_modified, 99);
        assert_eq!(after.environments["test"].version, 1);
        assert_eq!(
            flag_changes(&before, &after),
            vec![FlagChange {
                action: "updateOn",
                environment: Some("production".into())
            }]
        );
    }

    #[test]
    fn archive_is_one_global_action() {
        let before = flag();
        let mut after = before.clone();
        after.archived = true;
        after.name = "G".into();
        finalize_flag_change(&before, &mut after, 1, 5).unwrap();
        assert!(after.environments.values().all(|c| c.archived));
        assert_eq!(after.archived_date, Some(5));
        let mut actions: Vec<_> = flag_changes(&before, &after)
            .into_iter()
            .map(|c| c.action)
            .collect();
        actions.sort();
        assert_eq!(actions, vec!["updateGlobalArchived", "updateName"]);
    }

    #[test]
    fn environments_cannot_be_patched_away() {
        let before = flag();
        let mut after = before.clone();
        after.environments.remove("test");
        assert!(finalize_flag_change(&before, &mut after, 1, 5).is_err());
    }
}
