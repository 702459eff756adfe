//! The seam between the HTTP gateway and whatever produces tokens: the
//! `Backend` trait, the validated request it takes (its only input) and the
//! events it streams back.

mod embeddings;
mod error;
mod request;

pub use embeddings::*;
pub use error::BackendError;
pub use request::*;

use futures::stream::BoxStream;

/// What a backend streams back for one request, in order:
/// one `Started`, any number of `Delta`s, one `Finished` (or an error).
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// The prompt was accepted: its exact size and how much of it came from
    /// cache, and, when the request named a route, the model that serves it.
    Started {
        prompt_tokens: u32,
        cached_tokens: u32,
        model: Option<String>,
        /// The backend relays an OpenAI-compatible server's stream: each of
        /// its chunks also comes as `Upstream`, for a client of the same
        /// API to receive byte for byte.
        verbatim: bool,
    },
    /// New text. `text` is always whole UTF-8 characters; `tokens` are the
    /// tokens whose text completed here (with log-probs when asked for).
    Delta {
        text: String,
        tokens: Vec<GeneratedToken>,
    },
    Finished {
        reason: FinishReason,
        prompt_tokens: u32,
        completion_tokens: u32,
        cached_tokens: u32,
    },
    /// One `data:` payload of the upstream's stream, exactly as it came
    /// (after `verbatim` in `Started`). It carries no accounting: the
    /// `Delta`s and `Finished` parsed from it follow it.
    Upstream {
        data: String,
        /// A chunk with only the usage (no choices), sent because the
        /// gateway asked for it: relayed only to clients that asked too.
        usage_only: bool,
        /// The chunk carries the choice's finish reason.
        finishes: bool,
    },
    /// Part of a tool call: the first part of call `index` carries its id
    /// and name, later parts more of its JSON arguments.
    ToolCall(ToolCallDelta),
    /// Usage of an attempt whose answer was not used (a cascade's cheaper
    /// models, its judge): billed with the request, not part of the answer.
    /// Comes before `Started`.
    Spent {
        model: String,
        prompt_tokens: u32,
        completion_tokens: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-sequence token (or a stop string, when the backend does not say which).
    Stop,
    /// A stop string of the request matched: its index in `StopParams::stop`.
    StopString(u8),
    /// `max_tokens` reached, the context window is full, or the request's
    /// time ran out.
    Length,
    /// The answer is tool calls.
    ToolCalls,
    /// A guard stopped the answer.
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop | FinishReason::StopString(_) => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// A piece of a tool call in an answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolCallDelta {
    /// Which call of the answer (0, 1, ...).
    pub index: u32,
    pub id: Option<String>,
    pub name: Option<String>,
    /// More of the arguments' JSON text.
    pub arguments: String,
}

/// One generated token with its log-probability and, when asked, the
/// most likely alternatives at that position.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedToken {
    pub id: u32,
    /// The token's own text (lossy where it is part of a multi-byte character).
    pub text: String,
    pub bytes: Vec<u8>,
    pub logprob: Option<f32>,
    pub top_logprobs: Vec<TokenAlternative>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenAlternative {
    pub id: u32,
    pub text: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
}

pub type GenerationStream = BoxStream<'static, Result<GenerationEvent, BackendError>>;

/// A model a backend serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    pub context_length: u32,
    pub owned_by: String,
    /// The file's card, for embedded models.
    pub details: Option<protocol::ModelDetails>,
}

/// Anything that turns a validated request into a stream of tokens: the
/// embedded engine, or (later) a remote OpenAI-compatible or Anthropic API.
#[async_trait::async_trait]
pub trait Backend: Send + Sync {
    fn name(&self) -> &str;
    fn models(&self) -> Vec<ModelInfo>;
    /// The context window of one of this backend's models.
    fn context_length(&self, model: &str) -> Option<u32> {
        self.models().into_iter().find(|m| m.id == model).map(|m| m.context_length)
    }
    /// Starts generation. Errors that concern the request as a whole (prompt
    /// too long, unknown model) come back here, before any event.
    /// Dropping the stream cancels the generation.
    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError>;
    /// Prompt tokens the request will cost, counted before it runs (rate
    /// limits and budgets reserve it). Backends that know their tokenizer
    /// count exactly; the default is `estimate_prompt_tokens`.
    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        Ok(estimate_prompt_tokens(&request.prompt))
    }
    /// True when the backend can serve requests now.
    async fn ready(&self) -> bool;
}

/// A tokenizer-free estimate of a prompt's size: one token per 4 bytes of
/// text (rounded up; English BPE vocabularies average 3.5–4.5 bytes per
/// token) plus 4 tokens per chat turn for the role and separators a chat
/// template adds. Used only for models whose tokenizer is not known here.
pub fn estimate_prompt_tokens(prompt: &Prompt) -> u32 {
    let bytes_to_tokens = |n: usize| n.div_ceil(4) as u32;
    match prompt {
        Prompt::Text(t) => bytes_to_tokens(t.len()).max(1),
        Prompt::Chat(turns) => turns.iter().map(|t| bytes_to_tokens(t.text_len()) + 4).sum::<u32>().max(1),
    }
}
