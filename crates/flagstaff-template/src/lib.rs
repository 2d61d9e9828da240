//! Handlebars rendering for LaunchDarkly integration-framework templates.
//!
//! API CONTRACT (other crates compile against this; keep the signatures):
//!
//! * `Template::parse(name, source)` parses once; errors name the template and position.
//! * `Template::render(&context, RenderOptions)` renders; `Compat::Js` is byte-exact
//!   handlebars.js 4.7.7 (+ the catalogue's helpers), `Compat::Go` mimics LaunchDarkly's
//!   production renderer (aymerick/raymond).
//! * `json_escape_context` is the catalogue's `utils/json-escape.js` pre-processing.
//!
//! # How it works
//!
//! `Template::parse` runs handlebars.js's lexer (rule for rule), its grammar, its
//! `WhitespaceControl` pass (`~` and standalone lines) and the compiler's classification of
//! every mustache (plain value, helper call or "ambiguous"), once. `render` walks the result
//! with the runtime semantics of handlebars.js 4.7.7: `depths` for `../`, data frames for
//! `@index`/`@key`/`@first`/`@last`/`@root`, `blockHelperMissing` for `{{#section}}`,
//! `helperMissing`, strict-mode lookups (`container.strict`, including which segments are
//! checked), JavaScript value printing (`Number.prototype.toString`, `Array.prototype.join`,
//! `[object Object]`) and truthiness. Values borrow from the context; output goes into one
//! `String`.
//!
//! Not supported (a parse error, where handlebars.js would fail at render time anyway because
//! nothing is registered): partials (`{{> name}}`, `{{#> name}}`) and decorators (`{{* d}}`).
//!
//! Positions are 1-based lines and 1-based columns counted in characters (handlebars.js
//! reports 0-based columns in UTF-16 units). Strict-mode and helper errors carry
//! handlebars.js's messages (`"x" not defined in [object Object]`, `Missing helper: "x"`).
//!
//! Known differences from handlebars.js (none occurs in the catalogue):
//!
//! * Indexing a string inside an astral character (`{{s.[1]}}` of `"😀"`) yields U+FFFD: a lone
//!   UTF-16 surrogate cannot be represented in a Rust string.
//! * `formatWithOffset` with a string timestamp is an invalid date (JavaScript would run its
//!   date-string parser on `"<string><offset>"`).
//! * Values nested more than 256 levels deep fail to print instead of printing.
//!
//! `Compat::Go` changes exactly these behaviours (everything else is handlebars.js's): the
//! escape set, printing of numbers (no exponent), arrays (concatenated) and objects (Go
//! `map[…]`), `equal` (string forms, no else branch), `formatWithOffset` (24-hour UTC, no
//! fraction, seconds floored), truthiness in `if`/`unless`/`with`/sections (`{}` is false),
//! and missing helper arguments (empty instead of `"undefined"`).

mod ast;
/// Akamai EdgeGrid signing and the `edgeGridAuth` helper (registered in `helpers::EXTENSIONS`).
pub mod edgegrid;
mod helpers;
mod lexer;
mod parser;
mod render;
mod value;

use std::sync::Arc;

use serde_json::Value;

/// Which reference renderer's observable behaviour to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// handlebars.js 4.7.7 with the integration-framework's `helpers/index.js`.
    Js,
    /// LaunchDarkly production (Go, aymerick/raymond): escape set `& ' < > "`, arrays
    /// concatenated, string `equal`, `formatWithOffset` in UTC 24-hour form.
    #[default]
    Go,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// handlebars.js `{strict: true}`: a missing path is an error (what the catalogue's tests do).
    pub strict: bool,
    pub compat: Compat,
}

/// Resource limits of one render (see [`Template::render_with_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// The render fails once its output is longer than this.
    pub max_output_bytes: usize,
    /// The render fails after this many evaluation steps (mustaches, blocks and block-body
    /// invocations, including every `each` iteration).
    pub max_steps: u64,
}

impl Default for RenderLimits {
    fn default() -> Self {
        RenderLimits {
            max_output_bytes: 64 << 20,
            max_steps: 32_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}:{line}:{column}: {message}")]
pub struct TemplateError {
    /// The template's name as given to `Template::parse` (a file path or a manifest JSON pointer).
    pub template: String,
    pub line: usize,
    pub column: usize,
    pub kind: TemplateErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The source does not parse (unterminated block, bad mustache, mismatched close, ...).
    Parse,
    /// Strict mode: a referenced path is missing from the context.
    MissingPath,
    /// A helper that does not exist was called with parameters.
    MissingHelper,
    /// A helper was called with unusable arguments, or rendering exceeded a limit.
    Render,
}

#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    compiled: Arc<parser::Compiled>,
}

impl Template {
    pub fn parse(name: impl Into<String>, source: &str) -> Result<Template, TemplateError> {
        let name = name.into();
        let compiled = parser::parse(&name, source)?;
        Ok(Template {
            name,
            compiled: Arc::new(compiled),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn render(&self, context: &Value, options: RenderOptions) -> Result<String, TemplateError> {
        self.render_with_limits(context, options, RenderLimits::default())
    }

    /// [`Template::render`] with explicit resource limits.
    pub fn render_with_limits(
        &self,
        context: &Value,
        options: RenderOptions,
        limits: RenderLimits,
    ) -> Result<String, TemplateError> {
        render::render(&self.name, &self.compiled, context, options, limits)
    }
}

/// `utils/json-escape.js`: every string value (recursively through objects and arrays, not
/// keys) becomes `JSON.stringify(s).slice(1, -1)`.
pub fn json_escape_context(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(json_escape_str(s)),
        Value::Array(items) => Value::Array(items.iter().map(json_escape_context).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_escape_context(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `JSON.stringify(s).slice(1, -1)`.
fn json_escape_str(s: &str) -> String {
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Names ending in `.json` or `.json.hbs` (case-insensitive) get JSON-escaped contexts and
/// must render valid JSON.
pub fn is_json_template_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".json") || lower.ends_with(".json.hbs")
}

#[cfg(test)]
mod tests;
