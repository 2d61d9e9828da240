//! API access tokens: create (the secret is returned once), JSON Patch, delete, reset (the old
//! secret may keep working until an expiry). Only the SHA-256 of a secret is stored, under the
//! alias `token:<hash>`; audit entries never carry secrets or their hashes.
//!
//! # Who may grant what
//!
//! A token never gets more than the caller that creates or re-scopes it:
//!
//! * **service tokens** (not bounded by any member later) — every allow statement of the
//!   requested scope (a built-in role's statements, each custom role's policy with its base
//!   permissions, or the inline policy; role attributes from the token's member) must be
//!   covered by the caller's effective permissions (`grants.rs`);
//! * **personal tokens of the caller's own member**, created with a personal token — both
//!   tokens are bounded by the same member at request time (auth.rs), so the requested scope
//!   must be covered by the calling token's *own* scope: a token scoped to one project cannot
//!   mint an unscoped one;
//! * **personal tokens created by a service token, or for another member** (`memberId`, a
//!   Flagstaff extension so that members of a UI-less server can get their first token): the
//!   scope must be covered by the caller's effective permissions, and so must the member's own
//!   roles and team roles (nobody mints a token acting for someone with more access).

use flagstaff_model::account::{
    API_VERSIONS, AccessToken, AccessTokenPost, CURRENT_API_VERSION, ExpiringSecret, Member,
    TOKEN_ROLES, new_api_token, secret_ending,
};
use flagstaff_model::patch::{
    PatchFormats, PatchRequest, apply_document_patch, parse_patch_request,
};
use flagstaff_policy::{CompiledPolicy, Decision, Permissions, Resource, Statement};
use flagstaff_store::{EntityKind, EntityRef, EntityWrite};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::roles::{
    RoleIndex, account_outbox, base_role_grant, ensure_within, parse_policy_field, role_grant,
};
use super::{
    AuditDraft, CommitError, PendingChange, Services, access, audit_resource, changed_fields,
    encode, now_millis, to_value,
};
use crate::auth::{Caller, hash_secret, token_alias};
use crate::error::{ApiError, ApiResult};

pub fn token_ref(id: &str) -> EntityRef {
    EntityRef::new(EntityKind::Token, "", id)
}

/// The resource a token is: `member/<member>:token/<id>` or `service-token/<id>`.
pub fn token_resource(t: &AccessToken) -> Resource {
    if t.service_token {
        Resource::service_token(&t.id)
    } else {
        Resource::personal_token(&t.member_id, &t.id)
    }
}

/// The audit form of a token: no secret hash, no previous secret, no in-memory fields.
pub fn token_audit_json(t: &AccessToken) -> Value {
    let mut v = to_value(t);
    if let Some(map) = v.as_object_mut() {
        for field in ["secretHash", "previousSecret", "version", "lastUsed"] {
            map.remove(field);
        }
    }
    v
}

/// Whether the caller may see and manage every member's personal tokens (admins and owners,
/// or anyone allowed every action on `member/*:token/*`).
pub fn manages_all_tokens(caller: &Caller) -> bool {
    Resource::parse("member/*:token/*").is_ok_and(|r| caller.decide("*", &r) == Decision::Allowed)
}

/// LaunchDarkly's visibility: a caller sees their member's personal tokens and every service
/// token; admins see every member's personal tokens too. Service tokens are shown only to
/// callers with a view permission on them (`view*`: readers and up), so `no_access` sees none.
pub fn token_visible(caller: &Caller, t: &AccessToken) -> bool {
    (t.service_token && caller.can("viewToken", &Resource::service_token(&t.id)))
        || t.member_id == caller.member.id
        || manages_all_tokens(caller)
}

/// A token's scope: exactly one of the three is set.
struct Scope {
    role: Option<String>,
    custom_role_ids: Vec<String>,
    inline_role: Vec<Value>,
    /// What the scope grants, role attributes substituted.
    grant: Vec<Statement>,
}

