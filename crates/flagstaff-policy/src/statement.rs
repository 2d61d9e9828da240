//! Policy statements as LaunchDarkly writes them:
//! `{"effect":"allow","actions":["updateOn"],"resources":["proj/*:env/production:flag/*"]}`.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::attributes::{ExpandError, RoleAttributes, expand};
use crate::error::{Field, PolicyError};
use crate::resource::Resource;
use crate::spec::{ResourceSpec, parse_spec};

/// Whether a matching statement grants or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
}

/// `actions` (the statement applies to these action globs) or `notActions` (to every action
/// except these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionSet {
    Actions(Vec<String>),
    NotActions(Vec<String>),
}

/// `resources` (the statement applies to resources these specifiers match) or `notResources`
/// (to every resource none of them matches, of any type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceSet {
    Resources(Vec<ResourceSpec>),
    NotResources(Vec<ResourceSpec>),
}

/// One policy statement. Serializes back to LaunchDarkly's JSON (`effect`, then
/// `actions`/`notActions`, then `resources`/`notResources`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    pub actions: ActionSet,
    pub resources: ResourceSet,
}

impl ActionSet {
    pub fn patterns(&self) -> &[String] {
        match self {
            ActionSet::Actions(a) | ActionSet::NotActions(a) => a,
        }
    }
    pub fn field(&self) -> Field {
        match self {
            ActionSet::Actions(_) => Field::Actions,
            ActionSet::NotActions(_) => Field::NotActions,
        }
    }
}

impl ResourceSet {
    pub fn specs(&self) -> &[ResourceSpec] {
        match self {
            ResourceSet::Resources(r) | ResourceSet::NotResources(r) => r,
        }
    }
    pub fn field(&self) -> Field {
        match self {
            ResourceSet::Resources(_) => Field::Resources,
            ResourceSet::NotResources(_) => Field::NotResources,
        }
    }
}

/// Checks an action name or glob (`updateOn`, `update*`, `*`): letters, digits and `*`.
/// Returns the 0-based position of the offending character and the message.
pub fn validate_action(action: &str) -> Result<(), (usize, String)> {
    const EXPECTED: &str = "an action is a name such as updateOn or a '*' glob such as update*";
    if action.is_empty() {
        return Err((0, format!("expected an action, found nothing: {EXPECTED}")));
    }
    for (i, c) in action.chars().enumerate() {
        if !(c.is_ascii_alphanumeric() || c == '*') {
            let what = if c.is_whitespace() {
                "whitespace".to_string()
            } else {
                format!("{c:?}")
            };
            return Err((i, format!("unexpected {what}: {EXPECTED}")));
        }
    }
    Ok(())
}

impl Statement {
    /// A statement from already-parsed parts (see [`Statement::parse`] for text).
    pub fn new(effect: Effect, actions: ActionSet, resources: ResourceSet) -> Self {
        Self {
            effect,
            actions,
            resources,
        }
    }

    /// `{"effect":"allow","actions":…,"resources":…}` from texts, as statement 0 of a policy.
    pub fn allow(actions: &[&str], resources: &[&str]) -> Result<Self, PolicyError> {
        Self::from_json(
            &serde_json::json!({"effect": "allow", "actions": actions, "resources": resources}),
            0,
        )
    }

    /// `{"effect":"deny","actions":…,"resources":…}` from texts, as statement 0 of a policy.
    pub fn deny(actions: &[&str], resources: &[&str]) -> Result<Self, PolicyError> {
        Self::from_json(
            &serde_json::json!({"effect": "deny", "actions": actions, "resources": resources}),
            0,
        )
    }

