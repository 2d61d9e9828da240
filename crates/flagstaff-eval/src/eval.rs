//! The evaluator.
//!
//! Order (LaunchDarkly's): off → prerequisites → individual targets → rules → fallthrough.
//!
//! - A flag that is off serves its off variation (`OFF`).
//! - Each prerequisite flag is evaluated in turn (recursively); if it is missing, off, or does
//!   not return the required variation, the off variation is served with
//!   `PREREQUISITE_FAILED`. A prerequisite cycle, or a malformed clause anywhere below, fails
//!   the whole evaluation with `MALFORMED_FLAG`; a prerequisite whose own result is merely an
//!   error (e.g. a bad variation index) counts as a failed prerequisite.
//! - Targets, then rules in order, then the fallthrough; variation indexes out of range, empty
//!   rollouts, bad attribute references and segment cycles give `MALFORMED_FLAG`.
//!
//! Prerequisite and segment chains are also bounded to [`MAX_DEPTH`] levels.

use std::borrow::Cow;
use std::sync::Arc;

use crate::bucket::{self, BucketFailure, BucketPrefix};
use crate::compile::{ClauseTest, CompiledClause, CompiledFlag, CompiledSegment, CompiledVr};
use crate::context::Context;
use crate::reason::{BigSegmentsStatus, Detail, ErrorKind, Reason};
use crate::value::ValueRef;

/// Deepest prerequisite chain, and deepest chain of nested `segmentMatch`, evaluated before an
/// evaluation fails with `MALFORMED_FLAG` (cycles are detected at any depth).
pub const MAX_DEPTH: usize = 64;

/// Where the evaluator finds prerequisite flags and segments.
///
/// Implementations must not return deleted items (tombstones); the evaluator also treats a
/// returned item whose `deleted` is true as missing.
pub trait Store {
    /// The flag with this key.
    fn flag(&self, key: &str) -> Option<&CompiledFlag>;
    /// The segment with this key.
    fn segment(&self, key: &str) -> Option<&CompiledSegment>;
    /// The Big Segment membership source, if Big Segments are configured.
    fn big_segments(&self) -> Option<&dyn BigSegmentProvider> {
        None
    }
}

impl<T: Store + ?Sized> Store for &T {
    fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        (**self).flag(key)
    }
    fn segment(&self, key: &str) -> Option<&CompiledSegment> {
        (**self).segment(key)
    }
    fn big_segments(&self) -> Option<&dyn BigSegmentProvider> {
        (**self).big_segments()
    }
}

impl<T: Store + ?Sized> Store for Arc<T> {
    fn flag(&self, key: &str) -> Option<&CompiledFlag> {
        (**self).flag(key)
    }
    fn segment(&self, key: &str) -> Option<&CompiledSegment> {
        (**self).segment(key)
    }
    fn big_segments(&self) -> Option<&dyn BigSegmentProvider> {
        (**self).big_segments()
    }
}

/// A store with no flags or segments.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmptyStore;

impl Store for EmptyStore {
    fn flag(&self, _: &str) -> Option<&CompiledFlag> {
        None
    }
    fn segment(&self, _: &str) -> Option<&CompiledSegment> {
        None
    }
}

/// The Big Segment memberships of one context key.
pub trait BigSegmentMembership: Send + Sync {
    /// `Some(true)` if included in the segment `<segmentKey>.g<generation>`, `Some(false)` if
    /// excluded, `None` if unknown (the segment's rules then decide).
    fn check(&self, segment_ref: &str) -> Option<bool>;
}

/// The result of a Big Segment membership query.
pub struct BigSegmentQuery {
    /// The memberships, if the query succeeded.
    pub membership: Option<Arc<dyn BigSegmentMembership>>,
    /// The store's status.
    pub status: BigSegmentsStatus,
}

/// Queries Big Segment membership by context key (queried once per key per evaluation).
pub trait BigSegmentProvider {
    /// The memberships of `context_key`.
    fn membership(&self, context_key: &str) -> BigSegmentQuery;
}

/// A prerequisite evaluation, reported for analytics ("prerequisite" feature events).
#[derive(Clone, Debug)]
pub struct PrerequisiteEvent<'a> {
    /// The flag whose prerequisite this is.
    pub prerequisite_of: &'a str,
    /// The prerequisite flag.
    pub flag: &'a CompiledFlag,
    /// Its result.
    pub detail: Detail<'a>,
}

/// Receives [`PrerequisiteEvent`]s.
pub trait PrerequisiteRecorder<'a> {
    /// Records one event.
    fn record(&mut self, event: PrerequisiteEvent<'a>);
}

impl<'a> PrerequisiteRecorder<'a> for Vec<PrerequisiteEvent<'a>> {
    fn record(&mut self, event: PrerequisiteEvent<'a>) {
        self.push(event);
    }
}

