//! Drains a backend's event stream into one finished answer (answers
//! returned whole).

use crate::error::ApiError;
use backend_api::{FinishReason, GeneratedToken, GenerationEvent, GenerationStream, ToolCall};
use futures::StreamExt;
use protocol::Usage;

#[derive(Debug, Default)]
pub struct Collected {
    pub text: String,
    pub tokens: Vec<GeneratedToken>,
    /// Tool calls, assembled from their deltas in index order.
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<FinishReason>,
    pub usage: Usage,
}

pub async fn collect(mut stream: GenerationStream) -> Result<Collected, ApiError> {
    let mut out = Collected::default();
    while let Some(event) = stream.next().await {
        match event? {
            GenerationEvent::Started { .. } | GenerationEvent::Spent { .. } | GenerationEvent::Upstream { .. } => {}
            GenerationEvent::Delta { text, tokens } => {
                out.text.push_str(&text);
                out.tokens.extend(tokens);
            }
            GenerationEvent::ToolCall(d) => {
                let i = d.index as usize;
                while out.tool_calls.len() <= i {
                    out.tool_calls.push(ToolCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let call = &mut out.tool_calls[i];
                if let Some(id) = d.id {
                    call.id = id;
                }
                if let Some(name) = d.name {
                    call.name.push_str(&name);
                }
                call.arguments.push_str(&d.arguments);
            }
            GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, cached_tokens } => {
                out.finish_reason = Some(reason);
                out.usage = Usage::new(prompt_tokens, completion_tokens, cached_tokens);
                return Ok(out);
            }
        }
    }
    Err(ApiError::Internal("the backend ended the generation without finishing it".into()))
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
