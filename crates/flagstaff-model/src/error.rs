use thiserror::Error;

/// Why a requested change cannot be made. Every variant carries a message meant for the
/// API caller: it names the field or instruction at fault and what would be accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// The request is malformed or asks for an invalid state (HTTP 400 `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// A well-formed patch could not be applied to the current entity (HTTP 422 `patch_failed`).
    #[error("{0}")]
    PatchFailed(String),
    /// A `test` operation on the version failed: someone else changed the entity (HTTP 409).
    #[error("{0}")]
    VersionConflict(String),
}

impl ModelError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
    pub fn patch_failed(message: impl Into<String>) -> Self {
        Self::PatchFailed(message.into())
    }
}

pub type ModelResult<T> = Result<T, ModelError>;
