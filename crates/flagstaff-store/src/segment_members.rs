//! Synced-segment (big segment) membership: one row per (environment, segment, context key).
//!
//! A cohort can have millions of members, so they are not part of the segment document: a
//! batch of changes reads and writes only its own rows (O(batch)), and nothing ever loads a
//! whole cohort. Changes are written by [`crate::EntityWrite::SegmentMembers`] inside the
//! commit of the segment's version bump and audit entry. Every inserted or updated row takes a
//! new `seq` from one database-wide counter, so a big-segment store syncer can follow
//! [`SegmentMemberStore::segment_member_changes`] with a cursor; removals stay as rows with
//! `included = false` (tombstones) for that reader.

use async_trait::async_trait;

use crate::StoreResult;

/// Membership writes of one change, applied in the commit's transaction after the entity
/// writes that precede them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentMembersWrite {
    /// Sets these members' state (`true`: included; `false`: removed, kept as a tombstone).
    /// Each listed row gets a new `seq`; list only real changes, each context key once.
    Upsert {
        environment_id: String,
        segment_key: String,
        members: Vec<(String, bool)>,
    },
    /// Forgets every row of a deleted segment.
    DeleteSegment {
        environment_id: String,
        segment_key: String,
    },
    /// Forgets every row of a deleted environment.
    DeleteEnvironment { environment_id: String },
}

/// One row as an incremental reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMemberChange {
    pub segment_key: String,
    pub context_key: String,
    pub included: bool,
    pub seq: i64,
}

#[async_trait]
pub trait SegmentMemberStore {
    /// The stored state of those of `context_keys` that have a row in the segment (absent:
    /// never a member). Costs O(context_keys), whatever the segment's size.
    async fn segment_member_states(
        &self,
        environment_id: &str,
        segment_key: &str,
        context_keys: &[String],
    ) -> StoreResult<Vec<(String, bool)>>;

