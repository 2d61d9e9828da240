//! Account members: add (in batches of up to 50, with their teams), JSON Patch of role,
//! custom roles, role attributes and names, delete (with their personal tokens and team
//! memberships). The account always keeps an owner, and only someone allowed to choose the
//! owner (`updateAccountOwner` on `acct`) can make or unmake one.

use std::collections::BTreeSet;

use flagstaff_model::account::{
    AccessToken, BASE_ROLES, INVITE_ROLES, Member, NewMemberForm, RoleAttributes, Team,
    validate_email,
};
use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_policy::Resource;
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::roles::{account_outbox, ensure_within};
use super::teams::team_ref;
use super::tokens::token_ref;
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, changed_fields,
    encode, now_millis, to_value,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The most members one `POST /members` may add (LaunchDarkly's limit).
pub const MAX_NEW_MEMBERS: usize = 50;

pub fn member_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::Member, "", id)
}

/// The alias that keeps e-mail addresses unique (case-insensitively).
pub fn email_alias(email: &str) -> String {
    format!("member-email:{}", email.to_lowercase())
}

/// An owner whose permissions are the owner role's (custom roles would replace it).
pub fn is_effective_owner(m: &Member) -> bool {
    m.role == "owner" && m.custom_roles.is_empty()
}

/// The patchable view of a member: the stored fields a client may name. Unknown fields are
/// refused.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MemberView {
    #[serde(rename = "_id")]
    id: String,
    email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_name: Option<String>,
    role: String,
    #[serde(default)]
    custom_roles: Vec<String>,
    #[serde(default)]
    role_attributes: RoleAttributes,
}

const MEMBER_READ_ONLY: &[&str] = &["/_id", "/email"];

/// LaunchDarkly action names for member fields. Names have no LaunchDarkly action (its API
/// cannot change them); Flagstaff checks and records `updateMemberName`.
fn member_action(field: &str) -> &'static str {
    match field {
        "role" => "updateRole",
        "customRoles" => "updateCustomRole",
        "roleAttributes" => "updateMemberRoleAttributes",
        "firstName" | "lastName" => "updateMemberName",
        _ => "updateMember",
    }
}

/// The audit form of a member.
pub fn member_audit_json(m: &Member) -> Value {
    let mut v = to_value(m);
    if let Some(map) = v.as_object_mut() {
        map.remove("version");
        map.remove("lastSeen");
    }
    v
}

pub(crate) fn validate_role_attributes(attributes: &RoleAttributes) -> ApiResult<()> {
    for (key, values) in attributes {
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(ApiError::invalid(format!(
                "roleAttributes: \"{key}\" is not a valid attribute name: use letters, digits, '.', '_' and '-'"
            )));
        }
        if values.iter().any(|v| v.is_empty()) {
            return Err(ApiError::invalid(format!(
                "roleAttributes.{key}: values must not be empty strings"
            )));
        }
    }
    Ok(())
}

fn validate_names(first: &Option<String>, last: &Option<String>) -> ApiResult<()> {
    for (field, value) in [("firstName", first), ("lastName", last)] {
        if value.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(ApiError::invalid(format!(
                "{field} must be at most 256 characters long"
            )));
        }
    }
    Ok(())
}

fn display(m: &Member) -> String {
    match (&m.first_name, &m.last_name) {
        (Some(f), Some(l)) if !f.is_empty() || !l.is_empty() => {
            format!("{f} {l}").trim().to_string()
        }
        (Some(f), None) if !f.is_empty() => f.clone(),
        (None, Some(l)) if !l.is_empty() => l.clone(),
        _ => m.email.clone(),
    }
}

/// A 400 with one of LaunchDarkly's member-invite codes and the offending addresses.
fn invite_error(code: &'static str, message: String, emails: Vec<String>) -> ApiError {
    ApiError::InvalidEmails {
        code,
        message,
        emails,
    }
}

impl Services {
    pub async fn get_member(&self, id: &str) -> ApiResult<(Member, i64)> {
        self.load(&member_ref(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("member \"{id}\"")))
    }

