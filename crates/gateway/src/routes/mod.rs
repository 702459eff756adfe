//! HTTP handlers, one file per endpoint family.

pub mod admin;
pub mod admit;
pub mod chat;
pub mod completions;
pub mod health;
pub mod metrics;
pub mod models;
pub mod truncate;

use axum::http::HeaderMap;

/// The request id set (or propagated) by the request-id layer.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}
