//! The embedded inference engine: GGUF llama-family models run with candle,
//! no HTTP. `LocalModel::load` reads a GGUF file; `EngineHandle` (from
//! `LocalModel::spawn`) is the only way in, and implements
//! `backend_api::Backend`.
//!
//! One actor thread owns the model, the paged KV cache (`kv_cache`: block
//! pool, prefix-cache index, tensor storage) and the scheduler; callers
//! send requests through the handle and get a stream of events back. A
//! dropped stream (client gone) cancels its sequence at the next step and
//! returns its blocks.

pub mod chat_template;
pub mod constraint;
pub mod embedding;
pub mod gguf;
mod handle;
pub mod kv_cache;
pub mod model;
pub mod sampler;
mod scheduler;
mod sequence;
pub mod stats;
pub mod stop;
pub mod testing;
pub mod tokenizer;

pub use embedding::{BatchConfig, Embedder, EmbedderHandle, EmbeddingError, Embeddings};
pub use handle::EngineHandle;
pub use model::WeightFormat;
pub use scheduler::EngineConfig;

use chat_template::{ChatTemplate, TemplateError};
use gguf::{GgufError, GgufFile};
use model::{Decoder, ModelConfig};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;
use tokenizer::{Tokenizer, TokenizerError};

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("model: {0}")]
    Model(String),
    #[error("engine: {0}")]
    Spawn(String),
    #[error("engine configuration: {0}")]
    Config(String),
}

/// A loaded model with its tokenizer and chat template, ready to spawn.
pub struct LocalModel {
    pub model: Decoder,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    /// The context window served (the file's, or less when configured).
    pub context_length: usize,
    /// `general.name` from the file, if any.
    pub display_name: Option<String>,
    /// The card `/v1/models` shows.
    pub details: protocol::ModelDetails,
}

impl LocalModel {
    /// Loads a GGUF file. `context_length` caps the file's own window.
    pub fn load(path: &Path, format: WeightFormat, context_length: Option<usize>) -> Result<Self, EngineError> {
        let mut file = GgufFile::open(path)?;
        let cfg = ModelConfig::read(&file)?;
        let tokenizer = Tokenizer::from_spec(&file.tokenizer_spec()?)?;
        if tokenizer.vocab_size() < cfg.vocab_size {
            return Err(EngineError::Model(format!(
                "tokenizer has {} tokens but the model {}",
                tokenizer.vocab_size(),
                cfg.vocab_size
            )));
        }
        let token_text = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or("").to_string();
        // A file without a template gets its family's (Gemma's GGUFs often carry none).
        let template_src =
            file.chat_template().unwrap_or_else(|| chat_template::for_family(&cfg.architecture).to_string());
        let template =
            ChatTemplate::new(&template_src, &token_text(tokenizer.bos_id()), &token_text(tokenizer.eos_id()))?
                .with_tokenizer_bos(tokenizer.adds_bos());
        let context_length = context_length.map_or(cfg.context_length, |c| c.min(cfg.context_length)).max(1);
        let display_name = file.name.clone();
        let details = protocol::ModelDetails {
            architecture: cfg.architecture.clone(),
            parameters: file.parameter_count() as u64,
            quantization: file.quantization(),
            tokenizer: tokenizer.kind().to_string(),
            trained_context_length: u32::try_from(cfg.context_length).unwrap_or(u32::MAX),
        };
        let model = Decoder::load(&mut file, cfg, format, context_length)?;
        Ok(LocalModel { model, tokenizer: Arc::new(tokenizer), template, context_length, display_name, details })
    }
}
