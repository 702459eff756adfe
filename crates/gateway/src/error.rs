//! One error type for the HTTP surface, and its one mapping to an HTTP
//! status, OpenAI's error body and a low-cardinality label for metrics.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use backend_api::BackendError;
use protocol::ErrorBody;
use thiserror::Error;

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
    Unavailable(String),
    #[error("The server had an error while processing your request: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: impl Into<Option<&'static str>>) -> Self {
        ApiError::InvalidRequest { message: message.into(), param: param.into().map(str::to_string), code: None }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::ModelNotFound(_) | ApiError::RouteNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
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
            ApiError::Unavailable(_) => ErrorBody::new(message, "server_error", None, Some("service_unavailable")),
            ApiError::Internal(_) => ErrorBody::new(message, "server_error", None, None),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::InvalidRequest { message, param, code } => ApiError::InvalidRequest { message, param, code },
            BackendError::ModelNotFound(m) => ApiError::ModelNotFound(m),
            BackendError::Unavailable(m) | BackendError::Overloaded(m) => ApiError::Unavailable(m),
            BackendError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request rejected");
        }
        (self.status(), Json(self.body())).into_response()
    }
}