    /// Parses one statement object; `index` is its position in the policy, for errors.
    pub fn from_json(value: &Value, index: usize) -> Result<Self, PolicyError> {
        let obj = value.as_object().ok_or_else(|| {
            PolicyError::shape(Some(index), None, "a statement must be a JSON object")
        })?;
        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "effect" | "actions" | "notActions" | "resources" | "notResources"
            ) {
                return Err(PolicyError::shape(
                    Some(index),
                    Some(key),
                    "unknown field: expected effect, actions, notActions, resources or notResources",
                ));
            }
        }
        let effect = match obj.get("effect") {
            Some(Value::String(s)) if s == "allow" => Effect::Allow,
            Some(Value::String(s)) if s == "deny" => Effect::Deny,
            None | Some(Value::Null) => {
                return Err(PolicyError::shape(
                    Some(index),
                    Some("effect"),
                    "missing: expected \"allow\" or \"deny\"",
                ));
            }
            Some(other) => {
                return Err(PolicyError::shape(
                    Some(index),
                    Some("effect"),
                    format!("expected \"allow\" or \"deny\", found {other}"),
                ));
            }
        };
        let actions = match pick(obj, index, Field::Actions, Field::NotActions)? {
            (Field::Actions, list) => ActionSet::Actions(list),
            (_, list) => ActionSet::NotActions(list),
        };
        for (item, a) in actions.patterns().iter().enumerate() {
            validate_action(a).map_err(|(position, message)| PolicyError::Syntax {
                statement: index,
                field: actions.field(),
                item,
                position,
                message,
            })?;
        }
        let (field, list) = pick(obj, index, Field::Resources, Field::NotResources)?;
        let specs = parse_specs(list.iter().map(String::as_str), index, field)?;
        let resources = match field {
            Field::Resources => ResourceSet::Resources(specs),
            _ => ResourceSet::NotResources(specs),
        };
        Ok(Self::new(effect, actions, resources))
    }

    /// The statement as LaunchDarkly JSON.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert(
            "effect".into(),
            Value::String(
                match self.effect {
                    Effect::Allow => "allow",
                    Effect::Deny => "deny",
                }
                .into(),
            ),
        );
        obj.insert(
            self.actions.field().as_str().into(),
            Value::from(self.actions.patterns().to_vec()),
        );
        obj.insert(
            self.resources.field().as_str().into(),
            Value::from(
                self.resources
                    .specs()
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            ),
        );
        Value::Object(obj)
    }

    /// The role attribute names this statement's specifiers use.
    pub fn role_attributes(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for spec in self.resources.specs() {
            for a in spec.role_attributes() {
                if !all.contains(&a) {
                    all.push(a);
                }
            }
        }
        all
    }

    /// This statement with every `${roleAttribute/…}` placeholder substituted from
    /// `attributes` (a specifier expands to one specifier per value). `index` is the
    /// statement's position in its policy, for errors.
    pub fn resolve(&self, attributes: &RoleAttributes, index: usize) -> Result<Self, PolicyError> {
        let field = self.resources.field();
        let mut specs = Vec::with_capacity(self.resources.specs().len());
        for (item, spec) in self.resources.specs().iter().enumerate() {
            let expanded = expand(spec, attributes).map_err(|e| match e {
                ExpandError::Missing(attribute) => PolicyError::MissingRoleAttribute {
                    statement: index,
                    field,
                    item,
                    attribute,
                },
                ExpandError::Invalid {
                    attribute,
                    value,
                    message,
                } => PolicyError::InvalidRoleAttribute {
                    statement: index,
                    field,
                    item,
                    attribute,
                    value,
                    message,
                },
            })?;
            specs.extend(expanded);
        }
        let resources = match self.resources {
            ResourceSet::Resources(_) => ResourceSet::Resources(specs),
            ResourceSet::NotResources(_) => ResourceSet::NotResources(specs),
        };
        Ok(Self::new(self.effect, self.actions.clone(), resources))
    }

    /// Whether this statement applies to (`action`, `resource`), whatever its effect. A
    /// statement with unresolved role-attribute placeholders applies to nothing.
    pub fn matches(&self, action: &str, resource: &Resource) -> bool {
        crate::compiled::CompiledStatement::compile(self, 0)
            .is_ok_and(|s| s.matches(action, resource))
    }
}

/// `(field, list)` for whichever of `plain`/`negated` the statement uses. A field that is
/// absent or `null` is unused; when both are present one must be empty (LaunchDarkly: "the
/// `resources` field must be empty to use this field").
fn pick(
    obj: &Map<String, Value>,
    index: usize,
    plain: Field,
    negated: Field,
) -> Result<(Field, Vec<String>), PolicyError> {
    let a = string_list(obj, index, plain)?;
    let b = string_list(obj, index, negated)?;
    match (a, b) {
        (Some(a), None) => Ok((plain, a)),
        (None, Some(b)) => Ok((negated, b)),
        (Some(a), Some(b)) if a.is_empty() => Ok((negated, b)),
        (Some(a), Some(b)) if b.is_empty() => Ok((plain, a)),
        (Some(_), Some(_)) => Err(PolicyError::shape(
            Some(index),
            Some(negated.as_str()),
            format!("use either {plain} or {negated}, not both"),
        )),
        (None, None) => Err(PolicyError::shape(
            Some(index),
            Some(plain.as_str()),
            format!("missing: a statement needs {plain} or {negated}"),
        )),
    }
}

fn string_list(
    obj: &Map<String, Value>,
    index: usize,
    field: Field,
) -> Result<Option<Vec<String>>, PolicyError> {
    match obj.get(field.as_str()) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    PolicyError::shape(
                        Some(index),
                        Some(field.as_str()),
                        format!("item {i} must be a string, found {v}"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(PolicyError::shape(
            Some(index),
            Some(field.as_str()),
            format!("expected an array of strings, found {other}"),
        )),
    }
}

fn parse_specs<'a>(
    texts: impl Iterator<Item = &'a str>,
    statement: usize,
    field: Field,
) -> Result<Vec<ResourceSpec>, PolicyError> {
    texts
        .enumerate()
        .map(|(item, text)| {
            parse_spec(text, true).map_err(|e| PolicyError::Syntax {
                statement,
                field,
                item,
                position: e.position,
                message: e.message,
            })
        })
        .collect()
}

/// Parses a policy: a JSON array of statements.
pub fn parse_policy(value: &Value) -> Result<Vec<Statement>, PolicyError> {
    let items = value.as_array().ok_or_else(|| {
        PolicyError::shape(None, None, "a policy must be a JSON array of statements")
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| Statement::from_json(v, i))
        .collect()
}

/// Parses a policy from JSON text.
pub fn parse_policy_str(text: &str) -> Result<Vec<Statement>, PolicyError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| PolicyError::shape(None, None, format!("invalid JSON: {e}")))?;
    parse_policy(&value)
}

/// A policy as LaunchDarkly JSON.
pub fn policy_to_json(statements: &[Statement]) -> Value {
    Value::Array(statements.iter().map(Statement::to_json).collect())
}

impl Serialize for Statement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("effect", &self.effect)?;
        map.serialize_entry(self.actions.field().as_str(), self.actions.patterns())?;
        map.serialize_entry(self.resources.field().as_str(), self.resources.specs())?;
        map.end()
    }
}

/// Errors leave out the statement index: serde's path (`policy[2]`) says which one.
impl<'de> Deserialize<'de> for Statement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Statement::from_json(&value, 0).map_err(|e| D::Error::custom(e.detail()))
    }
}

impl Serialize for ResourceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_spec(&text, true).map_err(D::Error::custom)
    }
}
