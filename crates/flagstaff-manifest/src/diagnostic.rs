//! Lint findings: where (file and JSON pointer), which rule, how bad, and how to fix it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The integration cannot be loaded (or would misbehave); `lint` exits non-zero.
    Error,
    /// Loads and runs, but something is likely a mistake.
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable rule id, e.g. `form-variable-default-value`.
    pub rule: &'static str,
    /// The file the finding is in (the manifest or a template file).
    pub file: PathBuf,
    /// JSON pointer into the manifest; empty for the whole file.
    pub pointer: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(
        rule: &'static str,
        file: impl Into<PathBuf>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            rule,
            file: file.into(),
            pointer: pointer.into(),
            message: message.into(),
        }
    }

    pub fn warning(
        rule: &'static str,
        file: impl Into<PathBuf>,
        pointer: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(rule, file, pointer, message)
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}", self.file.display())?;
        if !self.pointer.is_empty() {
            write!(f, "#{}", self.pointer)?;
        }
        write!(f, ": {severity}[{}]: {}", self.rule, self.message)
    }
}

/// Escapes one JSON-pointer reference token (RFC 6901).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
