//! Compiled flags and segments: everything the evaluator would otherwise parse on each
//! evaluation is prepared once per flag/segment version — target key sets, clause values by
//! operator (regexes, semantic versions, timestamps, number and string sets), attribute
//! references, rollout buckets (cumulative `f32` weights) and the SHA-1 state of each bucketing
//! prefix. Compiling never fails: data that can only fail at evaluation time (a bad attribute
//! reference, an out-of-range variation, an empty rollout) compiles to a form that yields
//! `MALFORMED_FLAG` when an evaluation reaches it, as in LaunchDarkly's evaluator.

use std::collections::HashSet;

use regex::Regex;
use serde_json::Value;

use crate::attr_ref::AttrRef;
use crate::bucket::{BucketBy, BucketPrefix};
use crate::context::DEFAULT_KIND;
use crate::model::{Clause, Flag, Operator, Rollout, Segment, SegmentTarget, VariationOrRollout};
use crate::semver::{self, OwnedSemVer};
use crate::timestamp::{self, Timestamp};
use crate::value::ValueRef;

type FastSet = HashSet<Box<str>, foldhash::fast::RandomState>;

/// A set of keys: a short list is scanned, a long one hashed.
#[derive(Clone, Debug)]
pub(crate) enum KeySet {
    Small(Box<[Box<str>]>),
    Large(FastSet),
}

const SMALL_SET: usize = 8;

impl KeySet {
    pub(crate) fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> KeySet {
        let keys: Vec<Box<str>> = keys.into_iter().map(Box::from).collect();
        if keys.len() <= SMALL_SET {
            KeySet::Small(keys.into_boxed_slice())
        } else {
            KeySet::Large(keys.into_iter().collect())
        }
    }

    #[inline]
    pub(crate) fn contains(&self, key: &str) -> bool {
        match self {
            KeySet::Small(keys) => keys.iter().any(|k| **k == *key),
            KeySet::Large(set) => set.contains(key),
        }
    }
}

fn kind_or_user(kind: &Option<String>) -> Box<str> {
    match kind.as_deref() {
        None | Some("") => DEFAULT_KIND.into(),
        Some(k) => k.into(),
    }
}

fn has_kind(kind: &Option<String>) -> bool {
    kind.as_deref().is_some_and(|k| !k.is_empty())
}

/// An individual-target list, resolved from `targets`/`contextTargets` in evaluation order.
#[derive(Clone, Debug)]
pub(crate) struct CompiledTarget {
    pub(crate) kind: Box<str>,
    pub(crate) keys: KeySet,
    pub(crate) variation: i64,
}

/// A variation-or-rollout.
#[derive(Clone, Debug)]
pub(crate) enum CompiledVr {
    Variation(i64),
    Rollout(Box<CompiledRollout>),
    /// Neither a variation nor a non-empty rollout.
    Malformed,
}

#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    pub(crate) variation: i64,
    /// The running sum of weights/100000 up to and including this bucket, in f32.
    pub(crate) end: f32,
    pub(crate) untracked: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledRollout {
    pub(crate) experiment: bool,
    pub(crate) context_kind: Box<str>,
    pub(crate) bucket_by: BucketBy,
    pub(crate) prefix: BucketPrefix,
    pub(crate) buckets: Box<[Bucket]>,
}

impl CompiledVr {
    fn new(vr: &VariationOrRollout, key: &str, salt: &str) -> CompiledVr {
        if let Some(v) = vr.variation {
            return CompiledVr::Variation(v);
        }
        match &vr.rollout {
            Some(r) if !r.variations.is_empty() => {
                CompiledVr::Rollout(Box::new(CompiledRollout::new(r, key, salt)))
            }
            _ => CompiledVr::Malformed,
        }
    }
}

impl CompiledRollout {
    fn new(r: &Rollout, key: &str, salt: &str) -> CompiledRollout {
        let experiment = r.is_experiment();
        let mut sum = 0f32;
        let buckets = r
            .variations
            .iter()
            .map(|wv| {
                sum += wv.weight as f32 / 100_000.0;
                Bucket {
                    variation: wv.variation,
                    end: sum,
                    untracked: wv.untracked,
                }
            })
            .collect();
        CompiledRollout {
            experiment,
            context_kind: kind_or_user(&r.context_kind),
            bucket_by: BucketBy::new(
                r.bucket_by.as_deref(),
                has_kind(&r.context_kind),
                experiment,
            ),
            prefix: match r.seed {
                Some(seed) => BucketPrefix::seed(seed),
                None => BucketPrefix::key_and_salt(key, salt),
            },
            buckets,
        }
    }
}

