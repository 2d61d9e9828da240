//! The integration-framework helper catalogue (`helpers/index.js`) and the hook for helpers
//! implemented elsewhere in the crate (`edgeGridAuth`).
//!
//! Value helpers receive their arguments the way handlebars.js calls a helper: the parameters
//! in order, then the `options` object, then `undefined` for anything further.

use std::fmt::Write as _;

use serde_json::Value;

use crate::Compat;
use crate::value::{JsError, Prim, Val, js_string, to_primitive, write_go_string};

/// A helper resolved at compile time.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Helper {
    Catalogue(Catalogue),
    Extension(&'static Extension),
}

/// The helpers of `helpers/index.js` (plus `equalWithElse`, registered by production).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Catalogue {
    /// Block: `a === b` (Go: string forms equal, no else branch).
    Equal,
    /// Block: `a === b`, with else, in both modes.
    EqualWithElse,
    /// `encodeURI(v)`.
    PathEncode,
    /// `encodeURIComponent(v)`.
    QueryEncode,
    /// `"Basic " + base64(user + ":" + pass)`.
    BasicAuthHeaderValue,
    /// `formatWithOffset ms offsetSeconds format`.
    FormatWithOffset,
}

/// A helper implemented outside this module, called with evaluated arguments.
#[derive(Debug)]
pub(crate) struct Extension {
    pub name: &'static str,
    /// Whether the helper exists in a compatibility mode. When it does not, calls fall through
    /// to handlebars.js's `helperMissing` (`Missing helper: "name"`).
    pub available: fn(Compat) -> bool,
    pub call: ExtensionFn,
    /// The result is a handlebars.js `SafeString`: `{{helper …}}` does not HTML-escape it.
    pub safe_string: bool,
}

/// Arguments are the call's parameters (not the `options` object); `Err` is a render error.
pub(crate) type ExtensionFn = fn(
    args: &[HelperArg],
    hash: &[(&str, HelperArg)],
    env: &HelperEnv<'_>,
) -> Result<HelperArg, String>;

/// An evaluated helper argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum HelperArg {
    /// JavaScript `undefined` (a missing path, or the `undefined` literal).
    Undefined,
    Value(Value),
}

impl HelperArg {
    pub(crate) fn as_value(&self) -> Option<&Value> {
        match self {
            HelperArg::Undefined => None,
            HelperArg::Value(v) => Some(v),
        }
    }

    /// The argument as a string the way the compatibility mode converts it: JavaScript
    /// `String(v)` (`undefined`, `null`, `a,b`) or Go `Str(v)` (missing values are empty).
    #[allow(dead_code)]
    pub(crate) fn to_display_string(&self, compat: Compat) -> String {
        let val = match self {
            HelperArg::Undefined => Val::Undef,
            HelperArg::Value(v) => Val::from_json(v),
        };
        let mut out = String::new();
        match compat {
            Compat::Js => {
                if let Ok(s) = js_string(&val) {
                    out = s;
                }
            }
            Compat::Go => write_go_string(&val, &mut out),
        }
        out
    }
}

/// What an extension helper may look at besides its arguments.
#[allow(dead_code)]
pub(crate) struct HelperEnv<'a> {
    pub compat: Compat,
    pub strict: bool,
    /// The template being rendered (for messages).
    pub template: &'a str,
    /// The root context of the render.
    pub root: &'a Value,
}

/// Helpers implemented in other modules of this crate. A helper left out of this list (or not
/// `available` in a mode) takes handlebars.js's path: `Missing helper: "name"`.
pub(crate) static EXTENSIONS: &[Extension] = &[Extension {
    name: "edgeGridAuth",
    available: crate::edgegrid::edge_grid_auth_available,
    call: crate::edgegrid::edge_grid_auth_helper,
    // A header value: `=` padding must not become `&#x3D;` in `Compat::Js`.
    safe_string: true,
}];

