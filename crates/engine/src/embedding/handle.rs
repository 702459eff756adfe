//! `EmbedderHandle`: the cheap, clonable way into the embedder's actor. It
//! tokenizes on the caller's task (a too-long input is refused before it
//! queues), then hands the rows to the actor thread and awaits the answer.

use super::actor::{self, BatchConfig, Job};
use super::model::{count_tokens, fit_length, tokenize};
use super::{Embedder, EmbeddingError};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Instant;
use tokenizers::Tokenizer;
use tokio::sync::oneshot;

/// One request's answer: a unit vector per input, in order, and the tokens
/// each input counted (after truncation), for usage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub tokens: Vec<u32>,
}

/// Live counters, written by the actor and read through the handle.
#[derive(Debug, Default)]
pub struct EmbedderStats {
    pub(crate) requests: AtomicU64,
    pub(crate) inputs: AtomicU64,
    pub(crate) tokens: AtomicU64,
    pub(crate) padded_tokens: AtomicU64,
    pub(crate) windows: AtomicU64,
    pub(crate) forward_passes: AtomicU64,
    pub(crate) skipped_requests: AtomicU64,
    pub(crate) overloaded: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmbedderStatsSnapshot {
    /// Requests the actor took off the queue.
    pub requests: u64,
    /// Inputs run through the model, and their tokens.
    pub inputs: u64,
    pub tokens: u64,
    /// Positions computed, padding included (`tokens` of it were real).
    pub padded_tokens: u64,
    /// Gathering windows (each one or more passes).
    pub windows: u64,
    pub forward_passes: u64,
    /// Requests whose caller had gone before their rows ran.
    pub skipped_requests: u64,
    /// Requests refused because the queue was full.
    pub overloaded: u64,
}

impl EmbedderStats {
    pub fn snapshot(&self) -> EmbedderStatsSnapshot {
        EmbedderStatsSnapshot {
            requests: self.requests.load(Relaxed),
            inputs: self.inputs.load(Relaxed),
            tokens: self.tokens.load(Relaxed),
            padded_tokens: self.padded_tokens.load(Relaxed),
            windows: self.windows.load(Relaxed),
            forward_passes: self.forward_passes.load(Relaxed),
            skipped_requests: self.skipped_requests.load(Relaxed),
            overloaded: self.overloaded.load(Relaxed),
        }
    }
}

#[derive(Clone)]
pub struct EmbedderHandle {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    name: String,
    /// The length rule of requests through `EmbeddingBackend` (callers of
    /// `embed` and `embed_ids` choose their own).
    truncate: bool,
    dimensions: usize,
    max_tokens: usize,
    tokenizer: Arc<Tokenizer>,
    queue: SyncSender<Job>,
    stats: Arc<EmbedderStats>,
}

impl Embedder {
    /// Starts the actor on its own OS thread and returns its handle. The
    /// thread ends when the last handle is dropped.
    pub fn spawn(self, cfg: BatchConfig) -> Result<EmbedderHandle, EmbeddingError> {
        if cfg.max_batch_inputs == 0 || cfg.queue_capacity == 0 {
            return Err(EmbeddingError::Config("max_batch_inputs and queue_capacity must be at least 1".into()));
        }
        // std's bounded channel: the actor needs a blocking receive with a
        // timeout for its window, which tokio's mpsc does not offer.
        let (tx, rx) = sync_channel(cfg.queue_capacity);
        let stats = Arc::new(EmbedderStats::default());
        let inner = Inner {
            name: self.model_name().to_string(),
            truncate: false,
            dimensions: self.dimensions(),
            max_tokens: self.max_tokens(),
            tokenizer: self.tokenizer(),
            queue: tx,
            stats: stats.clone(),
        };
        std::thread::Builder::new()
            .name(format!("embedder-{}", inner.name))
            .spawn(move || actor::run(self, rx, cfg, &stats))
            .map_err(|e| EmbeddingError::Config(format!("cannot start the embedder thread: {e}")))?;
        Ok(EmbedderHandle { inner: Arc::new(inner) })
    }
}

impl EmbedderHandle {
    /// Embeds `inputs` (batched with concurrent requests). Inputs over
    /// `max_tokens` are truncated when `truncate`, else refused (`TooLong`
    /// with the first such index). No inputs: an empty answer.
    pub async fn embed(&self, inputs: Vec<String>, truncate: bool) -> Result<Embeddings, EmbeddingError> {
        let inner = &self.inner;
        let rows = tokenize(&inner.tokenizer, inner.max_tokens, &inputs, truncate)?;
        self.run(rows).await
    }