    /// Members in the order they were added.
    pub async fn list_members(&self) -> ApiResult<Vec<Member>> {
        let mut members: Vec<Member> = self
            .load_all::<Member>(EntityKind::Member, "")
            .await?
            .into_iter()
            .map(|(m, _)| m)
            .collect();
        members.sort_by(|a, b| (a.creation_date, &a.id).cmp(&(b.creation_date, &b.id)));
        Ok(members)
    }

    pub async fn list_teams_raw(&self) -> ApiResult<Vec<(Team, i64)>> {
        self.load_all::<Team>(EntityKind::Team, "").await
    }

    pub async fn create_members(
        &self,
        caller: &Caller,
        forms: Vec<NewMemberForm>,
    ) -> ApiResult<Vec<Member>> {
        if forms.is_empty() {
            return Err(ApiError::invalid(
                "the body must be an array of at least one member, e.g. [{\"email\":\"ada@example.com\",\"role\":\"reader\"}]",
            ));
        }
        if forms.len() > MAX_NEW_MEMBERS {
            return Err(ApiError::invalid(format!(
                "at most {MAX_NEW_MEMBERS} members can be added per request; this one has {}",
                forms.len()
            )));
        }
        // Validate everything before looking at the store.
        let mut seen = BTreeSet::new();
        let mut duplicates = Vec::new();
        for (i, form) in forms.iter().enumerate() {
            let email = form.email.trim();
            validate_email(email).map_err(|e| ApiError::invalid(format!("[{i}].{e}")))?;
            if !seen.insert(email.to_lowercase()) {
                duplicates.push(email.to_string());
            }
            if let Some(role) = &form.role
                && !INVITE_ROLES.contains(&role.as_str())
            {
                return Err(ApiError::invalid(format!(
                    "[{i}].role \"{role}\" is invalid: use reader, writer, admin or no_access{}",
                    if role == "owner" {
                        " (make a member owner with a PATCH of /role)"
                    } else {
                        ""
                    }
                )));
            }
            validate_names(&form.first_name, &form.last_name)?;
            if let Some(attributes) = &form.role_attributes {
                validate_role_attributes(attributes)?;
            }
        }
        if !duplicates.is_empty() {
            return Err(invite_error(
                "duplicate_emails",
                format!(
                    "the request names these e-mail addresses more than once: {}",
                    duplicates.join(", ")
                ),
                duplicates,
            ));
        }
        self.with_retries(|| self.create_members_once(caller, &forms))
            .await
    }

