//! `POST /v1/completions`: OpenAI's legacy text completions (a prompt
//! array gives one choice per prompt, generated concurrently).

use super::collect::{collect, unix_now, Collected};
use super::extract::OpenAiJson;
use super::request_id;
use super::sse::{sse_response, to_json, ChunkRenderer};
use crate::cache::Directives;
use crate::error::ApiError;
use crate::pipeline::{self, Call, Ctx};
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use crate::validate::validate_completion;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use backend_api::{GeneratedToken, GenerationEvent};
use protocol::{Completion, CompletionChoice, CompletionLogprobs, CompletionRequest, Usage};
use std::sync::Arc;

pub async fn completions(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<CompletionRequest>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let ctx = Ctx::new(state, principal, timing, rid.clone())?;
    let directives = Directives::from_request(&headers, body.sampling.cache.as_ref())?;
    let valid = validate_completion(body, &rid)?;
    let want_logprobs = valid.requests.first().is_some_and(|r| r.logprobs.is_some());
    let mut call = Call::new(valid.requests);
    call.cache = directives;
    let mut answer = pipeline::run(ctx, call).await?;
    let id = format!("cmpl-{rid}");
    let created = unix_now();
    if valid.common.stream {
        let renderer = CompletionChunks {
            id,
            created,
            model: answer.model.clone(),
            include_usage: valid.common.include_usage,
            want_logprobs,
            usage: Usage::default(),
        };
        let mut resp = sse_response(std::mem::take(&mut answer.streams), renderer, answer.relay);
        answer.decorate(&mut resp);
        return Ok(resp);
    }
    let streams = std::mem::take(&mut answer.streams);
    let results: Vec<Collected> = futures::future::try_join_all(streams.into_iter().map(collect)).await?;
    let mut usage = Usage::new(0, 0, 0);
    let choices = results
        .into_iter()
        .zip(valid.prompts.iter())
        .enumerate()
        .map(|(i, (done, prompt))| {
            usage.add(&done.usage);
            let text = if valid.echo { format!("{prompt}{}", done.text) } else { done.text };
            CompletionChoice {
                text,
                index: i as u32,
                logprobs: want_logprobs.then(|| completion_logprobs(&done.tokens)),
                finish_reason: done.finish_reason.map(|r| r.as_str().to_string()),
            }
        })
        .collect();
    let mut resp = Json(Completion {
        id,
        object: "text_completion".into(),
        created,
        model: answer.answering_model(),
        choices,
        usage: Some(usage),
        system_fingerprint: None,
    })
    .into_response();
    answer.decorate(&mut resp);
    Ok(resp)
}

fn completion_logprobs(tokens: &[GeneratedToken]) -> CompletionLogprobs {
    let mut out = CompletionLogprobs::default();
    let mut offset = 0u32;
    for t in tokens {
        out.tokens.push(t.text.clone());
        out.token_logprobs.push(t.logprob.unwrap_or(0.0));
        out.top_logprobs.push(t.top_logprobs.iter().map(|a| (a.text.clone(), a.logprob)).collect());
        out.text_offset.push(offset);
        offset += t.text.len() as u32;
    }
    out
}

struct CompletionChunks {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    want_logprobs: bool,
    usage: Usage,
}

impl CompletionChunks {
    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> serde_json::Value {
        let mut v = to_json(&Completion {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: None,
            system_fingerprint: None,
        });
        if self.include_usage {
            v["usage"] = usage.map_or(serde_json::Value::Null, |u| to_json(&u));
        }
        v
    }
}

impl ChunkRenderer for CompletionChunks {
    fn render(&mut self, index: u32, event: GenerationEvent) -> Vec<serde_json::Value> {
        match event {
            // Billed, not shown: the answer is the final attempt's.
            // Text completions have no tool calls (validation never offers tools here).
            GenerationEvent::Spent { .. } | GenerationEvent::Upstream { .. } | GenerationEvent::ToolCall(_) => {
                Vec::new()
            }
            GenerationEvent::Started { model, .. } => {
                if let Some(m) = model {
                    self.model = m;
                }
                Vec::new()
            }
            GenerationEvent::Delta { text, tokens } => {
                let logprobs = self.want_logprobs.then(|| completion_logprobs(&tokens));
                vec![self.chunk(vec![CompletionChoice { text, index, logprobs, finish_reason: None }], None)]
            }
            GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, cached_tokens } => {
                self.usage.add(&Usage::new(prompt_tokens, completion_tokens, cached_tokens));
                let choice = CompletionChoice {
                    text: String::new(),
                    index,
                    logprobs: None,
                    finish_reason: Some(reason.as_str().to_string()),
                };
                vec![self.chunk(vec![choice], None)]
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
        vec![self.chunk(Vec::new(), Some(self.usage.clone()))]
    }
}
