//! Big-segment stores: synced-segment membership written into the Redis a server-side SDK
//! reads for big segments (the catalogue's `redis` integration, `bigSegmentStore` capability).
//!
//! The layout is LaunchDarkly's, as Relay writes it and the SDKs read it:
//!
//! | key | type | content |
//! | --- | --- | --- |
//! | `<prefix>:big_segment_include:<hash>` | set | segment refs `<segmentKey>.g<generation>` that include the context |
//! | `<prefix>:big_segment_exclude:<hash>` | set | refs that exclude it (synced segments never exclude) |
//! | `<prefix>:big_segments_synchronized_on` | string | Unix ms when the store was last known current |
//!
//! `<hash>` is base64 (standard, padded) of SHA-256 of the context key. The prefix is the
//! environment's client-side ID, so one Redis serves several environments and an SDK is
//! configured with the ID it already knows.
//!
//! Membership lives in `segment_members`, each row with a database-wide `seq` that rises in
//! commit order. The engine follows that cursor: it writes a batch of rows, and in the same
//! MULTI/EXEC the cursor (`<prefix>:flagstaff_big_segments_cursor`) and `synchronized_on`.
//! Keeping the cursor in Redis, beside the data it describes, makes recovery need no
//! bookkeeping: a Redis that lost its data has lost the cursor too and is replayed from the
//! start; a Redis that kept it resumes where it stopped, across restarts of Flagstaff. The
//! cursor is read again on every wake-up, so a flush while connected is noticed as well.
//!
//! `synchronized_on` is refreshed on every wake-up and at least every `big_segment_refresh`,
//! because SDKs report a store that was not refreshed for a while as stale.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use flagstaff_manifest::model::BigSegmentDbStyle;
use flagstaff_outbound::RedisTarget;
use flagstaff_store::{SegmentMemberChange, Store, StoreSyncState};
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::{StoreConfigDoc, StoreSyncSettings};
use crate::integrations::Integrations;
use crate::sdk::SdkHub;
use crate::sdk::feed::{EnvId, FeedEvent};
use crate::services::segments::segment_ref;
use crate::services::wall_millis;

/// Membership rows written per MULTI/EXEC.
const BATCH: i64 = 1000;

/// The key a context's membership sets are stored under.
pub fn context_hash(context_key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(context_key.as_bytes()))
}

/// How a segment is named in the membership sets; a re-created segment gets a new
/// generation, so members of its predecessor never leak into it.
pub fn segment_ref_name(segment_key: &str, generation: i64) -> String {
    format!("{segment_key}.g{generation}")
}

pub fn include_key(prefix: &str, hash: &str) -> String {
    format!("{prefix}:big_segment_include:{hash}")
}

pub fn synchronized_on_key(prefix: &str) -> String {
    format!("{prefix}:big_segments_synchronized_on")
}

pub fn cursor_key(prefix: &str) -> String {
    format!("{prefix}:flagstaff_big_segments_cursor")
}

/// The `redis://` URL of the `redis` manifest's form values (`host`, `port`, `username`,
/// `password`, `tlsEnabled`).
pub fn redis_url(values: &Map<String, Value>) -> Result<String, String> {
    let text = |key: &str| {
        values
            .get(key)
            .map(|v| match v {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            })
            .unwrap_or_default()
    };
    let scheme = match values.get("tlsEnabled") {
        Some(Value::Bool(true)) => "rediss",
        Some(Value::String(s)) if s == "true" => "rediss",
        _ => "redis",
    };
    let host = text("host");
    if host.is_empty() {
        return Err("host: the Redis host is required".into());
    }
    let port = Some(text("port"))
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "6379".into());
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (username, password) = (text("username"), text("password"));
    let credentials = match (username.is_empty(), password.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!("{}@", encode(&username)),
        (_, false) => format!("{}:{}@", encode(&username), encode(&password)),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!("{scheme}://{credentials}{host}:{port}"))
}

/// The Redis commands for one batch of membership rows: adds and removals of segment refs,
/// then the cursor and `synchronized_on`, as one transaction.
pub fn batch_pipeline(
    prefix: &str,
    changes: &[SegmentMemberChange],
    generations: &BTreeMap<String, i64>,
    now_millis: i64,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for change in changes {
        // A segment deleted since its rows were read: its rows are gone too.
        let Some(generation) = generations.get(&change.segment_key) else {
            continue;
        };
        let set = include_key(prefix, &context_hash(&change.context_key));
        let member = segment_ref_name(&change.segment_key, *generation);
        if change.included {
            pipe.sadd(set, member).ignore();
        } else {
            pipe.srem(set, member).ignore();
        }
    }
    if let Some(last) = changes.last() {
        pipe.set(cursor_key(prefix), last.seq).ignore();
    }
    pipe.set(synchronized_on_key(prefix), now_millis).ignore();
    pipe
}

