//! An OpenAI-compatible server's embedding models (`POST {base}/embeddings`),
//! for the models whose capabilities list `embeddings`. Inputs go as the
//! client gave them (strings or token ids), `dimensions` is passed on, the
//! vectors are asked for as floats; the upstream's usage is what is charged.

use super::config::Dialect;
use super::openai::OpenAiBackend;
use backend_api::{BackendError, EmbedInput, EmbedRequest, Embedded, EmbeddingBackend, ModelInfo};
use serde_json::{json, Value};

/// Largest embeddings answer read (2,048 vectors of 3,072 floats as JSON fit).
const MAX_EMBEDDINGS_BODY: usize = 256 * 1024 * 1024;

#[async_trait::async_trait]
impl EmbeddingBackend for OpenAiBackend {
    fn name(&self) -> &str {
        &self.config().name
    }

    fn models(&self) -> Vec<ModelInfo> {
        let c = self.config();
        c.models
            .iter()
            .filter(|m| m.card.capabilities.embeddings)
            .map(|m| ModelInfo { id: m.name.clone(), context_length: m.context_length, owned_by: c.name.clone(), details: None })
            .collect()
    }

    /// The upstream decides (and may shorten vectors when asked).
    fn dimensions(&self, _model: &str) -> Option<u32> {
        None
    }

    fn count_tokens(&self, r: &EmbedRequest) -> Result<u32, BackendError> {
        let total: u32 = r
            .inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => self.count(&r.model, &backend_api::Prompt::Text(t.clone())),
                EmbedInput::Tokens(t) => t.len() as u32,
            })
            .sum();
        Ok(total)
    }

    async fn embed(&self, r: EmbedRequest) -> Result<Embedded, BackendError> {
        let c = self.config();
        if c.dialect != Dialect::OpenAi {
            return Err(BackendError::invalid("the Messages API has no embeddings", Some("model")));
        }
        let model =
            c.models.iter().find(|m| m.name == r.model).ok_or_else(|| BackendError::ModelNotFound(r.model.clone()))?;
        let input: Vec<Value> = r
            .inputs
            .iter()
            .map(|i| match i {
                EmbedInput::Text(t) => json!(t),
                EmbedInput::Tokens(t) => json!(t),
            })
            .collect();
        let mut body = json!({"model": model.upstream, "input": input, "encoding_format": "float"});
        if let Some(d) = r.dimensions {
            body["dimensions"] = json!(d);
        }
        let estimate = self.count_tokens(&r)?;
        let (resp, deadline) = self.post("/embeddings", &body, "application/json", &r.model).await?;
        let answer = self.read_whole(resp, MAX_EMBEDDINGS_BODY, deadline).await?;
        let v: Value =
            serde_json::from_slice(&answer).map_err(|e| self.unavailable(format!("unreadable answer: {e}")))?;
        let data = v.get("data").and_then(Value::as_array).ok_or_else(|| self.unavailable("the answer has no data"))?;
        let mut vectors = vec![Vec::new(); r.inputs.len()];
        for (n, d) in data.iter().enumerate() {
            let index = d.get("index").and_then(Value::as_u64).map_or(n, |i| i as usize);
            let Some(slot) = vectors.get_mut(index) else {
                return Err(self.unavailable("an embedding index out of range"));
            };
            *slot = d
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| self.unavailable("an embedding is not an array of floats"))?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| self.unavailable("an embedding is not an array of floats"))?;
        }
        if vectors.iter().any(Vec::is_empty) {
            return Err(self.unavailable("the answer has fewer embeddings than inputs"));
        }
        let prompt_tokens = v.pointer("/usage/prompt_tokens").and_then(Value::as_u64).map_or(estimate, |n| n as u32);
        Ok(Embedded { vectors, prompt_tokens, model: None })
    }
}
