use axum::Json;
use axum::extract::{Path, State};
use flagstaff_policy::{Resource, ResourceKind, ResourceSpec};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::LdQuery;
use crate::render::{self, link};
use crate::services::audit::{AuditFilter, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_audit_log_entries))
        .routes(routes!(get_audit_log_entry))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogQuery {
    /// Only entries before this Unix time (ms).
    before: Option<i64>,
    /// Only entries after this Unix time (ms).
    after: Option<i64>,
    /// Full-text search over names, descriptions, comments and resources.
    q: Option<String>,
    /// 1-20, default 10.
    limit: Option<i64>,
    /// A resource specifier, e.g. `proj/default:env/production:flag/*`: only entries that touched a matching resource.
    spec: Option<String>,
}

/// List audit log entries, newest first.
#[utoipa::path(get, path = "/api/v2/auditlog", tag = "Audit log", operation_id = "getAuditLogEntries",
    params(AuditLogQuery), responses((status = 200, description = "Audit log entries")), security(("ApiKey" = [])))]
async fn get_audit_log_entries(
    State(state): State<AppState>,
    caller: Caller,
    LdQuery(q): LdQuery<AuditLogQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit} is out of range: use 1 to {MAX_AUDIT_LIMIT}"
        )));
    }
    let spec = match q.spec.as_deref() {
        Some(s) => {
            Some(ResourceSpec::parse(s).map_err(|e| ApiError::invalid(format!("spec: {e}")))?)
        }
        None => None,
    };
    // One entry more than asked for tells whether there is a next page.
    let filter = AuditFilter {
        before: q.before,
        after: q.after,
        q: q.q.clone().filter(|s| !s.is_empty()),
        spec,
        limit: limit + 1,
    };
    let mut entries = state
        .services
        .audit_entries(&filter, |entry| entry_visible(&caller, entry))
        .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let mut links = json!({"self": link("/api/v2/auditlog")});
    if more && let Some(last) = entries.last() {
        // The next page keeps every filter of this one.
        let mut next = format!("/api/v2/auditlog?limit={limit}&before={}", last.date);
        if let Some(after) = q.after {
            next.push_str(&format!("&after={after}"));
        }
        for (name, value) in [("q", &filter.q), ("spec", &q.spec)] {
            if let Some(value) = value {
                next.push_str(&format!("&{name}={}", render::encode_query(value)));
            }
        }
        links["next"] = link(next);
    }
    let items: Vec<Value> = entries
        .iter()
        .map(|e| render::audit_entry(e, false))
        .collect();
    Ok(Json(
        json!({"items": items, "_links": links, "totalCount": items.len()}),
    ))
}

/// Get one audit log entry with `delta`, `previousVersion` and `currentVersion`.
#[utoipa::path(get, path = "/api/v2/auditlog/{id}", tag = "Audit log", operation_id = "getAuditLogEntry",
    params(("id" = String, Path)), responses((status = 200, description = "Audit log entry")), security(("ApiKey" = [])))]
async fn get_audit_log_entry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let entry = state.services.audit_entry_by_id(&id).await?;
    if !entry_visible(&caller, &entry) {
        return Err(ApiError::not_found(format!("audit log entry \"{id}\"")));
    }
    Ok(Json(render::audit_entry(&entry, true)))
}

/// A caller sees an audit entry when it may view something the entry touched: `viewProject`
/// on the project of project-scoped resources, otherwise a `view` action on the resource
/// itself (`viewMember`, `viewToken`, …; the built-in reader role allows `view*`).
pub fn entry_visible(caller: &Caller, entry: &flagstaff_model::audit::AuditEntry) -> bool {
    entry.accesses.iter().any(|a| {
        let Ok(resource) = Resource::parse(&a.resource) else {
            return false;
        };
        let top = &resource.nodes()[0];
        if top.kind == ResourceKind::Project {
            caller.can("viewProject", &Resource::project(&top.key, &top.tags))
        } else {
            let kind = resource.kind().as_str();
            let mut action = String::from("view");
            let mut chars = kind.chars();
            if let Some(first) = chars.next() {
                action.push(first.to_ascii_uppercase());
                action.extend(chars.filter(|c| *c != '-'));
            }
            caller.can(&action, &resource)
        }
    })
}
