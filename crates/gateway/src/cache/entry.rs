//! A cached answer: recorded from a backend's events as they pass, replayed
//! as the same events (so every dialect renders a hit as it renders any
//! answer, streamed or whole), and stored compressed.

use backend_api::{FinishReason, GenerationEvent, GenerationStream, ToolCallDelta};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// The model (or route) asked for, and the model that answered.
    pub model: String,
    pub served_by: Option<String>,
    /// Who may be served it: `key:ID`, `user:ID` or `global`.
    pub tenant: String,
    pub namespace: Option<String>,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub text: String,
    pub tool_calls: Vec<CachedCall>,
    pub finish: Finish,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The finish reasons an answer may be stored with (a cut or blocked one is not).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Stop,
    StopString(u8),
    Length,
    ToolCalls,
}

impl Finish {
    pub fn of(reason: FinishReason) -> Option<Finish> {
        match reason {
            FinishReason::Stop => Some(Finish::Stop),
            FinishReason::StopString(i) => Some(Finish::StopString(i)),
            FinishReason::Length => Some(Finish::Length),
            FinishReason::ToolCalls => Some(Finish::ToolCalls),
            FinishReason::ContentFilter => None,
        }
    }

    fn reason(self) -> FinishReason {
        match self {
            Finish::Stop => FinishReason::Stop,
            Finish::StopString(i) => FinishReason::StopString(i),
            Finish::Length => FinishReason::Length,
            Finish::ToolCalls => FinishReason::ToolCalls,
        }
    }
}

impl Entry {
    /// Approximate bytes held in memory (the in-process tier's weigher).
    pub fn weight(&self) -> u32 {
        let calls: usize = self.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len() + 72).sum();
        let strings = self.id.len() + self.model.len() + self.tenant.len() + self.text.len();
        u32::try_from(strings + calls + 160).unwrap_or(u32::MAX)
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_ms
    }

    /// Compressed JSON (the Redis tier's and the journal's form).
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        lz4_flex::compress_prepend_size(&json)
    }

    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let json = lz4_flex::decompress_size_prepended(bytes).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The answer as a backend would have sent it. The text comes in
    /// pieces of a few words, so a streaming client sees a stream.
    pub fn replay(self: &Arc<Self>) -> GenerationStream {
        let mut events = Vec::with_capacity(8);
        events.push(Ok(GenerationEvent::Started {
            prompt_tokens: self.prompt_tokens,
            cached_tokens: 0,
            model: self.served_by.clone(),
            verbatim: false,
        }));
        for piece in pieces(&self.text, 24) {
            events.push(Ok(GenerationEvent::Delta { text: piece.to_string(), tokens: Vec::new() }));
        }
        for (i, c) in self.tool_calls.iter().enumerate() {
            events.push(Ok(GenerationEvent::ToolCall(ToolCallDelta {
                index: i as u32,
                id: Some(c.id.clone()),
                name: Some(c.name.clone()),
                arguments: c.arguments.clone(),
            })));
        }
        events.push(Ok(GenerationEvent::Finished {
            reason: self.finish.reason(),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_tokens: 0,
        }));
        futures::stream::iter(events).boxed()
    }
}

/// `text` cut after whitespace once a piece has at least `min` bytes.
fn pieces(text: &str, min: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() && i + c.len_utf8() - start >= min {
            out.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// What an answer stream carried, gathered as it passes.
#[derive(Debug, Default)]
pub struct Recording {
    pub text: String,
    pub calls: Vec<CachedCall>,
    pub served_by: Option<String>,
    /// A tool call came out of order: the answer is not stored.
    broken: bool,
}

impl Recording {
    /// Notes one event; returns the finished answer's `(finish, prompt, completion)`
    /// when the event ends it in a way that may be stored.
    pub fn see(&mut self, event: &GenerationEvent) -> Option<(Finish, u32, u32)> {
        match event {
            GenerationEvent::Started { model, .. } => self.served_by = model.clone(),
            GenerationEvent::Delta { text, .. } => self.text.push_str(text),
            GenerationEvent::ToolCall(d) => {
                let i = d.index as usize;
                if i > self.calls.len() {
                    self.broken = true;
                    return None;
                }
                if i == self.calls.len() {
                    self.calls.push(CachedCall { id: String::new(), name: String::new(), arguments: String::new() });
                }
                let c = &mut self.calls[i];
                if let Some(id) = &d.id {
                    c.id = id.clone();
                }
                if let Some(n) = &d.name {
                    c.name = n.clone();
                }
                c.arguments.push_str(&d.arguments);
            }
            GenerationEvent::Finished { reason, prompt_tokens, completion_tokens, .. } => {
                return Finish::of(*reason).filter(|_| !self.broken).map(|f| (f, *prompt_tokens, *completion_tokens))
            }
            GenerationEvent::Upstream { .. } | GenerationEvent::Spent { .. } => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: "e1".into(),
            model: "m".into(),
            served_by: None,
            tenant: "global".into(),
            namespace: None,
            created_ms: 1,
            expires_ms: 2,
            text: "The capital of France is Paris, a city on the Seine.".into(),
            tool_calls: vec![CachedCall { id: "c1".into(), name: "f".into(), arguments: "{\"a\":1}".into() }],
            finish: Finish::ToolCalls,
            prompt_tokens: 9,
            completion_tokens: 12,
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let e = entry();
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b"garbage"), None);
    }

    #[tokio::test]
    async fn a_replay_records_back_to_the_same_answer() {
        let e = Arc::new(entry());
        let events: Vec<_> = e.replay().collect().await;
        assert!(events.len() > 4, "the text comes in several pieces");
        let mut rec = Recording::default();
        let mut end = None;
        for ev in events.iter().flatten() {
            end = rec.see(ev).or(end);
        }
        assert_eq!(rec.text, e.text);
        assert_eq!(rec.calls, e.tool_calls);
        assert_eq!(end, Some((Finish::ToolCalls, 9, 12)));
    }

    #[test]
    fn a_blocked_answer_is_not_stored() {
        let mut rec = Recording::default();
        let ev = GenerationEvent::Finished {
            reason: FinishReason::ContentFilter,
            prompt_tokens: 1,
            completion_tokens: 1,
            cached_tokens: 0,
        };
        assert_eq!(rec.see(&ev), None);
    }
}
