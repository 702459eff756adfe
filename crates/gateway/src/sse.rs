//! Server-sent events for streamed generations: every backend event is
//! rendered into zero or more `data:` chunks by the route, errors become an
//! OpenAI-shaped error event, and the stream always ends with `[DONE]`.
//!
//! A single-choice answer relayed from an OpenAI-compatible server
//! (`Started { verbatim: true }`) is passed through instead: each upstream
//! `data:` payload byte for byte (ids, model names, fields this gateway
//! does not model such as tool calls), the usage chunk only when the client
//! asked for usage. The parsed events still feed the meter; only the
//! rendering is skipped. Errors and `[DONE]` stay the gateway's.

use crate::error::ApiError;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backend_api::{GenerationEvent, GenerationStream};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;

/// Turns backend events of one choice (its index) into JSON chunks.
pub trait ChunkRenderer: Send + 'static {
    fn render(&mut self, index: u32, event: GenerationEvent) -> Vec<serde_json::Value>;
    /// Chunks after every choice finished (the usage chunk).
    fn finish(&mut self) -> Vec<serde_json::Value>;
    /// The client asked for a usage chunk (`stream_options.include_usage`).
    fn include_usage(&self) -> bool;
}

pub fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

struct State<R> {
    events: BoxStream<'static, (u32, Result<GenerationEvent, backend_api::BackendError>)>,
    renderer: R,
    open_choices: usize,
    done: bool,
    /// Relaying upstream chunks as they came.
    verbatim: bool,
    /// A relayed upstream chunk carried the usage.
    relayed_usage: bool,
}

impl<R: ChunkRenderer> State<R> {
    /// One event of a choice as SSE payloads.
    fn payloads(&mut self, index: u32, event: GenerationEvent) -> Vec<String> {
        if let GenerationEvent::Started { verbatim: true, .. } = event {
            self.verbatim = self.open_choices == 1;
        }
        let finished = matches!(event, GenerationEvent::Finished { .. });
        let mut out: Vec<String> = match (&event, self.verbatim) {
            (GenerationEvent::Upstream { data, usage_only }, true) => {
                self.relayed_usage |= *usage_only;
                if *usage_only && !self.renderer.include_usage() {
                    Vec::new()
                } else {
                    vec![data.clone()]
                }
            }
            (_, true) => {
                // Rendered for its bookkeeping (model, usage), not sent.
                self.renderer.render(index, event);
                Vec::new()
            }
            (_, false) => self.renderer.render(index, event).iter().map(|v| v.to_string()).collect(),
        };
        if finished {
            self.open_choices = self.open_choices.saturating_sub(1);
            if self.open_choices == 0 && !(self.verbatim && self.relayed_usage) {
                // The usage chunk, if asked for (ours too when a relayed server sent none).
                out.extend(self.renderer.finish().iter().map(|v| v.to_string()));
            }
        }
        out
    }
}

/// Streams the choices' events as SSE. Dropping the response (client
/// gone) drops the backend streams, which cancels their generations.
pub fn sse_response<R: ChunkRenderer>(choices: Vec<GenerationStream>, renderer: R) -> Response {
    let open_choices = choices.len();
    let tagged = choices.into_iter().enumerate().map(|(i, s)| s.map(move |e| (i as u32, e)).boxed());
    let state = State {
        events: stream::select_all(tagged).boxed(),
        renderer,
        open_choices,
        done: false,
        verbatim: false,
        relayed_usage: false,
    };
    let body = stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        let chunks: Vec<Event> = match st.events.next().await {
            Some((index, Ok(event))) => st.payloads(index, event).into_iter().map(data_event).collect(),
            Some((_, Err(e))) => {
                st.done = true;
                vec![error_event(ApiError::from(e)), done_event()]
            }
            None => {
                st.done = true;
                if st.open_choices > 0 {
                    let e = ApiError::Internal("the backend ended the stream without finishing the generation".into());
                    vec![error_event(e), done_event()]
                } else {
                    vec![done_event()]
                }
            }
        };
        Some((stream::iter(chunks.into_iter().map(Ok::<Event, std::convert::Infallible>)), st))
    })
    .flatten();
    Sse::new(body).keep_alive(KeepAlive::default()).into_response()
}

fn data_event(payload: String) -> Event {
    Event::default().data(payload)
}

fn error_event(e: ApiError) -> Event {
    tracing::warn!(error = %e, "stream failed after it started");
    Event::default().data(to_json(&e.body()).to_string())
}

fn done_event() -> Event {
    Event::default().data("[DONE]")
}
