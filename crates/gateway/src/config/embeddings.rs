//! `[embeddings]`: the in-process embedding model (all-MiniLM-L6-v2 by
//! default) and its micro-batching.

use super::{default_model_path, invalid, ConfigError, DEFAULT_EMBEDDING_DIR};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The name clients use for the default embedding model.
pub const DEFAULT_EMBEDDING_NAME: &str = "all-minilm-l6-v2";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmbeddings {
    /// false: no in-process embedding model.
    enabled: Option<bool>,
    name: Option<String>,
    /// A sentence-transformers folder (model.safetensors, tokenizer.json, config.json).
    path: Option<PathBuf>,
    /// Inputs over the model's 256 tokens: "refuse" (default, 400 naming the input) or "truncate".
    too_long: Option<String>,
    /// Gather concurrent requests into shared forward passes (default true).
    batching: Option<bool>,
    /// How long a window waits for company after its first request (default 2).
    max_wait_ms: Option<u64>,
    /// Inputs that close a window, and the most rows of one pass (default 32).
    max_batch_inputs: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingSettings {
    pub name: String,
    pub path: PathBuf,
    pub truncate: bool,
    pub batching: bool,
    pub max_wait: Duration,
    pub max_batch_inputs: usize,
    /// Named in the config: a missing model is an error. The default one is
    /// served when installed and skipped (with a warning) when not.
    pub required: bool,
}

impl Default for EmbeddingSettings {
    fn default() -> Self {
        EmbeddingSettings {
            name: DEFAULT_EMBEDDING_NAME.into(),
            path: default_model_path(DEFAULT_EMBEDDING_DIR),
            truncate: false,
            batching: true,
            max_wait: Duration::from_millis(2),
            max_batch_inputs: 32,
            required: false,
        }
    }
}

impl RawEmbeddings {
    pub fn validate(self) -> Result<Option<EmbeddingSettings>, ConfigError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let mut s = EmbeddingSettings { required: true, ..EmbeddingSettings::default() };
        if let Some(name) = self.name {
            if name.trim().is_empty() {
                return Err(invalid("embeddings.name", "must not be empty"));
            }
            s.name = name;
        }
        if let Some(p) = self.path {
            s.path = p;
        }
        s.truncate = match self.too_long.as_deref() {
            None | Some("refuse") => false,
            Some("truncate") => true,
            Some(other) => {
                return Err(invalid("embeddings.too_long", format!("'{other}' is not one of 'refuse', 'truncate'")))
            }
        };
        s.batching = self.batching.unwrap_or(true);
        if let Some(ms) = self.max_wait_ms {
            if ms > 1000 {
                return Err(invalid("embeddings.max_wait_ms", "at most 1000"));
            }
            s.max_wait = Duration::from_millis(ms);
        }
        match self.max_batch_inputs {
            Some(0) => return Err(invalid("embeddings.max_batch_inputs", "must be at least 1")),
            Some(n) => s.max_batch_inputs = n,
            None => {}
        }
        Ok(Some(s))
    }
}
