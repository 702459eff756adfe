//! JSON body extraction whose every failure is a 4xx in the dialect's
//! error shape: malformed JSON, wrong types and missing fields → 400, too
//! large → 413.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body for the OpenAI dialects.
pub struct OpenAiJson<T>(pub T);

impl<S, T> FromRequest<S> for OpenAiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(OpenAiJson)
    }
}

/// Reads and parses a JSON body (see the module docs).
pub async fn read_json<S: Send + Sync, T: DeserializeOwned>(req: Request, state: &S) -> Result<T, ApiError> {
    let limit = req.extensions().get::<BodyLimit>().map(|l| l.0);
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(limit.unwrap_or(0))
        } else {
            ApiError::invalid(format!("Could not read the request body: {rejection}"), None)
        }
    })?;
    parse_body(&bytes)
}

/// The configured body limit, carried so the 413 message can state it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("We could not parse the JSON body of your request: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::invalid("The request body must be a JSON object.", None));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("Invalid request body: {e}"), None))
}
