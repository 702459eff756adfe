//! Every request's wall-clock limit (`limits.request_timeout_ms`): when it
//! passes, the backend stream is dropped (which cancels the generation) and
//! the answer ends as if `max_tokens` were reached: `Finished` with
//! `length` and the usage so far, so streams end normally and the meter
//! charges what was generated. An answer that has not started by then
//! (the backend still connecting or queued, or an upstream asked for the
//! whole answer at once) is a timeout error.

use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;
use backend_api::{BackendError, FinishReason, GenerationEvent, GenerationStream};
use futures::StreamExt;
use tokio::time::Instant;

pub struct Deadline;

#[async_trait::async_trait]
impl Step for Deadline {
    async fn before(&self, ctx: &mut Ctx, _call: &mut Call) -> Result<Flow, ApiError> {
        ctx.deadline = Some(Instant::now() + ctx.state.policy().settings.request_timeout);
        Ok(Flow::Continue)
    }

    fn after(&self, ctx: &Ctx, _call: &Call, stream: GenerationStream) -> GenerationStream {
        match ctx.deadline {
            Some(at) => limit(stream, at),
            None => stream,
        }
    }
}

/// The message of a request whose answer had not started at its limit.
pub const NOT_STARTED: &str = "the request reached its time limit before its answer started";

struct Limited {
    inner: Option<GenerationStream>,
    at: Instant,
    started: Option<(u32, u32)>,
    generated: u32,
}

/// Ends `stream` at `at` (see the module docs).
pub fn limit(stream: GenerationStream, at: Instant) -> GenerationStream {
    let state = Limited { inner: Some(stream), at, started: None, generated: 0 };
    futures::stream::unfold(state, |mut s| async move {
        let inner = s.inner.as_mut()?;
        match tokio::time::timeout_at(s.at, inner.next()).await {
            Ok(Some(event)) => {
                match &event {
                    Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, .. }) => {
                        s.started = Some((*prompt_tokens, *cached_tokens));
                    }
                    Ok(GenerationEvent::Delta { text, tokens }) => {
                        s.generated += (tokens.len() as u32).max(u32::from(!text.is_empty()));
                    }
                    Ok(GenerationEvent::Finished { .. }) | Err(_) => s.inner = None,
                    _ => {}
                }
                Some((event, s))
            }
            Ok(None) => None,
            Err(_) => {
                s.inner = None;
                let event = match s.started {
                    Some((prompt, cached)) => {
                        tracing::info!(
                            generated = s.generated,
                            "request reached its time limit: answer ends with 'length'"
                        );
                        Ok(GenerationEvent::Finished {
                            reason: FinishReason::Length,
                            prompt_tokens: prompt,
                            completion_tokens: s.generated,
                            cached_tokens: cached,
                        })
                    }
                    None => Err(BackendError::Timeout(NOT_STARTED.into())),
                };
                Some((event, s))
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_slow_answer_ends_with_length_and_its_usage() {
        let events = futures::stream::iter(vec![
            Ok(GenerationEvent::Started { prompt_tokens: 7, cached_tokens: 0, model: None, verbatim: false }),
            Ok(GenerationEvent::Delta { text: "a".into(), tokens: Vec::new() }),
        ])
        .chain(futures::stream::pending());
        let out: Vec<_> = limit(events.boxed(), Instant::now() + Duration::from_millis(50)).collect().await;
        assert_eq!(out.len(), 3);
        assert!(matches!(
            out[2],
            Ok(GenerationEvent::Finished { reason: FinishReason::Length, prompt_tokens: 7, completion_tokens: 1, .. })
        ));
        let never: GenerationStream = futures::stream::pending().boxed();
        let out: Vec<_> = limit(never, Instant::now() + Duration::from_millis(10)).collect().await;
        assert!(matches!(out.as_slice(), [Err(BackendError::Timeout(_))]));
    }
}
