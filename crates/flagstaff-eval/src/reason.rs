//! Evaluation results: [`Detail`], [`Reason`], [`ErrorKind`].

use std::borrow::Cow;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Why an evaluation failed (`errorKind` of an `ERROR` reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No flag data yet.
    ClientNotReady,
    /// No flag with that key.
    FlagNotFound,
    /// Inconsistent flag data (bad variation index, empty rollout, bad attribute reference,
    /// prerequisite or segment cycle, …).
    MalformedFlag,
    /// Invalid or missing context.
    UserNotSpecified,
    /// The value is not of the type the caller asked for.
    WrongType,
    /// An unexpected error.
    Exception,
}

impl ErrorKind {
    /// The JSON name, e.g. `MALFORMED_FLAG`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::ClientNotReady => "CLIENT_NOT_READY",
            ErrorKind::FlagNotFound => "FLAG_NOT_FOUND",
            ErrorKind::MalformedFlag => "MALFORMED_FLAG",
            ErrorKind::UserNotSpecified => "USER_NOT_SPECIFIED",
            ErrorKind::WrongType => "WRONG_TYPE",
            ErrorKind::Exception => "EXCEPTION",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Big Segments status an evaluation saw (`bigSegmentsStatus` of the reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BigSegmentsStatus {
    /// Membership data was up to date.
    Healthy,
    /// Membership data may be out of date.
    Stale,
    /// The membership query failed.
    StoreError,
    /// No Big Segment store is configured (or the segment has no generation).
    NotConfigured,
}

impl BigSegmentsStatus {
    /// The JSON name, e.g. `NOT_CONFIGURED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BigSegmentsStatus::Healthy => "HEALTHY",
            BigSegmentsStatus::Stale => "STALE",
            BigSegmentsStatus::StoreError => "STORE_ERROR",
            BigSegmentsStatus::NotConfigured => "NOT_CONFIGURED",
        }
    }

    pub(crate) fn priority(&self) -> u8 {
        match self {
            BigSegmentsStatus::Healthy => 0,
            BigSegmentsStatus::Stale => 1,
            BigSegmentsStatus::StoreError => 2,
            BigSegmentsStatus::NotConfigured => 3,
        }
    }
}

/// Why a value was served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason<'a> {
    /// Targeting was off.
    Off,
    /// Nothing matched; the fallthrough was used.
    Fallthrough {
        /// An experiment bucketed the context (and the bucket was tracked).
        in_experiment: bool,
    },
    /// The context key was individually targeted.
    TargetMatch,
    /// A rule matched.
    RuleMatch {
        /// Index of the rule.
        rule_index: usize,
        /// The rule's `id` (left out of the JSON when empty).
        rule_id: Cow<'a, str>,
        /// An experiment bucketed the context (and the bucket was tracked).
        in_experiment: bool,
    },
    /// A prerequisite was off, missing, or returned another variation.
    PrerequisiteFailed {
        /// The prerequisite that failed.
        prerequisite_key: Cow<'a, str>,
    },
    /// The evaluation failed.
    Error {
        /// Why.
        error_kind: ErrorKind,
    },
}

impl Reason<'_> {
    /// The JSON `kind`, e.g. `RULE_MATCH`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Off => "OFF",
            Reason::Fallthrough { .. } => "FALLTHROUGH",
            Reason::TargetMatch => "TARGET_MATCH",
            Reason::RuleMatch { .. } => "RULE_MATCH",
            Reason::PrerequisiteFailed { .. } => "PREREQUISITE_FAILED",
            Reason::Error { .. } => "ERROR",
        }
    }

    /// True if an experiment put the context in a tracked bucket.
    pub fn in_experiment(&self) -> bool {
        matches!(
            self,
            Reason::Fallthrough {
                in_experiment: true
            } | Reason::RuleMatch {
                in_experiment: true,
                ..
            }
        )
    }

    /// An owned copy.
    pub fn into_owned(self) -> Reason<'static> {
        match self {
            Reason::Off => Reason::Off,
            Reason::Fallthrough { in_experiment } => Reason::Fallthrough { in_experiment },
            Reason::TargetMatch => Reason::TargetMatch,
            Reason::RuleMatch {
                rule_index,
                rule_id,
                in_experiment,
            } => Reason::RuleMatch {
                rule_index,
                rule_id: Cow::Owned(rule_id.into_owned()),
                in_experiment,
            },
            Reason::PrerequisiteFailed { prerequisite_key } => Reason::PrerequisiteFailed {
                prerequisite_key: Cow::Owned(prerequisite_key.into_owned()),
            },
            Reason::Error { error_kind } => Reason::Error { error_kind },
        }
    }

    fn write_fields<M: SerializeMap>(&self, m: &mut M) -> Result<(), M::Error> {
        m.serialize_entry("kind", self.kind())?;
        match self {
            Reason::Fallthrough { in_experiment } if *in_experiment => {
                m.serialize_entry("inExperiment", &true)?;
            }
            Reason::RuleMatch {
                rule_index,
                rule_id,
                in_experiment,
            } => {
                m.serialize_entry("ruleIndex", rule_index)?;
                if !rule_id.is_empty() {
                    m.serialize_entry("ruleId", rule_id)?;
                }
                if *in_experiment {
                    m.serialize_entry("inExperiment", &true)?;
                }
            }
            Reason::PrerequisiteFailed { prerequisite_key } => {
                m.serialize_entry("prerequisiteKey", prerequisite_key)?;
            }
            Reason::Error { error_kind } => m.serialize_entry("errorKind", error_kind.as_str())?,
            _ => {}
        }
        Ok(())
    }
}

