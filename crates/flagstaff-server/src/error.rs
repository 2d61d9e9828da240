//! The one error type of the HTTP layer, mapped once to LaunchDarkly's JSON error shape
//! `{"code": "...", "message": "...", "id": "<uuid>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flagstaff_model::ModelError;
use flagstaff_store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Invalid access token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    OptimisticLock(String),
    #[error("{0}")]
    Conflict(String),
    /// A rejected member invite (400) with one of LaunchDarkly's codes
    /// (`email_already_exists_in_account`, `duplicate_emails`) and the addresses at fault,
    /// returned as `invalid_emails`.
    #[error("{message}")]
    InvalidEmails {
        code: &'static str,
        message: String,
        emails: Vec<String>,
    },
    #[error("{0}")]
    PatchFailed(String),
    #[error("request body is larger than the {0}-byte limit")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(
        "You've exceeded the API rate limit of {0} requests per 10 seconds for this token. Try again after the Retry-After delay."
    )]
    RateLimited(u32),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest(message.into())
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::NotFound(format!("Unknown {what}"))
    }

    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::OptimisticLock(_) => (StatusCode::CONFLICT, "optimistic_locking_error"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::InvalidEmails { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::PatchFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "patch_failed"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let id = uuid::Uuid::new_v4().to_string();
        let message = match &self {
            // Internal details go to the log under the error id, not to the caller.
            ApiError::Internal(detail) => {
                tracing::error!(error_id = %id, "{detail}");
                "An internal error occurred; the server log has details under this error id."
                    .to_string()
            }
            other => other.to_string(),
        };
        let mut body = json!({"code": code, "message": message, "id": id});
        if let ApiError::InvalidEmails { emails, .. } = &self {
            body["invalid_emails"] = json!(emails);
        }
        (status, axum::Json(body)).into_response()
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Invalid(m) => ApiError::InvalidRequest(m),
            ModelError::PatchFailed(m) => ApiError::PatchFailed(m),
            ModelError::VersionConflict(m) => ApiError::OptimisticLock(format!(
                "Conflict. Optimistic lock error: {m}. Re-read the resource and try again."
            )),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ApiError::OptimisticLock(format!(
                "Conflict. Optimistic lock error: {what} was changed concurrently. Try again."
            )),
            StoreError::AlreadyExists(what) => ApiError::Conflict(format!("{what} already exists")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The errors of the OAuth protocol endpoints (`/trust/oauth/token`, `/trust/oauth/revoke`),
/// in RFC 6749 §5.2's shape `{"error", "error_description"}` instead of LaunchDarkly's.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    InvalidRequest(String),
    /// Unknown client or failed client authentication: 401.
    #[error("{0}")]
    InvalidClient(String),
    #[error("{0}")]
    InvalidGrant(String),
    #[error("{0}")]
    UnauthorizedClient(String),
    #[error("{0}")]
    UnsupportedGrantType(String),
    #[error("{0}")]
    InvalidScope(String),
    #[error(transparent)]
    Server(#[from] ApiError),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::Server(_) => "server_error",
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = match &self {
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::Server(e) => e.status_and_code().0,
            _ => StatusCode::BAD_REQUEST,
        };
        let description = match &self {
            OAuthError::Server(ApiError::Internal(detail)) => {
                let id = uuid::Uuid::new_v4().to_string();
                tracing::error!(error_id = %id, "{detail}");
                format!("internal error {id}")
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            axum::Json(json!({"error": self.code(), "error_description": description})),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        headers.insert(
            axum::http::header::PRAGMA,
            axum::http::HeaderValue::from_static("no-cache"),
        );
        if matches!(self, OAuthError::InvalidClient(_)) {
            headers.insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"flagstaff\""),
            );
        }
        response
    }
}
