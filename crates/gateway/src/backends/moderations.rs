//! A remote model's `/moderations` (OpenAI's shape), for models whose
//! backend lists the `moderation` capability.

use super::config::Dialect;
use super::openai::OpenAiBackend;
use crate::guardrails::moderation::{parse_results, Moderator, Verdict};
use backend_api::BackendError;
use serde_json::json;

const MAX_MODERATION_BODY: usize = 4 * 1024 * 1024;

#[async_trait::async_trait]
impl Moderator for OpenAiBackend {
    async fn moderate(&self, model: &str, inputs: Vec<String>) -> Result<Vec<Verdict>, BackendError> {
        let c = self.config();
        if c.dialect != Dialect::OpenAi {
            return Err(BackendError::invalid("the Messages API has no moderations", Some("model")));
        }
        let m = c.models.iter().find(|m| m.name == model).ok_or_else(|| BackendError::ModelNotFound(model.into()))?;
        let n = inputs.len();
        let body = json!({"model": m.upstream, "input": inputs});
        let (resp, deadline) = self.post("/moderations", &body, "application/json", model).await?;
        let answer = self.read_whole(resp, MAX_MODERATION_BODY, deadline).await?;
        let v: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| self.unavailable(format!("unreadable answer: {e}")))?;
        parse_results(&v, n).ok_or_else(|| self.unavailable("the answer has no result for each input"))
    }
}