impl<'a, F: FnMut(PrerequisiteEvent<'a>)> PrerequisiteRecorder<'a> for F {
    fn record(&mut self, event: PrerequisiteEvent<'a>) {
        self(event)
    }
}

struct NoRecorder;

impl<'a> PrerequisiteRecorder<'a> for NoRecorder {
    #[inline]
    fn record(&mut self, _: PrerequisiteEvent<'a>) {}
}

/// Evaluates `flag` for `context`, resolving prerequisites and segments from `store`.
///
/// The result borrows variation values from the flags; use [`Detail::into_owned`] to keep it,
/// and [`Detail::or_default`] to apply the caller's default.
pub fn evaluate<'a, S: Store + ?Sized>(
    flag: &'a CompiledFlag,
    context: &Context,
    store: &'a S,
) -> Detail<'a> {
    evaluate_with_recorder(flag, context, store, &mut NoRecorder)
}

/// [`evaluate`], reporting every prerequisite evaluation to `recorder`.
pub fn evaluate_with_recorder<'a, S: Store + ?Sized, R: PrerequisiteRecorder<'a> + ?Sized>(
    flag: &'a CompiledFlag,
    context: &Context,
    store: &'a S,
    recorder: &mut R,
) -> Detail<'a> {
    let mut ev = Evaluation {
        store,
        context,
        recorder,
        big: None,
        big_status: None,
    };
    let (mut detail, _) = ev.flag(flag, None);
    detail.big_segments_status = ev.big_status;
    detail
}

/// Evaluates the flag `key` from `store`: `FLAG_NOT_FOUND` if it is missing or deleted.
pub fn evaluate_key<'a, S: Store + ?Sized>(
    store: &'a S,
    key: &str,
    context: &Context,
) -> Detail<'a> {
    match store.flag(key) {
        Some(flag) if !flag.is_deleted() => evaluate(flag, context, store),
        _ => Detail::error(ErrorKind::FlagNotFound),
    }
}

/// The keys being evaluated above this point (prerequisite flags, or nested segments), as a
/// linked list through the evaluator's stack frames: no allocation, no setup cost.
#[derive(Clone, Copy)]
struct Chain<'a, 'p> {
    key: &'a str,
    depth: usize,
    parent: Option<&'p Chain<'a, 'p>>,
}

impl<'a, 'p> Chain<'a, 'p> {
    fn push(parent: Option<&'p Chain<'a, 'p>>, key: &'a str) -> Chain<'a, 'p> {
        Chain {
            key,
            depth: parent.map_or(1, |p| p.depth + 1),
            parent,
        }
    }

    fn contains(chain: Option<&Chain<'_, '_>>, key: &str) -> bool {
        let mut link = chain;
        while let Some(l) = link {
            if l.key == key {
                return true;
            }
            link = l.parent;
        }
        false
    }

    fn depth(chain: Option<&Chain<'_, '_>>) -> usize {
        chain.map_or(0, |c| c.depth)
    }
}

/// The evaluation failed in a way that fails every enclosing evaluation (`MALFORMED_FLAG`).
struct Malformed;

enum Prereqs<'a> {
    Ok,
    Failed(&'a str),
    Malformed,
}

struct BigState {
    memberships: Vec<(String, Option<Arc<dyn BigSegmentMembership>>)>,
}

struct Evaluation<'a, 'c, S: ?Sized, R: ?Sized> {
    store: &'a S,
    context: &'c Context,
    recorder: &'c mut R,
    big: Option<BigState>,
    big_status: Option<BigSegmentsStatus>,
}

#[inline]
fn variation<'a>(flag: &'a CompiledFlag, index: i64, reason: Reason<'a>) -> Detail<'a> {
    match usize::try_from(index)
        .ok()
        .and_then(|i| Some((i, flag.variations().get(i)?)))
    {
        Some((i, v)) => Detail {
            value: Some(Cow::Borrowed(v)),
            variation_index: Some(i),
            reason,
            big_segments_status: None,
        },
        None => Detail::error(ErrorKind::MalformedFlag),
    }
}

#[inline]
fn off_value<'a>(flag: &'a CompiledFlag, reason: Reason<'a>) -> Detail<'a> {
    match flag.off_variation() {
        Some(i) => variation(flag, i, reason),
        None => Detail {
            value: None,
            variation_index: None,
            reason,
            big_segments_status: None,
        },
    }
}

