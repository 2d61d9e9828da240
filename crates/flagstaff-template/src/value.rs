//! Runtime values and their JavaScript (handlebars.js) and Go (raymond) conversions.
//!
//! Rendering never clones the context: values borrow from it (`Val<'a>`), and only helper
//! results own their strings.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Nesting limit for value conversions (array joins, Go map printing).
const MAX_VALUE_DEPTH: usize = 256;

/// A value as a template sees it while rendering. Strings made while rendering (helper
/// results) live in the render's arena, so every variant borrows and `Val` is `Copy`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    /// JavaScript `undefined`: a missing property.
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(&'a str),
    Arr(&'a [Value]),
    Obj(&'a Map<String, Value>),
    /// handlebars.js `container.nullContext`, the `this` of a helper called on a null context.
    NullCtx,
    /// A data frame (`@_parent`), by index into the renderer's frame stack.
    Frame(usize),
    /// The `options` object handlebars.js passes as the last helper argument.
    Options,
}

/// A JavaScript exception raised while evaluating (position is added by the renderer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsError {
    pub kind: crate::TemplateErrorKind,
    pub message: String,
}

impl JsError {
    pub(crate) fn render(message: impl Into<String>) -> JsError {
        JsError {
            kind: crate::TemplateErrorKind::Render,
            message: message.into(),
        }
    }

    pub(crate) fn missing(message: impl Into<String>) -> JsError {
        JsError {
            kind: crate::TemplateErrorKind::MissingPath,
            message: message.into(),
        }
    }
}

pub(crate) const CANNOT_CONVERT: &str = "Cannot convert object to primitive value";

impl<'a> Val<'a> {
    #[inline]
    pub(crate) fn from_json(value: &'a Value) -> Val<'a> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => Val::Num(number_to_f64(n)),
            Value::String(s) => Val::Str(s),
            Value::Array(a) => Val::Arr(a),
            Value::Object(o) => Val::Obj(o),
        }
    }

    #[inline]
    pub(crate) fn is_nullish(&self) -> bool {
        matches!(self, Val::Undef | Val::Null)
    }

    #[inline]
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// JavaScript `typeof v === 'object'` (and not null), i.e. not a primitive.
    #[inline]
    pub(crate) fn is_object_like(&self) -> bool {
        matches!(
            self,
            Val::Arr(_) | Val::Obj(_) | Val::NullCtx | Val::Frame(_) | Val::Options
        )
    }

    /// JavaScript truthiness.
    #[inline]
    pub(crate) fn js_truthy(&self) -> bool {
        match self {
            Val::Undef | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => !(*n == 0.0 || n.is_nan()),
            Val::Str(s) => !s.is_empty(),
            Val::Arr(_) | Val::Obj(_) | Val::NullCtx | Val::Frame(_) | Val::Options => true,
        }
    }

    /// handlebars.js `Utils.isEmpty`: falsy but not `0`, or an empty array.
    #[inline]
    pub(crate) fn js_is_empty(&self) -> bool {
        match self {
            Val::Num(n) if *n == 0.0 => false,
            Val::Arr(a) => a.is_empty(),
            other => !other.js_truthy(),
        }
    }

    /// raymond `IsTrue`: empty strings, arrays and maps, zero numbers, false and nil are false.
    #[inline]
    pub(crate) fn go_truthy(&self) -> bool {
        match self {
            Val::Undef | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Arr(a) => !a.is_empty(),
            Val::Obj(o) => !o.is_empty(),
            Val::NullCtx => false,
            Val::Frame(_) | Val::Options => true,
        }
    }

    /// JavaScript `===`.
    #[inline]
    pub(crate) fn strict_eq(&self, other: &Val<'_>) -> bool {
        match (self, other) {
            (Val::Undef, Val::Undef) | (Val::Null, Val::Null) => true,
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Num(a), Val::Num(b)) => a == b,
            (Val::Arr(a), Val::Arr(b)) => std::ptr::eq(*a, *b),
            (Val::Obj(a), Val::Obj(b)) => std::ptr::eq(*a, *b),
            (Val::NullCtx, Val::NullCtx) | (Val::Options, Val::Options) => true,
            (Val::Frame(a), Val::Frame(b)) => a == b,
            (Val::Str(a), Val::Str(b)) => a == b,
            _ => false,
        }
    }

    /// Converts to a JSON value for helper extensions (`None` for `undefined`).
    pub(crate) fn to_json(self) -> Option<Value> {
        Some(match self {
            Val::Undef => return None,
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Num(n) => number_from_f64(n),
            Val::Str(s) => Value::String(s.to_owned()),
            Val::Arr(a) => Value::Array(a.to_vec()),
            Val::Obj(o) => Value::Object(o.clone()),
            Val::NullCtx | Val::Frame(_) | Val::Options => Value::Object(Map::new()),
        })
    }
}

