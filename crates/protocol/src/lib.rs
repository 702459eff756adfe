//! Wire types: OpenAI-compatible (chat, completions, embeddings) and
//! Anthropic's Messages API (`anthropic`). Serde only: no behaviour, no validation
//! beyond what the JSON shape itself expresses (validation lives in the
//! gateway, which turns these into `backend_api::ValidatedRequest`).

pub mod anthropic;
mod chat;
mod completions;
mod embeddings;
mod error;
mod models;
mod usage;

pub use chat::*;
pub use completions::*;
pub use embeddings::*;
pub use error::*;
pub use models::*;
pub use usage::*;

use serde::{Deserialize, Serialize};

/// `stop`: OpenAI accepts one string or an array of strings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StopSpec {
    One(String),
    Many(Vec<String>),
}

impl StopSpec {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StopSpec::One(s) => vec![s],
            StopSpec::Many(v) => v,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// One candidate token with its log-probability (chat `logprobs.content[].top_logprobs`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Option<Vec<u8>>,
}

/// One generated token's log-probability entry in chat responses.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Option<Vec<u8>>,
    pub top_logprobs: Vec<TopLogprob>,
}

/// Chat `choices[].logprobs`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct ChoiceLogprobs {
    pub content: Option<Vec<TokenLogprob>>,
}

/// Extension: the response cache's per-request controls (`"cache": {…}`
/// in a chat, completions or messages body).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheOptions {
    /// Do not look the answer up (it may still be stored).
    #[serde(default)]
    pub no_cache: bool,
    /// Do not store the answer.
    #[serde(default)]
    pub no_store: bool,
    /// Seconds the stored answer lives (at most the configured TTL).
    pub ttl: Option<u64>,
    /// The similarity a semantic hit needs for this request (0 to 1).
    pub threshold: Option<f32>,
    /// An extra partition the client chooses: entries are shared only
    /// within it.
    pub namespace: Option<String>,
}
