//! Every backend the gateway registers is wrapped here, so each request to
//! a model feeds its health: the outcome into its circuit breaker, the
//! time to its first token into its latency average, and its place in the
//! in-flight count for as long as the answer streams. Routing strategies
//! (`latency`, `least_busy`) and `/admin/backends` read these.

use crate::health::Health;
use backend_api::{Backend, BackendError, GenerationEvent, GenerationStream, ModelInfo, ValidatedRequest};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Instant;

pub struct Tracked {
    inner: Arc<dyn Backend>,
    health: Arc<Health>,
}

impl Tracked {
    pub fn new(inner: Arc<dyn Backend>, health: Arc<Health>) -> Self {
        Tracked { inner, health }
    }
}

/// Failures that say the model is unwell (worth a retry elsewhere), as
/// opposed to a request it rightly refused.
pub fn retryable(e: &BackendError) -> bool {
    matches!(e, BackendError::Unavailable(_) | BackendError::Overloaded { .. } | BackendError::Timeout(_))
}

#[async_trait::async_trait]
impl Backend for Tracked {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.inner.models()
    }

    fn context_length(&self, model: &str) -> Option<u32> {
        self.inner.context_length(model)
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        self.inner.count_prompt_tokens(request)
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let model = request.model.clone();
        let in_flight = self.health.begin(&model);
        let started = Instant::now();
        let outcome = self.inner.generate(request).await;
        self.health.record(&model, !matches!(&outcome, Err(e) if retryable(e)));
        let stream = outcome?;
        let health = self.health.clone();
        let mut first = true;
        Ok(stream
            .map(move |event| {
                // The guard lives in the stream: counted until the answer ends or is dropped.
                let _held = &in_flight;
                if first && matches!(event, Ok(GenerationEvent::Delta { .. } | GenerationEvent::Finished { .. })) {
                    first = false;
                    health.latency(&model, started.elapsed());
                }
                event
            })
            .boxed())
    }

    async fn ready(&self) -> bool {
        self.inner.ready().await
    }
}
