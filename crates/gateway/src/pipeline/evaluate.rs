//! Sampled evaluation of live answers (`[[live_eval]]`, `eval::live`):
//! after: a sampled answer's text is copied as it streams to the client
//! and offered to the evaluations' queues when it ends. The wrapper is the
//! outermost (second in `STEPS`, after `resolve`, which has none), so it
//! sees exactly what the client got, guardrails and cache included.

use super::{Call, Ctx, Step};
use crate::eval::live::Sample;
use backend_api::{FinishReason, GenerationEvent, GenerationStream, Prompt, Role};
use futures::StreamExt;
use std::time::Instant;

pub struct Evaluate;

#[async_trait::async_trait]
impl Step for Evaluate {
    fn after(&self, ctx: &Ctx, call: &Call, stream: GenerationStream) -> GenerationStream {
        let Some(live) = ctx.state.live_eval().cloned() else { return stream };
        let picked = live.pick(&call.model);
        if picked.is_empty() {
            return stream;
        }
        let question = call.requests.first().map(question_of).unwrap_or_default();
        let mut model = call.model.clone();
        let started = Instant::now();
        let mut text = String::new();
        stream
            .map(move |event| {
                match &event {
                    // A route names the model that served it.
                    Ok(GenerationEvent::Started { model: Some(m), .. }) => model = m.clone(),
                    Ok(GenerationEvent::Delta { text: t, .. }) => text.push_str(t),
                    Ok(GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, .. })
                        if *reason != FinishReason::ContentFilter =>
                    {
                        let sample = Sample {
                            model: model.clone(),
                            question: question.clone(),
                            answer: std::mem::take(&mut text),
                            latency_ms: started.elapsed().as_secs_f64() * 1e3,
                            prompt_tokens: *prompt_tokens,
                            completion_tokens: *completion_tokens,
                        };
                        live.offer(&picked, sample);
                    }
                    _ => {}
                }
                event
            })
            .boxed()
    }
}

/// The last user turn, or the prompt.
fn question_of(r: &backend_api::ValidatedRequest) -> String {
    match &r.prompt {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(turns) => turns.iter().rev().find(|t| t.role == Role::User).map(|t| t.text()).unwrap_or_default(),
    }
}
