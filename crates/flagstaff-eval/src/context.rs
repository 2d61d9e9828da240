//! Evaluation contexts: single-kind, multi-kind, and the old user format.
//!
//! JSON input follows LaunchDarkly's three formats:
//!
//! - single-kind: `{"kind":"org","key":"o1","name":"Acme","anonymous":false,"tier":3,
//!   "_meta":{"privateAttributes":["/address/city"]}}`;
//! - multi-kind: `{"kind":"multi","user":{"key":"u1"},"org":{"key":"o1"}}`;
//! - old user format (no `kind`): `{"key":"u1","email":"a@b.c","custom":{"plan":"gold"},
//!   "privateAttributeNames":["email"]}`, which becomes a `user` context and may have an empty
//!   key.
//!
//! Validation follows LaunchDarkly's SDKs: a kind may only contain ASCII letters, digits, `.`,
//! `_` and `-`, and may not be `kind` (or `multi` for a single context); a key must be a
//! non-empty string (except in the old user format); a multi-kind context needs at least one
//! kind, and one with exactly one kind is that single context. A JSON `null` attribute is the
//! same as no attribute.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::attr_ref::AttrRef;
use crate::value::ValueRef;

/// The default context kind.
pub const DEFAULT_KIND: &str = "user";
/// The kind of every multi-kind context.
pub const MULTI_KIND: &str = "multi";

/// Why a context is invalid. Evaluating for an invalid context gives
/// `ERROR`/`USER_NOT_SPECIFIED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    /// The JSON was not an object.
    #[error("a context must be a JSON object")]
    NotAnObject,
    /// The JSON could not be parsed.
    #[error("invalid context JSON: {0}")]
    Json(String),
    /// A property had the wrong JSON type.
    #[error("context property \"{0}\" has the wrong JSON type")]
    WrongType(String),
    /// `"kind": ""`.
    #[error("context kind cannot be empty")]
    KindEmpty,
    /// `"kind": "kind"`.
    #[error("context kind cannot be \"kind\"")]
    KindCannotBeKind,
    /// `"multi"` used as the kind of a single context.
    #[error("\"multi\" is not a valid kind for a single context")]
    KindMultiForSingle,
    /// A kind with characters other than ASCII letters, digits, `.`, `_` and `-`.
    #[error("context kind \"{0}\" contains disallowed characters")]
    KindInvalidChars(String),
    /// No `key` property.
    #[error("context key is missing")]
    KeyMissing,
    /// `"key": null`.
    #[error("context key cannot be null")]
    KeyNull,
    /// `"key": ""` outside the old user format.
    #[error("context key cannot be empty")]
    KeyEmpty,
    /// A multi-kind context without kinds.
    #[error("a multi-kind context must contain at least one kind")]
    MultiEmpty,
    /// A multi-kind context inside a multi-kind context.
    #[error("a multi-kind context cannot contain another multi-kind context")]
    MultiWithinMulti,
    /// The same kind twice in a multi-kind context.
    #[error("a multi-kind context cannot contain the same kind twice")]
    MultiDuplicateKind,
    /// An error in one kind of a multi-kind context.
    #[error("({kind}) {error}")]
    InKind {
        /// The kind whose context is invalid.
        kind: String,
        /// What is wrong with it.
        error: Box<ContextError>,
    },
}

/// One individual context (a single-kind context, or one kind of a multi-kind context).
#[derive(Clone, Debug, PartialEq)]
pub struct SingleContext {
    kind: Box<str>,
    key: String,
    name: Option<String>,
    anonymous: bool,
    attributes: Map<String, Value>,
    private_attributes: Vec<AttrRef>,
    secondary: Option<String>,
}

/// An evaluation context: one [`SingleContext`] or several of different kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct Context {
    repr: Repr,
}

#[derive(Clone, Debug, PartialEq)]
enum Repr {
    Single(SingleContext),
    /// Two or more, sorted by kind, kinds distinct.
    Multi(Box<[SingleContext]>),
}