/// A JSON number as JavaScript sees it (a double).
#[inline]
pub(crate) fn number_to_f64(n: &serde_json::Number) -> f64 {
    if let Some(i) = n.as_i64() {
        i as f64
    } else if let Some(u) = n.as_u64() {
        u as f64
    } else {
        n.as_f64().unwrap_or(f64::NAN)
    }
}

/// A double as JSON (integers stay integers; NaN and infinities become null, like JSON.stringify).
pub(crate) fn number_from_f64(n: f64) -> Value {
    if n.is_finite() && n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

/// A JavaScript primitive (the result of `ToPrimitive`).
#[derive(Debug, Clone)]
pub(crate) enum Prim<'v> {
    Undef,
    Null,
    Bool(bool),
    Num(f64),
    Str(std::borrow::Cow<'v, str>),
}

impl Prim<'_> {
    pub(crate) fn to_number(&self) -> f64 {
        match self {
            Prim::Undef => f64::NAN,
            Prim::Null => 0.0,
            Prim::Bool(b) => f64::from(u8::from(*b)),
            Prim::Num(n) => *n,
            Prim::Str(s) => string_to_number(s),
        }
    }
}

/// JavaScript `ToPrimitive` (objects become their `toString()`).
pub(crate) fn to_primitive<'v>(v: &'v Val<'_>) -> Result<Prim<'v>, JsError> {
    Ok(match v {
        Val::Undef => Prim::Undef,
        Val::Null => Prim::Null,
        Val::Bool(b) => Prim::Bool(*b),
        Val::Num(n) => Prim::Num(*n),
        Val::Str(s) => Prim::Str((*s).into()),
        _ => {
            let mut s = String::new();
            write_js_string(v, &mut s)?;
            Prim::Str(s.into())
        }
    })
}

/// JavaScript `String(v)` appended to `out`.
pub(crate) fn write_js_string(v: &Val<'_>, out: &mut String) -> Result<(), JsError> {
    match v {
        Val::Undef => out.push_str("undefined"),
        Val::Null => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Num(n) => write_js_number(*n, out),
        Val::Str(s) => out.push_str(s),
        Val::Arr(a) => write_js_join(a, out, 0)?,
        Val::Obj(o) => {
            if o.contains_key("toString") {
                return Err(JsError::render(CANNOT_CONVERT));
            }
            out.push_str("[object Object]");
        }
        Val::NullCtx | Val::Frame(_) | Val::Options => out.push_str("[object Object]"),
    }
    Ok(())
}

pub(crate) fn js_string(v: &Val<'_>) -> Result<String, JsError> {
    let mut s = String::new();
    write_js_string(v, &mut s)?;
    Ok(s)
}

/// `Array.prototype.join(',')` (null and undefined elements are empty).
fn write_js_join(items: &[Value], out: &mut String, depth: usize) -> Result<(), JsError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(JsError::render("Maximum call stack size exceeded"));
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => {}
            Value::Array(inner) => write_js_join(inner, out, depth + 1)?,
            other => write_js_string(&Val::from_json(other), out)?,
        }
    }
    Ok(())
}

