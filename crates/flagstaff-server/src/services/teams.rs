//! Teams: create, semantic-patch instructions (applied all-or-nothing), delete. A team grants
//! its custom roles to its members, with the team's role attributes (filled in with each
//! member's own).

use std::collections::{BTreeMap, HashSet};

use flagstaff_model::account::{Member, RoleAttributes, Team, TeamPost};
use flagstaff_model::keys::{validate_key, validate_name};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde_json::{Map, Value};

use super::members::validate_role_attributes;
use super::roles::{RoleIndex, account_outbox, ensure_within};
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, encode, now_millis,
    to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn team_ref(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Team, "", key)
}

/// The audit form of a team.
fn team_audit_json(t: &Team) -> Value {
    let mut v = to_value(t);
    if let Some(map) = v.as_object_mut() {
        map.remove("version");
    }
    v
}

/// A parsed `PATCH /teams/{key}` body.
pub struct TeamPatch {
    pub comment: Option<String>,
    pub instructions: Vec<Map<String, Value>>,
}

/// Team PATCH is semantic patch (LaunchDarkly documents it with
/// `Content-Type: application/json; domain-model=launchdarkly.semanticpatch`); the same body
/// sent as plain `application/json` is accepted too, since the generated clients send that.
pub fn parse_team_patch(body: Value) -> ApiResult<TeamPatch> {
    let example = "expected {\"comment\"?: \"…\", \"instructions\": [{\"kind\": \"updateName\", \"value\": \"…\"}]}";
    let Value::Object(mut map) = body else {
        return Err(ApiError::invalid(format!(
            "team PATCH takes semantic patch instructions, not a JSON Patch: {example}"
        )));
    };
    let comment = match map.remove("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::invalid("comment must be a string")),
    };
    let instructions = match map.remove("instructions") {
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "instructions must be an array: {example}"
            )));
        }
        None => {
            return Err(ApiError::invalid(format!(
                "the body has no instructions: {example}"
            )));
        }
    };
    if let Some(extra) = map.keys().next() {
        return Err(ApiError::invalid(format!(
            "unknown field `{extra}`: {example}"
        )));
    }
    if instructions.is_empty() {
        return Err(ApiError::invalid(
            "semantic patch needs at least one instruction",
        ));
    }
    let instructions = instructions
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::Object(m) if m.get("kind").is_some_and(Value::is_string) => Ok(m),
            _ => Err(ApiError::invalid(format!(
                "instruction {i} must be an object with a string `kind`"
            ))),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(TeamPatch {
        comment,
        instructions,
    })
}

/// Reads the parameters of one instruction, refusing unknown ones.
struct Params<'a> {
    index: usize,
    kind: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    fn err(&self, message: impl std::fmt::Display) -> ApiError {
        ApiError::invalid(format!(
            "instruction {} ({}): {message}",
            self.index, self.kind
        ))
    }

    fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        for key in self.map.keys() {
            if key != "kind" && !allowed.contains(&key.as_str()) {
                return Err(self.err(format!(
                    "unknown parameter `{key}`: expected {}",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    fn string(&self, name: &str) -> ApiResult<String> {
        match self.map.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(self.err(format!("`{name}` must be a string"))),
        }
    }

    fn strings(&self, name: &str) -> ApiResult<Vec<String>> {
        match self.map.get(name) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(String::from)
                        .ok_or_else(|| self.err(format!("`{name}` must be an array of strings")))
                })
                .collect(),
            _ => Err(self.err(format!("`{name}` must be an array of strings"))),
        }
    }

    fn non_empty_strings(&self, name: &str) -> ApiResult<Vec<String>> {
        let values = self.strings(name)?;
        if values.is_empty() {
            return Err(self.err(format!("`{name}` must not be empty")));
        }
        Ok(values)
    }
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !list.contains(&value) {
        list.push(value);
    }
}

