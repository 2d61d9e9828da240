//! The one error type of policy parsing and compiling.

use std::fmt;

/// A statement field, by its JSON name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Effect,
    Actions,
    NotActions,
    Resources,
    NotResources,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Effect => "effect",
            Field::Actions => "actions",
            Field::NotActions => "notActions",
            Field::Resources => "resources",
            Field::NotResources => "notResources",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy (an array of statements) was rejected. Every variant names the statement
/// (0-based index in the policy) where there is one; syntax errors also name the field, the
/// item in that field's array and the 0-based character position in that item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Wrong JSON shape: not an array/object, unknown or missing field, wrong type, both
    /// `actions` and `notActions`, …
    #[error("{}{}{message}", statement_prefix(*statement), field_prefix(field.as_deref()))]
    Shape {
        statement: Option<usize>,
        field: Option<String>,
        message: String,
    },
    /// A malformed action or resource specifier.
    #[error("statement {statement}: {field}[{item}]: at character {position}: {message}")]
    Syntax {
        statement: usize,
        field: Field,
        item: usize,
        position: usize,
        message: String,
    },
    /// A `${roleAttribute/…}` placeholder with no value in the assignment's role attributes.
    #[error(
        "statement {statement}: {field}[{item}]: role attribute \"{attribute}\" has no value for this role assignment"
    )]
    MissingRoleAttribute {
        statement: usize,
        field: Field,
        item: usize,
        attribute: String,
    },
    /// A role attribute value that cannot be substituted into a specifier.
    #[error(
        "statement {statement}: {field}[{item}]: role attribute \"{attribute}\" value {value:?}: {message}"
    )]
    InvalidRoleAttribute {
        statement: usize,
        field: Field,
        item: usize,
        attribute: String,
        value: String,
        message: String,
    },
}

fn statement_prefix(statement: Option<usize>) -> String {
    statement
        .map(|s| format!("statement {s}: "))
        .unwrap_or_default()
}

fn field_prefix(field: Option<&str>) -> String {
    field.map(|f| format!("{f}: ")).unwrap_or_default()
}

impl PolicyError {
    pub(crate) fn shape(
        statement: Option<usize>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        PolicyError::Shape {
            statement,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }

    /// The 0-based index of the offending statement.
    pub fn statement(&self) -> Option<usize> {
        match self {
            PolicyError::Shape { statement, .. } => *statement,
            PolicyError::Syntax { statement, .. }
            | PolicyError::MissingRoleAttribute { statement, .. }
            | PolicyError::InvalidRoleAttribute { statement, .. } => Some(*statement),
        }
    }

    /// The offending field's JSON name (`resources`, `effect`, or an unknown field's name).
    pub fn field(&self) -> Option<&str> {
        match self {
            PolicyError::Shape { field, .. } => field.as_deref(),
            PolicyError::Syntax { field, .. }
            | PolicyError::MissingRoleAttribute { field, .. }
            | PolicyError::InvalidRoleAttribute { field, .. } => Some(field.as_str()),
        }
    }

    /// The 0-based character position inside the offending action or specifier.
    pub fn position(&self) -> Option<usize> {
        match self {
            PolicyError::Syntax { position, .. } => Some(*position),
            _ => None,
        }
    }

    /// The message without the `statement N: ` prefix (for contexts, like serde paths, that
    /// already say which statement).
    pub fn detail(&self) -> String {
        let full = self.to_string();
        match self.statement() {
            Some(s) => full
                .strip_prefix(&format!("statement {s}: "))
                .map(str::to_string)
                .unwrap_or(full),
            None => full,
        }
    }
}
