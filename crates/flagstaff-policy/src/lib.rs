//! LaunchDarkly resource specifiers (`proj/default:env/production:flag/my-flag;tag1,tag2`).
//!
//! Audit entries name what they touched with these; the policy language (custom roles,
//! webhook and integration filters) matches actions against them.

use std::fmt;

/// One `type/name;tags` segment of a specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSegment {
    pub kind: String,
    pub name: String,
    pub tags: Vec<String>,
}

/// A whole specifier: segments joined by `:`, outermost first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceSpec {
    pub segments: Vec<ResourceSegment>,
}

impl ResourceSpec {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a `kind/name;tags` segment.
    pub fn with(mut self, kind: &str, name: &str, tags: &[String]) -> Self {
        self.segments.push(ResourceSegment {
            kind: kind.to_string(),
            name: name.to_string(),
            tags: tags.to_vec(),
        });
        self
    }

    pub fn project(key: &str, tags: &[String]) -> Self {
        Self::new().with("proj", key, tags)
    }

    pub fn environment(project: &str, env: &str, env_tags: &[String]) -> Self {
        Self::project(project, &[]).with("env", env, env_tags)
    }

    pub fn flag(project: &str, env: &str, flag: &str, flag_tags: &[String]) -> Self {
        Self::environment(project, env, &[]).with("flag", flag, flag_tags)
    }

    pub fn segment(project: &str, env: &str, segment: &str, tags: &[String]) -> Self {
        Self::environment(project, env, &[]).with("segment", segment, tags)
    }

    /// Parses a specifier. Names and tags are taken literally (globs are kept as written).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a resource specifier must not be empty".into());
        }
        let mut segments = Vec::new();
        for part in split_top_level(text) {
            if part == "acct" {
                segments.push(ResourceSegment {
                    kind: "acct".into(),
                    name: String::new(),
                    tags: Vec::new(),
                });
                continue;
            }
            let (head, tags) = match part.split_once(';') {
                Some((h, t)) => (
                    h,
                    t.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect(),
                ),
                None => (part, Vec::new()),
            };
            let (kind, name) = head.split_once('/').ok_or_else(|| {
                format!("resource segment \"{part}\" must look like type/name, e.g. proj/default")
            })?;
            if kind.is_empty() || name.is_empty() {
                return Err(format!(
                    "resource segment \"{part}\" needs both a type and a name"
                ));
            }
            segments.push(ResourceSegment {
                kind: kind.into(),
                name: name.into(),
                tags,
            });
        }
        Ok(Self { segments })
    }
}

impl ResourceSpec {
    /// Whether this specifier (a pattern, possibly with `*` globs and tag lists) covers the
    /// concrete resource `resource`: same resource path, each name matching its glob, and, where
    /// the pattern lists tags, the resource carrying at least one of them. Property selectors
    /// such as `{critical:true}` are not evaluated yet and never match.
    pub fn covers(&self, resource: &ResourceSpec) -> bool {
        self.segments.len() == resource.segments.len()
            && self
                .segments
                .iter()
                .zip(&resource.segments)
                .all(|(pattern, actual)| {
                    pattern.kind == actual.kind
                        && glob_match(&pattern.name, &actual.name)
                        && (pattern.tags.is_empty()
                            || pattern
                                .tags
                                .iter()
                                .any(|want| actual.tags.iter().any(|have| glob_match(want, have))))
                })
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Splits on `:` that are not inside `{…}` property selectors.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

impl fmt::Display for ResourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            if seg.kind == "acct" {
                f.write_str("acct")?;
                continue;
            }
            write!(f, "{}/{}", seg.kind, seg.name)?;
            if !seg.tags.is_empty() {
                write!(f, ";{}", seg.tags.join(","))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_ld_specifiers() {
        let s = ResourceSpec::flag("default", "production", "my-flag", &["tag1".into()]);
        assert_eq!(
            s.to_string(),
            "proj/default:env/production:flag/my-flag;tag1"
        );
        assert_eq!(
            ResourceSpec::project("p", &["a".into(), "b".into()]).to_string(),
            "proj/p;a,b"
        );
    }

    #[test]
    fn parse_round_trips() {
        for text in [
            "proj/default:env/production:flag/my-flag;tag1,tag2",
            "proj/*:env/*;{critical:true}:flag/*",
            "acct",
            "member/*:token/*",
        ] {
            assert_eq!(ResourceSpec::parse(text).unwrap().to_string(), text);
        }
        assert!(ResourceSpec::parse("proj").is_err());
    }

    #[test]
    fn covers_globs_and_tags() {
        let flag = ResourceSpec::flag("default", "production", "my-flag", &["beta".into()]);
        let yes = [
            "proj/*:env/*:flag/*",
            "proj/default:env/prod*:flag/my-*",
            "proj/*:env/*:flag/*;beta,gamma",
        ];
        for p in yes {
            assert!(ResourceSpec::parse(p).unwrap().covers(&flag), "{p}");
        }
        let no = [
            "proj/*",
            "proj/*:env/test:flag/*",
            "proj/*:env/*:flag/*;gamma",
            "proj/*:env/*:segment/*",
        ];
        for p in no {
            assert!(!ResourceSpec::parse(p).unwrap().covers(&flag), "{p}");
        }
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(glob_match("*", ""));
        assert!(ResourceSpec::parse("").is_err());
    }
}
