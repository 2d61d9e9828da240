//! Resource specifiers: the text form (`proj/*:env/*;qa_*,{critical:true}:flag/beta-*`), its
//! parser, and building specifiers for audit entries.
//!
//! Grammar (strict: no whitespace anywhere; positions in errors count characters from 0):
//!
//! ```text
//! specifier   := segment (":" segment)*
//! segment     := "acct"                                   account, no name or modifiers
//!              | type "/" name [";" modifier ("," modifier)*]
//! type        := a ResourceKind name, nested where the kind belongs (flag inside proj:env)
//! name        := (key-char | "*" | placeholder)+          key-char: not whitespace, ":;,/{}$"
//! modifier    := tag | "{" property ":" value "}"
//! tag         := (tag-char | "*" | placeholder)+          tag-char: letters, digits, "._-"
//! property    := (letters, digits, "._-")+
//! value       := (tag-char | "*" | placeholder)+
//! placeholder := "${roleAttribute/" attribute "}"        attribute: letters, digits, "._-"
//! ```

use std::fmt;
use std::str::FromStr;

use crate::kind::ResourceKind;

/// One `type/name;tags,{property:value}` segment of a specifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSegment {
    /// The resource type (`proj`, `env`, `flag`, … or `acct`).
    pub kind: String,
    /// The name: a key, a `*` glob, or text with `${roleAttribute/…}` placeholders. Empty for
    /// `acct`.
    pub name: String,
    /// Tag globs; a pattern matches only resources carrying a tag for **every** one of them.
    pub tags: Vec<String>,
    /// Property selectors such as `{critical:true}`; all must match.
    pub properties: Vec<PropertySelector>,
}

/// A `{property:value}` selector (`{critical:true}` on environments). The value is a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySelector {
    pub name: String,
    pub value: String,
}

/// A whole specifier: segments joined by `:`, outermost first.
///
/// As a pattern (in policies and the audit log's `spec` filter) names, tags and property values
/// are globs; as the name of one resource (in audit entries) it is literal — see
/// [`crate::Resource`] for the concrete form requests are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceSpec {
    pub segments: Vec<ResourceSegment>,
}

/// A malformed specifier: the 0-based character position of the offending character (or of
/// the end of the text when something is missing) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {position}: {message}")]
pub struct SpecError {
    pub position: usize,
    pub message: String,
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
            properties: Vec::new(),
        });
        self
    }

    /// Adds a `{name:value}` selector to the last segment.
    pub fn with_property(mut self, name: &str, value: &str) -> Self {
        if let Some(last) = self.segments.last_mut() {
            last.properties.push(PropertySelector {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
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

    /// Parses a specifier (surrounding whitespace is ignored). Names and tags are kept as
    /// written (globs and placeholders included). The error names the character position and
    /// what was expected; [`ResourceSpec::from_str`] returns it typed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let leading = text.chars().take_while(|c| c.is_whitespace()).count();
        parse_spec(text.trim(), true).map_err(|mut e| {
            e.position += leading;
            e.to_string()
        })
    }

    /// The `${roleAttribute/…}` attribute names this specifier uses, each once, in order.
    pub fn role_attributes(&self) -> Vec<String> {
        let mut found: Vec<String> = Vec::new();
        let texts = self.segments.iter().flat_map(|s| {
            std::iter::once(&s.name)
                .chain(&s.tags)
                .chain(s.properties.iter().map(|p| &p.value))
        });
        for text in texts {
            for name in placeholders_in(text) {
                if !found.iter().any(|f| f == name) {
                    found.push(name.to_string());
                }
            }
        }
        found
    }

    /// Whether this specifier (a pattern) covers `resource` (taken literally): same types at
    /// the same depth, each name matching its glob, every tag glob matched by one of the
    /// resource's tags, every property selector matched. A pattern with unresolved
    /// `${roleAttribute/…}` placeholders or an unknown type covers nothing.
    pub fn covers(&self, resource: &ResourceSpec) -> bool {
        match (
            crate::compiled::CompiledSpec::compile(self),
            crate::Resource::from_spec(resource),
        ) {
            (Some(pattern), Ok(resource)) => pattern.matches(&resource),
            _ => false,
        }
    }

    /// Whether this specifier (a pattern) matches the concrete `resource`. See [`Self::covers`].
    pub fn matches(&self, resource: &crate::Resource) -> bool {
        crate::compiled::CompiledSpec::compile(self).is_some_and(|p| p.matches(resource))
    }
}

impl FromStr for ResourceSpec {
    type Err = SpecError;

    /// Strict parse: no surrounding whitespace, known types in their places.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        parse_spec(text, true)
    }
}

/// `${roleAttribute/NAME}` occurrences in already-validated text.
pub(crate) fn placeholders_in(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(PLACEHOLDER_OPEN)
        .filter_map(move |(at, _)| {
            let rest = &text[at + PLACEHOLDER_OPEN.len()..];
            rest.find('}').map(|end| &rest[..end])
        })
}

pub(crate) const PLACEHOLDER_OPEN: &str = "${roleAttribute/";

fn is_key_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && !matches!(c, ':' | ';' | ',' | '/' | '{' | '}' | '$')
}

