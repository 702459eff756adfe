//! One error type for the HTTP surface, and its one mapping to an HTTP
//! status, OpenAI's error body and a low-cardinality label for metrics.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use backend_api::BackendError;
use protocol::ErrorBody;
use std::time::Duration;
use thiserror::Error;

/// A wait as `Retry-After` seconds: whole seconds rounded up (never sooner
/// than asked), at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u64::MAX).max(1)
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String>, code: Option<String> },
    #[error("The model '{0}' does not exist or you do not have access to it.")]
    ModelNotFound(String),
    #[error("Request body is larger than the limit of {0} bytes.")]
    PayloadTooLarge(usize),
    #[error("Not found: {0}")]
    RouteNotFound(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("This API key is not allowed to use the model '{0}'.")]
    ModelNotAllowed(String),
    /// A rate limit (requests or tokens per minute or day) would be exceeded.
    #[error("{message}")]
    RateLimited { message: String, kind: &'static str, retry_after: Option<u64>, headers: Box<HeaderMap> },
    /// A budget is spent.
    #[error("{message}")]
    QuotaExceeded { message: String, retry_after: Option<u64>, headers: Box<HeaderMap> },
    #[error("{0}")]
    Conflict(String),
    #[error("No API key with id '{0}'.")]
    KeyNotFound(String),
    #[error("{0}")]
    Unavailable(String),
    /// At capacity right now; retry shortly (after the upstream's own
    /// `Retry-After` when it sent one, else a second).
    #[error("{message}")]
    Overloaded { message: String, retry_after: Option<Duration> },
    #[error("{0}")]
    Timeout(String),
    #[error("The server had an error while processing your request: {0}")]
    Internal(String),
    /// An input guardrail refused the request (never echoes the matched text).
    #[error("The request was blocked by the guardrail '{guard}' ({what}).")]
    GuardrailBlocked { guard: String, what: &'static str },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: impl Into<Option<&'static str>>) -> Self {
        ApiError::InvalidRequest { message: message.into(), param: param.into().map(str::to_string), code: None }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } | ApiError::GuardrailBlocked { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } | ApiError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::KeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short fixed label, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::RouteNotFound(_) => "not_found",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::ModelNotAllowed(_) => "model_not_allowed",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "insufficient_quota",
            ApiError::Conflict(_) => "conflict",
            ApiError::KeyNotFound(_) => "key_not_found",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Timeout(_) => "timeout",
            ApiError::Internal(_) => "internal",
            ApiError::GuardrailBlocked { .. } => "guardrail_blocked",
        }
    }

    pub fn body(&self) -> ErrorBody {
        let message = self.to_string();
        match self {
            ApiError::InvalidRequest { param, code, .. } => {
                ErrorBody::new(message, "invalid_request_error", param.clone(), code.as_deref())
            }
            ApiError::ModelNotFound(_) => {
                ErrorBody::new(message, "invalid_request_error", Some("model".into()), Some("model_not_found"))
            }
            ApiError::PayloadTooLarge(_) => {
                ErrorBody::new(message, "invalid_request_error", None, Some("payload_too_large"))
            }
            ApiError::RouteNotFound(_) => ErrorBody::new(message, "invalid_request_error", None, Some("not_found")),
            ApiError::Unauthorized(_) => {
                ErrorBody::new(message, "invalid_request_error", None, Some("invalid_api_key"))
            }
            ApiError::ModelNotAllowed(_) => {
                ErrorBody::new(message, "invalid_request_error", Some("model".into()), Some("model_not_allowed"))
            }
            // OpenAI's shape: the type names what ran out.
            ApiError::RateLimited { kind, .. } => ErrorBody::new(message, kind, None, Some("rate_limit_exceeded")),
            ApiError::QuotaExceeded { .. } => {
                ErrorBody::new(message, "insufficient_quota", None, Some("insufficient_quota"))
            }
            ApiError::Conflict(_) => ErrorBody::new(message, "invalid_request_error", None, Some("conflict")),
            ApiError::KeyNotFound(_) => ErrorBody::new(message, "invalid_request_error", None, Some("not_found")),
            ApiError::Unavailable(_) => ErrorBody::new(message, "server_error", None, Some("service_unavailable")),
            ApiError::Overloaded { .. } => ErrorBody::new(message, "server_error", None, Some("overloaded")),
            ApiError::Timeout(_) => ErrorBody::new(message, "server_error", None, Some("timeout")),
            ApiError::Internal(_) => ErrorBody::new(message, "server_error", None, None),
            ApiError::GuardrailBlocked { .. } => {
                ErrorBody::new(message, "invalid_request_error", None, Some("guardrail_blocked"))
            }
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::InvalidRequest { message, param, code } => ApiError::InvalidRequest { message, param, code },
            BackendError::ModelNotFound(m) => ApiError::ModelNotFound(m),
            BackendError::Unavailable(m) => ApiError::Unavailable(m),
            BackendError::Overloaded { message, retry_after } => ApiError::Overloaded { message, retry_after },
            BackendError::Timeout(m) => ApiError::Timeout(m),
            BackendError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_value(self.body()).unwrap_or_default();
        self.respond(body)
    }
}

impl ApiError {
    /// The response for this error with a dialect's `body`: the status, and
    /// the headers that come with it (`Retry-After`, rate limits,
    /// `WWW-Authenticate`), whatever the dialect.
    pub fn respond(self, body: serde_json::Value) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request rejected");
        }
        let mut resp = (self.status(), Json(body)).into_response();
        let retry_after = match self {
            ApiError::RateLimited { retry_after, headers, .. }
            | ApiError::QuotaExceeded { retry_after, headers, .. } => {
                resp.headers_mut().extend(*headers);
                retry_after
            }
            ApiError::Unauthorized(_) => {
                resp.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer"));
                None
            }
            ApiError::Overloaded { retry_after, .. } => Some(retry_after.map_or(1, retry_after_secs)),
            ApiError::GuardrailBlocked { guard, .. } => {
                if let Ok(v) = HeaderValue::try_from(format!("{guard}=block")) {
                    resp.headers_mut().insert(crate::guardrails::GUARDRAIL_HEADER, v);
                }
                None
            }
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut().insert("retry-after", HeaderValue::from(secs));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        let secs = |ms| retry_after_secs(Duration::from_millis(ms));
        assert_eq!([secs(0), secs(1), secs(1000), secs(1001), secs(30_000)], [1, 1, 1, 2, 30]);
        assert_eq!(retry_after_secs(Duration::from_nanos(1_000_000_001)), 2, "never sooner than asked");
    }
}