fn validate_kind(kind: &str) -> Result<&str, ContextError> {
    match kind {
        "" => Ok(DEFAULT_KIND),
        MULTI_KIND => Err(ContextError::KindMultiForSingle),
        "kind" => Err(ContextError::KindCannotBeKind),
        _ => {
            if kind
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                Ok(kind)
            } else {
                Err(ContextError::KindInvalidChars(kind.to_owned()))
            }
        }
    }
}

impl SingleContext {
    /// The kind (never empty).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The `name` attribute, if set.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The `anonymous` attribute.
    pub fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// The custom attributes (everything except `kind`, `key`, `name`, `anonymous`).
    pub fn custom_attributes(&self) -> &Map<String, Value> {
        &self.attributes
    }

    /// The attributes marked private (`_meta.privateAttributes`, or the old format's
    /// `privateAttributeNames`). They matter for event redaction only, never for evaluation.
    pub fn private_attributes(&self) -> &[AttrRef] {
        &self.private_attributes
    }

    /// The old user format's `secondary` key (not addressable, not used for bucketing).
    pub fn secondary(&self) -> Option<&str> {
        self.secondary.as_deref()
    }

    /// The value of an attribute, or `None` if it is absent (or `ref` is invalid).
    ///
    /// The first path component may name a built-in attribute (`kind`, `key`, `name`,
    /// `anonymous`) or a custom one; later components look up object properties (arrays are not
    /// indexable).
    pub fn get_value<'a>(&'a self, attr: &AttrRef) -> Option<ValueRef<'a>> {
        let first = attr.component(0)?;
        let mut value = self.top_level(first)?;
        for i in 1..attr.depth() {
            let name = attr.component(i)?;
            match value {
                ValueRef::Object(o) => value = ValueRef::from_json(o.get(name)?)?,
                _ => return None,
            }
        }
        Some(value)
    }

    /// The value of a top-level attribute by name.
    pub fn top_level(&self, name: &str) -> Option<ValueRef<'_>> {
        match name {
            "kind" => Some(ValueRef::Str(&self.kind)),
            "key" => Some(ValueRef::Str(&self.key)),
            "name" => self.name.as_deref().map(ValueRef::Str),
            "anonymous" => Some(ValueRef::Bool(self.anonymous)),
            _ => ValueRef::from_json(self.attributes.get(name)?),
        }
    }

    fn to_json_object(&self, with_kind: bool) -> Map<String, Value> {
        let mut m = Map::new();
        if with_kind {
            m.insert("kind".into(), Value::String(self.kind.to_string()));
        }
        m.insert("key".into(), Value::String(self.key.clone()));
        if let Some(n) = &self.name {
            m.insert("name".into(), Value::String(n.clone()));
        }
        if self.anonymous {
            m.insert("anonymous".into(), Value::Bool(true));
        }
        for (k, v) in &self.attributes {
            m.insert(k.clone(), v.clone());
        }
        if !self.private_attributes.is_empty() {
            let private: Vec<Value> = self
                .private_attributes
                .iter()
                .map(|r| Value::String(private_attr_string(r)))
                .collect();
            let mut meta = Map::new();
            meta.insert("privateAttributes".into(), Value::Array(private));
            m.insert("_meta".into(), Value::Object(meta));
        }
        m
    }
}

/// The reference-syntax form of a private attribute (literal names starting with `/` are
/// escaped).
fn private_attr_string(r: &AttrRef) -> String {
    if r.depth() == 1 {
        let name = r.component(0).unwrap_or_default();
        if name.starts_with('/') {
            return format!("/{}", name.replace('~', "~0").replace('/', "~1"));
        }
        return name.to_owned();
    }
    r.as_str().to_owned()
}

impl Context {
    /// A `user` context with just a key.
    pub fn user(key: impl Into<String>) -> Result<Context, ContextError> {
        ContextBuilder::new(key).build()
    }

