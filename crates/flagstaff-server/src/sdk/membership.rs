//! Synced-segment (big segment) membership for Flagstaff's own evaluations (client-side and
//! mobile `evalx`).
//!
//! Server-side SDKs receive synced segments as LaunchDarkly sends big segments: `unbounded`,
//! with a `generation` and no member lists, and read membership from a big-segment store.
//! Flagstaff evaluates for client-side and mobile SDKs itself, so before evaluating it reads
//! the context's memberships from `segment_members` — one indexed query for the context's
//! keys, O(memberships of this context), never a whole cohort.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use flagstaff_eval::{
    BigSegmentMembership, BigSegmentProvider, BigSegmentQuery, BigSegmentsStatus, CompiledFlag,
    CompiledSegment, Context, InMemoryStore, Store,
};

use super::feed::EnvFeed;
use crate::error::ApiResult;
use crate::state::AppState;

/// The segment refs (`<segmentKey>.g<generation>`) that include one context key.
struct Refs(HashSet<String>);

impl BigSegmentMembership for Refs {
    fn check(&self, segment_ref: &str) -> Option<bool> {
        // Removed members and non-members alike are "unknown": the segment's rules decide.
        self.0.contains(segment_ref).then_some(true)
    }
}

/// One context's big-segment memberships, read before the evaluation.
#[derive(Default)]
pub struct Memberships {
    by_key: HashMap<String, Arc<Refs>>,
}

impl BigSegmentProvider for Memberships {
    fn membership(&self, context_key: &str) -> BigSegmentQuery {
        let refs = self
            .by_key
            .get(context_key)
            .cloned()
            .unwrap_or_else(|| Arc::new(Refs(HashSet::new())));
        BigSegmentQuery {
            membership: Some(refs),
            status: BigSegmentsStatus::Healthy,
        }
    }
}

/// The memberships of `context` in the environment's big segments; `None` when the
/// environment has none (nothing is read).
pub async fn read(
    state: &AppState,
    feed: &EnvFeed,
    context: &Context,
) -> ApiResult<Option<Memberships>> {
    let (environment_id, refs) = {
        let st = feed.read();
        let refs: HashMap<String, String> = st
            .segments
            .iter()
            .filter(|(_, s)| s.unbounded && !s.deleted)
            .filter_map(|(key, s)| s.generation.map(|g| (key.clone(), format!("{key}.g{g}"))))
            .collect();
        if refs.is_empty() {
            return Ok(None);
        }
        (st.environment.id.clone(), refs)
    };
    let mut keys: Vec<String> = context
        .contexts()
        .iter()
        .map(|c| c.key().to_string())
        .collect();
    keys.sort();
    keys.dedup();
    let mut sets: HashMap<String, HashSet<String>> = HashMap::new();
    for (context_key, segment_key) in state
        .store
        .segments_including(&environment_id, &keys)
        .await?
    {
        if let Some(segment_ref) = refs.get(&segment_key) {
            sets.entry(context_key)
                .or_default()
                .insert(segment_ref.clone());
        }
    }
    Ok(Some(Memberships {
        by_key: sets
            .into_iter()
            .map(|(k, v)| (k, Arc::new(Refs(v))))
            .collect(),
    }))
}

/// The environment's compiled flags and segments with the context's memberships.
pub struct WithMemberships<'a> {
    pub eval: &'a InMemoryStore,
    pub memberships: Option<&'a Memberships>,
}

impl Store for WithMemberships<'_> {
    fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        self.eval.flag(key)
    }

    fn segment(&self, key: &str) -> Option<&CompiledSegment> {
        self.eval.segment(key)
    }

    fn big_segments(&self) -> Option<&dyn BigSegmentProvider> {
        self.memberships.map(|m| m as &dyn BigSegmentProvider)
    }
}
