//! Typed variations (`boolVariation`, `intVariation`, …) as strongly-typed SDKs implement them.

use std::borrow::Cow;

use serde_json::Value;

use crate::reason::{Detail, ErrorKind, Reason};

/// The type an SDK caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// A boolean.
    Bool,
    /// A number, served as an integer (truncated).
    Int,
    /// A number.
    Double,
    /// A string.
    String,
    /// Any JSON value.
    Any,
}

impl ValueType {
    /// Parses the SDK test harness's names (`bool`, `int`, `double`, `string`, `any`).
    pub fn parse(s: &str) -> Option<ValueType> {
        Some(match s {
            "bool" => ValueType::Bool,
            "int" => ValueType::Int,
            "double" => ValueType::Double,
            "string" => ValueType::String,
            "any" => ValueType::Any,
            _ => return None,
        })
    }

    /// Whether a value has this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ValueType::Bool => v.is_boolean(),
            ValueType::Int | ValueType::Double => v.is_number(),
            ValueType::String => v.is_string(),
            ValueType::Any => true,
        }
    }
}

impl<'a> Detail<'a> {
    /// SDK semantics for a typed variation with the caller's `default`: no value serves the
    /// default (reason kept); a value of another type serves the default with
    /// `ERROR`/`WRONG_TYPE`; an `Int` is truncated to an integer.
    pub fn typed(self, value_type: ValueType, default: Value) -> Detail<'a> {
        let Some(value) = &self.value else {
            return self.or_default(default);
        };
        if !value_type.accepts(value) {
            return Detail {
                value: Some(Cow::Owned(default)),
                variation_index: None,
                reason: Reason::Error {
                    error_kind: ErrorKind::WrongType,
                },
                big_segments_status: self.big_segments_status,
            };
        }
        if value_type == ValueType::Int
            && let Some(f) = value.as_f64()
            && !value.is_i64()
            && !value.is_u64()
        {
            let truncated = Value::from(f.trunc() as i64);
            return Detail {
                value: Some(Cow::Owned(truncated)),
                ..self
            };
        }
        self
    }
}