    /// Parses any of the three JSON formats.
    pub fn from_json(value: &Value) -> Result<Context, ContextError> {
        let Value::Object(obj) = value else {
            return Err(ContextError::NotAnObject);
        };
        match obj.get("kind") {
            None => parse_old_user(obj),
            Some(Value::String(k)) if k.is_empty() => Err(ContextError::KindEmpty),
            Some(Value::String(k)) if k == MULTI_KIND => parse_multi(obj),
            Some(Value::String(_)) => Ok(Context {
                repr: Repr::Single(parse_single(obj, None)?),
            }),
            Some(_) => Err(ContextError::WrongType("kind".into())),
        }
    }

    /// Parses JSON text in any of the three formats.
    pub fn from_json_str(s: &str) -> Result<Context, ContextError> {
        let v: Value = serde_json::from_str(s).map_err(|e| ContextError::Json(e.to_string()))?;
        Context::from_json(&v)
    }

    /// The kind: that of the single context, or `"multi"`.
    pub fn kind(&self) -> &str {
        match &self.repr {
            Repr::Single(c) => &c.kind,
            Repr::Multi(_) => MULTI_KIND,
        }
    }

    /// The key of a single context; `""` for a multi-kind context.
    pub fn key(&self) -> &str {
        match &self.repr {
            Repr::Single(c) => &c.key,
            Repr::Multi(_) => "",
        }
    }

    /// True for a multi-kind context.
    pub fn is_multi(&self) -> bool {
        matches!(self.repr, Repr::Multi(_))
    }

    /// The individual contexts (one, or those of a multi-kind context sorted by kind).
    pub fn contexts(&self) -> &[SingleContext] {
        match &self.repr {
            Repr::Single(c) => std::slice::from_ref(c),
            Repr::Multi(cs) => cs,
        }
    }

    /// The individual context of `kind` (`""` means `user`).
    #[inline]
    pub fn individual(&self, kind: &str) -> Option<&SingleContext> {
        let kind = if kind.is_empty() { DEFAULT_KIND } else { kind };
        match &self.repr {
            Repr::Single(c) => (*c.kind == *kind).then_some(c),
            Repr::Multi(cs) => cs.iter().find(|c| *c.kind == *kind),
        }
    }

    /// The value of an attribute. A multi-kind context has only one addressable attribute,
    /// `kind` (whose value is `"multi"`).
    pub fn get_value(&self, attr: &AttrRef) -> Option<ValueRef<'_>> {
        match &self.repr {
            Repr::Single(c) => c.get_value(attr),
            Repr::Multi(_) => (attr.depth() == 1 && attr.component(0) == Some("kind"))
                .then_some(ValueRef::Str(MULTI_KIND)),
        }
    }

    /// LaunchDarkly's fully-qualified key: the key for a `user` context, `kind:key` for other
    /// kinds, and `kind1:key1:kind2:key2` (sorted by kind) for a multi-kind context, with `%`
    /// and `:` in keys escaped.
    pub fn fully_qualified_key(&self) -> String {
        fn esc(s: &str) -> String {
            s.replace('%', "%25").replace(':', "%3A")
        }
        match &self.repr {
            Repr::Single(c) if &*c.kind == DEFAULT_KIND => c.key.clone(),
            Repr::Single(c) => format!("{}:{}", c.kind, esc(&c.key)),
            Repr::Multi(cs) => cs
                .iter()
                .map(|c| format!("{}:{}", c.kind, esc(&c.key)))
                .collect::<Vec<_>>()
                .join(":"),
        }
    }

    /// The context in LaunchDarkly's single-kind or multi-kind JSON format.
    pub fn to_json(&self) -> Value {
        match &self.repr {
            Repr::Single(c) => Value::Object(c.to_json_object(true)),
            Repr::Multi(cs) => {
                let mut m = Map::new();
                m.insert("kind".into(), Value::String(MULTI_KIND.into()));
                for c in cs.iter() {
                    m.insert(c.kind.to_string(), Value::Object(c.to_json_object(false)));
                }
                Value::Object(m)
            }
        }
    }

    fn from_singles(mut contexts: Vec<SingleContext>) -> Result<Context, ContextError> {
        match contexts.len() {
            0 => Err(ContextError::MultiEmpty),
            1 => Ok(Context {
                repr: Repr::Single(contexts.pop().expect("one context")),
            }),
            _ => {
                contexts.sort_by(|a, b| a.kind.cmp(&b.kind));
                if contexts.windows(2).any(|w| w[0].kind == w[1].kind) {
                    return Err(ContextError::MultiDuplicateKind);
                }
                Ok(Context {
                    repr: Repr::Multi(contexts.into_boxed_slice()),
                })
            }
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Context {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        Context::from_json(&v).map_err(D::Error::custom)
    }
}

fn wrong(name: &str) -> ContextError {
    ContextError::WrongType(name.to_owned())
}

fn opt_string(v: &Value, name: &str) -> Result<Option<String>, ContextError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(wrong(name)),
    }
}