pub(crate) fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// What a run of characters is, for the parser's rules and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Name,
    Tag,
    PropertyValue,
}

impl Part {
    fn what(self) -> &'static str {
        match self {
            Part::Name => "a name (a key, a '*' glob or ${roleAttribute/<name>})",
            Part::Tag => {
                "a tag (letters, digits, '.', '_', '-', '*' globs) or a {property:value} selector"
            }
            Part::PropertyValue => "a property value, e.g. {critical:true}",
        }
    }

    fn allows(self, c: char) -> bool {
        match self {
            Part::Name => is_key_char(c),
            Part::Tag | Part::PropertyValue => is_tag_char(c),
        }
    }

    fn ends_at(self, c: char) -> bool {
        match self {
            Part::Name => matches!(c, ':' | ';'),
            Part::Tag => matches!(c, ':' | ','),
            Part::PropertyValue => c == '}',
        }
    }
}

struct Parser {
    c: Vec<char>,
    i: usize,
    placeholders: bool,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        position,
        message: message.into(),
    })
}

/// Parses `text` strictly. `placeholders`: whether `${roleAttribute/…}` is allowed (policies)
/// or not (concrete resources).
pub(crate) fn parse_spec(text: &str, placeholders: bool) -> Result<ResourceSpec, SpecError> {
    let mut p = Parser {
        c: text.chars().collect(),
        i: 0,
        placeholders,
    };
    p.spec()
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn rest_starts_with(&self, s: &str) -> bool {
        (self.i..)
            .zip(s.chars())
            .all(|(i, ch)| self.c.get(i) == Some(&ch))
    }

    /// `;view:<key>` (seen in LaunchDarkly Terraform examples), as opposed to a tag `view`
    /// followed by the next segment (`proj/*;view:env/*`).
    fn is_view_selector(&self) -> bool {
        if !self.rest_starts_with("view:") {
            return false;
        }
        let after = self.i + "view:".len();
        !self.c[after..]
            .iter()
            .take_while(|&&c| c != ':' && c != ',')
            .any(|&c| c == '/')
    }

    fn unexpected<T>(&self, expected: &str) -> Result<T, SpecError> {
        match self.peek() {
            None => err(self.i, format!("expected {expected}, found the end")),
            Some(c) if c.is_whitespace() => err(
                self.i,
                format!("unexpected whitespace: expected {expected}"),
            ),
            Some(c) => err(self.i, format!("unexpected {c:?}: expected {expected}")),
        }
    }

    fn spec(&mut self) -> Result<ResourceSpec, SpecError> {
        if self.c.is_empty() {
            return err(
                0,
                "expected a resource specifier such as proj/*:env/*:flag/* or acct, found nothing",
            );
        }
        let mut segments = Vec::new();
        let mut previous: Option<ResourceKind> = None;
        loop {
            let start = self.i;
            let (segment, kind) = self.segment()?;
            if kind.parent() != previous {
                let written = kind.wildcard_specifier();
                return match previous {
                    None => err(
                        start,
                        format!(
                            "\"{kind}\" is not a top-level resource type: it is written {written}"
                        ),
                    ),
                    Some(prev) => err(
                        start,
                        format!(
                            "\"{kind}\" cannot be nested in \"{prev}\": it is written {written}"
                        ),
                    ),
                };
            }
            previous = Some(kind);
            segments.push(segment);
            match self.peek() {
                None => break,
                Some(':') => self.i += 1,
                Some(_) => {
                    return self.unexpected("':' before the next segment, or the end");
                }
            }
        }
        Ok(ResourceSpec { segments })
    }

    fn segment(&mut self) -> Result<(ResourceSegment, ResourceKind), SpecError> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.i += 1;
        }
        if self.i == start {
            return self.unexpected("a resource type such as proj, env, flag, member or acct");
        }
        let type_name: String = self.c[start..self.i].iter().collect();
        if type_name == "acct" {
            return match self.peek() {
                None | Some(':') => Ok((
                    ResourceSegment {
                        kind: "acct".into(),
                        name: String::new(),
                        tags: Vec::new(),
                        properties: Vec::new(),
                    },
                    ResourceKind::Account,
                )),
                Some(_) => err(
                    self.i,
                    "acct names the account itself and takes no name, tags or selectors",
                ),
            };
        }
        let Some(kind) = ResourceKind::from_name(&type_name) else {
            let known: Vec<&str> = ResourceKind::ALL.iter().map(|k| k.as_str()).collect();
            return err(
                start,
                format!(
                    "unknown resource type \"{type_name}\": expected one of {}",
                    known.join(", ")
                ),
            );
        };
        if self.peek() != Some('/') {
            return self.unexpected(&format!(
                "'/' after the resource type \"{type_name}\" (a segment is type/name, e.g. {type_name}/*)"
            ));
        }
        self.i += 1;
        let name = self.run(Part::Name)?;
        let mut tags = Vec::new();
        let mut properties = Vec::new();
        if self.peek() == Some(';') {
            self.i += 1;
            loop {
                if self.peek() == Some('{') {
                    properties.push(self.property()?);
                } else if self.is_view_selector() {
                    return err(
                        self.i,
                        "view selectors (;view:<key>) are not supported: expected a tag or a {property:value} selector",
                    );
                } else {
                    tags.push(self.run(Part::Tag)?);
                }
                match self.peek() {
                    Some(',') => self.i += 1,
                    None | Some(':') => break,
                    Some(_) => {
                        return self.unexpected("',' before the next tag or selector, or ':'");
                    }
                }
            }
        }
        let segment = ResourceSegment {
            kind: type_name,
            name,
            tags,
            properties,
        };
        Ok((segment, kind))
    }

    fn property(&mut self) -> Result<PropertySelector, SpecError> {
        self.i += 1; // '{'
        let start = self.i;
        while self.peek().is_some_and(is_tag_char) {
            self.i += 1;
        }
        if self.i == start {
            return self.unexpected("a property name, e.g. {critical:true}");
        }
        let name: String = self.c[start..self.i].iter().collect();
        if self.peek() != Some(':') {
            return self
                .unexpected("':' between the property name and its value, e.g. {critical:true}");
        }
        self.i += 1;
        let value = self.run(Part::PropertyValue)?;
        if self.peek() != Some('}') {
            return self.unexpected("'}' to close the property selector");
        }
        self.i += 1;
        Ok(PropertySelector { name, value })
    }

    /// A name, tag or property value: allowed characters, `*` and placeholders.
    fn run(&mut self, part: Part) -> Result<String, SpecError> {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if part.ends_at(c) {
                break;
            }
            if c == '$' {
                out.push_str(&self.placeholder()?);
            } else if c == '*' || part.allows(c) {
                out.push(c);
                self.i += 1;
            } else if c == '/' && part == Part::Name {
                return err(
                    self.i,
                    "unexpected '/' in a name: segments are type/name joined by ':', e.g. proj/*:env/*",
                );
            } else if (c == ',' || c == '{') && part == Part::Name {
                return err(
                    self.i,
                    format!(
                        "unexpected {c:?} in a name: tags and selectors follow ';', e.g. flag/*;tag1,{{critical:true}}"
                    ),
                );
            } else if out.is_empty() {
                return self.unexpected(part.what());
            } else {
                // The caller says what may follow.
                break;
            }
        }
        if out.is_empty() {
            return self.unexpected(part.what());
        }
        Ok(out)
    }

    fn placeholder(&mut self) -> Result<String, SpecError> {
        let start = self.i;
        if !self.placeholders {
            return err(
                start,
                "role-attribute placeholders (${roleAttribute/<name>}) are only allowed in policies",
            );
        }
        if !self.rest_starts_with(PLACEHOLDER_OPEN) {
            return err(
                start,
                "unexpected '$': expected a ${roleAttribute/<name>} placeholder",
            );
        }
        self.i += PLACEHOLDER_OPEN.chars().count();
        let name_start = self.i;
        while self.peek().is_some_and(is_tag_char) {
            self.i += 1;
        }
        if self.i == name_start {
            return self.unexpected("a role attribute name in ${roleAttribute/<name>}");
        }
        if self.peek() != Some('}') {
            return self.unexpected("'}' to close ${roleAttribute/<name>}");
        }
        self.i += 1;
        Ok(self.c[start..self.i].iter().collect())
    }
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
            let mut sep = ';';
            for tag in &seg.tags {
                write!(f, "{sep}{tag}")?;
                sep = ',';
            }
            for p in &seg.properties {
                write!(f, "{sep}{{{}:{}}}", p.name, p.value)?;
                sep = ',';
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
        assert_eq!(
            ResourceSpec::environment("p", "e", &[])
                .with_property("critical", "true")
                .to_string(),
            "proj/p:env/e;{critical:true}"
        );
    }

    #[test]
    fn parse_round_trips() {
        for text in [
            "proj/default:env/production:flag/my-flag;tag1,tag2",
            "proj/*:env/*;{critical:true}:flag/*",
            "proj/*:env/*;qa_*,{critical:true}:flag/*",
            "acct",
            "member/*:token/*",
            "proj/${roleAttribute/projectKey}:env/*:flag/*",
            "proj/dev-${roleAttribute/team}-*:env/*:flag/*;${roleAttribute/tag}",
            "relay-proxy-config/abc123",
            "proj/*:env/*:segment/*",
            "proj/*;view:env/*",
        ] {
            assert_eq!(ResourceSpec::parse(text).unwrap().to_string(), text);
        }
        assert!(
            ResourceSpec::parse("proj")
                .unwrap_err()
                .contains("type/name")
        );
        assert_eq!(
            ResourceSpec::parse("  proj/x ").unwrap().to_string(),
            "proj/x"
        );
    }

    #[test]
    fn role_attributes_listed_once() {
        let s: ResourceSpec =
            "proj/${roleAttribute/p}:env/${roleAttribute/e}:flag/*;${roleAttribute/p}"
                .parse()
                .unwrap();
        assert_eq!(s.role_attributes(), vec!["p".to_string(), "e".to_string()]);
    }

    #[test]
    fn covers_globs_and_tags() {
        let flag = ResourceSpec::flag("default", "production", "my-flag", &["beta".into()]);
        let both = ResourceSpec::flag(
            "default",
            "production",
            "my-flag",
            &["beta".into(), "gamma".into()],
        );
        let yes = [
            "proj/*:env/*:flag/*",
            "proj/default:env/prod*:flag/my-*",
            "proj/*:env/*:flag/*;beta",
            "proj/*:env/*:flag/*;b*",
        ];
        for p in yes {
            assert!(ResourceSpec::parse(p).unwrap().covers(&flag), "{p}");
        }
        let no = [
            "proj/*",
            "proj/*:env/test:flag/*",
            "proj/*:env/*:flag/*;gamma",
            // Several tags: the resource must carry all of them.
            "proj/*:env/*:flag/*;beta,gamma",
            "proj/*:env/*:segment/*",
        ];
        for p in no {
            assert!(!ResourceSpec::parse(p).unwrap().covers(&flag), "{p}");
        }
        assert!(
            ResourceSpec::parse("proj/*:env/*:flag/*;beta,gamma")
                .unwrap()
                .covers(&both)
        );
        assert!(crate::glob_match("a*b*c", "axxbyyc"));
        assert!(!crate::glob_match("a*b*c", "axxc"));
        assert!(crate::glob_match("*", ""));
        assert!(ResourceSpec::parse("").is_err());
    }
}