impl<'a, S: Store + ?Sized, R: PrerequisiteRecorder<'a> + ?Sized> Evaluation<'a, '_, S, R> {
    /// Evaluates one flag. The flag is `false` when the whole evaluation must fail.
    fn flag(
        &mut self,
        flag: &'a CompiledFlag,
        prerequisite_of: Option<&Chain<'a, '_>>,
    ) -> (Detail<'a>, bool) {
        if !flag.on() {
            return (off_value(flag, Reason::Off), true);
        }
        if !flag.prerequisites.is_empty() {
            if Chain::depth(prerequisite_of) >= MAX_DEPTH {
                return (Detail::error(ErrorKind::MalformedFlag), false);
            }
            let chain = Chain::push(prerequisite_of, flag.key());
            match self.prerequisites(flag, &chain) {
                Prereqs::Ok => {}
                Prereqs::Failed(key) => {
                    let reason = Reason::PrerequisiteFailed {
                        prerequisite_key: Cow::Borrowed(key),
                    };
                    return (off_value(flag, reason), true);
                }
                Prereqs::Malformed => return (Detail::error(ErrorKind::MalformedFlag), false),
            }
        }
        if let Some(v) = self.target_match(flag) {
            return (variation(flag, v, Reason::TargetMatch), true);
        }
        for (i, rule) in flag.rules.iter().enumerate() {
            match self.all_match(&rule.clauses, None) {
                Err(Malformed) => return (Detail::error(ErrorKind::MalformedFlag), false),
                Ok(true) => return (self.variation_or_rollout(flag, &rule.vr, Some(i)), true),
                Ok(false) => {}
            }
        }
        (
            self.variation_or_rollout(flag, &flag.fallthrough, None),
            true,
        )
    }

    fn prerequisites(&mut self, flag: &'a CompiledFlag, chain: &Chain<'a, '_>) -> Prereqs<'a> {
        for p in flag.prerequisites.iter() {
            let Some(pf) = self.store.flag(&p.key).filter(|f| !f.is_deleted()) else {
                return Prereqs::Failed(&p.key);
            };
            if Chain::contains(Some(chain), pf.key()) {
                return Prereqs::Malformed;
            }
            let (detail, ok) = self.flag(pf, Some(chain));
            if !ok {
                return Prereqs::Malformed;
            }
            let passed = pf.on()
                && detail
                    .variation_index
                    .is_some_and(|i| i64::try_from(i) == Ok(p.variation));
            self.recorder.record(PrerequisiteEvent {
                prerequisite_of: flag.key(),
                flag: pf,
                detail,
            });
            if !passed {
                return Prereqs::Failed(&p.key);
            }
        }
        Prereqs::Ok
    }

    #[inline]
    fn target_match(&self, flag: &'a CompiledFlag) -> Option<i64> {
        flag.targets.iter().find_map(|t| {
            let c = self.context.individual(&t.kind)?;
            t.keys.contains(c.key()).then_some(t.variation)
        })
    }

    /// The result of a rule's (`Some(index)`) or the fallthrough's (`None`) variation or
    /// rollout.
    #[inline]
    fn variation_or_rollout(
        &mut self,
        flag: &'a CompiledFlag,
        vr: &'a CompiledVr,
        rule: Option<usize>,
    ) -> Detail<'a> {
        let (index, in_experiment) = match vr {
            CompiledVr::Variation(v) => (*v, false),
            CompiledVr::Malformed => return Detail::error(ErrorKind::MalformedFlag),
            CompiledVr::Rollout(r) => {
                let Ok((bucket, failure)) =
                    bucket::bucket_context(self.context, &r.prefix, &r.context_kind, &r.bucket_by)
                else {
                    return Detail::error(ErrorKind::MalformedFlag);
                };
                match r.buckets.iter().find(|b| bucket < b.end) {
                    Some(b) => (
                        b.variation,
                        r.experiment
                            && !b.untracked
                            && failure != Some(BucketFailure::ContextLacksKind),
                    ),
                    None => {
                        let last = r.buckets.last().expect("rollouts have buckets");
                        (last.variation, r.experiment && !last.untracked)
                    }
                }
            }
        };
        let reason = match rule {
            None => Reason::Fallthrough { in_experiment },
            Some(i) => Reason::RuleMatch {
                rule_index: i,
                rule_id: Cow::Borrowed(flag.rule_id(i)),
                in_experiment,
            },
        };
        variation(flag, index, reason)
    }