fn parse_single(
    obj: &Map<String, Value>,
    known_kind: Option<&str>,
) -> Result<SingleContext, ContextError> {
    let mut kind: &str = known_kind.unwrap_or("");
    let mut key = None;
    let mut name = None;
    let mut anonymous = false;
    let mut attributes = Map::new();
    let mut private_attributes = Vec::new();
    for (prop, v) in obj {
        match prop.as_str() {
            "kind" => match v {
                Value::String(k) => kind = k,
                _ => return Err(wrong("kind")),
            },
            "key" => match v {
                Value::String(k) => key = Some(k.clone()),
                Value::Null => return Err(ContextError::KeyNull),
                _ => return Err(wrong("key")),
            },
            "name" => name = opt_string(v, "name")?,
            "anonymous" => match v {
                Value::Bool(b) => anonymous = *b,
                Value::Null => anonymous = false,
                _ => return Err(wrong("anonymous")),
            },
            "_meta" => match v {
                Value::Null => {}
                Value::Object(meta) => match meta.get("privateAttributes") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(items)) => {
                        for item in items {
                            match item {
                                Value::String(s) => private_attributes.push(AttrRef::new(s)),
                                _ => return Err(wrong("_meta.privateAttributes")),
                            }
                        }
                    }
                    Some(_) => return Err(wrong("_meta.privateAttributes")),
                },
                _ => return Err(wrong("_meta")),
            },
            _ => {
                if !v.is_null() {
                    attributes.insert(prop.clone(), v.clone());
                }
            }
        }
    }
    let kind = validate_kind(kind)?;
    let key = key.ok_or(ContextError::KeyMissing)?;
    if key.is_empty() {
        return Err(ContextError::KeyEmpty);
    }
    Ok(SingleContext {
        kind: kind.into(),
        key,
        name,
        anonymous,
        attributes,
        private_attributes,
        secondary: None,
    })
}

fn parse_multi(obj: &Map<String, Value>) -> Result<Context, ContextError> {
    let mut contexts = Vec::with_capacity(obj.len().saturating_sub(1));
    for (kind, v) in obj {
        if kind == "kind" {
            continue;
        }
        let in_kind = |error: ContextError| ContextError::InKind {
            kind: kind.clone(),
            error: Box::new(error),
        };
        let Value::Object(member) = v else {
            return Err(in_kind(ContextError::NotAnObject));
        };
        contexts.push(parse_single(member, Some(kind)).map_err(in_kind)?);
    }
    Context::from_singles(contexts)
}

const OLD_USER_STRING_ATTRIBUTES: [&str; 6] =
    ["firstName", "lastName", "email", "country", "avatar", "ip"];