/// Applies one instruction to `team`; returns the LaunchDarkly action and a description.
fn apply_instruction(
    team: &mut Team,
    index: usize,
    instruction: &Map<String, Value>,
    roles: &RoleIndex,
    members: &BTreeMap<String, Member>,
) -> ApiResult<(&'static str, String)> {
    let kind = instruction
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let p = Params {
        index,
        kind,
        map: instruction,
    };
    let known_member = |id: &String| -> ApiResult<()> {
        if members.contains_key(id) {
            Ok(())
        } else {
            Err(p.err(format!("there is no member with _id \"{id}\"")))
        }
    };
    Ok(match kind {
        "addCustomRoles" | "removeCustomRoles" => {
            p.only(&["values"])?;
            let keys = roles.keys(
                &p.non_empty_strings("values")?,
                &format!("instruction {index} ({kind}): values"),
            )?;
            if kind == "addCustomRoles" {
                for k in &keys {
                    push_unique(&mut team.custom_role_keys, k.clone());
                }
            } else {
                team.custom_role_keys.retain(|k| !keys.contains(k));
            }
            (
                "updateTeamCustomRoles",
                format!(
                    "{} the custom roles {}",
                    if kind == "addCustomRoles" {
                        "Added"
                    } else {
                        "Removed"
                    },
                    keys.join(", ")
                ),
            )
        }
        "addMembers" | "removeMembers" | "replaceMembers" => {
            p.only(&["values"])?;
            let ids = if kind == "replaceMembers" {
                p.strings("values")?
            } else {
                p.non_empty_strings("values")?
            };
            for id in &ids {
                if kind != "removeMembers" {
                    known_member(id)?;
                }
            }
            match kind {
                "addMembers" => ids
                    .iter()
                    .for_each(|id| push_unique(&mut team.member_ids, id.clone())),
                "removeMembers" => team.member_ids.retain(|m| !ids.contains(m)),
                _ => {
                    team.member_ids.clear();
                    ids.iter()
                        .for_each(|id| push_unique(&mut team.member_ids, id.clone()));
                }
            }
            let emails: Vec<&str> = ids
                .iter()
                .map(|id| members.get(id).map_or(id.as_str(), |m| m.email.as_str()))
                .collect();
            (
                "updateTeamMembers",
                format!(
                    "{} {}",
                    match kind {
                        "addMembers" => "Added the members",
                        "removeMembers" => "Removed the members",
                        _ => "Replaced the members with",
                    },
                    if emails.is_empty() {
                        "nobody".to_string()
                    } else {
                        emails.join(", ")
                    }
                ),
            )
        }
        "addRoleAttribute" | "updateRoleAttribute" => {
            p.only(&["key", "values"])?;
            let key = p.string("key")?;
            let values = p.strings("values")?;
            if kind == "addRoleAttribute" && team.role_attributes.contains_key(&key) {
                return Err(p.err(format!(
                    "the team already has the role attribute \"{key}\": use updateRoleAttribute"
                )));
            }
            let single = RoleAttributes::from([(key.clone(), values.clone())]);
            validate_role_attributes(&single).map_err(|e| p.err(e))?;
            team.role_attributes.insert(key.clone(), values.clone());
            (
                "updateTeamRoleAttributes",
                format!("Set the role attribute `{key}` to {}", values.join(", ")),
            )
        }
        "removeRoleAttribute" => {
            p.only(&["key"])?;
            let key = p.string("key")?;
            if team.role_attributes.remove(&key).is_none() {
                return Err(p.err(format!("the team has no role attribute \"{key}\"")));
            }
            (
                "updateTeamRoleAttributes",
                format!("Removed the role attribute `{key}`"),
            )
        }
        "replaceRoleAttributes" => {
            p.only(&["value"])?;
            let value = instruction.get("value").cloned().unwrap_or(Value::Null);
            let attributes: RoleAttributes = serde_json::from_value(value).map_err(|_| {
                p.err("`value` must be an object of attribute names to arrays of strings")
            })?;
            validate_role_attributes(&attributes).map_err(|e| p.err(e))?;
            team.role_attributes = attributes;
            (
                "updateTeamRoleAttributes",
                "Replaced the role attributes".to_string(),
            )
        }
        "updateName" => {
            p.only(&["value"])?;
            let name = p.string("value")?;
            validate_name("team", &name).map_err(|e| p.err(e))?;
            team.name = name.clone();
            ("updateTeamName", format!("Renamed the team to *{name}*"))
        }
        "updateDescription" => {
            p.only(&["value"])?;
            team.description = p.string("value")?;
            (
                "updateTeamDescription",
                "Changed the description".to_string(),
            )
        }
        "addPermissionGrants" | "removePermissionGrants" => {
            return Err(p.err("team permission grants are not supported yet"));
        }
        other => {
            return Err(p.err(format!(
                "unknown instruction kind \"{other}\": use addCustomRoles, removeCustomRoles, addMembers, removeMembers, replaceMembers, addRoleAttribute, updateRoleAttribute, removeRoleAttribute, replaceRoleAttributes, updateName or updateDescription"
            )));
        }
    })
}