/// One task per enabled big-segment-store configuration.
pub(super) struct BigSegmentEngine {
    pub(super) node: Arc<str>,
    pub(super) store: Arc<dyn Store>,
    pub(super) sdk: Arc<SdkHub>,
    pub(super) integrations: Arc<Integrations>,
    pub(super) doc: StoreConfigDoc,
}

impl BigSegmentEngine {
    pub(super) async fn run(self) {
        let settings = self.integrations.store_sync_settings.clone();
        super::run_until_done(&self, self.store.as_ref(), &self.doc, &self.node, &settings).await;
    }

    fn open_target(&self) -> Result<RedisTarget, String> {
        let integration = self
            .integrations
            .catalogue
            .current()
            .get(&self.doc.integration_key)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "integration `{}` is not in the catalogue",
                    self.doc.integration_key
                )
            })?;
        let db_style = integration
            .manifest
            .capabilities
            .as_ref()
            .and_then(|c| c.big_segment_store.as_ref())
            .map(|s| s.db_style)
            .ok_or("the integration has no bigSegmentStore capability")?;
        if db_style != BigSegmentDbStyle::Redis {
            return Err(
                "DynamoDB big-segment stores are not supported by Flagstaff; use `redis`".into(),
            );
        }
        let values = super::super::delivery::open_values(
            &self.integrations,
            &integration.manifest.form_variables,
            &self.doc.integration_key,
            &self.doc.id,
            &self.doc.config,
        )
        .map_err(|_| {
            "a secret of this configuration cannot be decrypted with this server's key".to_string()
        })?;
        Ok(RedisTarget::parse(&redis_url(&values)?)
            .map_err(|e| e.to_string())?
            .with_root_certificates(self.integrations.redis_root_certificates.clone()))
    }

    /// Follows the membership cursor until the environment is deleted (Ok) or a write fails.
    async fn sync(
        &self,
        state: &mut StoreSyncState,
        settings: &StoreSyncSettings,
    ) -> Result<(), String> {
        let target = self.open_target()?;
        let id = EnvId {
            project: self.doc.project_key.clone(),
            env: self.doc.environment_key.clone(),
        };
        let feed = self.sdk.feed(&id).await.map_err(|e| e.to_string())?;
        let mut events = feed.tx.subscribe();
        // The environment's `_id` is its client-side ID: the membership rows' key and the
        // store's prefix.
        let prefix = feed.read().environment.id.clone();
        let mut connection = target
            .connect(self.integrations.outbound.policy(), settings.redis_timeouts)
            .await
            .map_err(|e| format!("Redis {}: {e}", target.display_address()))?;
        let redis_error = |e: redis::RedisError| format!("Redis {}: {e}", target.display_address());
        loop {
            let cursor = self
                .write_pending(&mut connection, &prefix, &id)
                .await
                .map_err(|e| match e {
                    WriteError::Redis(e) => redis_error(e),
                    WriteError::Store(e) => e,
                })?;
            state.pushed_version = cursor;
            state.pushed_at = Some(wall_millis());
            state.failures = 0;
            state.next_retry_at = None;
            if let Err(e) = self.store.store_sync_put(state).await {
                tracing::warn!(config = %self.doc.id, "big-segment store: recording a sync failed: {e}");
            }
            tokio::select! {
                event = events.recv() => {
                    if matches!(event, Ok(FeedEvent::Closed) | Err(broadcast::error::RecvError::Closed)) {
                        return Ok(());
                    }
                }
                _ = tokio::time::sleep(settings.big_segment_refresh) => {}
            }
            loop {
                match events.try_recv() {
                    Ok(FeedEvent::Closed) | Err(broadcast::error::TryRecvError::Closed) => {
                        return Ok(());
                    }
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(broadcast::error::TryRecvError::Empty) => break,
                }
            }
        }
    }

    /// Writes every membership row after the store's cursor, then refreshes
    /// `synchronized_on`; returns the cursor reached.
    async fn write_pending(
        &self,
        connection: &mut MultiplexedConnection,
        prefix: &str,
        id: &EnvId,
    ) -> Result<i64, WriteError> {
        let stored: Option<i64> = redis::cmd("GET")
            .arg(cursor_key(prefix))
            .query_async(connection)
            .await?;
        let mut cursor = stored.unwrap_or(0);
        loop {
            let changes = self
                .store
                .segment_member_changes(prefix, cursor, BATCH)
                .await
                .map_err(|e| WriteError::Store(e.to_string()))?;
            let generations = self.generations(id, &changes).await?;
            batch_pipeline(prefix, &changes, &generations, wall_millis())
                .query_async::<()>(connection)
                .await?;
            match changes.last() {
                Some(last) if changes.len() as i64 == BATCH => cursor = last.seq,
                Some(last) => return Ok(last.seq),
                None => return Ok(cursor),
            }
        }
    }

    /// The current generation of each segment named in `changes` (absent: deleted).
    async fn generations(
        &self,
        id: &EnvId,
        changes: &[SegmentMemberChange],
    ) -> Result<BTreeMap<String, i64>, WriteError> {
        let keys: BTreeSet<&str> = changes.iter().map(|c| c.segment_key.as_str()).collect();
        let mut generations = BTreeMap::new();
        for key in keys {
            let stored = self
                .store
                .get(&segment_ref(&id.project, &id.env, key))
                .await
                .map_err(|e| WriteError::Store(e.to_string()))?;
            let Some(stored) = stored else { continue };
            let doc: Value = serde_json::from_str(&stored.doc)
                .map_err(|e| WriteError::Store(format!("segment `{key}`: {e}")))?;
            if let Some(generation) = doc.get("generation").and_then(Value::as_i64) {
                generations.insert(key.to_string(), generation);
            }
        }
        Ok(generations)
    }
}