    async fn create_members_once(
        &self,
        caller: &Caller,
        forms: &[NewMemberForm],
    ) -> Result<Vec<Member>, CommitError> {
        let now = now_millis();
        let roles = self.role_index().await?;
        let mut teams = self.list_teams_raw().await?;
        let mut taken = Vec::new();
        for form in forms {
            let email = form.email.trim();
            if self
                .store
                .resolve_alias(&email_alias(email))
                .await?
                .is_some()
            {
                taken.push(email.to_string());
            }
        }
        if !taken.is_empty() {
            return Err(invite_error(
                "email_already_exists_in_account",
                format!(
                    "a member with this e-mail address already exists in this account: {}",
                    taken.join(", ")
                ),
                taken,
            )
            .into());
        }
        let mut members = Vec::with_capacity(forms.len());
        let mut accesses = Vec::new();
        let mut touched_teams: BTreeSet<usize> = BTreeSet::new();
        for (i, form) in forms.iter().enumerate() {
            let custom_roles = roles.keys(
                form.custom_roles.as_deref().unwrap_or_default(),
                &format!("[{i}].customRoles"),
            )?;
            let member = Member {
                id: flagstaff_model::new_object_id(),
                email: form.email.trim().to_string(),
                first_name: form.first_name.clone().filter(|s| !s.is_empty()),
                last_name: form.last_name.clone().filter(|s| !s.is_empty()),
                role: form.role.clone().unwrap_or_else(|| "reader".into()),
                custom_roles,
                role_attributes: form.role_attributes.clone().unwrap_or_default(),
                // Strictly increasing, so a batch lists in the order it was given.
                creation_date: if i == 0 { now } else { now_millis() },
                last_seen: None,
                version: 1,
            };
            let resource = Resource::member(&member.id);
            caller.require("createMember", &resource)?;
            accesses.push(access("createMember", &resource));
            ensure_within(
                &caller.permissions,
                &roles.member_grant(&member),
                &format!("The role assignment of {}", member.email),
            )?;
            for key in form.team_keys.as_deref().unwrap_or_default() {
                let Some(ti) = teams.iter().position(|(t, _)| t.key == *key) else {
                    return Err(ApiError::invalid(format!(
                        "[{i}].teamKeys: there is no team with key \"{key}\""
                    ))
                    .into());
                };
                let team_resource = Resource::team(key);
                caller.require("updateTeamMembers", &team_resource)?;
                let team = &mut teams[ti].0;
                ensure_within(
                    &caller.permissions,
                    &roles.team_grant(team, &member),
                    &format!("Adding {} to the team \"{key}\"", member.email),
                )?;
                if !team.member_ids.contains(&member.id) {
                    team.member_ids.push(member.id.clone());
                }
                if touched_teams.insert(ti) {
                    accesses.push(access("updateTeamMembers", &team_resource));
                }
            }
            members.push(member);
        }
        let mut writes = Vec::new();
        for m in &members {
            writes.push(EntityWrite::Insert {
                target: member_ref(&m.id),
                version: m.version,
                doc: encode(m)?,
                aliases: vec![email_alias(&m.email)],
            });
        }
        for &ti in &touched_teams {
            let (team, version) = &teams[ti];
            let mut team = team.clone();
            team.version = version + 1;
            team.last_modified = now;
            writes.push(EntityWrite::Update {
                target: team_ref(&team.key),
                expected_version: *version,
                version: team.version,
                doc: encode(&team)?,
                aliases: None,
            });
        }
        let name = if members.len() == 1 {
            members[0].email.clone()
        } else {
            format!("{} members", members.len())
        };
        let current = if members.len() == 1 {
            member_audit_json(&members[0])
        } else {
            Value::Array(members.iter().map(member_audit_json).collect())
        };
        let change = PendingChange {
            writes,
            audit: AuditDraft {
                kind: "member",
                name,
                accesses,
                target_resources: members
                    .iter()
                    .map(|m| audit_resource(&Resource::member(&m.id)))
                    .collect(),
                parent: None,
                title_verb: if members.len() == 1 {
                    "added the member".into()
                } else {
                    "added the members".into()
                },
                description: members
                    .iter()
                    .map(|m| {
                        if m.custom_roles.is_empty() {
                            format!("Added {} as {}", m.email, m.role)
                        } else {
                            format!(
                                "Added {} with custom roles {}",
                                m.email,
                                m.custom_roles.join(", ")
                            )
                        }
                    })
                    .collect(),
                comment: None,
                site_path: "/settings/members".into(),
                delta: None,
                previous_version: None,
                current_version: Some(current),
            },
            outbox: members
                .iter()
                .map(|m| account_outbox("member", "create", &m.id))
                .collect(),
        };
        match self.commit(Some(caller), now, change).await {
            Ok(_) => Ok(members),
            // Another request added one of these addresses in between.
            Err(CommitError::Api(ApiError::Conflict(what))) if what.contains("alias") => {
                let emails: Vec<String> = members.iter().map(|m| m.email.clone()).collect();
                Err(invite_error(
                    "email_already_exists_in_account",
                    "a member with one of these e-mail addresses was added concurrently".into(),
                    emails,
                )
                .into())
            }
            Err(e) => Err(e),
        }
    }

    pub async fn patch_member(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<Member> {
        let request = parse_patch_request(body, semantic, PatchFormats::JsonPatchOnly)?;
        let target = member_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.patch_member_once(caller, id, &request))
            .await
    }