/// A registered helper by name (compile time).
pub(crate) fn find(name: &str) -> Option<Helper> {
    Some(Helper::Catalogue(match name {
        "equal" => Catalogue::Equal,
        "equalWithElse" => Catalogue::EqualWithElse,
        "pathEncode" => Catalogue::PathEncode,
        "queryEncode" => Catalogue::QueryEncode,
        "basicAuthHeaderValue" => Catalogue::BasicAuthHeaderValue,
        "formatWithOffset" => Catalogue::FormatWithOffset,
        _ => {
            return EXTENSIONS
                .iter()
                .find(|e| e.name == name)
                .map(Helper::Extension);
        }
    }))
}

/// The `i`-th argument of a JavaScript helper call with `params`: a parameter, the `options`
/// object right after them, `undefined` beyond.
pub(crate) fn js_arg<'a>(params: &[Val<'a>], i: usize) -> Val<'a> {
    match params.get(i) {
        Some(v) => *v,
        None if i == params.len() => Val::Options,
        None => Val::Undef,
    }
}

/// Calls a value (non-block) catalogue helper.
pub(crate) fn call_value(
    helper: Catalogue,
    params: &[Val<'_>],
    compat: Compat,
) -> Result<Produced, JsError> {
    match compat {
        Compat::Js => call_js(helper, params),
        Compat::Go => call_go(helper, params),
    }
}

fn call_js(helper: Catalogue, params: &[Val<'_>]) -> Result<Produced, JsError> {
    let arg = |i| js_arg(params, i);
    Ok(match helper {
        Catalogue::PathEncode => owned(encode_uri(&js_string(&arg(0))?, URI_RESERVED)),
        Catalogue::QueryEncode => owned(encode_uri(&js_string(&arg(0))?, "")),
        Catalogue::BasicAuthHeaderValue => {
            let mut credentials = js_string(&arg(0))?;
            credentials.push(':');
            credentials.push_str(&js_string(&arg(1))?);
            owned(format!("Basic {}", base64(credentials.as_bytes())))
        }
        Catalogue::FormatWithOffset => format_with_offset_js(&arg(0), &arg(1), &arg(2))?,
        Catalogue::Equal | Catalogue::EqualWithElse => {
            // Used as a value: `options.fn` / `options.inverse` do not exist.
            return Err(JsError::render(if arg(0).strict_eq(&arg(1)) {
                "options.fn is not a function"
            } else {
                "options.inverse is not a function"
            }));
        }
    })
}

fn go_string(v: &Val<'_>) -> String {
    let mut s = String::new();
    write_go_string(v, &mut s);
    s
}

fn check_arity(
    helper: Catalogue,
    name: &str,
    params: &[Val<'_>],
    wanted: usize,
) -> Result<(), JsError> {
    let _ = helper;
    if params.len() != wanted {
        return Err(JsError::render(format!(
            "Helper '{name}' called with wrong number of arguments, needed {wanted} but got {}",
            params.len()
        )));
    }
    Ok(())
}

fn call_go(helper: Catalogue, params: &[Val<'_>]) -> Result<Produced, JsError> {
    Ok(match helper {
        Catalogue::PathEncode => {
            check_arity(helper, "pathEncode", params, 1)?;
            owned(encode_uri(&go_string(&params[0]), URI_RESERVED))
        }
        Catalogue::QueryEncode => {
            check_arity(helper, "queryEncode", params, 1)?;
            owned(encode_uri(&go_string(&params[0]), ""))
        }
        Catalogue::BasicAuthHeaderValue => {
            check_arity(helper, "basicAuthHeaderValue", params, 2)?;
            let credentials = go_string(&params[0]) + ":" + &go_string(&params[1]);
            owned(format!("Basic {}", base64(credentials.as_bytes())))
        }
        Catalogue::FormatWithOffset => {
            check_arity(helper, "formatWithOffset", params, 3)?;
            format_with_offset_go(&params[0], &params[1], &params[2])?
        }
        Catalogue::Equal | Catalogue::EqualWithElse => {
            return Err(JsError::render("options.fn is not a function"));
        }
    })
}

/// What a value helper returns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Produced {
    Str(String),
    Num(f64),
}

fn owned(s: String) -> Produced {
    Produced::Str(s)
}

/// Characters `encodeURI` keeps besides the unreserved set.
const URI_RESERVED: &str = ";,/?:@&=+$#";

/// `encodeURI` (with `keep` = [`URI_RESERVED`]) / `encodeURIComponent` (with `keep` empty).
pub(crate) fn encode_uri(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "-_.!~*'()".contains(c) || keep.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// formatWithOffset

/// `new Date(ms + 1000 * offsetSeconds)`, then by format (TZ=UTC):
/// `seconds` → `Math.round(t / 1000)`, `rfc3339` → `toISOString()`, `simple` → dateformat
/// `yyyy-mm-dd h:MM:ss`, anything else → `getTime()`.
fn format_with_offset_js(
    ms: &Val<'_>,
    offset: &Val<'_>,
    format: &Val<'_>,
) -> Result<Produced, JsError> {
    let product = 1000.0 * to_primitive(offset)?.to_number();
    let time = match to_primitive(ms)? {
        // `"…" + n` is a string, and `new Date(string)` parses it: no catalogue value is a
        // string, and a date-string parser is out of scope, so this is an invalid date.
        Prim::Str(_) => f64::NAN,
        other => time_clip(other.to_number() + product),
    };
    Ok(match format.as_str() {
        Some("seconds") => Produced::Num(js_round(time / 1000.0)),
        Some("rfc3339") => {
            if time.is_nan() {
                return Err(JsError::render("Invalid time value"));
            }
            let (date, clock) = civil(time as i64);
            let year = if (0..=9999).contains(&date.0) {
                format!("{:04}", date.0)
            } else if date.0 < 0 {
                format!("-{:06}", -date.0)
            } else {
                format!("+{:06}", date.0)
            };
            owned(format!(
                "{year}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                date.1, date.2, clock.0, clock.1, clock.2, clock.3
            ))
        }
        Some("simple") => {
            if time.is_nan() {
                return Err(JsError::render("Invalid date"));
            }
            let (date, clock) = civil(time as i64);
            let hour = match clock.0 % 12 {
                0 => 12,
                h => h,
            };
            owned(format!(
                "{}-{:02}-{:02} {hour}:{:02}:{:02}",
                date.0, date.1, date.2, clock.1, clock.2
            ))
        }
        _ => Produced::Num(time),
    })
}

/// Production (Go) `formatWithOffset`: UTC, `simple` = `YYYY-MM-DD HH:MM:SS` (24-hour),
/// `rfc3339` without fraction, `seconds` floored.
fn format_with_offset_go(
    ms: &Val<'_>,
    offset: &Val<'_>,
    format: &Val<'_>,
) -> Result<Produced, JsError> {
    let number = |v: &Val<'_>, what: &str| -> Result<f64, JsError> {
        let n = match v {
            Val::Num(n) => *n,
            Val::Str(_) => crate::value::string_to_number(v.as_str().unwrap_or_default()),
            _ => f64::NAN,
        };
        if n.is_finite() {
            Ok(n)
        } else {
            Err(JsError::render(format!(
                "formatWithOffset: {what} is not a number"
            )))
        }
    };
    let time = time_clip(
        number(ms, "the timestamp")?.trunc() + 1000.0 * number(offset, "the offset")?.trunc(),
    );
    if time.is_nan() {
        return Err(JsError::render(
            "formatWithOffset: the time is out of range",
        ));
    }
    let t = time as i64;
    let (date, clock) = civil(t);
    Ok(match format.as_str() {
        Some("seconds") => Produced::Num(t.div_euclid(1000) as f64),
        Some("rfc3339") => owned(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            date.0, date.1, date.2, clock.0, clock.1, clock.2
        )),
        Some("simple") => owned(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            date.0, date.1, date.2, clock.0, clock.1, clock.2
        )),
        _ => Produced::Num(time),
    })
}

/// ECMAScript `TimeClip`.
fn time_clip(t: f64) -> f64 {
    if !t.is_finite() || t.abs() > 8.64e15 {
        f64::NAN
    } else {
        t.trunc() + 0.0
    }
}

/// JavaScript `Math.round` (halves round towards +∞).
fn js_round(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let floor = x.floor();
    if x - floor >= 0.5 { floor + 1.0 } else { floor }
}

/// (year, month, day)
type Date = (i64, u32, u32);
/// (hour, minute, second, millisecond)
type Clock = (u32, u32, u32, u32);

/// A time value in milliseconds as a UTC date and time of day.
fn civil(t: i64) -> (Date, Clock) {
    let days = t.div_euclid(86_400_000);
    let ms = t.rem_euclid(86_400_000);
    let clock = (
        (ms / 3_600_000) as u32,
        (ms / 60_000 % 60) as u32,
        (ms / 1000 % 60) as u32,
        (ms % 1000) as u32,
    );
    // Days since 1970-01-01 to a proleptic Gregorian date (era-based, 400-year cycles).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    ((year, month, day), clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Produced) -> String {
        match v {
            Produced::Str(s) => s,
            Produced::Num(n) => js_string(&Val::Num(n)).unwrap(),
        }
    }

    #[test]
    fn uri_encoding() {
        assert_eq!(
            encode_uri("a b/c?d=é&x#y", URI_RESERVED),
            "a%20b/c?d=%C3%A9&x#y"
        );
        assert_eq!(
            encode_uri("a b/c?d=é&x#y!'()*~", ""),
            "a%20b%2Fc%3Fd%3D%C3%A9%26x%23y!'()*~"
        );
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(
            base64(b"undefined:undefined"),
            "dW5kZWZpbmVkOnVuZGVmaW5lZA=="
        );
    }

    #[test]
    fn dates() {
        assert_eq!(civil(0), ((1970, 1, 1), (0, 0, 0, 0)));
        assert_eq!(civil(1_580_777_685_650), ((2020, 2, 4), (0, 54, 45, 650)));
        assert_eq!(civil(-1), ((1969, 12, 31), (23, 59, 59, 999)));
        assert_eq!(civil(951_782_400_000), ((2000, 2, 29), (0, 0, 0, 0)));
        let ms = Val::Num(1_580_777_685_650.0);
        let simple = Val::Str("simple");
        assert_eq!(
            s(format_with_offset_js(&ms, &Val::Num(301.0), &simple).unwrap()),
            "2020-02-04 12:59:46"
        );
        assert_eq!(
            s(format_with_offset_go(&ms, &Val::Num(301.0), &simple).unwrap()),
            "2020-02-04 00:59:46"
        );
        assert_eq!(
            s(format_with_offset_js(&ms, &Val::Num(0.0), &Val::Str("rfc3339")).unwrap()),
            "2020-02-04T00:54:45.650Z"
        );
        assert_eq!(
            s(format_with_offset_go(&ms, &Val::Num(0.0), &Val::Str("rfc3339")).unwrap()),
            "2020-02-04T00:54:45Z"
        );
        assert_eq!(
            s(format_with_offset_js(&ms, &Val::Num(0.0), &Val::Str("seconds")).unwrap()),
            "1580777686"
        );
        assert_eq!(
            s(format_with_offset_go(&ms, &Val::Num(0.0), &Val::Str("seconds")).unwrap()),
            "1580777685"
        );
        assert_eq!(
            s(format_with_offset_js(&Val::Undef, &Val::Options, &Val::Undef).unwrap()),
            "NaN"
        );
        assert!(format_with_offset_js(&Val::Undef, &Val::Num(1.0), &Val::Str("simple")).is_err());
    }
}