fn parse_old_user(obj: &Map<String, Value>) -> Result<Context, ContextError> {
    let mut key = None;
    let mut name = None;
    let mut secondary = None;
    let mut anonymous = false;
    let mut attributes = Map::new();
    let mut private_attributes = Vec::new();
    for (prop, v) in obj {
        match prop.as_str() {
            "key" => match v {
                Value::String(k) => key = Some(k.clone()),
                Value::Null => return Err(ContextError::KeyNull),
                _ => return Err(wrong("key")),
            },
            "name" => name = opt_string(v, "name")?,
            "secondary" => secondary = opt_string(v, "secondary")?,
            "anonymous" => match v {
                Value::Bool(b) => anonymous = *b,
                Value::Null => anonymous = false,
                _ => return Err(wrong("anonymous")),
            },
            "custom" => match v {
                Value::Null => {}
                Value::Object(custom) => {
                    for (k, cv) in custom {
                        if matches!(k.as_str(), "kind" | "key" | "name" | "anonymous" | "_meta") {
                            continue;
                        }
                        if cv.is_null() {
                            attributes.remove(k);
                        } else {
                            attributes.insert(k.clone(), cv.clone());
                        }
                    }
                }
                _ => return Err(wrong("custom")),
            },
            "privateAttributeNames" => match v {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => private_attributes.push(AttrRef::literal(s)),
                            _ => return Err(wrong("privateAttributeNames")),
                        }
                    }
                }
                _ => return Err(wrong("privateAttributeNames")),
            },
            p if OLD_USER_STRING_ATTRIBUTES.contains(&p) => {
                if let Some(s) = opt_string(v, p)? {
                    attributes.insert(p.to_owned(), Value::String(s));
                }
            }
            _ => {}
        }
    }
    let key = key.ok_or(ContextError::KeyMissing)?;
    Ok(Context {
        repr: Repr::Single(SingleContext {
            kind: DEFAULT_KIND.into(),
            key,
            name,
            anonymous,
            attributes,
            private_attributes,
            secondary,
        }),
    })
}

/// Builds a single-kind context.
#[derive(Clone, Debug)]
pub struct ContextBuilder {
    kind: String,
    key: String,
    name: Option<String>,
    anonymous: bool,
    attributes: Map<String, Value>,
    private_attributes: Vec<AttrRef>,
}

impl ContextBuilder {
    /// A builder for a `user` context with this key.
    pub fn new(key: impl Into<String>) -> ContextBuilder {
        ContextBuilder {
            kind: String::new(),
            key: key.into(),
            name: None,
            anonymous: false,
            attributes: Map::new(),
            private_attributes: Vec::new(),
        }
    }

    /// Sets the kind (`""` means `user`).
    pub fn kind(&mut self, kind: impl Into<String>) -> &mut Self {
        self.kind = kind.into();
        self
    }

    /// Sets the key.
    pub fn key(&mut self, key: impl Into<String>) -> &mut Self {
        self.key = key.into();
        self
    }

    /// Sets the `name` attribute.
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the `anonymous` attribute.
    pub fn anonymous(&mut self, anonymous: bool) -> &mut Self {
        self.anonymous = anonymous;
        self
    }

    /// Sets any attribute. `kind` and `key` take strings, `name` a string or null, `anonymous` a
    /// boolean (values of other types are ignored); `null` removes a custom attribute; `_meta`
    /// is ignored.
    pub fn set(&mut self, name: &str, value: Value) -> &mut Self {
        match (name, value) {
            ("kind", Value::String(s)) => self.kind = s,
            ("key", Value::String(s)) => self.key = s,
            ("name", Value::String(s)) => self.name = Some(s),
            ("name", Value::Null) => self.name = None,
            ("anonymous", Value::Bool(b)) => self.anonymous = b,
            ("kind" | "key" | "name" | "anonymous" | "_meta", _) => {}
            (_, Value::Null) => {
                self.attributes.remove(name);
            }
            (_, v) => {
                self.attributes.insert(name.to_owned(), v);
            }
        }
        self
    }

