//! Attribute references: how clauses, rollouts and private-attribute lists name a context
//! attribute.
//!
//! Two syntaxes exist, and which one applies depends on where the string comes from:
//!
//! - **Reference syntax** ([`AttrRef::new`]): used when the enclosing clause, rollout or segment
//!   rule has a `contextKind`, and in `_meta.privateAttributes`. A string that does not start with
//!   `/` names a top-level attribute as is (`"attr/a"` is the attribute named `attr/a`). A string
//!   that starts with `/` is a path (`/address/city`), whose components unescape `~1` to `/` and
//!   `~0` to `~`. `""`, `"/"`, empty components (`//x`, `/a/`) and any other `~` sequence are
//!   errors.
//! - **Literal syntax** ([`AttrRef::literal`]): old-style data without `contextKind`, and the old
//!   user format's `privateAttributeNames`. The whole string is one attribute name, even if it
//!   starts with `/`. Only `""` is an error.

use std::fmt;

/// Why an attribute reference is unusable. An evaluation that needs it fails with
/// `MALFORMED_FLAG`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttrRefError {
    /// The string was empty (or, in reference syntax, just `/`).
    Empty,
    /// A path had an empty component: a double or trailing slash.
    EmptyComponent,
    /// A `~` was not followed by `0` or `1`.
    InvalidEscape,
}

impl fmt::Display for AttrRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrRefError::Empty => "attribute reference is empty",
            AttrRefError::EmptyComponent => "attribute reference has a double or trailing slash",
            AttrRefError::InvalidEscape => {
                "attribute reference has a '~' not followed by '0' or '1'"
            }
        })
    }
}

impl std::error::Error for AttrRefError {}

/// A parsed attribute reference (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttrRef {
    raw: Box<str>,
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Repr {
    /// One component, equal to `raw`.
    Plain,
    /// One or more components that differ from `raw` (a `/` path, or a literal name starting
    /// with `/`).
    Path(Box<[Box<str>]>),
    Invalid(AttrRefError),
}

impl AttrRef {
    /// Parses `s` in reference syntax.
    pub fn new(s: &str) -> AttrRef {
        let repr = if s.is_empty() || s == "/" {
            Repr::Invalid(AttrRefError::Empty)
        } else if let Some(path) = s.strip_prefix('/') {
            let mut components = Vec::new();
            let mut error = None;
            for part in path.split('/') {
                match unescape(part) {
                    Ok(c) => components.push(c),
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            match error {
                Some(e) => Repr::Invalid(e),
                None => Repr::Path(components.into_boxed_slice()),
            }
        } else {
            Repr::Plain
        };
        AttrRef {
            raw: s.into(),
            repr,
        }
    }

    /// Makes a reference to the attribute whose name is exactly `name` (literal syntax).
    pub fn literal(name: &str) -> AttrRef {
        let repr = if name.is_empty() {
            Repr::Invalid(AttrRefError::Empty)
        } else if name.starts_with('/') {
            Repr::Path(vec![Box::<str>::from(name)].into_boxed_slice())
        } else {
            Repr::Plain
        };
        AttrRef {
            raw: name.into(),
            repr,
        }
    }

    /// Parses `s` in reference syntax if `with_context_kind` is true (the enclosing item has a
    /// `contextKind`), else as a literal name: the rule LaunchDarkly's data model applies to
    /// `attribute` and `bucketBy`.
    pub fn for_item(s: &str, with_context_kind: bool) -> AttrRef {
        if with_context_kind {
            AttrRef::new(s)
        } else {
            AttrRef::literal(s)
        }
    }

    /// The string this reference was made from.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True unless the reference is unusable.
    pub fn is_valid(&self) -> bool {
        !matches!(self.repr, Repr::Invalid(_))
    }

    /// Why the reference is unusable, if it is.
    pub fn error(&self) -> Option<AttrRefError> {
        match self.repr {
            Repr::Invalid(e) => Some(e),
            _ => None,
        }
    }

    /// Number of path components (0 for an invalid reference).
    pub fn depth(&self) -> usize {
        match &self.repr {
            Repr::Plain => 1,
            Repr::Path(c) => c.len(),
            Repr::Invalid(_) => 0,
        }
    }

    /// The `i`-th path component, unescaped.
    pub fn component(&self, i: usize) -> Option<&str> {
        match &self.repr {
            Repr::Plain if i == 0 => Some(&self.raw),
            Repr::Plain => None,
            Repr::Path(c) => c.get(i).map(|s| &**s),
            Repr::Invalid(_) => None,
        }
    }

    /// All path components, unescaped (empty for an invalid reference).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        (0..self.depth()).filter_map(move |i| self.component(i))
    }
}

impl fmt::Display for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn unescape(part: &str) -> Result<Box<str>, AttrRefError> {
    if part.is_empty() {
        return Err(AttrRefError::EmptyComponent);
    }
    if !part.contains('~') {
        return Ok(part.into());
    }
    let mut out = String::with_capacity(part.len());
    let mut chars = part.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(AttrRefError::InvalidEscape),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(r: &AttrRef) -> Vec<&str> {
        r.components().collect()
    }