impl super::SyncPass for BigSegmentEngine {
    fn sync_pass<'a>(
        &'a self,
        state: &'a mut StoreSyncState,
        settings: &'a StoreSyncSettings,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(self.sync(state, settings))
    }
}

enum WriteError {
    Redis(redis::RedisError),
    Store(String),
}

impl From<redis::RedisError> for WriteError {
    fn from(e: redis::RedisError) -> Self {
        WriteError::Redis(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_hashes_match_the_python_sdk() {
        // Vectors printed by launchdarkly-server-sdk 9.20.0's `_hash_for_user_key`.
        assert_eq!(
            context_hash("userkey"),
            "72cBpXPyn4N6TqqlS8Tti37jEcoNhFzL9ZdG1jXkILE="
        );
        assert_eq!(
            context_hash("\u{fc}n\u{ef}code key"),
            "f4/Ex+B3iMMPGsiXlOFqmahMHHLcIQHCU+I7ZTLC3aM="
        );
    }

    #[test]
    fn redis_url_from_form_values() {
        let values = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(
            redis_url(&values(serde_json::json!({"host": "cache.internal"}))).as_deref(),
            Ok("redis://cache.internal:6379")
        );
        assert_eq!(
            redis_url(&values(serde_json::json!({
                "host": "10.0.0.5", "port": "6380", "username": "ld", "password": "p@ss:w/rd"
            })))
            .as_deref(),
            Ok("redis://ld:p%40ss%3Aw%2Frd@10.0.0.5:6380")
        );
        assert_eq!(
            redis_url(&values(serde_json::json!({"host": "::1", "password": "x"}))).as_deref(),
            Ok("redis://:x@[::1]:6379")
        );
        assert!(redis_url(&values(serde_json::json!({"host": " "}))).is_err());
        assert_eq!(
            redis_url(&values(
                serde_json::json!({"host": "h", "tlsEnabled": true})
            ))
            .as_deref(),
            Ok("rediss://h:6379")
        );
    }

    #[test]
    fn a_batch_adds_removes_and_moves_the_cursor_in_one_transaction() {
        let change = |segment: &str, context: &str, included: bool, seq: i64| SegmentMemberChange {
            segment_key: segment.into(),
            context_key: context.into(),
            included,
            seq,
        };
        let generations = BTreeMap::from([("cohort".to_string(), 7)]);
        let changes = [
            change("cohort", "a", true, 10),
            change("gone", "b", true, 11),
            change("cohort", "c", false, 12),
        ];
        let packed = batch_pipeline("env1", &changes, &generations, 1234).get_packed_pipeline();
        let text = String::from_utf8_lossy(&packed);
        let set = |context: &str| {
            let key = include_key("env1", &context_hash(context));
            format!("${}\r\n{key}\r\n$9\r\ncohort.g7", key.len())
        };
        assert!(text.starts_with("*1\r\n$5\r\nMULTI"), "{text}");
        assert!(text.contains(&format!("SADD\r\n{}", set("a"))), "{text}");
        assert!(text.contains(&format!("SREM\r\n{}", set("c"))), "{text}");
        assert!(
            !text.contains("gone"),
            "a deleted segment's rows are skipped: {text}"
        );
        assert!(
            text.contains("env1:flagstaff_big_segments_cursor\r\n$2\r\n12"),
            "{text}"
        );
        assert!(
            text.contains("env1:big_segments_synchronized_on\r\n$4\r\n1234"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("EXEC"), "{text}");
    }
}