/// JavaScript `Number.prototype.toString()`.
pub(crate) fn write_js_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("NaN");
        return;
    }
    if n.is_infinite() {
        out.push_str(if n < 0.0 { "-Infinity" } else { "Infinity" });
        return;
    }
    if n == 0.0 {
        out.push('0');
        return;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        let _ = write!(out, "{}", n as i64);
        return;
    }
    let (negative, digits, exponent) = shortest_digits(n);
    if negative {
        out.push('-');
    }
    let k = digits.len() as i32;
    let point = exponent + 1; // the decimal point sits after `point` digits
    let digits = &digits[..];
    if k <= point && point <= 21 {
        out.push_str(digits);
        for _ in 0..(point - k) {
            out.push('0');
        }
    } else if 0 < point && point <= 21 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else if -6 < point && point <= 0 {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = point - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        let _ = write!(out, "{}", e.abs());
    }
}

/// Shortest round-trip decimal digits of a finite non-zero double: (negative, digits, exponent)
/// with value = 0.d1d2d3... × 10^(exponent + 1).
fn shortest_digits(n: f64) -> (bool, String, i32) {
    let formatted = format!("{:e}", n.abs());
    let (mantissa, exponent) = formatted
        .split_once('e')
        .unwrap_or((formatted.as_str(), "0"));
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let exponent = exponent.parse::<i32>().unwrap_or(0);
    (n < 0.0, digits, exponent)
}

/// Go `strconv.FormatFloat(f, 'f', -1, 64)` (raymond prints numbers this way).
pub(crate) fn write_go_number(n: f64, out: &mut String) {
    if n.is_nan() {
        out.push_str("NaN");
        return;
    }
    if n.is_infinite() {
        out.push_str(if n < 0.0 { "-Inf" } else { "+Inf" });
        return;
    }
    if n == 0.0 {
        out.push_str(if n.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        let _ = write!(out, "{}", n as i64);
        return;
    }
    let (negative, digits, exponent) = shortest_digits(n);
    if negative {
        out.push('-');
    }
    let k = digits.len() as i32;
    let point = exponent + 1;
    if point >= k {
        out.push_str(&digits);
        for _ in 0..(point - k) {
            out.push('0');
        }
    } else if point > 0 {
        out.push_str(&digits[..point as usize]);
        out.push('.');
        out.push_str(&digits[point as usize..]);
    } else {
        out.push_str("0.");
        for _ in 0..(-point) {
            out.push('0');
        }
        out.push_str(&digits);
    }
}

/// Go `%v` of a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`), used inside `%!s(float64=…)`.
fn write_go_float_v(n: f64, out: &mut String) {
    if !n.is_finite() || n == 0.0 {
        write_go_number(n, out);
        return;
    }
    let (negative, digits, exponent) = shortest_digits(n);
    if !(-4..6).contains(&exponent) {
        if negative {
            out.push('-');
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exponent.abs());
    } else {
        write_go_number(n, out);
    }
}

/// raymond `Str(v)`: how Go renders a value.
pub(crate) fn write_go_string(v: &Val<'_>, out: &mut String) {
    write_go_string_at(v, out, 0);
}

fn write_go_string_at(v: &Val<'_>, out: &mut String, depth: usize) {
    match v {
        Val::Undef | Val::Null => {}
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Num(n) => write_go_number(*n, out),
        Val::Str(s) => out.push_str(s),
        Val::Arr(a) => {
            if depth > MAX_VALUE_DEPTH {
                return;
            }
            for item in a.iter() {
                write_go_string_at(&Val::from_json(item), out, depth + 1);
            }
        }
        Val::Obj(o) => write_go_map(o, out, depth),
        Val::NullCtx => out.push_str("map[]"),
        Val::Frame(_) | Val::Options => out.push_str("[object Object]"),
    }
}

/// Go `fmt.Sprintf("%s", map[string]interface{})`.
fn write_go_map(map: &Map<String, Value>, out: &mut String, depth: usize) {
    if depth > MAX_VALUE_DEPTH {
        out.push_str("map[...]");
        return;
    }
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push_str("map[");
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push(':');
        if let Some(value) = map.get(key) {
            write_go_fmt_s(value, out, depth + 1);
        }
    }
    out.push(']');
}

