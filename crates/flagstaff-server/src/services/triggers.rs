//! Flag triggers: an unguessable URL that turns one flag on or off in one environment when a
//! partner (an observability tool's alert) posts to it.
//!
//! The URL's secret (256 random bits) is shown once, at creation or reset; only its SHA-256
//! is stored, and an invocation compares hashes in constant time. Unknown ids, disabled
//! triggers and wrong secrets are indistinguishable to the caller.

use flagstaff_manifest::trigger::TriggerEvent;
use flagstaff_model::UnixMillis;
use flagstaff_model::flag::FeatureFlag;
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::flags::TriggerFire;
use super::{AuditDraft, PendingChange, Services, decode, encode, now_millis, to_value};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// How many recent invocation bodies a trigger keeps.
const RECENT_BODIES: usize = 10;

pub fn trigger_scope(project: &str, flag: &str, env: &str) -> String {
    format!("{project}/triggers:{flag}:{env}")
}

/// A trigger change is audited on its flag: LaunchDarkly shows trigger changes in the
/// flag's history, under the flag's name and link.
fn trigger_audit(
    project: &str,
    flag: &str,
    flag_doc: &FeatureFlag,
    resource: Resource,
    action: &str,
    title_verb: &str,
) -> AuditDraft {
    AuditDraft::single(
        "flag",
        flag_doc.name.clone(),
        action,
        &resource,
        title_verb,
        "",
        format!("/{project}/features/{flag}"),
    )
}

fn trigger_alias(id: &str) -> String {
    format!("trigger:{id}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentBody {
    pub timestamp: UnixMillis,
    pub json_body: Value,
}

/// The stored trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlagTrigger {
    pub id: String,
    pub version: i64,
    pub creation_date: UnixMillis,
    pub maintainer_id: String,
    pub project: String,
    pub flag: String,
    pub environment: String,
    pub integration_key: String,
    pub instructions: Vec<Value>,
    pub enabled: bool,
    /// Hex SHA-256 of the URL secret.
    pub secret_hash: String,
    pub last_triggered_at: Option<UnixMillis>,
    pub trigger_count: i64,
    pub recent_trigger_bodies: Vec<RecentBody>,
}

/// `POST …/triggers/{environmentKey}` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerPost {
    pub integration_key: String,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub instructions: Vec<Value>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A trigger with, right after creation or a URL reset, its secret.
pub struct TriggerWithSecret {
    pub trigger: FlagTrigger,
    pub secret: Option<String>,
}

fn new_secret() -> String {
    // Two v4 UUIDs from the OS generator: 244 random bits.
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal hashes, without an early exit that would tell an attacker how much matched.
fn hashes_match(stored_hex: &str, presented: &str) -> bool {
    let Ok(stored) = hex::decode(stored_hex) else {
        return false;
    };
    let presented = hash(presented);
    stored.len() == presented.len()
        && stored
            .iter()
            .zip(presented.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The one action a trigger performs: `[{"kind": "turnFlagOn"}]` or `turnFlagOff`.
fn validate_instructions(instructions: &[Value]) -> ApiResult<()> {
    let ok = instructions.len() == 1
        && matches!(
            instructions[0].get("kind").and_then(Value::as_str),
            Some("turnFlagOn" | "turnFlagOff")
        )
        && instructions[0].as_object().is_some_and(|o| o.len() == 1);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "instructions must be exactly one of [{\"kind\": \"turnFlagOn\"}] or \
             [{\"kind\": \"turnFlagOff\"}]",
        ))
    }
}

/// The same answer for every URL that does not name an enabled trigger with this secret.
pub fn unknown_trigger() -> ApiError {
    ApiError::NotFound("Unknown trigger".into())
}

impl Services {
    pub async fn list_triggers(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        env: &str,
    ) -> ApiResult<Vec<FlagTrigger>> {
        self.require_view_project(caller, project).await?;
        self.get_flag(project, flag).await?;
        self.get_environment(project, env).await?;
        let mut list: Vec<FlagTrigger> = self
            .load_all::<FlagTrigger>(EntityKind::FlagTrigger, &trigger_scope(project, flag, env))
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        list.sort_by_key(|t| t.creation_date);
        Ok(list)
    }

