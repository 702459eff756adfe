//! Answers in Anthropic's shape: a whole `message`, or the stream of named
//! events (`message_start`, `ping`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`,
//! `message_stop`; `error` when it fails). Text comes in `text` blocks,
//! tool calls in `tool_use` blocks whose input streams as `input_json_delta`.

use super::collect::Collected;
use super::sse::{to_json, ChunkRenderer};
use crate::error::ApiError;
use backend_api::{FinishReason, GenerationEvent};
use protocol::anthropic::{ErrorResponse, MessageResponse, MessageUsage};
use serde_json::{json, Value};

/// Anthropic's `stop_reason` and `stop_sequence` for a finish reason; the
/// request's stop strings name the one that matched.
fn stop_reason(r: FinishReason, stops: &[String]) -> (&'static str, Option<String>) {
    match r {
        FinishReason::Stop => ("end_turn", None),
        FinishReason::StopString(i) => match stops.get(usize::from(i)) {
            Some(s) => ("stop_sequence", Some(s.clone())),
            None => ("end_turn", None),
        },
        FinishReason::Length => ("max_tokens", None),
        FinishReason::ToolCalls => ("tool_use", None),
        FinishReason::ContentFilter => ("refusal", None),
    }
}

/// A tool call's arguments as the `input` object (the text as a string if it is not JSON).
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_string()))
}

pub fn whole_message(id: String, model: String, done: Collected, stops: &[String]) -> MessageResponse {
    let mut content = Vec::new();
    if !done.text.is_empty() || done.tool_calls.is_empty() {
        content.push(json!({"type": "text", "text": done.text}));
    }
    for c in &done.tool_calls {
        content.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(&c.arguments)}));
    }
    let (reason, stop_sequence) = stop_reason(done.finish_reason.unwrap_or(FinishReason::Stop), stops);
    MessageResponse {
        id,
        kind: "message".into(),
        role: "assistant".into(),
        model,
        content,
        stop_reason: Some(reason.into()),
        stop_sequence,
        usage: MessageUsage {
            input_tokens: done.usage.prompt_tokens,
            output_tokens: done.usage.completion_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: done.usage.cached_tokens(),
        },
    }
}

/// The open content block of a stream.
#[derive(PartialEq)]
enum Open {
    None,
    Text,
    /// A tool call, by its index among the answer's calls.
    Tool(u32),
}

pub struct MessageEvents {
    id: String,
    model: String,
    /// The request's stop strings (to name the one that matched).
    stops: Vec<String>,
    /// Index of the open (or next) content block.
    block: u32,
    open: Open,
}

impl MessageEvents {
    pub fn new(id: String, model: String, stops: Vec<String>) -> Self {
        MessageEvents { id, model, stops, block: 0, open: Open::None }
    }

    /// Closes the open block, if any.
    fn close(&mut self, out: &mut Vec<Value>) {
        if self.open != Open::None {
            out.push(json!({"type": "content_block_stop", "index": self.block}));
            self.block += 1;
            self.open = Open::None;
        }
    }
}