impl Services {
    pub async fn get_team(&self, key: &str) -> ApiResult<(Team, i64)> {
        self.load(&team_ref(key))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("team \"{key}\"")))
    }

    /// Teams ordered by key.
    pub async fn list_teams(&self) -> ApiResult<Vec<Team>> {
        Ok(self
            .list_teams_raw()
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    async fn members_by_id(&self) -> ApiResult<BTreeMap<String, Member>> {
        Ok(self
            .list_members()
            .await?
            .into_iter()
            .map(|m| (m.id.clone(), m))
            .collect())
    }

    /// Refuses a team whose roles would give a member more than the caller has. When the roles
    /// or attributes changed every member is checked, else only `added` ones.
    fn ensure_team_within(
        caller: &Caller,
        team: &Team,
        roles: &RoleIndex,
        members: &BTreeMap<String, Member>,
        check: &[String],
    ) -> ApiResult<()> {
        for id in check {
            if let Some(m) = members.get(id) {
                ensure_within(
                    &caller.permissions,
                    &roles.team_grant(team, m),
                    &format!("The team \"{}\" for {}", team.key, m.email),
                )?;
            }
        }
        Ok(())
    }

    pub async fn create_team(&self, caller: &Caller, body: TeamPost) -> ApiResult<Team> {
        validate_key("team", &body.key)?;
        validate_name("team", &body.name)?;
        if body
            .permission_grants
            .as_ref()
            .is_some_and(|g| !g.is_empty())
        {
            return Err(ApiError::invalid(
                "permissionGrants: team permission grants are not supported yet",
            ));
        }
        let attributes = body.role_attributes.clone().unwrap_or_default();
        validate_role_attributes(&attributes)?;
        let resource = Resource::team(&body.key);
        caller.require("createTeam", &resource)?;
        let roles = self.role_index().await?;
        let members = self.members_by_id().await?;
        let mut member_ids: Vec<String> = Vec::new();
        for id in body.member_ids.as_deref().unwrap_or_default() {
            if !members.contains_key(id) {
                return Err(ApiError::invalid(format!(
                    "memberIDs: there is no member with _id \"{id}\""
                )));
            }
            push_unique(&mut member_ids, id.clone());
        }
        let now = now_millis();
        let team = Team {
            id: flagstaff_model::new_object_id(),
            key: body.key,
            name: body.name,
            description: body.description.unwrap_or_default(),
            custom_role_keys: roles.keys(
                body.custom_role_keys.as_deref().unwrap_or_default(),
                "customRoleKeys",
            )?,
            member_ids,
            role_attributes: attributes,
            creation_date: now,
            last_modified: now,
            version: 1,
        };
        Self::ensure_team_within(caller, &team, &roles, &members, &team.member_ids)?;
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: team_ref(&team.key),
                version: team.version,
                doc: encode(&team)?,
                aliases: Vec::new(),
            }],
            audit: AuditDraft {
                current_version: Some(team_audit_json(&team)),
                ..AuditDraft::single(
                    "team",
                    team.name.clone(),
                    "createTeam",
                    &resource,
                    "created the team",
                    format!(
                        "Created the team *{}* with {} member(s) and custom roles {}",
                        team.name,
                        team.member_ids.len(),
                        if team.custom_role_keys.is_empty() {
                            "none".to_string()
                        } else {
                            team.custom_role_keys.join(", ")
                        }
                    ),
                    format!("/settings/teams/{}", team.key),
                )
            },
            outbox: vec![account_outbox("team", "create", &team.key)],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(|e| match e {
                CommitError::Api(ApiError::Conflict(_)) => {
                    ApiError::Conflict(format!("a team with key \"{}\" already exists", team.key))
                }
                CommitError::Api(e) => e,
                CommitError::Conflict(what) => ApiError::Conflict(what),
            })?;
        Ok(team)
    }

    pub async fn patch_team(&self, caller: &Caller, key: &str, body: Value) -> ApiResult<Team> {
        let patch = parse_team_patch(body)?;
        let target = team_ref(key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.patch_team_once(caller, key, &patch))
            .await
    }

    async fn patch_team_once(
        &self,
        caller: &Caller,
        key: &str,
        patch: &TeamPatch,
    ) -> Result<Team, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_team(key).await?;
        let roles = self.role_index().await?;
        let members = self.members_by_id().await?;
        let mut after = before.clone();
        let mut applied = Vec::new();
        for (i, instruction) in patch.instructions.iter().enumerate() {
            applied.push(apply_instruction(
                &mut after,
                i,
                instruction,
                &roles,
                &members,
            )?);
        }
        let resource = Resource::team(key);
        let mut actions: Vec<&str> = applied.iter().map(|(a, _)| *a).collect();
        actions.sort();
        actions.dedup();
        for action in &actions {
            caller.require(action, &resource)?;
        }
        let grants_changed = before.custom_role_keys.iter().collect::<HashSet<_>>()
            != after.custom_role_keys.iter().collect::<HashSet<_>>()
            || before.role_attributes != after.role_attributes;
        let check: Vec<String> = if grants_changed {
            after.member_ids.clone()
        } else {
            after
                .member_ids
                .iter()
                .filter(|m| !before.member_ids.contains(m))
                .cloned()
                .collect()
        };
        Self::ensure_team_within(caller, &after, &roles, &members, &check)?;
        if team_audit_json(&before) == team_audit_json(&after) {
            return Ok(before);
        }
        after.version = version + 1;
        after.last_modified = now;
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: team_ref(key),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "team",
                name: after.name.clone(),
                accesses: actions.iter().map(|a| access(a, &resource)).collect(),
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the team".into(),
                description: applied.into_iter().map(|(_, d)| d).collect(),
                comment: patch.comment.clone(),
                site_path: format!("/settings/teams/{key}"),
                delta: Some(Value::Array(
                    patch
                        .instructions
                        .iter()
                        .map(|i| Value::Object(i.clone()))
                        .collect(),
                )),
                previous_version: Some(team_audit_json(&before)),
                current_version: Some(team_audit_json(&after)),
            },
            outbox: vec![account_outbox("team", "update", key)],
        };
        self.commit(Some(caller), now, change).await?;
        Ok(after)
    }

    pub async fn delete_team(&self, caller: &Caller, key: &str) -> ApiResult<()> {
        let resource = Resource::team(key);
        self.get_team(key).await?;
        caller.require("deleteTeam", &resource)?;
        let target = team_ref(key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (team, version) = self.get_team(key).await?;
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: team_ref(key),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    previous_version: Some(team_audit_json(&team)),
                    ..AuditDraft::single(
                        "team",
                        team.name.clone(),
                        "deleteTeam",
                        &resource,
                        "deleted the team",
                        format!("Deleted the team *{}*", team.name),
                        "/settings/teams",
                    )
                },
                outbox: vec![account_outbox("team", "delete", key)],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }
}