    /// Marks an attribute private (reference syntax).
    pub fn private(&mut self, attr: &str) -> &mut Self {
        self.private_attributes.push(AttrRef::new(attr));
        self
    }

    fn build_single(&self) -> Result<SingleContext, ContextError> {
        let kind = validate_kind(&self.kind)?;
        if self.key.is_empty() {
            return Err(ContextError::KeyEmpty);
        }
        Ok(SingleContext {
            kind: kind.into(),
            key: self.key.clone(),
            name: self.name.clone(),
            anonymous: self.anonymous,
            attributes: self.attributes.clone(),
            private_attributes: self.private_attributes.clone(),
            secondary: None,
        })
    }

    /// Validates and builds the context.
    pub fn build(&self) -> Result<Context, ContextError> {
        Ok(Context {
            repr: Repr::Single(self.build_single()?),
        })
    }
}

/// Builds a multi-kind context from single-kind ones.
#[derive(Clone, Debug, Default)]
pub struct MultiContextBuilder {
    contexts: Vec<Context>,
}

impl MultiContextBuilder {
    /// An empty builder.
    pub fn new() -> MultiContextBuilder {
        MultiContextBuilder::default()
    }

    /// Adds a single-kind context.
    pub fn add(&mut self, context: Context) -> &mut Self {
        self.contexts.push(context);
        self
    }

