//! LaunchDarkly representations of the account's members, teams, custom roles and access
//! tokens.

use flagstaff_model::account::{AccessToken, CustomRole, Member, Team};
use serde_json::{Map, Value, json};

use super::link;

/// `CustomRole`. `assigned` is `(members, teams)` using the role, for `assignedTo`.
pub fn custom_role(role: &CustomRole, assigned: Option<(usize, usize)>) -> Value {
    let mut map = Map::new();
    map.insert("_id".into(), json!(role.id));
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/roles/{}", role.key)),
            "parent": link("/api/v2/roles"),
        }),
    );
    map.insert("key".into(), json!(role.key));
    map.insert("name".into(), json!(role.name));
    map.insert("description".into(), json!(role.description));
    map.insert("policy".into(), Value::Array(role.policy.clone()));
    map.insert("basePermissions".into(), json!(role.base_permissions));
    if let Some(category) = &role.resource_category {
        map.insert("resourceCategory".into(), json!(category));
    }
    if let Some((members, teams)) = assigned {
        map.insert(
            "assignedTo".into(),
            json!({"membersCount": members, "teamsCount": teams}),
        );
    }
    Value::Object(map)
}

/// `MemberSummary`, as tokens carry it in `_member`.
pub fn member_summary(m: &Member) -> Value {
    let mut map = Map::new();
    map.insert(
        "_links".into(),
        json!({"self": link(format!("/api/v2/members/{}", m.id))}),
    );
    map.insert("_id".into(), json!(m.id));
    if let Some(f) = &m.first_name {
        map.insert("firstName".into(), json!(f));
    }
    if let Some(l) = &m.last_name {
        map.insert("lastName".into(), json!(l));
    }
    map.insert("role".into(), json!(m.role));
    map.insert("email".into(), json!(m.email));
    Value::Object(map)
}

/// `Member`. Flagstaff has no invitations, e-mail verification or MFA: members are active
/// at once (`_pendingInvite: false`), their addresses unverified (`_verified: false`) and
/// `mfa` is `disabled`. `_lastSeen` is 0 until the member's first request this process saw.
pub fn member(m: &Member, teams: &[Team], last_seen: Option<i64>) -> Value {
    let mut map = match member_summary(m) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    map.insert("_pendingInvite".into(), json!(false));
    map.insert("_verified".into(), json!(false));
    map.insert("customRoles".into(), json!(m.custom_roles));
    map.insert("mfa".into(), json!("disabled"));
    map.insert(
        "_lastSeen".into(),
        json!(last_seen.or(m.last_seen).unwrap_or(0)),
    );
    map.insert("creationDate".into(), json!(m.creation_date));
    map.insert("version".into(), json!(m.version));
    map.insert("roleAttributes".into(), json!(m.role_attributes));
    let member_teams: Vec<Value> = teams
        .iter()
        .filter(|t| t.member_ids.contains(&m.id))
        .map(|t| {
            json!({
                "key": t.key,
                "name": t.name,
                "customRoleKeys": t.custom_role_keys,
                "_links": {"self": link(format!("/api/v2/teams/{}", t.key))},
            })
        })
        .collect();
    map.insert("teams".into(), Value::Array(member_teams));
    Value::Object(map)
}

/// Optional parts of a team (`expand=`).
#[derive(Debug, Default, Clone, Copy)]
pub struct TeamExpand {
    pub members: bool,
    pub roles: bool,
    pub role_attributes: bool,
    pub maintainers: bool,
}

impl TeamExpand {
    pub fn parse(expand: Option<&str>) -> Result<Self, String> {
        let mut out = TeamExpand::default();
        for field in expand
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            match field {
                "members" => out.members = true,
                "roles" => out.roles = true,
                "roleAttributes" => out.role_attributes = true,
                "maintainers" => out.maintainers = true,
                "projects" => {
                    return Err("expand=projects is not supported yet: use members, roles, roleAttributes or maintainers".into());
                }
                other => {
                    return Err(format!(
                        "unknown expand field \"{other}\": use members, roles, roleAttributes or maintainers"
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// `Team`. `roles` resolves the team's role keys to names.
pub fn team(t: &Team, expand: TeamExpand, roles: &[CustomRole]) -> Value {
    let mut map = Map::new();
    map.insert("key".into(), json!(t.key));
    map.insert("name".into(), json!(t.name));
    map.insert("description".into(), json!(t.description));
    map.insert("_creationDate".into(), json!(t.creation_date));
    map.insert(
        "_lastModified".into(),
        json!(if t.last_modified > 0 {
            t.last_modified
        } else {
            t.creation_date
        }),
    );
    map.insert("_version".into(), json!(t.version));
    map.insert("_idpSynced".into(), json!(false));
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/teams/{}", t.key)),
            "parent": link("/api/v2/teams"),
            "roles": link(format!("/api/v2/teams/{}/roles", t.key)),
        }),
    );
    if expand.members {
        map.insert("members".into(), json!({"totalCount": t.member_ids.len()}));
    }
    if expand.roles {
        let items: Vec<Value> = t
            .custom_role_keys
            .iter()
            .map(|k| {
                let name = roles
                    .iter()
                    .find(|r| r.key == *k)
                    .map_or(k.as_str(), |r| r.name.as_str());
                json!({"key": k, "name": name})
            })
            .collect();
        map.insert(
            "roles".into(),
            json!({
                "totalCount": items.len(),
                "items": items,
                "_links": {"self": link(format!("/api/v2/teams/{}/roles", t.key))},
            }),
        );
    }
    if expand.role_attributes {
        map.insert("roleAttributes".into(), json!(t.role_attributes));
    }
    if expand.maintainers {
        // Flagstaff has no team maintainers yet.
        map.insert("maintainers".into(), json!({"totalCount": 0, "items": []}));
    }
    Value::Object(map)
}

/// `Token`. `secret` is the full secret, given only right after create and reset; otherwise
/// `token` carries the secret's last four characters.
pub fn token(
    t: &AccessToken,
    member: Option<&Member>,
    last_used: Option<i64>,
    secret: Option<&str>,
) -> Value {
    let mut map = Map::new();
    map.insert("_id".into(), json!(t.id));
    map.insert("ownerId".into(), json!(t.owner_id));
    map.insert("memberId".into(), json!(t.member_id));
    if let Some(m) = member {
        map.insert("_member".into(), member_summary(m));
    }
    map.insert("name".into(), json!(t.name));
    map.insert("description".into(), json!(t.description));
    map.insert("creationDate".into(), json!(t.creation_date));
    map.insert("lastModified".into(), json!(t.last_modified));
    map.insert("customRoleIds".into(), json!(t.custom_role_ids));
    map.insert("inlineRole".into(), Value::Array(t.inline_role.clone()));
    if let Some(role) = &t.role {
        map.insert("role".into(), json!(role));
    }
    map.insert("token".into(), json!(secret.unwrap_or(&t.ending)));
    map.insert("serviceToken".into(), json!(t.service_token));
    map.insert(
        "_links".into(),
        json!({
            "self": link(format!("/api/v2/tokens/{}", t.id)),
            "parent": link("/api/v2/tokens"),
        }),
    );
    map.insert("defaultApiVersion".into(), json!(t.default_api_version));
    if let Some(used) = last_used.or(t.last_used) {
        map.insert("lastUsed".into(), json!(used));
    }
    Value::Object(map)
}
