//! `POST /v1/chat/completions`: OpenAI's chat dialect.

use super::collect::{collect, unix_now};
use super::extract::OpenAiJson;
use super::request_id;
use super::sse::{sse_response, to_json, ChunkRenderer};
use crate::cache::Directives;
use crate::error::ApiError;
use crate::pipeline::{self, Call, Ctx};
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use crate::validate::validate_chat;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use backend_api::{GeneratedToken, GenerationEvent, ToolCall, ToolCallDelta};
use protocol::{
    AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChatDelta, ChoiceLogprobs, FunctionCall, FunctionCallChunk, TokenLogprob, ToolCallChunk, ToolCallSpec, TopLogprob,
    Usage,
};
use std::sync::Arc;

pub async fn chat_completions(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let ctx = Ctx::new(state, principal, timing, rid.clone())?;
    let directives = Directives::from_request(&headers, body.sampling.cache.as_ref())?;
    let valid = validate_chat(body, &rid)?;
    let want_logprobs = valid.request.logprobs.is_some();
    let mut call = Call::new(vec![valid.request]);
    call.truncation = valid.truncation;
    call.cache = directives;
    let mut answer = pipeline::run(ctx, call).await?;
    let id = format!("chatcmpl-{rid}");
    let created = unix_now();
    if valid.common.stream {
        let renderer = ChatChunks {
            id,
            created,
            model: answer.model.clone(),
            include_usage: valid.common.include_usage,
            want_logprobs,
            usage: None,
        };
        let mut resp = sse_response(std::mem::take(&mut answer.streams), renderer, answer.relay);
        answer.decorate(&mut resp);
        return Ok(resp);
    }
    let stream =
        std::mem::take(&mut answer.streams).into_iter().next().ok_or_else(|| ApiError::Internal("no stream".into()))?;
    let done = collect(stream).await?;
    let completion = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model: answer.answering_model(),
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage {
                role: "assistant".into(),
                content: (!done.text.is_empty() || done.tool_calls.is_empty()).then_some(done.text),
                tool_calls: (!done.tool_calls.is_empty()).then(|| done.tool_calls.iter().map(tool_call_spec).collect()),
            },
            logprobs: want_logprobs.then(|| chat_logprobs(&done.tokens)),
            finish_reason: done.finish_reason.map(|r| r.as_str().to_string()),
        }],
        usage: done.usage,
        system_fingerprint: None,
    };
    let mut resp = Json(completion).into_response();
    answer.decorate(&mut resp);
    Ok(resp)
}

fn tool_call_spec(c: &ToolCall) -> ToolCallSpec {
    ToolCallSpec {
        id: c.id.clone(),
        kind: "function".into(),
        function: FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
    }
}

fn tool_call_chunk(d: ToolCallDelta) -> ToolCallChunk {
    ToolCallChunk {
        index: d.index,
        kind: d.id.is_some().then(|| "function".to_string()),
        id: d.id,
        function: FunctionCallChunk { name: d.name, arguments: Some(d.arguments) },
    }
}

pub fn chat_logprobs(tokens: &[GeneratedToken]) -> ChoiceLogprobs {
    let content = tokens
        .iter()
        .map(|t| TokenLogprob {
            token: t.text.clone(),
            logprob: t.logprob.unwrap_or(0.0),
            bytes: Some(t.bytes.clone()),
            top_logprobs: t
                .top_logprobs
                .iter()
                .map(|a| TopLogprob { token: a.text.clone(), logprob: a.logprob, bytes: Some(a.bytes.clone()) })
                .collect(),
        })
        .collect();
    ChoiceLogprobs { content: Some(content) }
}

struct ChatChunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    want_logprobs: bool,
    usage: Option<Usage>,
}

impl ChatChunks {
    fn chunk(
        &self,
        delta: ChatDelta,
        logprobs: Option<ChoiceLogprobs>,
        finish_reason: Option<String>,
    ) -> serde_json::Value {
        to_json(&ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChatChunkChoice { index: 0, delta, logprobs, finish_reason }],
            usage: self.include_usage.then_some(None),
            system_fingerprint: None,
        })
    }
}

impl ChunkRenderer for ChatChunks {
    fn render(&mut self, _index: u32, event: GenerationEvent) -> Vec<serde_json::Value> {
        match event {
            // Billed, not shown: the answer is the final attempt's.
            GenerationEvent::Spent { .. } | GenerationEvent::Upstream { .. } => Vec::new(),
            GenerationEvent::Started { model, .. } => {
                if let Some(m) = model {
                    self.model = m;
                }
                let delta =
                    ChatDelta { role: Some("assistant".into()), content: Some(String::new()), tool_calls: None };
                vec![self.chunk(delta, None, None)]
            }
            GenerationEvent::Delta { text, tokens } => {
                let logprobs = self.want_logprobs.then(|| chat_logprobs(&tokens));
                vec![self.chunk(ChatDelta { role: None, content: Some(text), tool_calls: None }, logprobs, None)]
            }
            GenerationEvent::ToolCall(d) => {
                let delta = ChatDelta { role: None, content: None, tool_calls: Some(vec![tool_call_chunk(d)]) };
                vec![self.chunk(delta, None, None)]
            }
            GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, cached_tokens } => {
                self.usage = Some(Usage::new(prompt_tokens, completion_tokens, cached_tokens));
                vec![self.chunk(ChatDelta::default(), None, Some(reason.as_str().to_string()))]
            }
        }
    }

    fn include_usage(&self) -> bool {
        self.include_usage
    }

    fn finish(&mut self) -> Vec<serde_json::Value> {
        if !self.include_usage {
            return Vec::new();
        }
        vec![to_json(&ChatCompletionChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: Vec::new(),
            usage: Some(self.usage.take()),
            system_fingerprint: None,
        })]
    }
}
