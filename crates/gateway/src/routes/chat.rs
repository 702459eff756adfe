//! `POST /v1/chat/completions`.

use super::admit::{admit, Caller};
use super::request_id;
use super::truncate::{fit_to_context, TRUNCATED_HEADER};
use crate::collect::{collect, unix_now};
use crate::error::ApiError;
use crate::extract::OpenAiJson;
use crate::policy::Principal;
use crate::sse::{sse_response, to_json, ChunkRenderer};
use crate::state::AppState;
use crate::timing::RequestTiming;
use crate::validate::validate_chat;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use backend_api::{GeneratedToken, GenerationEvent};
use protocol::{
    AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChatDelta, ChoiceLogprobs, TokenLogprob, TopLogprob, Usage,
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
    let caller = Caller::new(principal, timing);
    let mut valid = validate_chat(body, &rid)?;
    let (model, backend) = state.lookup(std::slice::from_mut(&mut valid.request))?;
    let want_logprobs = valid.request.logprobs.is_some();
    let mut truncated = 0;
    if valid.truncation.unwrap_or(state.policy().settings.truncate_by_default) {
        let context = backend.context_length(&model).unwrap_or(u32::MAX);
        truncated = fit_to_context(&backend, context, &mut valid.request)?;
        if truncated > 0 {
            tracing::info!(model = %model, dropped_turns = truncated, "prompt truncated to fit the context");
        }
    }
    let admitted = admit(&state, &caller, &backend, &model, std::slice::from_mut(&mut valid.request)).await?;
    let streams = admitted.start(&backend, vec![valid.request], state.is_route(&model)).await?;
    let id = format!("chatcmpl-{rid}");
    let created = unix_now();
    if valid.common.stream {
        let renderer =
            ChatChunks { id, created, model, include_usage: valid.common.include_usage, want_logprobs, usage: None };
        let mut resp = sse_response(streams, renderer);
        admitted.decorate(&mut resp);
        say_truncated(&mut resp, truncated);
        return Ok(resp);
    }
    let stream = streams.into_iter().next().ok_or_else(|| ApiError::Internal("no stream".into()))?;
    let done = collect(stream).await?;
    let model = admitted.answering_model(model);
    let completion = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created,
        model,
        choices: vec![ChatChoice {
            index: 0,
            message: AssistantMessage { role: "assistant".into(), content: Some(done.text) },
            logprobs: want_logprobs.then(|| chat_logprobs(&done.tokens)),
            finish_reason: done.finish_reason.map(|r| r.as_str().to_string()),
        }],
        usage: done.usage,
        system_fingerprint: None,
    };
    let mut resp = Json(completion).into_response();
    admitted.decorate(&mut resp);
    say_truncated(&mut resp, truncated);
    Ok(resp)
}

fn say_truncated(resp: &mut Response, dropped: usize) {
    if dropped > 0 {
        resp.headers_mut().insert(TRUNCATED_HEADER, dropped.into());
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
                vec![self.chunk(ChatDelta { role: Some("assistant".into()), content: Some(String::new()) }, None, None)]
            }
            GenerationEvent::Delta { text, tokens } => {
                let logprobs = self.want_logprobs.then(|| chat_logprobs(&tokens));
                vec![self.chunk(ChatDelta { role: None, content: Some(text) }, logprobs, None)]
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
