//! An in-memory [`Store`] and the SDK "all data" payload.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compile::{CompiledFlag, CompiledSegment};
use crate::eval::{BigSegmentProvider, Store};
use crate::model::{Flag, Segment};

/// The flags and segments of an environment as server-side SDKs receive them (`put` data,
/// `/sdk/latest-all`). Both maps are always serialised, even when empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SdkData {
    /// Flags by key.
    #[serde(default)]
    pub flags: BTreeMap<String, Flag>,
    /// Segments by key.
    #[serde(default)]
    pub segments: BTreeMap<String, Segment>,
}

type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Compiled flags and segments in hash maps. Tombstones (`deleted: true`) are kept, so that
/// [`InMemoryStore::upsert_flag`] can refuse older versions, but never returned.
#[derive(Default)]
pub struct InMemoryStore {
    flags: Map<Arc<CompiledFlag>>,
    segments: Map<Arc<CompiledSegment>>,
    big_segments: Option<Box<dyn BigSegmentProvider + Send + Sync>>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryStore")
            .field("flags", &self.flags.len())
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> InMemoryStore {
        InMemoryStore::default()
    }

    /// Compiles everything in `data`. Map keys win over the items' own `key` fields.
    pub fn from_data(data: SdkData) -> InMemoryStore {
        let mut store = InMemoryStore::new();
        for (key, mut flag) in data.flags {
            flag.key = key;
            store.insert_flag(flag);
        }
        for (key, mut segment) in data.segments {
            segment.key = key;
            store.insert_segment(segment);
        }
        store
    }

    /// Compiles and stores a flag, replacing any flag with that key.
    pub fn insert_flag(&mut self, flag: Flag) -> Arc<CompiledFlag> {
        let compiled = Arc::new(CompiledFlag::compile(flag));
        self.flags
            .insert(compiled.key().to_owned(), Arc::clone(&compiled));
        compiled
    }

    /// Stores an already compiled flag.
    pub fn insert_compiled_flag(&mut self, flag: Arc<CompiledFlag>) {
        self.flags.insert(flag.key().to_owned(), flag);
    }

    /// Compiles and stores a segment, replacing any segment with that key.
    pub fn insert_segment(&mut self, segment: Segment) -> Arc<CompiledSegment> {
        let compiled = Arc::new(CompiledSegment::compile(segment));
        self.segments
            .insert(compiled.key().to_owned(), Arc::clone(&compiled));
        compiled
    }

    /// Stores an already compiled segment.
    pub fn insert_compiled_segment(&mut self, segment: Arc<CompiledSegment>) {
        self.segments.insert(segment.key().to_owned(), segment);
    }

    /// SDK update semantics: stores the flag only if its version is greater than the stored
    /// one's (tombstones included). Returns whether it was stored.
    pub fn upsert_flag(&mut self, flag: Flag) -> bool {
        if self
            .flags
            .get(&flag.key)
            .is_some_and(|old| old.version() >= flag.version)
        {
            return false;
        }
        self.insert_flag(flag);
        true
    }

    /// SDK update semantics for segments (see [`InMemoryStore::upsert_flag`]).
    pub fn upsert_segment(&mut self, segment: Segment) -> bool {
        if self
            .segments
            .get(&segment.key)
            .is_some_and(|old| old.version() >= segment.version)
        {
            return false;
        }
        self.insert_segment(segment);
        true
    }

    /// Sets the Big Segment membership source.
    pub fn set_big_segments(&mut self, provider: Box<dyn BigSegmentProvider + Send + Sync>) {
        self.big_segments = Some(provider);
    }

    /// The compiled flag (shared), unless missing or deleted.
    pub fn get_flag(&self, key: &str) -> Option<&Arc<CompiledFlag>> {
        self.flags.get(key).filter(|f| !f.is_deleted())
    }

    /// The compiled segment (shared), unless missing or deleted.
    pub fn get_segment(&self, key: &str) -> Option<&Arc<CompiledSegment>> {
        self.segments.get(key).filter(|s| !s.is_deleted())
    }

    /// All live flags, in no particular order.
    pub fn flags(&self) -> impl Iterator<Item = &Arc<CompiledFlag>> {
        self.flags.values().filter(|f| !f.is_deleted())
    }

    /// All live segments, in no particular order.
    pub fn segments(&self) -> impl Iterator<Item = &Arc<CompiledSegment>> {
        self.segments.values().filter(|s| !s.is_deleted())
    }

    /// Everything stored (tombstones included) as SDK data.
    pub fn to_data(&self) -> SdkData {
        SdkData {
            flags: self
                .flags
                .iter()
                .map(|(k, f)| (k.clone(), f.flag().clone()))
                .collect(),
            segments: self
                .segments
                .iter()
                .map(|(k, s)| (k.clone(), s.segment().clone()))
                .collect(),
        }
    }
}

impl Store for InMemoryStore {
    #[inline]
    fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        self.get_flag(key).map(|f| &**f)
    }

    #[inline]
    fn segment(&self, key: &str) -> Option<&CompiledSegment> {
        self.get_segment(key).map(|s| &**s)
    }

    fn big_segments(&self) -> Option<&dyn BigSegmentProvider> {
        self.big_segments
            .as_deref()
            .map(|p| p as &dyn BigSegmentProvider)
    }
}