    /// Validates and builds; with one context added, that context is returned.
    pub fn build(&self) -> Result<Context, ContextError> {
        let mut singles = Vec::with_capacity(self.contexts.len());
        for c in &self.contexts {
            match &c.repr {
                Repr::Single(s) => singles.push(s.clone()),
                Repr::Multi(_) => return Err(ContextError::MultiWithinMulti),
            }
        }
        Context::from_singles(singles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: Value) -> Result<Context, ContextError> {
        Context::from_json(&v)
    }

    #[test]
    fn single_kind() {
        let c = ctx(
            json!({"kind":"org","key":"o1","name":"Acme","tier":3,"n":null,
            "_meta":{"privateAttributes":["tier"]}}),
        )
        .unwrap();
        assert_eq!(c.kind(), "org");
        assert_eq!(c.key(), "o1");
        let s = c.individual("org").unwrap();
        assert_eq!(s.name(), Some("Acme"));
        assert_eq!(s.top_level("tier"), Some(ValueRef::Number(3.0)));
        assert_eq!(s.top_level("n"), None);
        assert_eq!(s.top_level("anonymous"), Some(ValueRef::Bool(false)));
        assert_eq!(s.top_level("kind"), Some(ValueRef::Str("org")));
        assert_eq!(s.private_attributes().len(), 1);
        assert!(c.individual("user").is_none());
        assert_eq!(c.fully_qualified_key(), "org:o1");
    }

    #[test]
    fn multi_kind() {
        let c = ctx(json!({"kind":"multi","user":{"key":"u1"},"org":{"key":"o:1"}})).unwrap();
        assert!(c.is_multi());
        assert_eq!(c.kind(), "multi");
        assert_eq!(c.contexts()[0].kind(), "org");
        assert_eq!(c.individual("").unwrap().key(), "u1");
        assert_eq!(c.fully_qualified_key(), "org:o%3A1:user:u1");
        assert_eq!(
            c.get_value(&AttrRef::new("kind")),
            Some(ValueRef::Str("multi"))
        );
        assert_eq!(c.get_value(&AttrRef::new("key")), None);
        let one = ctx(json!({"kind":"multi","org":{"key":"o1"}})).unwrap();
        assert!(!one.is_multi());
        assert_eq!(one.kind(), "org");
        let back = Context::from_json(&c.to_json()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn old_user() {
        let c = ctx(
            json!({"key":"","email":"a@b.c","custom":{"plan":"gold","key":"x"},
            "secondary":"s","privateAttributeNames":["/email"],"ignored":1}),
        )
        .unwrap();
        assert_eq!(c.kind(), "user");
        assert_eq!(c.key(), "");
        let s = c.individual("user").unwrap();
        assert_eq!(s.top_level("email"), Some(ValueRef::Str("a@b.c")));
        assert_eq!(s.top_level("plan"), Some(ValueRef::Str("gold")));
        assert_eq!(s.top_level("ignored"), None);
        assert_eq!(s.secondary(), Some("s"));
        assert_eq!(s.private_attributes()[0].component(0), Some("/email"));
    }

    #[test]
    fn validation() {
        assert_eq!(ctx(json!("x")), Err(ContextError::NotAnObject));
        assert_eq!(
            ctx(json!({"kind":"","key":"a"})),
            Err(ContextError::KindEmpty)
        );
        assert_eq!(
            ctx(json!({"kind":"kind","key":"a"})),
            Err(ContextError::KindCannotBeKind)
        );
        assert!(matches!(
            ctx(json!({"kind":"a b","key":"a"})),
            Err(ContextError::KindInvalidChars(_))
        ));
        assert_eq!(ctx(json!({"kind":"org"})), Err(ContextError::KeyMissing));
        assert_eq!(
            ctx(json!({"kind":"org","key":""})),
            Err(ContextError::KeyEmpty)
        );
        assert_eq!(
            ctx(json!({"kind":"org","key":null})),
            Err(ContextError::KeyNull)
        );
        assert_eq!(ctx(json!({"kind":"org","key":1})), Err(wrong("key")));
        assert_eq!(
            ctx(json!({"kind":"org","key":"a","name":1})),
            Err(wrong("name"))
        );
        assert_eq!(ctx(json!({"kind":1,"key":"a"})), Err(wrong("kind")));
        assert_eq!(ctx(json!({"kind":"multi"})), Err(ContextError::MultiEmpty));
        assert!(matches!(
            ctx(json!({"kind":"multi","org":{"key":""}})),
            Err(ContextError::InKind { .. })
        ));
        assert!(matches!(
            ctx(json!({"kind":"multi","multi":{"key":"a"}})),
            Err(ContextError::InKind { .. })
        ));
        assert_eq!(ctx(json!({"email":"x"})), Err(ContextError::KeyMissing));
        assert_eq!(ctx(json!({"key":"a","email":3})), Err(wrong("email")));
    }

    #[test]
    fn nested_lookup() {
        let c = ctx(json!({"kind":"user","key":"x","a":{"b":{"c":1},"arr":[1,2]}})).unwrap();
        assert_eq!(
            c.get_value(&AttrRef::new("/a/b/c")),
            Some(ValueRef::Number(1.0))
        );
        assert_eq!(c.get_value(&AttrRef::new("/a/arr/0")), None);
        assert_eq!(c.get_value(&AttrRef::new("/a/zz")), None);
        assert_eq!(c.get_value(&AttrRef::new("/key/x")), None);
        assert_eq!(c.get_value(&AttrRef::new("/a~")), None);
    }

    #[test]
    fn builders() {
        let u = ContextBuilder::new("u")
            .name("N")
            .set("plan", json!("p"))
            .build()
            .unwrap();
        let o = ContextBuilder::new("o").kind("org").build().unwrap();
        let m = MultiContextBuilder::new()
            .add(u.clone())
            .add(o)
            .build()
            .unwrap();
        assert!(m.is_multi());
        assert_eq!(
            MultiContextBuilder::new().add(m.clone()).build(),
            Err(ContextError::MultiWithinMulti)
        );
        assert_eq!(
            MultiContextBuilder::new().add(u.clone()).add(u).build(),
            Err(ContextError::MultiDuplicateKind)
        );
        assert_eq!(ContextBuilder::new("").build(), Err(ContextError::KeyEmpty));
    }
}
