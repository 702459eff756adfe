//! The seam for embedding models: the validated request, the answer and
//! the trait every embedding backend implements (the in-process MiniLM, a
//! remote OpenAI-compatible `/embeddings`).

use crate::{BackendError, ModelInfo};

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    Text(String),
    /// Token ids of the model's own vocabulary (no special tokens).
    Tokens(Vec<u32>),
}

/// An embeddings request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    pub request_id: String,
    /// The backend's own name for the model.
    pub model: String,
    pub inputs: Vec<EmbedInput>,
    /// The vector size asked for (models that can shorten theirs; others
    /// refuse any size but their own).
    pub dimensions: Option<u32>,
}

/// One vector per input, in order, and the tokens they cost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedded {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
    /// The model that answered, when a route chose it.
    pub model: Option<String>,
}

#[async_trait::async_trait]
pub trait EmbeddingBackend: Send + Sync {
    fn name(&self) -> &str;
    fn models(&self) -> Vec<ModelInfo>;
    /// The size of the model's vectors.
    fn dimensions(&self, model: &str) -> Option<u32>;
    /// Tokens the request will cost, counted before it runs (limits reserve them).
    fn count_tokens(&self, request: &EmbedRequest) -> Result<u32, BackendError>;
    async fn embed(&self, request: EmbedRequest) -> Result<Embedded, BackendError>;
}