    /// Up to `limit` current members of a segment with a context key greater than `after`
    /// (`""`: from the start), in key order: keyset pagination.
    async fn segment_members_page(
        &self,
        environment_id: &str,
        segment_key: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<String>>;

    /// Rows of an environment inserted or updated after `after_seq`, oldest first. On
    /// Postgres, sequence order is commit order, so a cursor never skips a late commit.
    async fn segment_member_changes(
        &self,
        environment_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<SegmentMemberChange>>;

    /// `(context key, segment key)` for every segment of the environment that includes one
    /// of `context_keys`: what Flagstaff's own evaluation needs for one context.
    async fn segments_including(
        &self,
        environment_id: &str,
        context_keys: &[String],
    ) -> StoreResult<Vec<(String, String)>>;
}

pub(crate) mod sql {
    /// Rows per multi-row statement: 5 parameters each stays far below both dialects' limits.
    pub const CHUNK: usize = 1000;

    pub const NEXT_SEQ: &str =
        "UPDATE segment_member_seq SET last = last + ? WHERE id = 1 RETURNING last";
    pub const DELETE_SEGMENT: &str =
        "DELETE FROM segment_members WHERE environment_id = ? AND segment_key = ?";
    pub const DELETE_ENVIRONMENT: &str = "DELETE FROM segment_members WHERE environment_id = ?";
    pub const PAGE: &str = "SELECT context_key FROM segment_members WHERE environment_id = ? \
         AND segment_key = ? AND included AND context_key > ? ORDER BY context_key LIMIT ?";
    pub const CHANGES: &str = "SELECT segment_key, context_key, included, seq FROM segment_members \
         WHERE environment_id = ? AND seq > ? ORDER BY seq LIMIT ?";

    pub const ALL: &[&str] = &[NEXT_SEQ, DELETE_SEGMENT, DELETE_ENVIRONMENT, PAGE, CHANGES];

    fn placeholders(n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    pub fn upsert(rows: usize) -> String {
        format!(
            "INSERT INTO segment_members (environment_id, segment_key, context_key, included, seq) \
             VALUES {} ON CONFLICT (environment_id, segment_key, context_key) \
             DO UPDATE SET included = excluded.included, seq = excluded.seq",
            vec!["(?, ?, ?, ?, ?)"; rows].join(", ")
        )
    }

    /// Postgres: one primary-key lookup per key. The plain `IN (…)` form lets the planner,
    /// misled by statistics that lag a fast-growing table (a new cohort of thousands of rows
    /// before autovacuum has analysed it), scan the whole segment and filter: that made a
    /// batch cost O(cohort) on Postgres. With every key column fixed by equality the lookup
    /// can only be an index probe, whatever the statistics say.
    pub const STATES_BY_KEY_PG: &str = "SELECT k.key, m.included FROM unnest($3::text[]) AS k(key) \
         CROSS JOIN LATERAL (SELECT included FROM segment_members \
         WHERE environment_id = $1 AND segment_key = $2 AND context_key = k.key) m";

    pub fn states(keys: usize) -> String {
        format!(
            "SELECT context_key, included FROM segment_members WHERE environment_id = ? \
             AND segment_key = ? AND context_key IN ({})",
            placeholders(keys)
        )
    }

    pub fn including(keys: usize) -> String {
        format!(
            "SELECT context_key, segment_key FROM segment_members WHERE environment_id = ? \
             AND included AND context_key IN ({})",
            placeholders(keys)
        )
    }
}

/// The trait for one dialect, and the write helper its `commit` calls.
macro_rules! impl_segment_member_store_for {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::segment_members::SegmentMemberStore for $store {
            async fn segment_member_states(
                &self,
                environment_id: &str,
                segment_key: &str,
                context_keys: &[String],
            ) -> $crate::StoreResult<Vec<(String, bool)>> {
                let mut out = Vec::new();
                for chunk in context_keys.chunks($crate::segment_members::sql::CHUNK) {
                    out.extend(
                        self.member_states_chunk(environment_id, segment_key, chunk)
                            .await?,
                    );
                }
                Ok(out)
            }

            async fn segment_members_page(
                &self,
                environment_id: &str,
                segment_key: &str,
                after: &str,
                limit: i64,
            ) -> $crate::StoreResult<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as(self.sql($crate::segment_members::sql::PAGE))
                        .bind(environment_id)
                        .bind(segment_key)
                        .bind(after)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows.into_iter().map(|(key,)| key).collect())
            }

            async fn segment_member_changes(
                &self,
                environment_id: &str,
                after_seq: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::segment_members::SegmentMemberChange>> {
                let rows: Vec<(String, String, bool, i64)> =
                    sqlx::query_as(self.sql($crate::segment_members::sql::CHANGES))
                        .bind(environment_id)
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_all(self.reader())
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(segment_key, context_key, included, seq)| {
                        $crate::segment_members::SegmentMemberChange {
                            segment_key,
                            context_key,
                            included,
                            seq,
                        }
                    })
                    .collect())
            }

            async fn segments_including(
                &self,
                environment_id: &str,
                context_keys: &[String],
            ) -> $crate::StoreResult<Vec<(String, String)>> {
                let mut out = Vec::new();
                for chunk in context_keys.chunks($crate::segment_members::sql::CHUNK) {
                    let statement =
                        self.dynamic($crate::segment_members::sql::including(chunk.len()));
                    let mut query =
                        sqlx::query_as::<_, (String, String)>(&statement).bind(environment_id);
                    for key in chunk {
                        query = query.bind(key);
                    }
                    out.extend(query.fetch_all(self.reader()).await?);
                }
                Ok(out)
            }
        }

        impl $store {
            async fn write_segment_members(
                &self,
                tx: &mut sqlx::Transaction<'static, $db>,
                write: &$crate::segment_members::SegmentMembersWrite,
            ) -> $crate::StoreResult<()> {
                use $crate::segment_members::{SegmentMembersWrite, sql};
                match write {
                    SegmentMembersWrite::Upsert {
                        environment_id,
                        segment_key,
                        members,
                    } => {
                        if members.is_empty() {
                            return Ok(());
                        }
                        let (last,): (i64,) = sqlx::query_as(self.sql(sql::NEXT_SEQ))
                            .bind(members.len() as i64)
                            .fetch_one(&mut **tx)
                            .await?;
                        let mut seq = last - members.len() as i64;
                        for chunk in members.chunks(sql::CHUNK) {
                            let statement = self.dynamic(sql::upsert(chunk.len()));
                            let mut query = sqlx::query(&statement);
                            for (context_key, included) in chunk {
                                seq += 1;
                                query = query
                                    .bind(environment_id)
                                    .bind(segment_key)
                                    .bind(context_key)
                                    .bind(*included)
                                    .bind(seq);
                            }
                            query.execute(&mut **tx).await?;
                        }
                    }
                    SegmentMembersWrite::DeleteSegment {
                        environment_id,
                        segment_key,
                    } => {
                        sqlx::query(self.sql(sql::DELETE_SEGMENT))
                            .bind(environment_id)
                            .bind(segment_key)
                            .execute(&mut **tx)
                            .await?;
                    }
                    SegmentMembersWrite::DeleteEnvironment { environment_id } => {
                        sqlx::query(self.sql(sql::DELETE_ENVIRONMENT))
                            .bind(environment_id)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
                Ok(())
            }
        }
    };
}
pub(crate) use impl_segment_member_store_for;