/// Validates a requested scope. `unchanged_role` is the token's current role, which is
/// accepted even if it is not one a new token could have (the bootstrap token is `owner`).
fn validate_scope(
    role: Option<&str>,
    custom_role_ids: &[String],
    inline_role: Option<&Value>,
    roles: &RoleIndex,
    member: &Member,
    unchanged_role: Option<&str>,
) -> ApiResult<Scope> {
    let inline_given =
        inline_role.is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
    let given: Vec<&str> = [
        role.is_some_and(|r| !r.is_empty()).then_some("role"),
        (!custom_role_ids.is_empty()).then_some("customRoleIds"),
        inline_given.then_some("inlineRole"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() != 1 {
        return Err(ApiError::invalid(format!(
            "a token is scoped by exactly one of role, customRoleIds or inlineRole; {}",
            if given.is_empty() {
                "none was given".to_string()
            } else {
                format!("{} were given", given.join(" and "))
            }
        )));
    }
    match given[0] {
        "role" => {
            let role = role.unwrap_or_default();
            if !TOKEN_ROLES.contains(&role) && Some(role) != unchanged_role {
                return Err(ApiError::invalid(format!(
                    "role \"{role}\" is invalid: a token's role is reader, writer or admin"
                )));
            }
            Ok(Scope {
                role: Some(role.to_string()),
                custom_role_ids: Vec::new(),
                inline_role: Vec::new(),
                grant: base_role_grant(role),
            })
        }
        "customRoleIds" => {
            let ids = roles.ids(custom_role_ids, "customRoleIds")?;
            let grant = ids
                .iter()
                .filter_map(|id| roles.get(id))
                .flat_map(|r| role_grant(r, &member.role_attributes))
                .collect();
            Ok(Scope {
                role: None,
                custom_role_ids: ids,
                inline_role: Vec::new(),
                grant,
            })
        }
        _ => {
            let statements = parse_policy_field("inlineRole", inline_role.unwrap_or(&Value::Null))?;
            // auth.rs compiles inline policies with the member's role attributes.
            let compiled = CompiledPolicy::compile(&statements, &member.role_attributes)
                .map_err(|e| ApiError::invalid(format!("inlineRole: {e}")))?;
            Ok(Scope {
                role: None,
                custom_role_ids: Vec::new(),
                inline_role: statements.iter().map(Statement::to_json).collect(),
                grant: compiled.statements().to_vec(),
            })
        }
    }
}

/// What the caller's permissions must cover for a token acting for `member_id` (see the
/// module docs).
fn scope_ceiling(caller: &Caller, member_id: &str, service: bool) -> Permissions {
    if !service && member_id == caller.member.id && !caller.token.service_token {
        Permissions::new(caller.permissions.roles().iter().cloned())
    } else {
        (*caller.permissions).clone()
    }
}

fn validate_api_version(version: i64) -> ApiResult<()> {
    if !API_VERSIONS.contains(&version) {
        return Err(ApiError::invalid(format!(
            "defaultApiVersion {version} is invalid: use one of {}",
            API_VERSIONS
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

fn validate_token_text(field: &str, value: &str) -> ApiResult<()> {
    if value.len() > 1024 {
        return Err(ApiError::invalid(format!(
            "{field} must be at most 1024 characters long"
        )));
    }
    Ok(())
}

/// The patchable view of a token (its representation's stored fields).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenView {
    #[serde(rename = "_id")]
    id: String,
    owner_id: String,
    member_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default)]
    custom_role_ids: Vec<String>,
    #[serde(default)]
    inline_role: Vec<Value>,
    service_token: bool,
    default_api_version: i64,
    creation_date: i64,
    last_modified: i64,
}

const TOKEN_READ_ONLY: &[&str] = &[
    "/_id",
    "/ownerId",
    "/memberId",
    "/serviceToken",
    "/creationDate",
    "/lastModified",
];

/// LaunchDarkly action names for token fields (`defaultApiVersion` has none; Flagstaff checks
/// and records `updateAccessTokenApiVersion`).
fn token_action(field: &str) -> &'static str {
    match field {
        "name" => "updateAccessTokenName",
        "description" => "updateAccessTokenDescription",
        "role" | "customRoleIds" | "inlineRole" => "updateAccessTokenPolicy",
        "defaultApiVersion" => "updateAccessTokenApiVersion",
        _ => "updateAccessToken",
    }
}

fn kind_name(t: &AccessToken) -> &'static str {
    if t.service_token {
        "service token"
    } else {
        "personal access token"
    }
}

impl Services {
    pub async fn get_token(&self, id: &str) -> ApiResult<(AccessToken, i64)> {
        self.load(&token_ref(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("access token \"{id}\"")))
    }

    /// Tokens in the order they were created.
    pub async fn list_tokens(&self) -> ApiResult<Vec<AccessToken>> {
        let mut tokens: Vec<AccessToken> = self
            .load_all::<AccessToken>(EntityKind::Token, "")
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        tokens.sort_by(|a, b| (a.creation_date, &a.id).cmp(&(b.creation_date, &b.id)));
        Ok(tokens)
    }

    /// Creates a token; returns it with its secret (shown once).
    pub async fn create_token(
        &self,
        caller: &Caller,
        body: AccessTokenPost,
    ) -> ApiResult<(AccessToken, String)> {
        let for_member = body.member_id.as_deref();
        let service = body.service_token.unwrap_or(false);
        let name = body.name.clone().unwrap_or_default();
        let description = body.description.clone().unwrap_or_default();
        validate_token_text("name", &name)?;
        validate_token_text("description", &description)?;
        let api_version = body.default_api_version.unwrap_or(CURRENT_API_VERSION);
        validate_api_version(api_version)?;
        if service && for_member.is_some() {
            return Err(ApiError::invalid(
                "memberId is for personal tokens: a service token acts for the account",
            ));
        }
        let member = match for_member {
            Some(id) if id != caller.member.id => self
                .load::<Member>(&super::members::member_ref(id))
                .await?
                .map(|(m, _)| m)
                .ok_or_else(|| {
                    ApiError::invalid(format!("memberId: there is no member with _id \"{id}\""))
                })?,
            _ => caller.member.clone(),
        };
        let roles = self.role_index().await?;
        let scope = validate_scope(
            body.role.as_deref(),
            body.custom_role_ids.as_deref().unwrap_or_default(),
            body.inline_role.as_ref(),
            &roles,
            &member,
            None,
        )?;
        let now = now_millis();
        let secret = new_api_token();
        let token = AccessToken {
            id: flagstaff_model::new_object_id(),
            name,
            description,
            owner_id: caller.member.id.clone(),
            member_id: member.id.clone(),
            role: scope.role,
            custom_role_ids: scope.custom_role_ids,
            inline_role: scope.inline_role,
            service_token: service,
            secret_hash: hash_secret(&secret),
            ending: secret_ending(&secret),
            default_api_version: api_version,
            creation_date: now,
            last_modified: now,
            last_used: None,
            previous_secret: None,
            version: 1,
        };
        let resource = token_resource(&token);
        caller.require("createAccessToken", &resource)?;
        let what = format!("The {} \"{}\"", kind_name(&token), token.name);
        ensure_within(
            &scope_ceiling(caller, &member.id, service),
            &scope.grant,
            &what,
        )?;
        if member.id != caller.member.id {
            let mut acting_as = roles.member_grant(&member);
            for (team, _) in self.list_teams_raw().await? {
                if team.member_ids.contains(&member.id) {
                    acting_as.extend(roles.team_grant(&team, &member));
                }
            }
            ensure_within(
                &caller.permissions,
                &acting_as,
                &format!("A token acting for {}", member.email),
            )?;
        }
        let change = PendingChange {
            writes: vec![EntityWrite::Insert {
                target: token_ref(&token.id),
                version: token.version,
                doc: encode(&token)?,
                aliases: vec![token_alias(&token.secret_hash)],
            }],
            audit: AuditDraft {
                current_version: Some(token_audit_json(&token)),
                ..AuditDraft::single(
                    "token",
                    token.name.clone(),
                    "createAccessToken",
                    &resource,
                    "created the access token",
                    format!(
                        "Created the {} *{}* ending in {}{}",
                        kind_name(&token),
                        token.name,
                        token.ending,
                        if member.id != caller.member.id {
                            format!(" for {}", member.email)
                        } else {
                            String::new()
                        }
                    ),
                    "/settings/authorization",
                )
            },
            outbox: vec![account_outbox("token", "create", &token.id)],
        };
        self.commit(Some(caller), now, change)
            .await
            .map_err(CommitError::already_exists)?;
        Ok((token, secret))
    }

    pub async fn patch_token(
        &self,
        caller: &Caller,
        id: &str,
        body: Value,
        semantic: bool,
    ) -> ApiResult<AccessToken> {
        let request = parse_patch_request(body, semantic, PatchFormats::JsonPatchOnly)?;
        let target = token_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| self.patch_token_once(caller, id, &request))
            .await
    }

    async fn patch_token_once(
        &self,
        caller: &Caller,
        id: &str,
        request: &PatchRequest,
    ) -> Result<AccessToken, CommitError> {
        let now = now_millis();
        let (before, version) = self.get_token(id).await?;
        let view = TokenView {
            id: before.id.clone(),
            owner_id: before.owner_id.clone(),
            member_id: before.member_id.clone(),
            name: before.name.clone(),
            description: before.description.clone(),
            role: before.role.clone(),
            custom_role_ids: before.custom_role_ids.clone(),
            inline_role: before.inline_role.clone(),
            service_token: before.service_token,
            default_api_version: before.default_api_version,
            creation_date: before.creation_date,
            last_modified: before.last_modified,
        };
        let patched: TokenView = apply_document_patch(&view, request, version, TOKEN_READ_ONLY)?;
        validate_token_text("name", &patched.name)?;
        validate_token_text("description", &patched.description)?;
        validate_api_version(patched.default_api_version)?;
        let mut after = before.clone();
        after.name = patched.name;
        after.description = patched.description;
        after.default_api_version = patched.default_api_version;
        let scope_changed = patched.role != before.role
            || patched.custom_role_ids != before.custom_role_ids
            || patched.inline_role != before.inline_role;
        let mut grant = None;
        if scope_changed {
            let member = self
                .load::<Member>(&super::members::member_ref(&before.member_id))
                .await?
                .map(|(m, _)| m)
                .ok_or_else(|| ApiError::invalid("the token's member no longer exists"))?;
            let roles = self.role_index().await?;
            let inline = Value::Array(patched.inline_role.clone());
            let scope = validate_scope(
                patched.role.as_deref(),
                &patched.custom_role_ids,
                Some(&inline),
                &roles,
                &member,
                before.role.as_deref(),
            )?;
            after.role = scope.role;
            after.custom_role_ids = scope.custom_role_ids;
            after.inline_role = scope.inline_role;
            grant = Some(scope.grant);
        }
        let before_json = token_audit_json(&before);
        let fields = changed_fields(&before_json, &token_audit_json(&after));
        if fields.is_empty() {
            return Ok(before);
        }
        let resource = token_resource(&before);
        let mut actions: Vec<&str> = fields.iter().map(|f| token_action(f)).collect();
        actions.sort();
        actions.dedup();
        for action in &actions {
            caller.require(action, &resource)?;
        }
        if let Some(grant) = &grant {
            ensure_within(
                &scope_ceiling(caller, &before.member_id, before.service_token),
                grant,
                &format!("The {} \"{}\"", kind_name(&before), after.name),
            )?;
        }
        after.version = version + 1;
        after.last_modified = now;
        let change = PendingChange {
            writes: vec![EntityWrite::Update {
                target: token_ref(id),
                expected_version: version,
                version: after.version,
                doc: encode(&after)?,
                aliases: None,
            }],
            audit: AuditDraft {
                kind: "token",
                name: after.name.clone(),
                accesses: actions.iter().map(|a| access(a, &resource)).collect(),
                target_resources: vec![audit_resource(&resource)],
                parent: None,
                title_verb: "updated the access token".into(),
                description: fields.iter().map(|f| format!("Changed `{f}`")).collect(),
                comment: request.comment().map(String::from),
                site_path: "/settings/authorization".into(),
                delta: Some(request.delta()),
                previous_version: Some(before_json),
                current_version: Some(token_audit_json(&after)),
            },
            outbox: vec![account_outbox("token", "update", id)],
        };
        self.commit(Some(caller), now, change).await?;
        Ok(after)
    }

    pub async fn delete_token(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        let (token, _) = self.get_token(id).await?;
        let resource = token_resource(&token);
        caller.require("deleteAccessToken", &resource)?;
        let target = token_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (token, version) = self.get_token(id).await?;
            let change = PendingChange {
                writes: vec![EntityWrite::Delete {
                    target: token_ref(id),
                    expected_version: version,
                }],
                audit: AuditDraft {
                    previous_version: Some(token_audit_json(&token)),
                    ..AuditDraft::single(
                        "token",
                        token.name.clone(),
                        "deleteAccessToken",
                        &resource,
                        "deleted the access token",
                        format!(
                            "Deleted the {} *{}* ending in {}",
                            kind_name(&token),
                            token.name,
                            token.ending
                        ),
                        "/settings/authorization",
                    )
                },
                outbox: vec![account_outbox("token", "delete", id)],
            };
            self.commit(Some(caller), now, change).await.map(|_| ())
        })
        .await
    }

    /// Replaces a token's secret. With `expiry` (Unix ms) in the future the old secret keeps
    /// working until then; otherwise it stops at once. Returns the token and its new secret.
    pub async fn reset_token(
        &self,
        caller: &Caller,
        id: &str,
        expiry: Option<i64>,
    ) -> ApiResult<(AccessToken, String)> {
        let (token, _) = self.get_token(id).await?;
        let resource = token_resource(&token);
        caller.require("resetAccessToken", &resource)?;
        let target = token_ref(id);
        let _guard = self.lock(&target).await;
        self.with_retries(|| async {
            let now = now_millis();
            let (before, version) = self.get_token(id).await?;
            let secret = new_api_token();
            let mut after = before.clone();
            after.secret_hash = hash_secret(&secret);
            after.ending = secret_ending(&secret);
            after.previous_secret = expiry.filter(|e| *e > now).map(|e| ExpiringSecret {
                secret_hash: before.secret_hash.clone(),
                expiry: e,
            });
            after.version = version + 1;
            after.last_modified = now;
            let mut aliases = vec![token_alias(&after.secret_hash)];
            if let Some(old) = &after.previous_secret {
                aliases.push(token_alias(&old.secret_hash));
            }
            let change = PendingChange {
                writes: vec![EntityWrite::Update {
                    target: token_ref(id),
                    expected_version: version,
                    version: after.version,
                    doc: encode(&after)?,
                    aliases: Some(aliases),
                }],
                audit: AuditDraft { previous_version: Some(token_audit_json(&before)), current_version: Some(token_audit_json(&after)), ..AuditDraft::single("token", after.name.clone(), "resetAccessToken", &resource, "reset the access token", match &after.previous_secret {
                        Some(old) => format!(
                            "Reset the {} *{}*: the secret ending in {} now ends in {}; the old one works until {}",
                            kind_name(&after), after.name, before.ending, after.ending, old.expiry
                        ),
                        None => format!(
                            "Reset the {} *{}*: the secret ending in {} now ends in {}; the old one stopped working",
                            kind_name(&after), after.name, before.ending, after.ending
                        ),
                    }, "/settings/authorization") },
                outbox: vec![account_outbox("token", "reset", id)],
            };
            self.commit(Some(caller), now, change).await?;
            Ok((after, secret))
        })
        .await
    }
}
