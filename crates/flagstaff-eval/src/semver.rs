//! Semantic versions as LaunchDarkly's `semVer*` operators parse them: SemVer 2.0, except that
//! the minor and patch components may be left out (`"2"` is `2.0.0`, `"2.1-rc"` is
//! `2.1.0-rc`). No leading zeros in numeric components or numeric prerelease identifiers, no
//! `v` prefix, no fourth component. Build metadata is validated and ignored for precedence.

use std::cmp::Ordering;

/// A parsed version borrowing its prerelease part from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemVer<'a> {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Patch version.
    pub patch: u64,
    /// Prerelease identifiers (without the `-`), `""` if none.
    pub prerelease: &'a str,
}

/// An owned [`SemVer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedSemVer {
    major: u64,
    minor: u64,
    patch: u64,
    prerelease: Box<str>,
}

impl OwnedSemVer {
    /// The borrowed form.
    pub fn as_ref(&self) -> SemVer<'_> {
        SemVer {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            prerelease: &self.prerelease,
        }
    }
}

impl SemVer<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> OwnedSemVer {
        OwnedSemVer {
            major: self.major,
            minor: self.minor,
            patch: self.patch,
            prerelease: self.prerelease.into(),
        }
    }
}

fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

fn valid_identifiers(s: &str, prerelease: bool) -> bool {
    !s.is_empty()
        && s.split('.').all(|id| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !(prerelease
                    && id.len() > 1
                    && id.starts_with('0')
                    && id.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Parses a version (see the module documentation).
pub fn parse(s: &str) -> Option<SemVer<'_>> {
    // Split off build metadata, then prerelease; the numeric part ends at the first '-' or '+'.
    let (rest, build) = match s.find('+') {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (core, prerelease) = match rest.find('-') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if let Some(b) = build
        && !valid_identifiers(b, false)
    {
        return None;
    }
    if let Some(p) = prerelease
        && !valid_identifiers(p, true)
    {
        return None;
    }
    let mut parts = core.split('.');
    let major = numeric(parts.next()?)?;
    let minor = match parts.next() {
        Some(p) => numeric(p)?,
        None => 0,
    };
    let patch = match parts.next() {
        Some(p) => numeric(p)?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(SemVer {
        major,
        minor,
        patch,
        prerelease: prerelease.unwrap_or(""),
    })
}

/// SemVer 2.0 precedence.
pub fn compare(a: SemVer<'_>, b: SemVer<'_>) -> Ordering {
    a.major
        .cmp(&b.major)
        .then(a.minor.cmp(&b.minor))
        .then(a.patch.cmp(&b.patch))
        .then_with(
            || match (a.prerelease.is_empty(), b.prerelease.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(a.prerelease, b.prerelease),
            },
        )
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let xn = x.bytes().all(|c| c.is_ascii_digit());
                let yn = y.bytes().all(|c| c.is_ascii_digit());
                let o = match (xn, yn) {
                    // No leading zeros, so a longer number is larger.
                    (true, true) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        compare(parse(a).unwrap(), parse(b).unwrap())
    }

    #[test]
    fn lenient_parsing() {
        assert_eq!(parse("2").unwrap(), parse("2.0.0").unwrap());
        assert_eq!(parse("2.1").unwrap(), parse("2.1.0").unwrap());
        assert_eq!(parse("2-rc").unwrap(), parse("2.0.0-rc").unwrap());
        assert_eq!(parse("2.0-rc.1").unwrap().prerelease, "rc.1");
        assert_eq!(parse("2.0.0+build.5").unwrap(), parse("2.0.0").unwrap());
        assert_eq!(parse("2.0.0-rc+build").unwrap(), parse("2.0.0-rc").unwrap());
        assert_eq!(parse("10.20.30").unwrap().minor, 20);
        assert_eq!(parse("1.0.0-0.3.7").unwrap().prerelease, "0.3.7");
        assert_eq!(parse("1.0.0-x-y.7").unwrap().prerelease, "x-y.7");
        assert!(parse("1.0.0+001").is_some());
    }

    #[test]
    fn invalid_versions() {
        for s in [
            "",
            "v2.0.0",
            "02.0.0",
            "2.00.0",
            "2.0.01",
            "2.0.0.0",
            "2.",
            "2.0.",
            ".2",
            "2.0.0-",
            "2.0.0+",
            "2.0.0-01",
            "2.0.0-rc..1",
            "2.0.0-r_c",
            "2.0.0+b..1",
            "a",
            "-1.0.0",
            "2.0.0 ",
            "١.0.0",
            "99999999999999999999.0.0",
        ] {
            assert!(parse(s).is_none(), "{s:?} should be invalid");
        }
    }

    #[test]
    fn precedence() {
        use Ordering::*;
        assert_eq!(cmp("1.0.0", "2.0.0"), Less);
        assert_eq!(cmp("2.0", "2.1"), Less);
        assert_eq!(cmp("2.0.0", "2.0.1"), Less);
        assert_eq!(cmp("2.0.0-rc", "2.0.0"), Less);
        assert_eq!(cmp("2.0.0-rc", "2.0.0-rc.1"), Less);
        assert_eq!(cmp("2.0.0-rc.2.green", "2.0.0-rc.10.green"), Less);
        assert_eq!(cmp("2.0.0-rc.2.green", "2.0.0-rc.2.red"), Less);
        assert_eq!(cmp("2.0.0-rc.2.green", "2.0.0-rc.2.green.1"), Less);
        assert_eq!(cmp("2.0.0-rc.2.green", "2.0.1-rc.2.green"), Less);
        assert_eq!(cmp("1.0.0-1", "1.0.0-a"), Less);
        assert_eq!(cmp("1.0.0-alpha", "1.0.0-alpha.1"), Less);
        assert_eq!(cmp("1.0.0-alpha.beta", "1.0.0-beta"), Less);
        assert_eq!(cmp("1.0.0-beta.11", "1.0.0-rc.1"), Less);
        assert_eq!(cmp("2.0.0+a", "2.0.0+b"), Equal);
        assert_eq!(cmp("2-rc", "2.0.0-rc"), Equal);
        assert_eq!(cmp("3", "2.9.9"), Greater);
    }
}
