//! axum routers, one module per resource. Handlers are thin: parse, call a service, render.
//! Each is annotated for utoipa, so the OpenAPI document is generated from these handlers.

use serde::Deserialize;
use utoipa::IntoParams;

use flagstaff_model::environment::Environment;
use flagstaff_model::project::Project;
use flagstaff_policy::Resource;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::services::ProjectContext;
use crate::state::AppState;

pub mod approvals;
pub mod auditlog;
pub mod environments;
pub mod flag_links;
pub mod flags;
pub mod integration_oauth;
pub mod integrations;
pub mod members;
pub mod oauth;
pub mod projects;
pub mod reserved_properties;
pub mod roles;
pub mod root;
pub mod segment_targets;
pub mod segments;
pub mod signin;
pub mod store_configs;
pub mod teams;
pub mod tokens;
pub mod triggers;
pub mod trust;

/// `limit` / `offset` of a paginated list.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub limit: usize,
    pub offset: usize,
}

pub const MAX_PAGE_LIMIT: usize = 100;

pub fn paging(limit: Option<i64>, offset: Option<i64>, default_limit: usize) -> ApiResult<Paging> {
    let limit = match limit {
        None => default_limit,
        Some(l) if (1..=MAX_PAGE_LIMIT as i64).contains(&l) => l as usize,
        Some(l) => {
            return Err(ApiError::invalid(format!(
                "limit {l} is out of range: use 1 to {MAX_PAGE_LIMIT}"
            )));
        }
    };
    let offset = match offset {
        None => 0,
        Some(o) if o >= 0 => o as usize,
        Some(o) => {
            return Err(ApiError::invalid(format!(
                "offset {o} must not be negative"
            )));
        }
    };
    Ok(Paging { limit, offset })
}

impl Paging {
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect()
    }
}

/// Query parameters shared by single-resource reads.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExpandQuery {
    /// Comma-separated optional fields to include, e.g. `environments`.
    pub expand: Option<String>,
}

impl ExpandQuery {
    pub fn has(&self, field: &str) -> bool {
        self.expand
            .as_deref()
            .is_some_and(|e| e.split(',').any(|f| f.trim() == field))
    }
}

/// Splits `filter=field:value,field:value` into pairs, refusing unknown fields.
pub fn parse_filter<'a>(filter: &'a str, known: &[&str]) -> ApiResult<Vec<(&'a str, &'a str)>> {
    let mut out = Vec::new();
    for part in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (field, value) = part.split_once(':').ok_or_else(|| {
            ApiError::invalid(format!("filter \"{part}\" must look like field:value"))
        })?;
        if !known.contains(&field) {
            return Err(ApiError::invalid(format!(
                "unsupported filter field \"{field}\": use one of {}",
                known.join(", ")
            )));
        }
        out.push((field, value));
    }
    Ok(out)
}

/// Reading anything inside a project needs `viewProject` on it.
pub async fn viewable_project(
    state: &AppState,
    caller: &Caller,
    key: &str,
) -> ApiResult<ProjectContext> {
    let context = state.services.project_context(key).await?;
    caller.require("viewProject", &context.project_resource())?;
    Ok(context)
}

/// SDK and mobile keys are shown only to callers allowed `viewSdkKey` on the environment;
/// others see the environment with its keys masked.
pub fn mask_keys_unless_allowed(
    caller: &Caller,
    project: &Project,
    env: &Environment,
    rendered: &mut Value,
) {
    let resource =
        Resource::project(&project.key, &project.tags).env(&env.key, &env.tags, env.critical);
    if caller.can("viewSdkKey", &resource) {
        return;
    }
    if let Some(obj) = rendered.as_object_mut() {
        for field in ["apiKey", "mobileKey"] {
            if let Some(Value::String(key)) = obj.get(field) {
                let masked = format!(
                    "{}…{}",
                    &key[..4.min(key.len())],
                    flagstaff_model::account::secret_ending(key)
                );
                obj.insert(field.into(), Value::String(masked));
            }
        }
    }
}

/// Masks the keys of every environment inside a rendered project (array or collection form).
pub fn mask_project_keys(
    caller: &Caller,
    project: &Project,
    environments: &[Environment],
    rendered: &mut Value,
) {
    let list = match rendered.get_mut("environments") {
        Some(Value::Array(items)) => items,
        Some(Value::Object(collection)) => match collection.get_mut("items") {
            Some(Value::Array(items)) => items,
            _ => return,
        },
        _ => return,
    };
    for item in list.iter_mut() {
        if let Some(env) = environments.iter().find(|e| item["key"] == e.key.as_str()) {
            mask_keys_unless_allowed(caller, project, env, item);
        }
    }
}