    /// Embeds inputs given as token ids of the model's vocabulary (without
    /// [CLS] and [SEP], which are added), under the same length rule.
    pub async fn embed_ids(&self, inputs: Vec<Vec<u32>>, truncate: bool) -> Result<Embeddings, EmbeddingError> {
        let inner = &self.inner;
        let special =
            |t: &str| inner.tokenizer.token_to_id(t).ok_or_else(|| EmbeddingError::Tokenizer(format!("no {t} token")));
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let vocab = inner.tokenizer.get_vocab_size(true) as u32;
        let mut rows = Vec::with_capacity(inputs.len());
        for (index, ids) in inputs.into_iter().enumerate() {
            if let Some(&id) = ids.iter().find(|&&id| id >= vocab) {
                return Err(EmbeddingError::InvalidToken { index, id, vocab });
            }
            let row: Vec<u32> = std::iter::once(cls).chain(ids).chain(std::iter::once(sep)).collect();
            rows.push(fit_length(row, index, inner.max_tokens, truncate)?);
        }
        self.run(rows).await
    }

    /// Hands tokenized rows to the actor and awaits their vectors.
    async fn run(&self, rows: Vec<Vec<u32>>) -> Result<Embeddings, EmbeddingError> {
        let inner = &self.inner;
        let tokens = rows.iter().map(|r| r.len() as u32).collect();
        if rows.is_empty() {
            return Ok(Embeddings::default());
        }
        let (reply, answer) = oneshot::channel();
        inner.queue.try_send(Job { rows, arrived: Instant::now(), reply }).map_err(|e| match e {
            TrySendError::Full(_) => {
                inner.stats.overloaded.fetch_add(1, Relaxed);
                EmbeddingError::Overloaded
            }
            TrySendError::Disconnected(_) => EmbeddingError::Stopped,
        })?;
        let vectors = answer.await.map_err(|_| EmbeddingError::Stopped)??;
        Ok(Embeddings { vectors, tokens })
    }

    /// The same embedder, serving under another model name.
    pub fn named(mut self, name: &str) -> Self {
        Arc::make_mut(&mut self.inner).name = name.to_string();
        self
    }

    /// The same embedder, cutting inputs over `max_tokens` instead of
    /// refusing them, for requests through `EmbeddingBackend`.
    pub fn truncating(mut self, truncate: bool) -> Self {
        Arc::make_mut(&mut self.inner).truncate = truncate;
        self
    }

    /// Whether requests through `EmbeddingBackend` cut too-long inputs.
    pub fn truncates(&self) -> bool {
        self.inner.truncate
    }

    /// Tokens of `text` with [CLS] and [SEP], before any truncation.
    pub fn count_tokens(&self, text: &str) -> usize {
        count_tokens(&self.inner.tokenizer, text)
    }

    pub fn model_name(&self) -> &str {
        &self.inner.name
    }

    pub fn dimensions(&self) -> usize {
        self.inner.dimensions
    }

    pub fn max_tokens(&self) -> usize {
        self.inner.max_tokens
    }

    pub fn stats(&self) -> EmbedderStatsSnapshot {
        self.inner.stats.snapshot()
    }
}
