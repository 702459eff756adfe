//! A non-streamed answer from an OpenAI-compatible server, as events. A
//! client that does not stream gets its answer asked for whole: one JSON
//! body to read instead of a chunk per token (a tenth of the gateway's work
//! per request under load; see BENCHMARKS.md).

use super::openai::{finish_reason, tool_call_deltas, upstream_logprobs};
use backend_api::{BackendError, FinishReason, GenerationEvent};
use serde_json::Value;

/// Largest answer body read (a long completion with log-probabilities fits many times over).
pub const MAX_ANSWER_BODY: usize = 32 * 1024 * 1024;

/// `Started`, one `Delta` with the whole text, `Finished` with the upstream's usage.
/// `estimate` stands in for a prompt size the server did not report.
pub fn answer_events(v: &Value, estimate: u32) -> Result<Vec<GenerationEvent>, String> {
    let choice = v.pointer("/choices/0").ok_or("the answer has no choices")?;
    let text = choice
        .pointer("/message/content")
        .or_else(|| choice.get("text"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let tokens = choice.get("logprobs").map(upstream_logprobs).unwrap_or_default();
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).map(|x| x as u32);
    let prompt = n("/usage/prompt_tokens").unwrap_or(estimate);
    let completion =
        n("/usage/completion_tokens").unwrap_or(tokens.len().max(u32::from(!text.is_empty()) as usize) as u32);
    let cached = n("/usage/prompt_tokens_details/cached_tokens").unwrap_or(0);
    let reason = choice.get("finish_reason").and_then(Value::as_str).map_or(FinishReason::Stop, finish_reason);
    let calls = choice.pointer("/message/tool_calls").map(tool_call_deltas).unwrap_or_default();
    let mut events =
        vec![GenerationEvent::Started { prompt_tokens: prompt, cached_tokens: cached, model: None, verbatim: false }];
    if !text.is_empty() || !tokens.is_empty() {
        events.push(GenerationEvent::Delta { text, tokens });
    }
    events.extend(calls.into_iter().map(GenerationEvent::ToolCall));
    events.push(GenerationEvent::Finished {
        reason,
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: cached,
    });
    Ok(events)
}

/// The events as a stream, or the reason the body is not an answer.
pub fn answer_stream(body: &[u8], estimate: u32, backend: &str) -> Result<backend_api::GenerationStream, BackendError> {
    let unavailable = |what: String| BackendError::Unavailable(format!("backend '{backend}': {what}"));
    let v: Value = serde_json::from_slice(body).map_err(|e| unavailable(format!("unreadable answer: {e}")))?;
    let events = answer_events(&v, estimate).map_err(|e| unavailable(e.to_string()))?;
    Ok(Box::pin(futures::stream::iter(events.into_iter().map(Ok))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_and_text_answers_become_events() {
        let chat = json!({"choices": [{"message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop",
            "logprobs": {"content": [{"token": "Paris", "logprob": -0.1}, {"token": ".", "logprob": -0.2}]}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 8}}});
        let e = answer_events(&chat, 99).unwrap_or_default();
        assert!(matches!(&e[0], GenerationEvent::Started { prompt_tokens: 12, cached_tokens: 8, .. }));
        assert!(matches!(&e[1], GenerationEvent::Delta { text, tokens } if text == "Paris." && tokens.len() == 2));
        assert!(matches!(&e[2], GenerationEvent::Finished { reason: FinishReason::Stop, completion_tokens: 2, .. }));
        let text = json!({"choices": [{"text": " upon a time", "finish_reason": "length"}]});
        let e = answer_events(&text, 5).unwrap_or_default();
        assert!(matches!(&e[0], GenerationEvent::Started { prompt_tokens: 5, .. }), "the estimate without usage");
        assert!(matches!(&e[2], GenerationEvent::Finished { reason: FinishReason::Length, .. }));
        assert!(answer_events(&json!({"object": "error"}), 1).is_err());
    }
}