/// Go `%s` of an `interface{}` holding a decoded JSON value.
fn write_go_fmt_s(value: &Value, out: &mut String, depth: usize) {
    match value {
        Value::Null => out.push_str("%!s(<nil>)"),
        Value::Bool(b) => {
            out.push_str("%!s(bool=");
            out.push_str(if *b { "true" } else { "false" });
            out.push(')');
        }
        Value::Number(n) => {
            out.push_str("%!s(float64=");
            write_go_float_v(number_to_f64(n), out);
            out.push(')');
        }
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if depth > MAX_VALUE_DEPTH {
                    out.push_str("...");
                    break;
                }
                write_go_fmt_s(item, out, depth + 1);
            }
            out.push(']');
        }
        Value::Object(map) => write_go_map(map, out, depth),
    }
}

/// JavaScript whitespace and line terminators (`\s` in a JavaScript regular expression).
#[inline]
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JavaScript `StringToNumber` (`Number("…")`).
pub(crate) fn string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_space);
    if t.is_empty() {
        return 0.0;
    }
    let bytes = t.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let radix = match bytes[1] {
            b'x' | b'X' => 16,
            b'o' | b'O' => 8,
            b'b' | b'B' => 2,
            _ => 0,
        };
        if radix != 0 {
            let mut value = 0.0f64;
            for &b in &bytes[2..] {
                match (b as char).to_digit(radix) {
                    Some(d) => value = value * f64::from(radix) + f64::from(d),
                    None => return f64::NAN,
                }
            }
            return value;
        }
    }
    let (sign, rest) = match bytes[0] {
        b'+' => (1.0, &t[1..]),
        b'-' => (-1.0, &t[1..]),
        _ => (1.0, t),
    };
    if rest == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(rest.as_bytes()) {
        return f64::NAN;
    }
    rest.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// `StrUnsignedDecimalLiteral`: digits [. digits] | . digits, then an optional exponent.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// `CanonicalNumericIndexString` for arrays: "0", "1", … below 2^32 - 1, no leading zeros.
pub(crate) fn array_index(name: &str) -> Option<u32> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 10 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v: u64 = name.parse().ok()?;
    if v < 4_294_967_295 {
        Some(v as u32)
    } else {
        None
    }
}

/// UTF-16 length of a string (JavaScript `s.length`).
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// The UTF-16 code unit at `index` of `s` as a one-unit string. A lone surrogate half cannot
/// be represented in Rust and becomes U+FFFD.
pub(crate) fn utf16_unit_at(s: &str, index: usize) -> Option<Result<(usize, usize), ()>> {
    if s.is_ascii() {
        return (index < s.len()).then_some(Ok((index, index + 1)));
    }
    let mut unit = 0usize;
    for (offset, c) in s.char_indices() {
        let width = c.len_utf16();
        if index < unit + width {
            return Some(if width == 1 {
                Ok((offset, offset + c.len_utf8()))
            } else {
                Err(())
            });
        }
        unit += width;
    }
    None
}

/// Names on `Object.prototype` (visible to the `in` operator of strict-mode lookups).
pub(crate) const OBJECT_PROTOTYPE: &[&str] = &[
    "constructor",
    "__defineGetter__",
    "__defineSetter__",
    "hasOwnProperty",
    "__lookupGetter__",
    "__lookupSetter__",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "toString",
    "valueOf",
    "__proto__",
    "toLocaleString",
];

/// Names on `Array.prototype` (Node 20).
pub(crate) const ARRAY_PROTOTYPE: &[&str] = &[
    "length",
    "constructor",
    "at",
    "concat",
    "copyWithin",
    "fill",
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
    "lastIndexOf",
    "pop",
    "push",
    "reverse",
    "shift",
    "unshift",
    "slice",
    "sort",
    "splice",
    "includes",
    "indexOf",
    "join",
    "keys",
    "entries",
    "values",
    "forEach",
    "filter",
    "flat",
    "flatMap",
    "map",
    "every",
    "some",
    "reduce",
    "reduceRight",
    "toLocaleString",
    "toString",
    "toReversed",
    "toSorted",
    "toSpliced",
    "with",
];

