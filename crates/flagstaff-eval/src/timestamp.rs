//! Timestamps for the `before`/`after` operators: a number is Unix milliseconds (fraction
//! truncated), a string is RFC 3339 as LaunchDarkly's Go evaluator parses it: a 1- or 2-digit
//! hour is allowed, at most 9 fractional digits, a time zone (`Z` or `±hh:mm`, hh up to 99) is
//! required, `T`/`t` and `Z`/`z` in either case; out-of-range days roll over as Go's `time.Date`
//! does, and nothing after a `Z` is looked at.

use crate::value::ValueRef;

/// Nanoseconds since the Unix epoch.
pub type Timestamp = i128;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z).
pub const GO_ZERO_TIME: Timestamp = -62_135_596_800 * 1_000_000_000;

/// The timestamp a value denotes, if any.
pub fn from_value(v: ValueRef<'_>) -> Option<Timestamp> {
    match v {
        ValueRef::Number(ms) => from_millis(ms),
        ValueRef::Str(s) => parse_rfc3339(s),
        _ => None,
    }
}

/// Unix milliseconds (fraction truncated) as a timestamp.
pub fn from_millis(ms: f64) -> Option<Timestamp> {
    if !ms.is_finite() {
        return None;
    }
    Some(i128::from(ms as i64) * 1_000_000)
}

struct Scanner<'a> {
    s: &'a [u8],
    pos: usize,
}

/// What ended a field: a terminator byte, the end of input, or a non-ASCII byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Term {
    Byte(u8),
    Eof,
    NonAscii,
}

impl<'a> Scanner<'a> {
    fn read_until(&mut self, is_term: impl Fn(u8) -> bool) -> (&'a [u8], Term) {
        let start = self.pos;
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return (&self.s[start..self.pos], Term::Eof);
            };
            if b == 0 || b > 0x7f {
                return (&self.s[start..self.pos], Term::NonAscii);
            }
            self.pos += 1;
            if is_term(b) {
                return (&self.s[start..self.pos - 1], Term::Byte(b));
            }
        }
    }

    /// A numeric field of `min_len..=max_len` digits in `min..=max`, ended by a terminator (or
    /// by the end of input if `eof_ok`).
    fn field(
        &mut self,
        is_term: impl Fn(u8) -> bool,
        eof_ok: bool,
        min_len: usize,
        max_len: usize,
        min: i64,
        max: i64,
    ) -> Option<(i64, Term)> {
        let (digits, term) = self.read_until(is_term);
        if digits.is_empty() || (!eof_ok && !matches!(term, Term::Byte(_))) {
            return None;
        }
        if digits.len() < min_len || digits.len() > max_len {
            return None;
        }
        let n = digits_value(digits)?;
        (min..=max).contains(&n).then_some((n, term))
    }
}

fn digits_value(d: &[u8]) -> Option<i64> {
    if d.is_empty() || d.len() > 18 {
        return None;
    }
    let mut n = 0i64;
    for &b in d {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Some(n)
}

/// Days from 1970-01-01 to the first day of `month` (1-12) of `year` (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400;
    let m = month;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses an RFC 3339 timestamp with the Go evaluator's quirks (see the module documentation).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let mut sc = Scanner {
        s: s.as_bytes(),
        pos: 0,
    };
    let (year, _) = sc.field(|b| b == b'-', false, 4, 4, 0, 9999)?;
    let (month, _) = sc.field(|b| b == b'-', false, 2, 2, 1, 12)?;
    let (day, _) = sc.field(|b| b == b'T' || b == b't', false, 2, 2, 1, 31)?;
    let (hour, _) = sc.field(|b| b == b':', false, 1, 2, 0, 23)?;
    let (minute, _) = sc.field(|b| b == b':', false, 2, 2, 0, 59)?;
    let end_of_seconds = |b: u8| matches!(b, b'.' | b'Z' | b'z' | b'+' | b'-');
    let (second, mut term) = sc.field(end_of_seconds, false, 2, 2, 0, 60)?;
    let mut nanos = 0i64;
    if term == Term::Byte(b'.') {
        let (frac, t) = sc.read_until(|b| matches!(b, b'Z' | b'z' | b'+' | b'-'));
        if !matches!(t, Term::Byte(_)) || frac.len() > 9 {
            return None;
        }
        nanos = digits_value(frac)?;
        for _ in frac.len()..9 {
            nanos *= 10;
        }
        term = t;
    }
    let mut offset_seconds = 0i64;
    if let Term::Byte(sign @ (b'+' | b'-')) = term {
        let (oh, _) = sc.field(|b| b == b':', false, 2, 2, 0, 99)?;
        let (om, _) = sc.field(|_| false, true, 2, 2, 0, 59)?;
        offset_seconds = (oh * 60 + om) * 60;
        if sign == b'+' {
            offset_seconds = -offset_seconds;
        }
    }
    let days = days_from_civil(year, month) + (day - 1);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second + offset_seconds;
    Some(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = 1_512_543_600_000 * 1_000_000; // 2017-12-06T07:00:00Z

    #[test]
    fn equal_instants() {
        assert_eq!(parse_rfc3339("2017-12-06T00:00:00.000-07:00"), Some(T));
        assert_eq!(parse_rfc3339("2017-12-06T07:00:00.000Z"), Some(T));
        assert_eq!(parse_rfc3339("2017-12-06T07:00:00Z"), Some(T));
        assert_eq!(parse_rfc3339("2017-12-06t07:00:00z"), Some(T));
        assert_eq!(parse_rfc3339("2017-12-06T09:30:00+02:30"), Some(T));
        assert_eq!(from_millis(1_512_543_600_000.0), Some(T));
        assert_eq!(from_millis(1_512_543_600_000.9), Some(T));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), Some(-1_000_000_000));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), Some(GO_ZERO_TIME));
    }

    #[test]
    fn go_quirks() {
        assert_eq!(parse_rfc3339("2017-12-06T7:00:00Z"), Some(T));
        assert_eq!(
            parse_rfc3339("2017-12-06T07:00:00.123456789Z"),
            Some(T + 123_456_789)
        );
        assert_eq!(
            parse_rfc3339("2017-12-06T07:00:00.5Z"),
            Some(T + 500_000_000)
        );
        assert_eq!(parse_rfc3339("2017-12-06T07:00:00.1234567890Z"), None);
        // Day 31 of November rolls over to December 1st, as in Go's time.Date.
        assert_eq!(
            parse_rfc3339("2017-11-31T07:00:00Z"),
            parse_rfc3339("2017-12-01T07:00:00Z")
        );
        assert!(parse_rfc3339("2017-12-06T07:00:00+99:00").is_some());
        assert!(parse_rfc3339("2016-02-29T00:00:00Z").is_some());
        assert_eq!(parse_rfc3339("2017-12-06T07:00:00Zjunk"), Some(T));
    }

    #[test]
    fn bad_syntax() {
        for s in [
            "2017-12-06X00:00:00.000-07:00",
            "2017-12-06",
            "00:00:00.000-07.00",
            "badstring",
            "",
            "1512543600000",
            "2017-12-06T07:00:00",
            "2017-12-06T07:00:00.Z",
            "2017-12-06T07:00:00.000",
            "2017-12-06T07:00:00+07",
            "2017-12-06T07:00:00+7:00",
            "2017-12-06T24:00:00Z",
            "2017-13-06T07:00:00Z",
            "17-12-06T07:00:00Z",
            "2017-12-06T07:00:61Z",
            "2017-12-06 07:00:00Z",
            "2017-12-06T07:00:00+07:00x",
            "２017-12-06T07:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(s), None, "{s:?}");
        }
    }
}
