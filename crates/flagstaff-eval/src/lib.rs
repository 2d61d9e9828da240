//! LaunchDarkly flag evaluation, exactly as LaunchDarkly's SDKs do it.
//!
//! - [`model`]: the server-side SDK data model ([`Flag`], [`Segment`], …) with lenient parsing
//!   and LaunchDarkly's canonical serialisation (every field SDKs require).
//! - [`Context`]: single-kind, multi-kind and old-user contexts, with validation.
//! - [`CompiledFlag`] / [`CompiledSegment`]: a flag or segment prepared once per version, so
//!   that evaluation does no parsing.
//! - [`evaluate`]: off → prerequisites → targets → rules → fallthrough, every operator,
//!   segments (including nested `segmentMatch` and Big Segments), rollouts and experiments,
//!   every reason and error kind. Prerequisites and segments come from a [`Store`].
//!
//! The reference semantics are those of LaunchDarkly's Go evaluator (the reference
//! implementation); where LaunchDarkly's Rust crate differs, this crate follows Go (see
//! `tests/go_semantics.rs`). The sdk-test-harness evaluation data runs in
//! `tests/sdk_eval_conformance.rs`; `tests/differential_launchdarkly.rs` compares random
//! flags, segments and contexts with LaunchDarkly's Rust crate.
//!
//! ```
//! use flagstaff_eval::{evaluate, CompiledFlag, Context, EmptyStore, Flag, Reason};
//!
//! let flag: Flag = serde_json::from_str(r#"{"key":"f","on":true,"variations":[false,true],
//!     "fallthrough":{"variation":0},"rules":[{"id":"r","variation":1,"clauses":[
//!     {"attribute":"email","op":"endsWith","values":["@example.com"]}]}]}"#).unwrap();
//! let flag = CompiledFlag::compile(flag);
//! let ctx = Context::from_json_str(r#"{"kind":"user","key":"u","email":"a@example.com"}"#).unwrap();
//! let detail = evaluate(&flag, &ctx, &EmptyStore);
//! assert_eq!(detail.value.as_deref(), Some(&serde_json::json!(true)));
//! assert_eq!(detail.variation_index, Some(1));
//! assert!(matches!(detail.reason, Reason::RuleMatch { rule_index: 0, .. }));
//! ```

pub mod attr_ref;
pub mod bucket;
mod compile;
pub mod context;
mod eval;
pub mod model;
mod reason;
pub mod regex_go;
pub mod semver;
mod store;
pub mod timestamp;
mod typed;
mod value;

pub use attr_ref::{AttrRef, AttrRefError};
pub use compile::{CompiledFlag, CompiledSegment};
pub use context::{Context, ContextBuilder, ContextError, MultiContextBuilder, SingleContext};
pub use eval::{
    BigSegmentMembership, BigSegmentProvider, BigSegmentQuery, EmptyStore, MAX_DEPTH,
    PrerequisiteEvent, PrerequisiteRecorder, Store, evaluate, evaluate_key, evaluate_with_recorder,
};
pub use model::{
    Clause, ClientSideAvailability, Flag, FlagRule, MigrationSettings, Operator, Prerequisite,
    Rollout, RolloutKind, Segment, SegmentRule, SegmentTarget, Target, VariationOrRollout,
    WeightedVariation,
};
pub use reason::{BigSegmentsStatus, Detail, ErrorKind, Reason};
pub use store::{InMemoryStore, SdkData};
pub use typed::ValueType;
pub use value::{ValueRef, json_eq};
