//! Custom roles: create, JSON Patch / merge patch, delete (refused while the role is assigned).
//! Also the helpers the member, team and token services share: finding roles by key or `_id`,
//! turning roles into the statements they grant, and refusing grants beyond the caller's own.

use std::collections::HashMap;

use flagstaff_model::account::{
    AccessToken, CustomRole, CustomRolePost, Member, RESOURCE_CATEGORIES, RoleAttributes, Team,
};
use flagstaff_model::keys::{validate_key, validate_name};
use flagstaff_model::patch::PatchFormats;
use flagstaff_model::patch::{PatchRequest, apply_document_patch, parse_patch_request};
use flagstaff_policy::{BasePermissions, BaseRole, Permissions, Resource, Statement, parse_policy};
use flagstaff_store::{EntityKind, EntityRef, EntityWrite, OutboxRow};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::grants::first_excess;
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, changed_fields,
    encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub fn role_ref(key: &str) -> EntityRef {
    EntityRef::new(EntityKind::Role, "", key)
}

/// The alias under which a role is found by its `_id` (auth.rs resolves roles the same way).
pub fn role_id_alias(id: &str) -> String {
    format!("role-id:{id}")
}

pub fn account_outbox(kind: &str, action: &str, id: &str) -> OutboxRow {
    OutboxRow {
        topic: kind.into(),
        payload: json!({"kind": kind, "action": action, "id": id}).to_string(),
    }
}

/// Parses a policy, turning a [`flagstaff_policy::PolicyError`] into a 400 that names the
/// field, the statement, the item and the character position.
pub fn parse_policy_field(field: &str, policy: &Value) -> ApiResult<Vec<Statement>> {
    parse_policy(policy).map_err(|e| ApiError::invalid(format!("{field}: {e}")))
}

/// The statements a custom role grants to an assignment with `attributes` (its policy with
/// placeholders substituted, plus its base permissions). An assignment whose attributes do not
/// fill the placeholders grants nothing, as in auth.rs.
pub fn role_grant(role: &CustomRole, attributes: &RoleAttributes) -> Vec<Statement> {
    let Ok(statements) = parse_policy(&Value::Array(role.policy.clone())) else {
        return Vec::new();
    };
    let Ok(mut resolved) = statements
        .iter()
        .enumerate()
        .map(|(i, s)| s.resolve(attributes, i))
        .collect::<Result<Vec<_>, _>>()
    else {
        return Vec::new();
    };
    resolved.extend(
        BasePermissions::from_name(&role.base_permissions)
            .unwrap_or(BasePermissions::NoAccess)
            .statements(),
    );
    resolved
}

/// The statements a built-in role grants.
pub fn base_role_grant(name: &str) -> Vec<Statement> {
    BaseRole::from_name(name)
        .map(BaseRole::statements)
        .unwrap_or_default()
}

/// Refuses (403) a grant that allows anything `ceiling` does not cover (see `grants.rs`).
pub fn ensure_within(ceiling: &Permissions, grant: &[Statement], what: &str) -> ApiResult<()> {
    match first_excess(grant, ceiling) {
        None => Ok(()),
        Some(excess) => Err(ApiError::Forbidden(format!(
            "Forbidden. {what} would allow {excess}, which the caller's own permissions do not cover: nobody can grant more access than they have"
        ))),
    }
}

/// Every custom role, found by key or by `_id`.
pub struct RoleIndex {
    by_key: HashMap<String, CustomRole>,
    key_of_id: HashMap<String, String>,
}

impl RoleIndex {
    pub fn get(&self, key_or_id: &str) -> Option<&CustomRole> {
        self.by_key.get(key_or_id).or_else(|| {
            self.key_of_id
                .get(key_or_id)
                .and_then(|k| self.by_key.get(k))
        })
    }

    /// The role, or a 400 naming the unknown key.
    pub fn require(&self, key_or_id: &str, field: &str) -> ApiResult<&CustomRole> {
        self.get(key_or_id).ok_or_else(|| {
            ApiError::invalid(format!(
                "{field}: there is no custom role with key or _id \"{key_or_id}\""
            ))
        })
    }