impl ChunkRenderer for MessageEvents {
    fn render(&mut self, _index: u32, event: GenerationEvent) -> Vec<Value> {
        let mut out = Vec::new();
        match event {
            GenerationEvent::Spent { .. } | GenerationEvent::Upstream { .. } => {}
            GenerationEvent::Started { prompt_tokens, cached_tokens, model, .. } => {
                if let Some(m) = model {
                    self.model = m;
                }
                out.push(json!({"type": "message_start", "message": {
                    "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": prompt_tokens, "output_tokens": 0,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached_tokens}}}));
                out.push(json!({"type": "ping"}));
            }
            GenerationEvent::Delta { text, .. } => {
                if text.is_empty() {
                    return out;
                }
                if self.open != Open::Text {
                    self.close(&mut out);
                    out.push(json!({"type": "content_block_start", "index": self.block,
                                    "content_block": {"type": "text", "text": ""}}));
                    self.open = Open::Text;
                }
                out.push(json!({"type": "content_block_delta", "index": self.block,
                                "delta": {"type": "text_delta", "text": text}}));
            }
            GenerationEvent::ToolCall(d) => {
                if self.open != Open::Tool(d.index) {
                    self.close(&mut out);
                    out.push(json!({"type": "content_block_start", "index": self.block, "content_block": {
                        "type": "tool_use", "id": d.id.unwrap_or_default(), "name": d.name.unwrap_or_default(),
                        "input": {}}}));
                    self.open = Open::Tool(d.index);
                }
                if !d.arguments.is_empty() {
                    out.push(json!({"type": "content_block_delta", "index": self.block,
                                    "delta": {"type": "input_json_delta", "partial_json": d.arguments}}));
                }
            }
            GenerationEvent::Finished { reason, completion_tokens, .. } => {
                self.close(&mut out);
                let (reason, sequence) = stop_reason(reason, &self.stops);
                out.push(json!({"type": "message_delta",
                                "delta": {"stop_reason": reason, "stop_sequence": sequence},
                                "usage": {"output_tokens": completion_tokens}}));
                out.push(json!({"type": "message_stop"}));
            }
        }
        out
    }

    fn finish(&mut self) -> Vec<Value> {
        Vec::new()
    }

    fn named_events(&self) -> bool {
        true
    }

    fn error(&self, e: &ApiError) -> Value {
        let kind = if e.status().is_server_error() { "api_error" } else { "invalid_request_error" };
        let kind = if matches!(e, ApiError::Overloaded { .. }) { "overloaded_error" } else { kind };
        to_json(&ErrorResponse::new(kind, e.to_string()))
    }

    fn done(&self) -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::ToolCallDelta;

    #[test]
    fn text_then_a_tool_call_make_two_blocks_and_close_both() {
        let mut r = MessageEvents::new("msg_1".into(), "m".into(), Vec::new());
        let mut all = Vec::new();
        for e in [
            GenerationEvent::Started { prompt_tokens: 5, cached_tokens: 0, model: None, verbatim: false },
            GenerationEvent::Delta { text: "Let me check.".into(), tokens: Vec::new() },
            GenerationEvent::ToolCall(ToolCallDelta {
                index: 0,
                id: Some("t1".into()),
                name: Some("f".into()),
                arguments: "{\"a\":".into(),
            }),
            GenerationEvent::ToolCall(ToolCallDelta { index: 0, id: None, name: None, arguments: "1}".into() }),
            GenerationEvent::Finished {
                reason: FinishReason::ToolCalls,
                prompt_tokens: 5,
                completion_tokens: 9,
                cached_tokens: 0,
            },
        ] {
            all.extend(r.render(0, e));
        }
        let types: Vec<&str> = all.iter().filter_map(|v| v["type"].as_str()).collect();
        assert_eq!(
            types,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(all[5]["content_block"]["type"], "tool_use");
        assert_eq!(all[5]["index"], 1);
        assert_eq!(all[9]["delta"]["stop_reason"], "tool_use");
        assert_eq!(all[9]["usage"]["output_tokens"], 9);
    }

    #[test]
    fn a_matched_stop_string_is_named() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        let mut r = MessageEvents::new("msg_1".into(), "m".into(), stops.clone());
        let done = GenerationEvent::Finished {
            reason: FinishReason::StopString(1),
            prompt_tokens: 1,
            completion_tokens: 1,
            cached_tokens: 0,
        };
        let out = r.render(0, done);
        assert_eq!(out[0]["delta"], json!({"stop_reason": "stop_sequence", "stop_sequence": "END"}));
        let whole = whole_message(
            "m".into(),
            "m".into(),
            Collected { finish_reason: Some(FinishReason::StopString(0)), ..Default::default() },
            &stops,
        );
        assert_eq!(
            (whole.stop_reason.as_deref(), whole.stop_sequence.as_deref()),
            (Some("stop_sequence"), Some("\n\n"))
        );
    }
}