    #[inline]
    fn all_match(
        &mut self,
        clauses: &'a [CompiledClause],
        segments: Option<&Chain<'a, '_>>,
    ) -> Result<bool, Malformed> {
        for c in clauses {
            if !self.clause(c, segments)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn clause(
        &mut self,
        c: &'a CompiledClause,
        segments: Option<&Chain<'a, '_>>,
    ) -> Result<bool, Malformed> {
        match &c.test {
            ClauseTest::Attr {
                kind,
                attr,
                matcher,
            } => {
                let Some(ctx) = self.context.individual(kind) else {
                    return Ok(false);
                };
                let matched = match ctx.get_value(attr) {
                    None => return Ok(false),
                    Some(ValueRef::Array(items)) => items
                        .iter()
                        .filter_map(ValueRef::from_json)
                        .any(|v| matcher.matches(v)),
                    Some(v) => matcher.matches(v),
                };
                Ok(matched != c.negate)
            }
            ClauseTest::Kind(matcher) => {
                let matched = self
                    .context
                    .contexts()
                    .iter()
                    .any(|ctx| matcher.matches(ValueRef::Str(ctx.kind())));
                Ok(matched != c.negate)
            }
            ClauseTest::Segments(keys) => {
                for key in keys.iter() {
                    if let Some(seg) = self.store.segment(key).filter(|s| !s.is_deleted())
                        && self.segment_contains(seg, segments)?
                    {
                        return Ok(!c.negate);
                    }
                }
                Ok(c.negate)
            }
            ClauseTest::Invalid => Err(Malformed),
        }
    }

    fn segment_contains(
        &mut self,
        seg: &'a CompiledSegment,
        segments: Option<&Chain<'a, '_>>,
    ) -> Result<bool, Malformed> {
        if Chain::contains(segments, seg.key()) || Chain::depth(segments) >= MAX_DEPTH {
            return Err(Malformed);
        }
        let chain = Chain::push(segments, seg.key());
        self.segment_contains_inner(seg, &chain)
    }

    fn segment_contains_inner(
        &mut self,
        seg: &'a CompiledSegment,
        chain: &Chain<'a, '_>,
    ) -> Result<bool, Malformed> {
        if seg.unbounded() {
            match self.big_segment_membership(seg) {
                BigSegment::Decided(member) => return Ok(member),
                BigSegment::NotQueryable => return Ok(false),
                BigSegment::Unknown => {}
            }
        } else {
            let ctx = self.context;
            let user_key = ctx.individual("").map(|c| c.key());
            let only_user = ctx.kind() == crate::context::DEFAULT_KIND;
            let in_targets = |targets: &[crate::compile::CompiledSegmentTarget]| {
                targets.iter().any(|t| {
                    ctx.individual(&t.kind)
                        .is_some_and(|c| t.keys.contains(c.key()))
                })
            };
            if user_key.is_some_and(|k| seg.included.contains(k)) {
                return Ok(true);
            }
            if !only_user && in_targets(&seg.included_contexts) {
                return Ok(true);
            }
            if user_key.is_some_and(|k| seg.excluded.contains(k)) {
                return Ok(false);
            }
            if !only_user && in_targets(&seg.excluded_contexts) {
                return Ok(false);
            }
        }
        for rule in seg.rules.iter() {
            if !self.all_match(&rule.clauses, Some(chain))? {
                continue;
            }
            let Some(weight) = rule.weight else {
                return Ok(true);
            };
            let (bucket, failure) = bucket::bucket_context(
                self.context,
                &seg.prefix,
                &rule.context_kind,
                &rule.bucket_by,
            )
            .map_err(|_| Malformed)?;
            if failure == Some(BucketFailure::ContextLacksKind) {
                continue;
            }
            if bucket < weight {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// What the Big Segment store says about the context.
    fn big_segment_membership(&mut self, seg: &'a CompiledSegment) -> BigSegment {
        let Some(seg_ref) = seg.big_segment_ref.as_deref() else {
            // Without a generation the segment cannot be queried.
            self.big_status = Some(BigSegmentsStatus::NotConfigured);
            return BigSegment::NotQueryable;
        };
        let Some(key) = self
            .context
            .individual(&seg.unbounded_kind)
            .map(|c| c.key())
        else {
            return BigSegment::NotQueryable;
        };
        let state = self.big.get_or_insert_with(|| BigState {
            memberships: Vec::new(),
        });
        let membership = match state.memberships.iter().find(|(k, _)| k == key) {
            Some((_, m)) => m.clone(),
            None => {
                let m = match self.store.big_segments() {
                    None => {
                        self.big_status = Some(BigSegmentsStatus::NotConfigured);
                        None
                    }
                    Some(provider) => {
                        let q = provider.membership(key);
                        // Report the most serious status seen.
                        self.big_status = Some(match self.big_status {
                            Some(old) if old.priority() > q.status.priority() => old,
                            _ => q.status,
                        });
                        q.membership
                    }
                };
                state.memberships.push((key.to_owned(), m.clone()));
                m
            }
        };
        match membership.and_then(|m| m.check(seg_ref)) {
            Some(member) => BigSegment::Decided(member),
            None => BigSegment::Unknown,
        }
    }
}

enum BigSegment {
    /// Included (true) or excluded (false) by the store.
    Decided(bool),
    /// Unknown to the store: the segment's rules decide.
    Unknown,
    /// No generation, or the context lacks the segment's kind: not a member.
    NotQueryable,
}

const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<BucketPrefix>();
    check::<CompiledFlag>();
    check::<CompiledSegment>();
    check::<crate::InMemoryStore>();
};
