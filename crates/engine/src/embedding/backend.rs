//! The embedder as the gateway's `EmbeddingBackend`: requests of texts or
//! token ids, one vector per input, usage in the model's own tokens; an
//! input over the model's length is a 400 naming it (or cut, when the
//! handle is `truncating`).

use super::{EmbedderHandle, EmbeddingError};
use backend_api::{BackendError, EmbedInput, EmbedRequest, Embedded, EmbeddingBackend, ModelInfo};

impl From<EmbeddingError> for BackendError {
    fn from(e: EmbeddingError) -> Self {
        match e {
            EmbeddingError::TooLong { index, tokens, max } => BackendError::InvalidRequest {
                message: format!(
                    "input[{index}] has {tokens} tokens, more than this model's maximum of {max}: shorten it (or configure [embeddings] too_long = \"truncate\")."
                ),
                param: Some("input".into()),
                code: Some("context_length_exceeded".into()),
            },
            EmbeddingError::Overloaded => BackendError::Overloaded { message: e.to_string(), retry_after: None },
            EmbeddingError::Stopped => BackendError::Unavailable(e.to_string()),
            EmbeddingError::InvalidToken { .. } => BackendError::invalid(e.to_string(), Some("input")),
            other => BackendError::Internal(other.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl EmbeddingBackend for EmbedderHandle {
    fn name(&self) -> &str {
        "local"
    }

    fn models(&self) -> Vec<ModelInfo> {
        let id = self.model_name().to_string();
        vec![ModelInfo { id, context_length: self.max_tokens() as u32, owned_by: "switchyard".into(), details: None }]
    }

    fn dimensions(&self, _model: &str) -> Option<u32> {
        Some(self.dimensions() as u32)
    }

    /// Exactly what the answer's usage will say (truncation included).
    fn count_tokens(&self, r: &EmbedRequest) -> Result<u32, BackendError> {
        let max = self.max_tokens();
        let mut total = 0usize;
        for (index, input) in r.inputs.iter().enumerate() {
            let tokens = match input {
                EmbedInput::Text(t) => self.count_tokens(t),
                // [CLS] and [SEP] around the ids.
                EmbedInput::Tokens(ids) => ids.len() + 2,
            };
            if tokens > max && !self.truncates() {
                return Err(EmbeddingError::TooLong { index, tokens, max }.into());
            }
            total += tokens.min(max);
        }
        Ok(u32::try_from(total).unwrap_or(u32::MAX))
    }

    async fn embed(&self, r: EmbedRequest) -> Result<Embedded, BackendError> {
        if r.model != self.model_name() {
            return Err(BackendError::ModelNotFound(r.model));
        }
        let texts: Option<Vec<String>> = r
            .inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => Some(t.clone()),
                EmbedInput::Tokens(_) => None,
            })
            .collect();
        let out = match texts {
            Some(texts) => self.embed(texts, self.truncates()).await?,
            None => {
                let ids = r
                    .inputs
                    .into_iter()
                    .map(|i| match i {
                        EmbedInput::Tokens(ids) => ids,
                        EmbedInput::Text(_) => Vec::new(),
                    })
                    .collect();
                self.embed_ids(ids, self.truncates()).await?
            }
        };
        let prompt_tokens = out.tokens.iter().sum();
        Ok(Embedded { vectors: out.vectors, prompt_tokens, model: None })
    }
}
