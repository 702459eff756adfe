//! Dialects: one file per wire format. Each parses its body into the
//! internal requests (`backend_api::ValidatedRequest`), hands them to the
//! pipeline, renders the answer's events back (streamed or whole) and
//! shapes its own errors.
//!
//! - `openai_chat`: `POST /v1/chat/completions`;
//! - `openai_completions`: `POST /v1/completions`;
//! - `anthropic_messages`: `POST /v1/messages`, `/v1/messages/count_tokens`;
//! - `embeddings`: `POST /v1/embeddings` (its own short path: no generation);
//! - `validate`: the sampling fields the dialects share;
//! - `extract`, `sse`, `collect`: body parsing, event streams, whole answers.

pub mod anthropic_messages;
mod anthropic_render;
pub mod collect;
pub mod embeddings;
pub mod extract;
pub mod moderations;
pub mod openai_chat;
pub mod openai_completions;
pub mod sse;

use crate::error::ApiError;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

/// How errors look on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error": {"message", "type", "param", "code"}}`
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`
    Anthropic,
}

impl ErrorShape {
    /// The shape clients of this path expect (for errors raised before a
    /// handler runs: auth, unknown routes, oversized bodies).
    pub fn for_path(path: &str) -> Self {
        if path == "/v1/messages" || path.starts_with("/v1/messages/") {
            ErrorShape::Anthropic
        } else {
            ErrorShape::OpenAi
        }
    }

    pub fn respond(self, e: ApiError) -> Response {
        match self {
            ErrorShape::OpenAi => e.into_response(),
            ErrorShape::Anthropic => anthropic_messages::AnthropicError(e).into_response(),
        }
    }
}

/// The request id set (or propagated) by the request-id layer.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}