impl Serialize for Reason<'_> {
    /// LaunchDarkly's reason JSON, e.g. `{"kind":"RULE_MATCH","ruleIndex":0,"ruleId":"r1"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        self.write_fields(&mut m)?;
        m.end()
    }
}

/// The result of an evaluation.
///
/// `value` and `variation_index` are `None` for errors, and for an off flag (or failed
/// prerequisite) without an off variation: the caller then serves its default (see
/// [`Detail::or_default`]). Values are borrowed from the flag when possible.
#[derive(Clone, Debug, PartialEq)]
pub struct Detail<'a> {
    /// The variation value.
    pub value: Option<Cow<'a, Value>>,
    /// The variation index.
    pub variation_index: Option<usize>,
    /// Why.
    pub reason: Reason<'a>,
    /// Set when the evaluation consulted a Big Segment.
    pub big_segments_status: Option<BigSegmentsStatus>,
}

impl<'a> Detail<'a> {
    /// An error result without a value.
    pub fn error(error_kind: ErrorKind) -> Detail<'a> {
        Detail {
            value: None,
            variation_index: None,
            reason: Reason::Error { error_kind },
            big_segments_status: None,
        }
    }

    /// The value, or `null`.
    pub fn value_or_null(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.value.as_deref().unwrap_or(&NULL)
    }

    /// SDK behaviour for the caller's default: with no value, serve `default` (no index; the
    /// reason is kept).
    pub fn or_default(mut self, default: Value) -> Detail<'a> {
        if self.value.is_none() {
            self.value = Some(Cow::Owned(default));
            self.variation_index = None;
        }
        self
    }

    /// An owned copy.
    pub fn into_owned(self) -> Detail<'static> {
        Detail {
            value: self.value.map(|v| Cow::Owned(v.into_owned())),
            variation_index: self.variation_index,
            reason: self.reason.into_owned(),
            big_segments_status: self.big_segments_status,
        }
    }

    /// The reason as JSON, including `bigSegmentsStatus` when set.
    pub fn reason_json(&self) -> Value {
        serde_json::to_value(ReasonWithStatus(self)).unwrap_or(Value::Null)
    }
}

struct ReasonWithStatus<'d, 'a>(&'d Detail<'a>);

impl Serialize for ReasonWithStatus<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        self.0.reason.write_fields(&mut m)?;
        if let Some(s) = self.0.big_segments_status {
            m.serialize_entry("bigSegmentsStatus", s.as_str())?;
        }
        m.end()
    }
}

impl Serialize for Detail<'_> {
    /// `{"value":…,"variationIndex":…,"reason":{…}}` (`variationIndex` left out when
    /// undefined, `value` null when undefined).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("value", self.value_or_null())?;
        if let Some(i) = self.variation_index {
            m.serialize_entry("variationIndex", &i)?;
        }
        m.serialize_entry("reason", &ReasonWithStatus(self))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reason_json() {
        let r = |r: Reason| serde_json::to_value(r).unwrap();
        assert_eq!(r(Reason::Off), json!({"kind":"OFF"}));
        assert_eq!(
            r(Reason::Fallthrough {
                in_experiment: true
            }),
            json!({"kind":"FALLTHROUGH","inExperiment":true})
        );
        assert_eq!(
            r(Reason::RuleMatch {
                rule_index: 2,
                rule_id: "".into(),
                in_experiment: false
            }),
            json!({"kind":"RULE_MATCH","ruleIndex":2})
        );
        assert_eq!(
            r(Reason::PrerequisiteFailed {
                prerequisite_key: "p".into()
            }),
            json!({"kind":"PREREQUISITE_FAILED","prerequisiteKey":"p"})
        );
        assert_eq!(
            r(Reason::Error {
                error_kind: ErrorKind::WrongType
            }),
            json!({"kind":"ERROR","errorKind":"WRONG_TYPE"})
        );
        let mut d = Detail::error(ErrorKind::MalformedFlag);
        d.big_segments_status = Some(BigSegmentsStatus::Stale);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"value":null,"reason":{"kind":"ERROR","errorKind":"MALFORMED_FLAG","bigSegmentsStatus":"STALE"}})
        );
    }
}