    pub async fn get_trigger(
        &self,
        project: &str,
        flag: &str,
        env: &str,
        id: &str,
    ) -> ApiResult<(FlagTrigger, i64)> {
        self.load(&EntityRef::new(
            EntityKind::FlagTrigger,
            trigger_scope(project, flag, env),
            id,
        ))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("trigger \"{id}\"")))
    }

    /// Creates a trigger; `integration_key` must name a catalogue integration with the
    /// trigger capability (checked by the caller, which holds the catalogue).
    pub async fn create_trigger(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        env: &str,
        post: TriggerPost,
    ) -> ApiResult<TriggerWithSecret> {
        validate_instructions(&post.instructions)?;
        let now = now_millis();
        let (flag_doc, _) = self.get_flag(project, flag).await?;
        let context = self.project_context(project).await?;
        if context.environment(env).is_none() {
            return Err(ApiError::not_found(format!(
                "environment \"{env}\" in project \"{project}\""
            )));
        }
        let secret = new_secret();
        let trigger = FlagTrigger {
            id: flagstaff_model::new_object_id(),
            version: 1,
            creation_date: now,
            maintainer_id: caller.member.id.clone(),
            project: project.into(),
            flag: flag.into(),
            environment: env.into(),
            integration_key: post.integration_key.clone(),
            instructions: post.instructions,
            enabled: true,
            secret_hash: hex::encode(hash(&secret)),
            last_triggered_at: None,
            trigger_count: 0,
            recent_trigger_bodies: Vec::new(),
        };
        let audit = trigger_audit(
            project,
            flag,
            &flag_doc,
            context.flag_resource(env, flag, &flag_doc.tags),
            "createTriggers",
            "created a flag trigger for",
        );
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: EntityRef::new(
                    EntityKind::FlagTrigger,
                    trigger_scope(project, flag, env),
                    &trigger.id,
                ),
                version: 1,
                doc: encode(&trigger)?,
                aliases: vec![trigger_alias(&trigger.id)],
            }],
            audit: AuditDraft {
                comment: post.comment,
                description: vec![format!(
                    "Created a {} trigger in *{env}*",
                    trigger.integration_key
                )],
                current_version: Some(public_doc(&trigger)),
                ..audit
            },
            outbox: Vec::new(),
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(super::CommitError::already_exists)?;
        Ok(TriggerWithSecret {
            trigger,
            secret: Some(secret),
        })
    }

    /// Semantic patch: `enableTrigger`, `disableTrigger`, `cycleTriggerUrl`,
    /// `replaceTriggerActionInstructions {value}`.
    pub async fn patch_trigger(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        env: &str,
        id: &str,
        body: Value,
    ) -> ApiResult<TriggerWithSecret> {
        let instructions = body
            .get("instructions")
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty())
            .ok_or_else(|| {
                ApiError::invalid("send a semantic patch: {\"instructions\": [{\"kind\": …}]}")
            })?
            .clone();
        let comment = body
            .get("comment")
            .and_then(Value::as_str)
            .map(String::from);
        let target = EntityRef::new(
            EntityKind::FlagTrigger,
            trigger_scope(project, flag, env),
            id,
        );
        let _guard = self.lock(&target).await;
        let now = now_millis();
        let (before, version) = self.get_trigger(project, flag, env, id).await?;
        let mut after = before.clone();
        let mut secret = None;
        let mut lines = Vec::new();
        for instruction in &instructions {
            match instruction.get("kind").and_then(Value::as_str) {
                Some("enableTrigger") => {
                    after.enabled = true;
                    lines.push("Enabled the trigger".to_string());
                }
                Some("disableTrigger") => {
                    after.enabled = false;
                    lines.push("Disabled the trigger".to_string());
                }
                Some("cycleTriggerUrl") => {
                    let fresh = new_secret();
                    after.secret_hash = hex::encode(hash(&fresh));
                    secret = Some(fresh);
                    lines.push("Reset the trigger URL".to_string());
                }
                Some("replaceTriggerActionInstructions") => {
                    let value = instruction
                        .get("value")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    validate_instructions(&value)?;
                    after.instructions = value;
                    lines.push("Replaced the trigger's action".to_string());
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "unknown trigger instruction {}: use enableTrigger, disableTrigger, \
                         cycleTriggerUrl or replaceTriggerActionInstructions",
                        other
                            .map(|k| format!("\"{k}\""))
                            .unwrap_or("without a kind".into())
                    )));
                }
            }
        }
        after.version = version + 1;
        let audit = self
            .flag_trigger_audit(
                project,
                flag,
                env,
                "updateTriggers",
                "updated a flag trigger for",
            )
            .await?;
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target,
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                comment,
                description: lines,
                previous_version: Some(public_doc(&before)),
                current_version: Some(public_doc(&after)),
                ..audit
            },
            outbox: Vec::new(),
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(super::CommitError::concurrent_change)?;
        Ok(TriggerWithSecret {
            trigger: after,
            secret,
        })
    }

    pub async fn delete_trigger(
        &self,
        caller: &Caller,
        project: &str,
        flag: &str,
        env: &str,
        id: &str,
    ) -> ApiResult<()> {
        let target = EntityRef::new(
            EntityKind::FlagTrigger,
            trigger_scope(project, flag, env),
            id,
        );
        let _guard = self.lock(&target).await;
        let now = now_millis();
        let (trigger, version) = self.get_trigger(project, flag, env, id).await?;
        let audit = self
            .flag_trigger_audit(
                project,
                flag,
                env,
                "deleteTriggers",
                "deleted a flag trigger for",
            )
            .await?;
        let change = PendingChange {
            writes: vec![EntityWrite::Delete {
                target,
                expected_version: version,
            }],
            audit: AuditDraft {
                description: vec![format!(
                    "Deleted a {} trigger in *{env}*",
                    trigger.integration_key
                )],
                previous_version: Some(public_doc(&trigger)),
                ..audit
            },
            outbox: Vec::new(),
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(super::CommitError::concurrent_change)?;
        Ok(())
    }

    /// The audit entry of a change to one of `flag`'s triggers in `env`.
    async fn flag_trigger_audit(
        &self,
        project: &str,
        flag: &str,
        env: &str,
        action: &str,
        title_verb: &str,
    ) -> ApiResult<AuditDraft> {
        let (flag_doc, _) = self.get_flag(project, flag).await?;
        let resource =
            self.project_context(project)
                .await?
                .flag_resource(env, flag, &flag_doc.tags);
        Ok(trigger_audit(
            project, flag, &flag_doc, resource, action, title_verb,
        ))
    }

    /// The trigger this URL names, if it is enabled and the secret is right; otherwise the
    /// one indistinguishable 404.
    pub async fn authenticate_trigger(
        &self,
        id: &str,
        secret: &str,
    ) -> ApiResult<(FlagTrigger, i64)> {
        let stored = match self.store.resolve_alias(&trigger_alias(id)).await? {
            Some(target) => self.store.get(&target).await?,
            None => None,
        };
        // Hash even when there is no trigger, so the work done does not tell them apart.
        let stored_hash = match &stored {
            Some(s) => decode::<FlagTrigger>(&s.doc)?.secret_hash,
            None => "00".repeat(32),
        };
        let secret_ok = hashes_match(&stored_hash, secret);
        match stored {
            Some(s) if secret_ok => {
                let trigger: FlagTrigger = decode(&s.doc)?;
                if trigger.enabled {
                    Ok((trigger, s.version))
                } else {
                    Err(unknown_trigger())
                }
            }
            _ => Err(unknown_trigger()),
        }
    }

    /// Applies the trigger's action for a partner request whose body parsed as `event`.
    /// Test events and requests that find the flag already as wanted change nothing.
    pub async fn fire_trigger(
        &self,
        trigger: FlagTrigger,
        event: &TriggerEvent,
        body: Value,
    ) -> ApiResult<bool> {
        if event.is_test {
            return Ok(false);
        }
        // Every fire of this trigger changes this flag: under the flag's lock, the trigger's
        // version read here is still current when the change commits.
        let _guard = self
            .lock(&super::flags::flag_ref(&trigger.project, &trigger.flag))
            .await;
        let (trigger, version) = self
            .get_trigger(
                &trigger.project,
                &trigger.flag,
                &trigger.environment,
                &trigger.id,
            )
            .await?;
        if !trigger.enabled {
            return Err(unknown_trigger());
        }
        let now = now_millis();
        let mut after = trigger.clone();
        after.version = version + 1;
        after.last_triggered_at = Some(now);
        after.trigger_count += 1;
        after.recent_trigger_bodies.insert(
            0,
            RecentBody {
                timestamp: now,
                json_body: body.clone(),
            },
        );
        after.recent_trigger_bodies.truncate(RECENT_BODIES);
        let fire = TriggerFire {
            body: json!({
                "eventName": event.event_name,
                "value": event.value,
                "url": event.url,
                "body": body,
            }),
            write: EntityWrite::Update {
                target: EntityRef::new(
                    EntityKind::FlagTrigger,
                    trigger_scope(&trigger.project, &trigger.flag, &trigger.environment),
                    &trigger.id,
                ),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            },
        };
        let patch = json!({
            "environmentKey": trigger.environment,
            "instructions": trigger.instructions,
            "comment": format!(
                "Triggered by {} event \"{}\"",
                trigger.integration_key, event.event_name
            ),
        });
        let changed = self
            .patch_flag_by_trigger(&fire, &trigger.project, &trigger.flag, patch)
            .await?;
        Ok(changed.is_some())
    }
}

/// A trigger as the change history shows it: never the secret's hash.
pub fn public_doc(trigger: &FlagTrigger) -> Value {
    let mut value = to_value(trigger);
    if let Some(map) = value.as_object_mut() {
        map.remove("secretHash");
        map.remove("recentTriggerBodies");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_and_compared_by_hash() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert_ne!(secret, new_secret());
        let stored = hex::encode(hash(&secret));
        assert!(hashes_match(&stored, &secret));
        assert!(!hashes_match(&stored, &secret[..63]));
        assert!(!hashes_match("not hex", &secret));
    }

    #[test]
    fn one_on_or_off_instruction() {
        assert!(validate_instructions(&[json!({"kind": "turnFlagOn"})]).is_ok());
        assert!(validate_instructions(&[json!({"kind": "turnFlagOff"})]).is_ok());
        assert!(validate_instructions(&[]).is_err());
        assert!(validate_instructions(&[json!({"kind": "updateOn"})]).is_err());
        assert!(
            validate_instructions(&[
                json!({"kind": "turnFlagOn"}),
                json!({"kind": "turnFlagOff"})
            ])
            .is_err()
        );
    }
}
