//! Reading the audit log.

use flagstaff_model::audit::AuditEntry;
use flagstaff_policy::ResourceSpec;
use flagstaff_store::AuditQuery;

use super::{Services, decode};
use crate::error::{ApiError, ApiResult};

/// The most entries one page returns (LaunchDarkly's limit).
pub const MAX_AUDIT_LIMIT: i64 = 20;
pub const DEFAULT_AUDIT_LIMIT: i64 = 10;

pub struct AuditFilter {
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub q: Option<String>,
    pub spec: Option<ResourceSpec>,
    pub limit: i64,
}

impl Services {
    /// Entries matching `filter` that `visible` lets the caller see, newest first.
    pub async fn audit_entries(
        &self,
        filter: &AuditFilter,
        visible: impl Fn(&AuditEntry) -> bool,
    ) -> ApiResult<Vec<AuditEntry>> {
        let mut entries = Vec::new();
        let mut before = filter.before;
        // `spec` and visibility are decided after reading, so read on until the page is full
        // or the log is exhausted.
        loop {
            let query = AuditQuery {
                before,
                after: filter.after,
                q: filter.q.as_ref().map(|q| q.to_lowercase()),
                limit: if filter.spec.is_some() {
                    200
                } else {
                    filter.limit
                },
            };
            let docs = self.store.audit_list(&query).await?;
            let exhausted = (docs.len() as i64) < query.limit;
            for doc in &docs {
                let entry: AuditEntry = decode(doc)?;
                before = Some(entry.date);
                let wanted = visible(&entry)
                    && match &filter.spec {
                        None => true,
                        Some(spec) => entry.accesses.iter().any(|a| {
                            ResourceSpec::parse(&a.resource).is_ok_and(|r| spec.covers(&r))
                        }),
                    };
                if wanted {
                    entries.push(entry);
                    if entries.len() as i64 == filter.limit {
                        return Ok(entries);
                    }
                }
            }
            if exhausted {
                return Ok(entries);
            }
        }
    }

    pub async fn audit_entry_by_id(&self, id: &str) -> ApiResult<AuditEntry> {
        let doc = self
            .store
            .audit_get(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("audit log entry \"{id}\"")))?;
        decode(&doc)
    }
}
