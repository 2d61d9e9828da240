//! `*` globs, compiled once.

/// A literal with its first (and last) 8 bytes kept as integers, so that most comparisons
/// against short keys and action names are two integer compares instead of a `memcmp` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lit {
    text: Box<str>,
    head: u64,
    head_mask: u64,
    tail: u64,
    tail_mask: u64,
}

/// Little-endian load of up to 8 bytes (zero-padded).
#[inline(always)]
fn load(bytes: &[u8]) -> u64 {
    if bytes.len() >= 8 {
        u64::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
        ])
    } else {
        let mut v = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            v |= (b as u64) << (8 * i);
        }
        v
    }
}

fn mask(len: usize) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * len)) - 1
    }
}

impl Lit {
    fn new(text: &str) -> Self {
        let b = text.as_bytes();
        let n = b.len().min(8);
        Lit {
            head: load(&b[..n]),
            head_mask: mask(n),
            tail: load(&b[b.len() - n..]),
            tail_mask: mask(n),
            text: text.into(),
        }
    }

    fn len(&self) -> usize {
        self.text.len()
    }

    #[cfg(test)]
    fn as_str(&self) -> &str {
        &self.text
    }

    #[inline(always)]
    fn is_prefix_of(&self, text: &[u8]) -> bool {
        let n = self.text.len();
        if text.len() < n {
            return false;
        }
        let first = &text[..text.len().min(8)];
        if load(first) & self.head_mask != self.head {
            return false;
        }
        n <= 8 || text[8..n] == self.text.as_bytes()[8..]
    }

    #[inline(always)]
    fn is_suffix_of(&self, text: &[u8]) -> bool {
        let n = self.text.len();
        if text.len() < n {
            return false;
        }
        let k = n.min(8);
        if load(&text[text.len() - k..]) & self.tail_mask != self.tail {
            return false;
        }
        n <= 8 || text[text.len() - n..text.len() - 8] == self.text.as_bytes()[..n - 8]
    }
}

/// A compiled glob: `*` matches any run of characters (including none); every other
/// character matches itself, case-sensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Glob {
    /// `*` (or `**`, …).
    Any,
    /// No `*` at all.
    Exact(Lit),
    /// `prefix*`.
    Prefix(Lit),
    /// `*suffix`.
    Suffix(Lit),
    /// Anything else: `first*middle*…*last`, where `first`/`last` may be empty.
    Parts {
        first: Lit,
        middle: Box<[Box<str>]>,
        last: Lit,
        min_len: usize,
    },
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Self {
        if !pattern.contains('*') {
            return Glob::Exact(Lit::new(pattern));
        }
        let parts: Vec<&str> = pattern.split('*').collect();
        let first = parts[0];
        let last = parts[parts.len() - 1];
        let middle: Vec<Box<str>> = parts[1..parts.len() - 1]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| Box::<str>::from(*p))
            .collect();
        match (first.is_empty(), middle.is_empty(), last.is_empty()) {
            (true, true, true) => Glob::Any,
            (false, true, true) => Glob::Prefix(Lit::new(first)),
            (true, true, false) => Glob::Suffix(Lit::new(last)),
            _ => Glob::Parts {
                min_len: first.len() + last.len() + middle.iter().map(|m| m.len()).sum::<usize>(),
                first: Lit::new(first),
                middle: middle.into(),
                last: Lit::new(last),
            },
        }
    }

    #[inline]
    pub(crate) fn matches(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        match self {
            Glob::Any => true,
            Glob::Exact(e) => bytes.len() == e.len() && e.is_prefix_of(bytes),
            Glob::Prefix(p) => p.is_prefix_of(bytes),
            Glob::Suffix(s) => s.is_suffix_of(bytes),
            Glob::Parts {
                first,
                middle,
                last,
                min_len,
            } => {
                if bytes.len() < *min_len || !first.is_prefix_of(bytes) || !last.is_suffix_of(bytes)
                {
                    return false;
                }
                // Leftmost matching of each middle part is optimal for `*`-only globs.
                let mut rest = &text[first.len()..text.len() - last.len()];
                for m in middle.iter() {
                    match rest.find(&**m) {
                        Some(at) => rest = &rest[at + m.len()..],
                        None => return false,
                    }
                }
                true
            }
        }
    }

    /// The literal text of an `Exact` glob.
    #[cfg(test)]
    fn literal(&self) -> Option<&str> {
        match self {
            Glob::Exact(l) => Some(l.as_str()),
            _ => None,
        }
    }
}

/// `*` matches any run of characters; everything else matches itself (case-sensitively).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(Glob::new("*"), Glob::Any);
        assert_eq!(Glob::new("**"), Glob::Any);
        assert_eq!(Glob::new("a").literal(), Some("a"));
        assert_eq!(Glob::new("a*"), Glob::Prefix(Lit::new("a")));
        assert_eq!(Glob::new("a**"), Glob::Prefix(Lit::new("a")));
        assert_eq!(Glob::new("*a"), Glob::Suffix(Lit::new("a")));
        assert!(matches!(Glob::new("*a*"), Glob::Parts { .. }));
    }

    #[test]
    fn matching() {
        for (p, t, want) in [
            ("*", "", true),
            ("", "", true),
            ("", "a", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxc", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aba", false),
            ("update*", "updateOn", true),
            ("update*", "Update", false),
            ("*Flag", "createFlag", true),
            ("*Flag", "createflag", false),
            ("qa_*", "qa_", true),
            ("updateOn", "updateOn", true),
            ("updateOn", "updateOm", false),
            ("updateTargets", "updateTargets", true),
            ("updateTargets", "updateTargetz", false),
            ("updateTargets", "updateTarget", false),
            ("updateFlag*", "updateFlagVariations", true),
            ("updateFlag*", "updateFlaVariations", false),
            ("*Variations", "updateFlagVariations", true),
            ("*Variations", "updateFlagVariationz", false),
            ("*ExpiringTargets", "updateExpiringTargets", true),
            ("*ExpiringTargets", "updateExpiringTarget", false),
            ("abcdefghij*klmnopqrstu", "abcdefghijXklmnopqrstu", true),
            ("abcdefghij*klmnopqrstu", "abcdefghijXklmnopqrstv", false),
            ("abcdefghij*klmnopqrstu", "abcdefghijklmnopqrstu", true),
            ("abcdefghij*klmnopqrstu", "abcdefghijklmnopqrst", false),
            ("é*", "éa", true),
            ("*é", "aé", true),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }
}
