use thiserror::Error;

/// Why a backend could not serve a request. The gateway maps each variant
/// to one HTTP status and OpenAI error shape.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum BackendError {
    /// The request is well-formed but this backend cannot take it (e.g. the
    /// prompt does not fit the context window).
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<String>, code: Option<String> },
    #[error("model '{0}' does not exist")]
    ModelNotFound(String),
    /// The backend is shutting down or its worker is gone.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend is overloaded and refused the request; `retry_after`
    /// when it said how long to wait (an upstream's `Retry-After`).
    #[error("backend overloaded: {message}")]
    Overloaded { message: String, retry_after: Option<std::time::Duration> },
    /// Waited too long (in a queue) before the backend could start.
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("internal backend error: {0}")]
    Internal(String),
}

impl BackendError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        BackendError::InvalidRequest { message: message.into(), param: param.map(str::to_string), code: None }
    }
}