    /// Role keys for `keys_or_ids`, de-duplicated in order; 400 for unknown ones.
    pub fn keys(&self, keys_or_ids: &[String], field: &str) -> ApiResult<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in keys_or_ids {
            let key = self.require(k, field)?.key.clone();
            if !out.contains(&key) {
                out.push(key);
            }
        }
        Ok(out)
    }

    /// Role `_id`s for `keys_or_ids`, de-duplicated in order; 400 for unknown ones.
    pub fn ids(&self, keys_or_ids: &[String], field: &str) -> ApiResult<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for k in keys_or_ids {
            let id = self.require(k, field)?.id.clone();
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// What a member's own role assignment grants (custom roles replace the built-in role).
    pub fn member_grant(&self, member: &Member) -> Vec<Statement> {
        if member.custom_roles.is_empty() {
            return base_role_grant(&member.role);
        }
        member
            .custom_roles
            .iter()
            .filter_map(|k| self.get(k))
            .flat_map(|r| role_grant(r, &member.role_attributes))
            .collect()
    }

    /// What `team` grants `member` (the team's attributes, filled in with the member's).
    pub fn team_grant(&self, team: &Team, member: &Member) -> Vec<Statement> {
        let mut attributes = team.role_attributes.clone();
        for (k, v) in &member.role_attributes {
            attributes.entry(k.clone()).or_insert_with(|| v.clone());
        }
        team.custom_role_keys
            .iter()
            .filter_map(|k| self.get(k))
            .flat_map(|r| role_grant(r, &attributes))
            .collect()
    }
}

/// Who uses a role.
#[derive(Default)]
pub struct RoleUsers {
    pub members: Vec<Member>,
    pub teams: Vec<Team>,
    pub tokens: Vec<AccessToken>,
}

/// The patchable view of a custom role: the fields of its representation. Unknown fields
/// are refused, so a patch cannot add fields that would be silently dropped.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleView {
    #[serde(rename = "_id")]
    id: String,
    key: String,
    name: String,
    #[serde(default)]
    description: String,
    policy: Vec<Value>,
    base_permissions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_category: Option<String>,
}

const ROLE_READ_ONLY: &[&str] = &["/_id", "/key", "/resourceCategory"];

fn role_action(field: &str) -> &'static str {
    match field {
        "name" => "updateName",
        "description" => "updateDescription",
        "policy" => "updatePolicy",
        "basePermissions" => "updateBasePermissions",
        _ => "updateRole",
    }
}

fn validate_base_permissions(value: &str) -> ApiResult<()> {
    if BasePermissions::from_name(value).is_none() {
        return Err(ApiError::invalid(format!(
            "basePermissions \"{value}\" is invalid: use reader or no_access"
        )));
    }
    Ok(())
}

/// The audit form of a role (its stored document without the version counter).
fn role_audit_json(role: &CustomRole) -> Value {
    let mut v = to_value(role);
    if let Some(map) = v.as_object_mut() {
        map.remove("version");
    }
    v
}

impl Services {
    pub async fn role_index(&self) -> ApiResult<RoleIndex> {
        let mut by_key = HashMap::new();
        let mut key_of_id = HashMap::new();
        for (role, _) in self.load_all::<CustomRole>(EntityKind::Role, "").await? {
            key_of_id.insert(role.id.clone(), role.key.clone());
            by_key.insert(role.key.clone(), role);
        }
        Ok(RoleIndex { by_key, key_of_id })
    }

    /// A role by key or `_id`.
    pub async fn find_role(&self, key_or_id: &str) -> ApiResult<Option<(CustomRole, i64)>> {
        if let Some(found) = self.load(&role_ref(key_or_id)).await? {
            return Ok(Some(found));
        }
        match self.store.resolve_alias(&role_id_alias(key_or_id)).await? {
            Some(target) => self.load(&target).await,
            None => Ok(None),
        }
    }

