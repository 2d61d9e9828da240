//! A borrowed, non-null view of an attribute value.

use serde_json::{Map, Value};

/// An attribute value as the evaluator sees it: never null (a JSON `null` attribute counts as
/// absent), and borrowed, so that built-in attributes such as `kind` and `key` need no
/// allocation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// A boolean.
    Bool(bool),
    /// A number (LaunchDarkly compares all numbers as float64).
    Number(f64),
    /// A string.
    Str(&'a str),
    /// A JSON array.
    Array(&'a [Value]),
    /// A JSON object.
    Object(&'a Map<String, Value>),
}

impl<'a> ValueRef<'a> {
    /// The view of a JSON value, or `None` for `null`.
    pub fn from_json(v: &'a Value) -> Option<ValueRef<'a>> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Number(n) => ValueRef::Number(n.as_f64()?),
            Value::String(s) => ValueRef::Str(s),
            Value::Array(a) => ValueRef::Array(a),
            Value::Object(o) => ValueRef::Object(o),
        })
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An owned JSON copy.
    pub fn to_json(&self) -> Value {
        match *self {
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Number(n) => {
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
            }
            ValueRef::Str(s) => Value::String(s.to_owned()),
            ValueRef::Array(a) => Value::Array(a.to_vec()),
            ValueRef::Object(o) => Value::Object(o.clone()),
        }
    }
}

/// JSON equality with numbers compared by value (`1 == 1.0`), as LaunchDarkly's JSON values do.
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