    async fn patch_member_once(
        &self,
        caller: &Caller,
        id: &str,
        request: &PatchRequest,
    ) -> Result<Member, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_member(id).await?;
        let view = MemberView {
            id: before.id.clone(),
            email: before.email.clone(),
            first_name: before.first_name.clone(),
            last_name: before.last_name.clone(),
            role: before.role.clone(),
            custom_roles: before.custom_roles.clone(),
            role_attributes: before.role_attributes.clone(),
        };
        let patched: MemberView = apply_document_patch(&view, request, version, MEMBER_READ_ONLY)?;
        if !BASE_ROLES.contains(&patched.role.as_str()) {
            return Err(ApiError::invalid(format!(
                "role \"{}\" is invalid: use reader, writer, admin, owner or no_access",
                patched.role
            ))
            .into());
        }
        validate_names(&patched.first_name, &patched.last_name)?;
        validate_role_attributes(&patched.role_attributes)?;
        let roles = self.role_index().await?;
        let mut after = before.clone();
        after.role = patched.role;
        after.custom_roles = roles.keys(&patched.custom_roles, "customRoles")?;
        after.role_attributes = patched.role_attributes;
        after.first_name = patched.first_name.filter(|s| !s.is_empty());
        after.last_name = patched.last_name.filter(|s| !s.is_empty());
        let before_json = member_audit_json(&before);
        let fields = changed_fields(&before_json, &member_audit_json(&after));
        if fields.is_empty() {
            return Ok(before);
        }
        let resource = Resource::member(id);
        for f in &fields {
            caller.require(member_action(f), &resource)?;
        }
        let assignment_changed = fields
            .iter()
            .any(|f| matches!(f.as_str(), "role" | "customRoles" | "roleAttributes"));
        let owner_changed = is_effective_owner(&before) != is_effective_owner(&after)
            || (before.role == "owner") != (after.role == "owner");
        if owner_changed {
            caller.require("updateAccountOwner", &Resource::account())?;
            self.ensure_an_owner_remains(Some(&after), id).await?;
        }
        if assignment_changed {
            ensure_within(
                &caller.permissions,
                &roles.member_grant(&after),
                &format!("The role assignment of {}", after.email),
            )?;
            // Role attributes also fill the placeholders of the member's team roles.
            if fields.iter().any(|f| f == "roleAttributes") {
                for (team, _) in self.list_teams_raw().await? {
                    if team.member_ids.contains(&after.id) {
                        ensure_within(
                            &caller.permissions,
                            &roles.team_grant(&team, &after),
                            &format!(
                                "The team \"{}\" with {}'s role attributes",
                                team.key, after.email
                            ),
                        )?;
                    }
                }
            }
        }
        after.version = version + 1;
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: member_ref(id),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "member",
                name: after.email.clone(),
                accesses: {
                    let mut actions: Vec<&str> = fields.iter().map(|f| member_action(f)).collect();
                    actions.sort();
                    actions.dedup();
                    let mut accesses: Vec<_> =
                        actions.iter().map(|a| access(a, &resource)).collect();
                    if owner_changed {
                        accesses.push(access("updateAccountOwner", &Resource::account()));
                    }
                    accesses
                },
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the member".into(),
                description: fields
                    .iter()
                    .map(|f| match f.as_str() {
                        "role" => format!(
                            "Changed the role of {} from {} to {}",
                            display(&after),
                            before.role,
                            after.role
                        ),
                        other => format!("Changed `{other}`"),
                    })
                    .collect(),
                comment: request.comment().map(String::from),
                site_path: format!("/settings/members/{id}"),
                delta: Some(request.delta()),
                previous_version: Some(before_json),
                current_version: Some(member_audit_json(&after)),
            },
            outbox: vec![account_outbox("member", "update", id)],
        };
        self.commit(Some(caller), now, change).await?;
        Ok(after)
    }

    /// 400 unless some member other than `id` (or `replacement`, the new state of `id`) is an
    /// effective owner.
    async fn ensure_an_owner_remains(
        &self,
        replacement: Option<&Member>,
        id: &str,
    ) -> ApiResult<()> {
        let others = self
            .list_members()
            .await?
            .into_iter()
            .filter(|m| m.id != id)
            .any(|m| is_effective_owner(&m));
        if others || replacement.is_some_and(is_effective_owner) {
            return Ok(());
        }
        Err(ApiError::invalid(format!(
            "member {id} is the account's last owner: make another member owner (role \"owner\", no custom roles) first"
        )))
    }

    pub async fn delete_member(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        let (member, _) = self.get_member(id).await?;
        let resource = Resource::member(id);
        caller.require("deleteMember", &resource)?;
        if member.role == "owner" {
            caller.require("updateAccountOwner", &Resource::account())?;
        }
        if caller.member.id == id {
            return Err(ApiError::invalid(
                "members cannot remove themselves: ask another admin or owner",
            ));
        }
        let target = member_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.delete_member_once(caller, id))
            .await
    }

    async fn delete_member_once(&self, caller: &Caller, id: &str) -> Result<(), CommitError> {
        let now = now_millis();
        let (member, version) = self.get_member(id).await?;
        if is_effective_owner(&member) {
            self.ensure_an_owner_remains(None, id).await?;
        }
        let resource = Resource::member(id);
        let mut writes = vec![EntityWrite::Delete {
            target: member_ref(id),
            expected_version: version,
        }];
        let mut accesses = vec![access("deleteMember", &resource)];
        if member.role == "owner" {
            accesses.push(access("updateAccountOwner", &Resource::account()));
        }
        let mut description = vec![format!("Removed {} from the account", member.email)];
        for (token, token_version) in self.load_all::<AccessToken>(EntityKind::Token, "").await? {
            if token.member_id != id {
                continue;
            }
            if token.service_token {
                // Service tokens belong to the account and keep working: they move to the
                // member who removed their creator.
                let mut moved = token.clone();
                moved.member_id = caller.member.id.clone();
                moved.version = token_version + 1;
                moved.last_modified = now;
                writes.push(EntityWrite::Update {
                    target: token_ref(&token.id),
                    expected_version: token_version,
                    version: moved.version,
                    doc: encode(&moved)?,
                    aliases: None,
                });
                description.push(format!(
                    "Moved the service token *{}* to {}",
                    token.name, caller.member.email
                ));
            } else {
                writes.push(EntityWrite::Delete {
                    target: token_ref(&token.id),
                    expected_version: token_version,
                });
                accesses.push(access(
                    "deleteAccessToken",
                    &Resource::personal_token(id, &token.id),
                ));
                description.push(format!(
                    "Deleted the personal access token *{}*",
                    token.name
                ));
            }
        }
        for (mut team, team_version) in self.list_teams_raw().await? {
            if !team.member_ids.iter().any(|m| m == id) {
                continue;
            }
            team.member_ids.retain(|m| m != id);
            team.version = team_version + 1;
            team.last_modified = now;
            accesses.push(access("updateTeamMembers", &Resource::team(&team.key)));
            description.push(format!(
                "Removed {} from the team *{}*",
                member.email, team.name
            ));
            writes.push(EntityWrite::Update {
                target: team_ref(&team.key),
                expected_version: team_version,
                version: team.version,
                doc: encode(&team)?,
                aliases: None,
            });
        }
        let change = PendingChange {
            writes,
            audit: AuditDraft {
                kind: "member",
                name: member.email.clone(),
                accesses,
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "removed the member".into(),
                description,
                comment: None,
                site_path: "/settings/members".into(),
                delta: None,
                previous_version: Some(member_audit_json(&member)),
                current_version: None,
            },
            outbox: vec![account_outbox("member", "delete", id)],
        };
        self.commit(Some(caller), now, change).await.map(|_| ())
    }
}