    pub async fn get_role(&self, key_or_id: &str) -> ApiResult<(CustomRole, i64)> {
        self.find_role(key_or_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("custom role \"{key_or_id}\"")))
    }

    /// Custom roles ordered by key.
    pub async fn list_roles(&self) -> ApiResult<Vec<CustomRole>> {
        Ok(self
            .load_all::<CustomRole>(EntityKind::Role, "")
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// The members (directly), teams and tokens a role is assigned to.
    pub async fn role_users(&self, role: &CustomRole) -> ApiResult<RoleUsers> {
        let names = |k: &String| *k == role.key || *k == role.id;
        let mut users = RoleUsers::default();
        for (m, _) in self.load_all::<Member>(EntityKind::Member, "").await? {
            if m.custom_roles.iter().any(names) {
                users.members.push(m);
            }
        }
        for (t, _) in self.load_all::<Team>(EntityKind::Team, "").await? {
            if t.custom_role_keys.iter().any(names) {
                users.teams.push(t);
            }
        }
        for (t, _) in self.load_all::<AccessToken>(EntityKind::Token, "").await? {
            if t.custom_role_ids.iter().any(names) {
                users.tokens.push(t);
            }
        }
        Ok(users)
    }

    pub async fn create_role(
        &self,
        caller: &Caller,
        body: CustomRolePost,
    ) -> ApiResult<CustomRole> {
        validate_key("custom role", &body.key)?;
        validate_name("custom role", &body.name)?;
        let statements = parse_policy_field("policy", &body.policy)?;
        let base_permissions = body.base_permissions.unwrap_or_else(|| "no_access".into());
        validate_base_permissions(&base_permissions)?;
        if let Some(category) = &body.resource_category
            && !RESOURCE_CATEGORIES.contains(&category.as_str())
        {
            return Err(ApiError::invalid(format!(
                "resourceCategory \"{category}\" is invalid: use organization, project or any"
            )));
        }
        let resource = Resource::role(&body.key);
        caller.require("createRole", &resource)?;
        let now = now_millis();
        let role = CustomRole {
            id: flagstaff_model::new_object_id(),
            key: body.key,
            name: body.name,
            description: body.description.unwrap_or_default(),
            policy: statements.iter().map(Statement::to_json).collect(),
            base_permissions,
            resource_category: body.resource_category,
            creation_date: now,
            version: 1,
        };
        // Placeholders are checked as the glob text they are: `proj/${roleAttribute/p}` is
        // within the caller only if every project is.
        ensure_within(
            &caller.permissions,
            &role_grant_unresolved(&role),
            &format!("The custom role \"{}\"", role.key),
        )?;
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: role_ref(&role.key),
                version: role.version,
                doc: encode(&role)?,
                aliases: vec![role_id_alias(&role.id)],
            }],
            audit: AuditDraft {
                current_version: Some(role_audit_json(&role)),
                ..AuditDraft::single(
                    "role",
                    role.name.clone(),
                    "createRole",
                    &resource,
                    "created the custom role",
                    format!(
                        "Created the custom role *{}* with {} policy statement(s) and base permissions `{}`",
                        role.name,
                        role.policy.len(),
                        role.base_permissions
                    ),
                    format!("/settings/roles/{}", role.key),
                )
            },
            outbox: vec![account_outbox("role", "create", &role.key)],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(|e| match e {
                CommitError::Api(ApiError::Conflict(_)) => ApiError::Conflict(format!(
                    "a custom role with key \"{}\" already exists",
                    role.key
                )),
                CommitError::Api(e) => e,
                CommitError::Conflict(what) => ApiError::Conflict(what),
            })?;
        Ok(role)
    }

    pub async fn patch_role(
        &self,
        caller: &Caller,
        key_or_id: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<CustomRole> {
        if semantic || body.get("instructions").is_some() {
            return Err(ApiError::invalid(
                "custom roles take a JSON Patch ([{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"…\"}], optionally as {\"comment\", \"patch\"}) or a JSON merge patch, not semantic patch instructions",
            ));
        }
        let request = parse_patch_request(body, false, PatchFormats::All)?;
        let (role, _) = self.get_role(key_or_id).await?;
        let target = role_ref(&role.key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.patch_role_once(caller, &role.key, &request))
            .await
    }

    async fn patch_role_once(
        &self,
        caller: &Caller,
        key: &str,
        request: &PatchRequest,
    ) -> Result<CustomRole, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_role(key).await?;
        let view = RoleView {
            id: before.id.clone(),
            key: before.key.clone(),
            name: before.name.clone(),
            description: before.description.clone(),
            policy: before.policy.clone(),
            base_permissions: before.base_permissions.clone(),
            resource_category: before.resource_category.clone(),
        };
        let after_view: RoleView = apply_document_patch(&view, request, version, ROLE_READ_ONLY)?;
        validate_name("custom role", &after_view.name)?;
        let statements = parse_policy_field("policy", &Value::Array(after_view.policy.clone()))?;
        validate_base_permissions(&after_view.base_permissions)?;
        let mut after = before.clone();
        after.name = after_view.name;
        after.description = after_view.description;
        after.policy = statements.iter().map(Statement::to_json).collect();
        after.base_permissions = after_view.base_permissions;
        let before_json = role_audit_json(&before);
        let fields = changed_fields(&before_json, &role_audit_json(&after));
        if fields.is_empty() {
            return Ok(before);
        }
        let resource = Resource::role(key);
        for f in &fields {
            caller.require(role_action(f), &resource)?;
        }
        if fields
            .iter()
            .any(|f| f == "policy" || f == "basePermissions")
        {
            ensure_within(
                &caller.permissions,
                &role_grant_unresolved(&after),
                &format!("The custom role \"{key}\""),
            )?;
        }
        after.version = version + 1;
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: role_ref(key),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "role",
                name: after.name.clone(),
                accesses: fields
                    .iter()
                    .map(|f| access(role_action(f), &resource))
                    .collect(),
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the custom role".into(),
                description: fields.iter().map(|f| format!("Changed `{f}`")).collect(),
                comment: request.comment().map(String::from),
                site_path: format!("/settings/roles/{key}"),
                delta: Some(request.delta()),
                previous_version: Some(before_json),
                current_version: Some(role_audit_json(&after)),
            },
            outbox: vec![account_outbox("role", "update", key)],
        };
        self.commit(Some(caller), now, change).await?;
        Ok(after)
    }

    pub async fn delete_role(&self, caller: &Caller, key_or_id: &str) -> ApiResult<()> {
        let (role, _) = self.get_role(key_or_id).await?;
        let resource = Resource::role(&role.key);
        caller.require("deleteRole", &resource)?;
        let target = role_ref(&role.key);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (role, version) = self.get_role(key_or_id).await?;
            let users = self.role_users(&role).await?;
            if !users.members.is_empty() || !users.teams.is_empty() || !users.tokens.is_empty() {
                let mut uses = Vec::new();
                if !users.members.is_empty() {
                    uses.push(format!(
                        "members {}",
                        users
                            .members
                            .iter()
                            .map(|m| m.email.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !users.teams.is_empty() {
                    uses.push(format!(
                        "teams {}",
                        users
                            .teams
                            .iter()
                            .map(|t| t.key.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !users.tokens.is_empty() {
                    uses.push(format!(
                        "access tokens {}",
                        users
                            .tokens
                            .iter()
                            .map(|t| format!("\"{}\" ({})", t.name, t.id))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                return Err(CommitError::Api(ApiError::invalid(format!(
                    "the custom role \"{}\" is still assigned to {}: remove it from them first",
                    role.key,
                    uses.join("; ")
                ))));
            }
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: role_ref(&role.key),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    previous_version: Some(role_audit_json(&role)),
                    ..AuditDraft::single(
                        "role",
                        role.name.clone(),
                        "deleteRole",
                        &resource,
                        "deleted the custom role",
                        format!("Deleted the custom role *{}*", role.name),
                        "/settings/roles",
                    )
                },
                outbox: vec![account_outbox("role", "delete", &role.key)],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }
}

/// A role's statements with placeholders left as text, plus its base permissions: what any
/// assignment of the role could grant, for the "not beyond the caller" check.
fn role_grant_unresolved(role: &CustomRole) -> Vec<Statement> {
    let mut statements = parse_policy(&Value::Array(role.policy.clone())).unwrap_or_default();
    statements.extend(
        BasePermissions::from_name(&role.base_permissions)
            .unwrap_or(BasePermissions::NoAccess)
            .statements(),
    );
    statements
}