    #[test]
    fn plain_names_and_paths() {
        assert_eq!(comps(&AttrRef::new("attr1")), ["attr1"]);
        assert_eq!(comps(&AttrRef::new("/attr1")), ["attr1"]);
        assert_eq!(comps(&AttrRef::new("attr/a")), ["attr/a"]);
        assert_eq!(comps(&AttrRef::new("attr~a")), ["attr~a"]);
        assert_eq!(comps(&AttrRef::new("/a/b/c")), ["a", "b", "c"]);
        assert_eq!(comps(&AttrRef::new("/attr~1a")), ["attr/a"]);
        assert_eq!(comps(&AttrRef::new("/attr~0a")), ["attr~a"]);
        assert_eq!(comps(&AttrRef::new("/~01")), ["~1"]);
        assert_eq!(comps(&AttrRef::new("/~10")), ["/0"]);
        assert_eq!(AttrRef::new("/a/b").depth(), 2);
        assert_eq!(AttrRef::new("/a/b").as_str(), "/a/b");
    }

    #[test]
    fn errors() {
        assert_eq!(AttrRef::new("").error(), Some(AttrRefError::Empty));
        assert_eq!(AttrRef::new("/").error(), Some(AttrRefError::Empty));
        assert_eq!(
            AttrRef::new("//").error(),
            Some(AttrRefError::EmptyComponent)
        );
        assert_eq!(
            AttrRef::new("///").error(),
            Some(AttrRefError::EmptyComponent)
        );
        assert_eq!(
            AttrRef::new("/a//b").error(),
            Some(AttrRefError::EmptyComponent)
        );
        assert_eq!(
            AttrRef::new("/a/").error(),
            Some(AttrRefError::EmptyComponent)
        );
        assert_eq!(
            AttrRef::new("/a~b").error(),
            Some(AttrRefError::InvalidEscape)
        );
        assert_eq!(
            AttrRef::new("/a~").error(),
            Some(AttrRefError::InvalidEscape)
        );
        assert_eq!(
            AttrRef::new("/a~2").error(),
            Some(AttrRefError::InvalidEscape)
        );
        assert!(!AttrRef::new("/a~").is_valid());
        assert_eq!(AttrRef::new("/a~").depth(), 0);
        assert_eq!(AttrRef::new("/a~").component(0), None);
    }

    #[test]
    fn literal_names() {
        assert_eq!(comps(&AttrRef::literal("/attr/a")), ["/attr/a"]);
        assert_eq!(comps(&AttrRef::literal("a~b")), ["a~b"]);
        assert_eq!(comps(&AttrRef::literal("name")), ["name"]);
        assert_eq!(AttrRef::literal("").error(), Some(AttrRefError::Empty));
        assert_eq!(comps(&AttrRef::literal("/")), ["/"]);
        assert_eq!(comps(&AttrRef::for_item("/a/b", false)), ["/a/b"]);
        assert_eq!(comps(&AttrRef::for_item("/a/b", true)), ["a", "b"]);
    }
}
