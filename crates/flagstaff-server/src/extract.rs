//! Request extractors whose rejections are LaunchDarkly-shaped JSON errors with a message
//! that says what to fix.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body deserialized into `T`. Unknown fields, wrong types and malformed JSON are
/// 400s naming the problem and its position; over-size bodies are 413s.
pub struct LdJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for LdJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let body = JsonBody::from_request(req, state).await?;
        Ok(LdJson(parse_body(&body.bytes)?))
    }
}

/// Deserializes a JSON body into `T`. Syntax errors say the JSON is malformed; data errors
/// name the field at fault (`defaults.onVariation: invalid type: …`).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| {
        ApiError::invalid(format!("Invalid request body: malformed JSON: {e}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            malformed(e.into_inner())
        } else {
            ApiError::invalid(format!("Invalid request body: {e}"))
        }
    })?;
    de.end().map_err(malformed)?;
    Ok(value)
}

/// The raw JSON body plus whether it is a semantic patch
/// (`Content-Type: application/json; domain-model=launchdarkly.semanticpatch`).
pub struct JsonBody {
    pub bytes: Bytes,
    pub semantic_patch: bool,
}

impl JsonBody {
    pub fn value(&self) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::invalid(format!("Invalid request body: malformed JSON: {e}")))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_ascii_lowercase();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type \"{content_type}\" is not supported: send application/json"
            )));
        }
        let semantic_patch = content_type
            .split(';')
            .skip(1)
            .any(|p| p.trim().replace(' ', "") == "domain-model=launchdarkly.semanticpatch");
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::invalid(format!("Invalid request body: {rejection}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::invalid("Invalid request body: the body is empty"));
        }
        Ok(JsonBody {
            bytes,
            semantic_patch,
        })
    }
}

/// Query strings parsed into `T`; bad parameters are 400s.
pub struct LdQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for LdQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query)
            .map(LdQuery)
            .map_err(|e| ApiError::invalid(format!("Invalid query parameters: {e}")))
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<T, String> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|e: axum::http::uri::InvalidUri| e.to_string())?,
    )
    .map(|q| q.0)
    .map_err(|e| e.body_text())
}
