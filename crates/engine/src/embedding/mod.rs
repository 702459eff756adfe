//! In-process sentence embeddings (all-MiniLM-L6-v2: a 6-layer BERT, 384-d,
//! mean pooling, L2-normalised, as sentence-transformers computes them) for
//! `/v1/embeddings`, the semantic cache and the learned guards.
//!
//! - `model`: [`Embedder`] loads a sentence-transformers directory,
//!   tokenizes under the length rule and embeds one batch.
//! - `bert`: the encoder forward over a ragged batch (no padding outside
//!   attention), its projections on the engine's dense kernel.
//! - `actor`: the micro-batching loop and the pass planner; [`BatchConfig`].
//! - `handle`: [`EmbedderHandle`], the clonable way in; [`EmbedderStats`].
//!
//! **Why an actor thread.** A forward pass is milliseconds to a second of
//! blocking CPU work; on a tokio worker it would stall every connection that
//! worker serves. One OS thread owns the model; requests reach it through a
//! bounded queue (full = [`EmbeddingError::Overloaded`], so a burst sheds
//! load instead of queueing without end) and answers come back on a oneshot.
//! Tokenizing happens on the caller's task, so a too-long input is refused
//! before it queues.
//!
//! **Why a micro-batching window.** One 30-token input leaves the matmuls
//! thin (7-8 ms here); gathered into one pass, concurrent inputs share the
//! weight reads. So after the first request arrives the actor waits for
//! company for at most `max_wait` (2 ms) or until `max_batch_inputs` inputs,
//! then runs them together. Rows are sorted by length and cut into passes of
//! at most `max_pass_tokens` tokens (bigger passes fall out of the cache)
//! where padded attention would cost more than another pass; a request is
//! answered after the pass that completes it, and skipped if its caller has
//! gone. A row attends only to its own tokens (key mask) and the dense
//! kernel computes each row alone, so a vector does not depend on its batch.
//!
//! **Truncation rule.** An input may have at most `max_tokens` (256, from
//! `sentence_bert_config.json`) tokens counting [CLS] and [SEP]. Longer ones
//! are refused with their index (`TooLong`) unless the request asks to
//! truncate, which keeps [CLS], the first 254 word pieces and [SEP], as
//! sentence-transformers does; the usage count is then the truncated one.

mod actor;
mod backend;
mod bert;
mod handle;
mod model;

pub use actor::BatchConfig;
pub use handle::{EmbedderHandle, EmbedderStats, EmbedderStatsSnapshot, Embeddings};
pub use model::Embedder;

use thiserror::Error;

/// Clone: one failed forward pass answers every request batched into it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EmbeddingError {
    #[error("input {index} has {tokens} tokens, more than the model's maximum of {max}")]
    TooLong { index: usize, tokens: usize, max: usize },
    #[error("input {index} has the token id {id}, outside the model's vocabulary of {vocab}")]
    InvalidToken { index: usize, id: u32, vocab: u32 },
    #[error("the embedding queue is full")]
    Overloaded,
    #[error("the embedder has stopped")]
    Stopped,
    #[error("embedding model: {0}")]
    Load(String),
    #[error("embedding tokenizer: {0}")]
    Tokenizer(String),
    #[error("embedding forward pass: {0}")]
    Forward(String),
    #[error("embedder configuration: {0}")]
    Config(String),
}

impl EmbeddingError {
    fn tokenizer(e: tokenizers::Error) -> Self {
        EmbeddingError::Tokenizer(e.to_string())
    }
}

impl From<candle_core::Error> for EmbeddingError {
    fn from(e: candle_core::Error) -> Self {
        EmbeddingError::Forward(e.to_string())
    }
}
