//! Server-sent events for streamed answers: every backend event is
//! rendered by the dialect into zero or more payloads, errors become the
//! dialect's error event, and the stream ends the dialect's way (OpenAI:
//! `data: [DONE]`; Anthropic: nothing after `message_stop`). Dialects with
//! named events (Anthropic) get each payload's `type` as its event name.
//!
//! A single-choice answer relayed from an OpenAI-compatible server
//! (`Started { verbatim: true }`, when the pipeline allows relaying) is
//! passed through instead: each upstream `data:` payload byte for byte
//! (ids, model names, fields this gateway does not model), the usage chunk
//! only when the client asked for usage. The parsed events still feed the
//! meter; only the rendering is skipped, except for an ending the gateway
//! made itself (a time limit) which the upstream never sent.

use crate::error::ApiError;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backend_api::{GenerationEvent, GenerationStream};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;

/// Turns backend events of one choice (its index) into JSON payloads.
pub trait ChunkRenderer: Send + 'static {
    fn render(&mut self, index: u32, event: GenerationEvent) -> Vec<serde_json::Value>;
    /// Payloads after every choice finished (the usage chunk).
    fn finish(&mut self) -> Vec<serde_json::Value>;
    /// The client asked for a usage chunk (`stream_options.include_usage`).
    fn include_usage(&self) -> bool {
        false
    }
    /// Events are named after their payload's `type` (Anthropic).
    fn named_events(&self) -> bool {
        false
    }
    /// The payload of an error event.
    fn error(&self, e: &ApiError) -> serde_json::Value {
        to_json(&e.body())
    }
    /// The last payload of every stream, if the dialect has one.
    fn done(&self) -> Option<&'static str> {
        Some("[DONE]")
    }
}

pub fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

struct State<R> {
    events: BoxStream<'static, (u32, Result<GenerationEvent, backend_api::BackendError>)>,
    renderer: R,
    open_choices: usize,
    done: bool,
    /// Relaying is allowed (no step needs the text).
    relay: bool,
    /// Relaying upstream chunks as they came.
    verbatim: bool,
    /// A relayed upstream chunk carried the usage.
    relayed_usage: bool,
    /// A relayed upstream chunk carried the finish reason.
    relayed_finish: bool,
}

impl<R: ChunkRenderer> State<R> {
    fn event(&self, payload: serde_json::Value) -> Event {
        let named = self.renderer.named_events();
        let event = match payload.get("type").and_then(serde_json::Value::as_str) {
            Some(name) if named => Event::default().event(name),
            _ => Event::default(),
        };
        event.data(payload.to_string())
    }

    /// One event of a choice as SSE events.
    fn events(&mut self, index: u32, event: GenerationEvent) -> Vec<Event> {
        if let GenerationEvent::Started { verbatim: true, .. } = event {
            self.verbatim = self.relay && self.open_choices == 1;
        }
        let finished = matches!(event, GenerationEvent::Finished { .. });
        let mut out: Vec<Event> = match (&event, self.verbatim) {
            (GenerationEvent::Upstream { data, usage_only, finishes }, true) => {
                self.relayed_usage |= *usage_only;
                self.relayed_finish |= *finishes;
                if *usage_only && !self.renderer.include_usage() {
                    Vec::new()
                } else {
                    vec![Event::default().data(data.clone())]
                }
            }
            (GenerationEvent::Finished { .. }, true) if !self.relayed_finish => {
                // Ended by the gateway (a time limit): the upstream sent no ending.
                self.renderer.render(index, event).into_iter().map(|v| self.event(v)).collect()
            }
            (_, true) => {
                // Rendered for its bookkeeping (model, usage), not sent.
                self.renderer.render(index, event);
                Vec::new()
            }
            (_, false) => self.renderer.render(index, event).into_iter().map(|v| self.event(v)).collect(),
        };
        if finished {
            self.open_choices = self.open_choices.saturating_sub(1);
            if self.open_choices == 0 && !(self.verbatim && self.relayed_usage) {
                // The usage chunk, if asked for (ours too when a relayed server sent none).
                let last = self.renderer.finish();
                out.extend(last.into_iter().map(|v| self.event(v)));
            }
        }
        out
    }

    fn ending(&self, error: Option<ApiError>) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(e) = error {
            tracing::warn!(error = %e, "stream failed after it started");
            out.push(self.event(self.renderer.error(&e)));
        }
        if let Some(done) = self.renderer.done() {
            out.push(Event::default().data(done));
        }
        out
    }
}

/// Streams the choices' events as SSE. Dropping the response (client
/// gone) drops the backend streams, which cancels their generations.
pub fn sse_response<R: ChunkRenderer>(choices: Vec<GenerationStream>, renderer: R, relay: bool) -> Response {
    let open_choices = choices.len();
    let tagged = choices.into_iter().enumerate().map(|(i, s)| s.map(move |e| (i as u32, e)).boxed());
    let state = State {
        events: stream::select_all(tagged).boxed(),
        renderer,
        open_choices,
        done: false,
        relay,
        verbatim: false,
        relayed_usage: false,
        relayed_finish: false,
    };
    let body = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let chunks: Vec<Event> = match st.events.next().await {
            Some((index, Ok(event))) => st.events(index, event),
            Some((_, Err(e))) => {
                st.done = true;
                st.ending(Some(ApiError::from(e)))
            }
            None => {
                st.done = true;
                let cut = (st.open_choices > 0).then(|| {
                    ApiError::Internal("the backend ended the stream without finishing the generation".into())
                });
                st.ending(cut)
            }
        };
        Some((stream::iter(chunks.into_iter().map(Ok::<Event, std::convert::Infallible>)), st))
    })
    .flatten();
    Sse::new(body).keep_alive(KeepAlive::default()).into_response()
}