/// JavaScript `Object.keys` order: array-index keys ascending, then the rest in insertion order.
pub(crate) fn js_object_keys(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut indexed: Vec<(u32, &str, &Value)> = Vec::new();
    let mut named: Vec<(&str, &Value)> = Vec::with_capacity(map.len());
    for (k, v) in map {
        match array_index(k) {
            Some(i) => indexed.push((i, k, v)),
            None => named.push((k, v)),
        }
    }
    if indexed.is_empty() {
        return named;
    }
    indexed.sort_by_key(|(i, _, _)| *i);
    let mut keys: Vec<(&str, &Value)> = indexed.into_iter().map(|(_, k, v)| (k, v)).collect();
    keys.extend(named);
    keys
}

/// Whether any key of the object is an array index (so `Object.keys` reorders it).
pub(crate) fn has_index_keys(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| array_index(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(n: f64) -> String {
        let mut s = String::new();
        write_js_number(n, &mut s);
        s
    }

    fn go(n: f64) -> String {
        let mut s = String::new();
        write_go_number(n, &mut s);
        s
    }

    #[test]
    fn js_number_printing() {
        assert_eq!(js(0.0), "0");
        assert_eq!(js(-0.0), "0");
        assert_eq!(js(1.0), "1");
        assert_eq!(js(-42.0), "-42");
        assert_eq!(js(1580777319650.0), "1580777319650");
        assert_eq!(js(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(js(1.5), "1.5");
        assert_eq!(js(1e21), "1e+21");
        assert_eq!(js(1e20), "100000000000000000000");
        assert_eq!(js(123456789012345680000.0), "123456789012345680000");
        assert_eq!(js(1.5e-7), "1.5e-7");
        assert_eq!(js(0.000001), "0.000001");
        assert_eq!(js(1e-7), "1e-7");
        assert_eq!(js(2f64.powi(60)), "1152921504606847000");
        assert_eq!(js(-1.25e30), "-1.25e+30");
        assert_eq!(js(f64::NAN), "NaN");
        assert_eq!(js(f64::INFINITY), "Infinity");
        assert_eq!(js(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(js(5e-324), "5e-324");
        assert_eq!(js(1.7976931348623157e308), "1.7976931348623157e+308");
    }

    #[test]
    fn go_number_printing() {
        assert_eq!(go(1e21), "1000000000000000000000");
        assert_eq!(go(1.5e-7), "0.00000015");
        assert_eq!(go(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go(-0.0), "-0");
        assert_eq!(go(1580777319650.0), "1580777319650");
    }

    #[test]
    fn string_to_number_follows_js() {
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("  12 "), 12.0);
        assert_eq!(string_to_number("0x1f"), 31.0);
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(string_to_number(".5"), 0.5);
        assert_eq!(string_to_number("5."), 5.0);
        assert_eq!(string_to_number("1e3"), 1000.0);
        assert!(string_to_number("1e").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert!(string_to_number("abc").is_nan());
        assert!(string_to_number("-0x10").is_nan());
    }

    #[test]
    fn array_indices() {
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("42"), Some(42));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("4294967294"), Some(4_294_967_294));
        assert_eq!(array_index("4294967295"), None);
        assert_eq!(array_index("-1"), None);
        assert_eq!(array_index(""), None);
    }

    #[test]
    fn go_map_printing() {
        let v: Value = serde_json::json!({"b": 1.5, "a": "x", "c": [1, null], "d": {"e": true}});
        let mut s = String::new();
        write_go_string(&Val::from_json(&v), &mut s);
        assert_eq!(
            s,
            "map[a:x b:%!s(float64=1.5) c:[%!s(float64=1) %!s(<nil>)] d:map[e:%!s(bool=true)]]"
        );
    }
}