/// Primitive values of an `in` clause.
#[derive(Clone, Debug)]
pub(crate) struct InSet {
    strings: KeySet,
    numbers: Box<[f64]>,
    has_true: bool,
    has_false: bool,
}

impl InSet {
    #[inline]
    fn contains(&self, v: ValueRef<'_>) -> bool {
        match v {
            ValueRef::Str(s) => self.strings.contains(s),
            ValueRef::Number(n) => self.numbers.contains(&n),
            ValueRef::Bool(true) => self.has_true,
            ValueRef::Bool(false) => self.has_false,
            ValueRef::Array(_) | ValueRef::Object(_) => false,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum NumOp {
    Lt,
    Le,
    Gt,
    Ge,
}

/// An operator with its clause values pre-parsed; values that can never match (wrong type,
/// invalid regex/version/date) are dropped.
#[derive(Clone, Debug)]
pub(crate) enum Matcher {
    In(InSet),
    StartsWith(Box<[Box<str>]>),
    EndsWith(Box<[Box<str>]>),
    Contains(Box<[Box<str>]>),
    Matches(Box<[Regex]>),
    Numeric(NumOp, Box<[f64]>),
    Before(Box<[Timestamp]>),
    After(Box<[Timestamp]>),
    SemVer(std::cmp::Ordering, Box<[OwnedSemVer]>),
    Never,
}

fn strings(values: &[Value]) -> Box<[Box<str>]> {
    values
        .iter()
        .filter_map(|v| v.as_str().map(Box::from))
        .collect()
}

impl Matcher {
    fn new(op: &Operator, values: &[Value]) -> Matcher {
        use std::cmp::Ordering::*;
        let numbers = || values.iter().filter_map(Value::as_f64).collect();
        // Go's evaluator treats a clause timestamp equal to Go's zero time as invalid.
        let times = || {
            values
                .iter()
                .filter_map(|v| ValueRef::from_json(v).and_then(timestamp::from_value))
                .filter(|t| *t != timestamp::GO_ZERO_TIME)
                .collect()
        };
        let versions = |o| {
            Matcher::SemVer(
                o,
                values
                    .iter()
                    .filter_map(|v| semver::parse(v.as_str()?).map(|s| s.to_owned()))
                    .collect(),
            )
        };
        match op {
            Operator::In => Matcher::In(InSet {
                strings: KeySet::new(values.iter().filter_map(Value::as_str)),
                numbers: numbers(),
                has_true: values.contains(&Value::Bool(true)),
                has_false: values.contains(&Value::Bool(false)),
            }),
            Operator::StartsWith => Matcher::StartsWith(strings(values)),
            Operator::EndsWith => Matcher::EndsWith(strings(values)),
            Operator::Contains => Matcher::Contains(strings(values)),
            Operator::Matches => Matcher::Matches(
                values
                    .iter()
                    .filter_map(|v| crate::regex_go::compile(v.as_str()?))
                    .collect(),
            ),
            Operator::LessThan => Matcher::Numeric(NumOp::Lt, numbers()),
            Operator::LessThanOrEqual => Matcher::Numeric(NumOp::Le, numbers()),
            Operator::GreaterThan => Matcher::Numeric(NumOp::Gt, numbers()),
            Operator::GreaterThanOrEqual => Matcher::Numeric(NumOp::Ge, numbers()),
            Operator::Before => Matcher::Before(times()),
            Operator::After => Matcher::After(times()),
            Operator::SemVerEqual => versions(Equal),
            Operator::SemVerLessThan => versions(Less),
            Operator::SemVerGreaterThan => versions(Greater),
            Operator::SegmentMatch | Operator::Unknown(_) => Matcher::Never,
        }
    }

    /// Whether one (non-array) context value matches any clause value.
    #[inline]
    pub(crate) fn matches(&self, v: ValueRef<'_>) -> bool {
        match self {
            Matcher::In(set) => set.contains(v),
            Matcher::StartsWith(xs) => v
                .as_str()
                .is_some_and(|s| xs.iter().any(|x| s.starts_with(&**x))),
            Matcher::EndsWith(xs) => v
                .as_str()
                .is_some_and(|s| xs.iter().any(|x| s.ends_with(&**x))),
            Matcher::Contains(xs) => v
                .as_str()
                .is_some_and(|s| xs.iter().any(|x| s.contains(&**x))),
            Matcher::Matches(res) => v
                .as_str()
                .is_some_and(|s| res.iter().any(|r| r.is_match(s))),
            Matcher::Numeric(op, xs) => match v {
                ValueRef::Number(n) => xs.iter().any(|x| match op {
                    NumOp::Lt => n < *x,
                    NumOp::Le => n <= *x,
                    NumOp::Gt => n > *x,
                    NumOp::Ge => n >= *x,
                }),
                _ => false,
            },
            Matcher::Before(ts) => {
                !ts.is_empty()
                    && timestamp::from_value(v).is_some_and(|t| ts.iter().any(|x| t < *x))
            }
            Matcher::After(ts) => {
                !ts.is_empty()
                    && timestamp::from_value(v).is_some_and(|t| ts.iter().any(|x| t > *x))
            }
            Matcher::SemVer(want, vs) => {
                !vs.is_empty()
                    && v.as_str().and_then(semver::parse).is_some_and(|sv| {
                        vs.iter().any(|x| semver::compare(sv, x.as_ref()) == *want)
                    })
            }
            Matcher::Never => false,
        }
    }
}

/// What a clause tests.
#[derive(Clone, Debug)]
pub(crate) enum ClauseTest {
    /// `segmentMatch` with the (string) segment keys.
    Segments(Box<[Box<str>]>),
    /// The attribute is `kind`: test the context's kind(s).
    Kind(Matcher),
    /// An attribute of the individual context of `kind`.
    Attr {
        kind: Box<str>,
        attr: AttrRef,
        matcher: Matcher,
    },
    /// An empty or invalid attribute reference: `MALFORMED_FLAG`.
    Invalid,
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledClause {
    pub(crate) negate: bool,
    pub(crate) test: ClauseTest,
}

impl CompiledClause {
    fn new(c: &Clause) -> CompiledClause {
        let test = if c.op == Operator::SegmentMatch {
            ClauseTest::Segments(strings(&c.values))
        } else {
            let attr = AttrRef::for_item(&c.attribute, has_kind(&c.context_kind));
            if !attr.is_valid() {
                ClauseTest::Invalid
            } else if c.attribute == "kind" {
                ClauseTest::Kind(Matcher::new(&c.op, &c.values))
            } else {
                ClauseTest::Attr {
                    kind: kind_or_user(&c.context_kind),
                    attr,
                    matcher: Matcher::new(&c.op, &c.values),
                }
            }
        };
        CompiledClause {
            negate: c.negate,
            test,
        }
    }
}

fn compile_clauses(clauses: &[Clause]) -> Box<[CompiledClause]> {
    clauses.iter().map(CompiledClause::new).collect()
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) clauses: Box<[CompiledClause]>,
    pub(crate) vr: CompiledVr,
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledPrereq {
    pub(crate) key: Box<str>,
    pub(crate) variation: i64,
}

/// A flag prepared for evaluation. Build one per flag version with [`CompiledFlag::compile`] and
/// share it (e.g. in an `Arc`); evaluation does no parsing and allocates nothing on its common
/// paths.
#[derive(Clone, Debug)]
pub struct CompiledFlag {
    source: Flag,
    pub(crate) prerequisites: Box<[CompiledPrereq]>,
    pub(crate) targets: Box<[CompiledTarget]>,
    pub(crate) rules: Box<[CompiledRule]>,
    pub(crate) fallthrough: CompiledVr,
}

impl CompiledFlag {
    /// Compiles a flag.
    pub fn compile(flag: Flag) -> CompiledFlag {
        let key = flag.key.as_str();
        let salt = flag.salt.as_str();
        let user_target = |t: &crate::model::Target| CompiledTarget {
            kind: kind_or_user(&t.context_kind),
            keys: KeySet::new(t.values.iter().map(String::as_str)),
            variation: t.variation,
        };
        let targets = if flag.context_targets.is_empty() {
            flag.targets.iter().map(user_target).collect()
        } else {
            // A user-kind context target without values stands for the `targets` entry of the same
            // variation (the first one).
            flag.context_targets
                .iter()
                .filter_map(|t| {
                    let user = !has_kind(&t.context_kind)
                        || t.context_kind.as_deref() == Some(DEFAULT_KIND);
                    if user && t.values.is_empty() {
                        flag.targets
                            .iter()
                            .find(|t1| t1.variation == t.variation)
                            .map(user_target)
                    } else {
                        Some(user_target(t))
                    }
                })
                .collect()
        };
        let rules = flag
            .rules
            .iter()
            .map(|r| CompiledRule {
                clauses: compile_clauses(&r.clauses),
                vr: CompiledVr::new(
                    &VariationOrRollout {
                        variation: r.variation,
                        rollout: r.rollout.clone(),
                    },
                    key,
                    salt,
                ),
            })
            .collect();
        let fallthrough = CompiledVr::new(&flag.fallthrough, key, salt);
        let prerequisites = flag
            .prerequisites
            .iter()
            .map(|p| CompiledPrereq {
                key: p.key.as_str().into(),
                variation: p.variation,
            })
            .collect();
        CompiledFlag {
            prerequisites,
            targets,
            rules,
            fallthrough,
            source: flag,
        }
    }

    /// The flag this was compiled from.
    pub fn flag(&self) -> &Flag {
        &self.source
    }

    /// The flag key.
    pub fn key(&self) -> &str {
        &self.source.key
    }

    /// The flag version.
    pub fn version(&self) -> u64 {
        self.source.version
    }

    /// True for a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.source.deleted
    }

    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.source.on
    }

    #[inline]
    pub(crate) fn variations(&self) -> &[Value] {
        &self.source.variations
    }

    #[inline]
    pub(crate) fn off_variation(&self) -> Option<i64> {
        self.source.off_variation
    }

    #[inline]
    pub(crate) fn rule_id(&self, i: usize) -> &str {
        &self.source.rules[i].id
    }

    /// Whether an evaluation with this reason should produce full events (the reason says it is
    /// in an experiment, or the legacy `trackEventsFallthrough` / rule `trackEvents` apply).
    pub fn is_experiment(&self, reason: &crate::reason::Reason<'_>) -> bool {
        use crate::reason::Reason;
        if reason.in_experiment() {
            return true;
        }
        match reason {
            Reason::Fallthrough { .. } => self.source.track_events_fallthrough,
            Reason::RuleMatch { rule_index, .. } => self
                .source
                .rules
                .get(*rule_index)
                .is_some_and(|r| r.track_events),
            _ => false,
        }
    }
}

impl From<Flag> for CompiledFlag {
    fn from(flag: Flag) -> Self {
        CompiledFlag::compile(flag)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledSegmentTarget {
    pub(crate) kind: Box<str>,
    pub(crate) keys: KeySet,
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledSegmentRule {
    pub(crate) clauses: Box<[CompiledClause]>,
    /// weight/100000 in f32.
    pub(crate) weight: Option<f32>,
    pub(crate) bucket_by: BucketBy,
    pub(crate) context_kind: Box<str>,
}

/// A segment prepared for evaluation (see [`CompiledFlag`]).
#[derive(Clone, Debug)]
pub struct CompiledSegment {
    source: Segment,
    pub(crate) included: KeySet,
    pub(crate) excluded: KeySet,
    pub(crate) included_contexts: Box<[CompiledSegmentTarget]>,
    pub(crate) excluded_contexts: Box<[CompiledSegmentTarget]>,
    pub(crate) rules: Box<[CompiledSegmentRule]>,
    pub(crate) prefix: BucketPrefix,
    pub(crate) unbounded_kind: Box<str>,
    pub(crate) big_segment_ref: Option<Box<str>>,
}

impl CompiledSegment {
    /// Compiles a segment.
    pub fn compile(segment: Segment) -> CompiledSegment {
        let targets = |ts: &[SegmentTarget]| {
            ts.iter()
                .map(|t| CompiledSegmentTarget {
                    kind: kind_or_user(&t.context_kind),
                    keys: KeySet::new(t.values.iter().map(String::as_str)),
                })
                .collect()
        };
        let rules = segment
            .rules
            .iter()
            .map(|r| CompiledSegmentRule {
                clauses: compile_clauses(&r.clauses),
                weight: r.weight.map(|w| w as f32 / 100_000.0),
                bucket_by: BucketBy::new(
                    r.bucket_by.as_deref(),
                    has_kind(&r.rollout_context_kind),
                    false,
                ),
                context_kind: kind_or_user(&r.rollout_context_kind),
            })
            .collect();
        CompiledSegment {
            included: KeySet::new(segment.included.iter().map(String::as_str)),
            excluded: KeySet::new(segment.excluded.iter().map(String::as_str)),
            included_contexts: targets(&segment.included_contexts),
            excluded_contexts: targets(&segment.excluded_contexts),
            rules,
            prefix: BucketPrefix::key_and_salt(&segment.key, &segment.salt),
            unbounded_kind: kind_or_user(&segment.unbounded_context_kind),
            big_segment_ref: segment
                .generation
                .map(|g| format!("{}.g{}", segment.key, g).into()),
            source: segment,
        }
    }

    /// The segment this was compiled from.
    pub fn segment(&self) -> &Segment {
        &self.source
    }

    /// The segment key.
    pub fn key(&self) -> &str {
        &self.source.key
    }

    /// The segment version.
    pub fn version(&self) -> u64 {
        self.source.version
    }

    /// True for a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.source.deleted
    }

    #[inline]
    pub(crate) fn unbounded(&self) -> bool {
        self.source.unbounded
    }
}

impl From<Segment> for CompiledSegment {
    fn from(segment: Segment) -> Self {
        CompiledSegment::compile(segment)
    }
}
