//! A route over embedding models: tried in the order listed; a model that
//! fails in a way worth retrying elsewhere (unreachable, timed out, 5xx,
//! rate limited) passes the request to the next; a request a model rejects
//! as such (400) is not tried again. When every model fails, the error lists
//! each one's failure.

use crate::tracked::retryable;
use backend_api::{BackendError, EmbedRequest, Embedded, EmbeddingBackend, ModelInfo};
use std::sync::Arc;

pub struct EmbeddingRoute {
    name: String,
    /// Each model's own name and what serves it, in order.
    targets: Vec<(String, Arc<dyn EmbeddingBackend>)>,
}

impl EmbeddingRoute {
    pub fn new(name: &str, targets: Vec<(String, Arc<dyn EmbeddingBackend>)>) -> Self {
        EmbeddingRoute { name: name.to_string(), targets }
    }
}

#[async_trait::async_trait]
impl EmbeddingBackend for EmbeddingRoute {
    fn name(&self) -> &str {
        &self.name
    }

    fn models(&self) -> Vec<ModelInfo> {
        let owned_by = "route".to_string();
        vec![ModelInfo { id: self.name.clone(), context_length: 0, owned_by, details: None }]
    }

    /// The models of one route may differ: the client's `dimensions` goes to each.
    fn dimensions(&self, _model: &str) -> Option<u32> {
        None
    }

    /// The most any of its models would count (admission reserves the worst case).
    fn count_tokens(&self, request: &EmbedRequest) -> Result<u32, BackendError> {
        let mut most = 0;
        for (model, b) in &self.targets {
            most = most.max(b.count_tokens(&EmbedRequest { model: model.clone(), ..request.clone() })?);
        }
        Ok(most)
    }

    async fn embed(&self, request: EmbedRequest) -> Result<Embedded, BackendError> {
        let mut failures = Vec::new();
        for (model, b) in &self.targets {
            if let (Some(asked), Some(has)) = (request.dimensions, b.dimensions(model)) {
                if asked != has {
                    failures.push(format!("{model}: makes vectors of {has} dimensions, not {asked}"));
                    continue;
                }
            }
            match b.embed(EmbedRequest { model: model.clone(), ..request.clone() }).await {
                Ok(e) => return Ok(Embedded { model: Some(model.clone()), ..e }),
                Err(e) if retryable(&e) => failures.push(format!("{model}: {e}")),
                Err(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable(format!("every model of route '{}' failed: {}", self.name, failures.join("; "))))
    }
}
