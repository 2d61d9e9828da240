//! axum routers, one module per resource. Handlers are thin: parse, call a service, render.
//! Each is annotated for utoipa, so the OpenAPI document is generated from these handlers.

use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

pub mod auditlog;
pub mod environments;
pub mod flags;
pub mod projects;
pub mod root;
pub mod segments;

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
