//! The request path between a dialect's parse and its render, written once
//! for every endpoint. Auth (step 1) is a middleware (`policy::auth`); the
//! dialect parses and validates (step 2); then, in this order:
//!
//! - `resolve` (2): the model asked for (alias → model, or a route), that
//!   the key may use it, and that a model asked for directly can do what
//!   the request needs (tools, JSON, images, streaming, …);
//! - `evaluate`: after: a sampled answer is copied as it streams and
//!   offered to the live evaluations when it ends (`eval::live`); the
//!   outermost wrapper, so it scores what the client got;
//! - `truncate`: a chat that does not fit the context loses its oldest
//!   turns, when asked to;
//! - `guard_in` (5): the input guardrails (block, redact, warn, log) over
//!   user turns, tool results and prompts, before anything counts, caches
//!   or sees them; after: a reversible guardrail's values restored;
//! - `admit` (3, 4): the prompt counted with the backend's own tokenizer,
//!   the completion capped, the estimate reserved against every rate limit
//!   and budget of the key and its user; after: the meter settles the
//!   reservation to the real usage when the answer ends (11);
//! - `deadline`: after: the request's wall-clock limit, which ends an
//!   answer with `length`;
//! - `cache` (6): exact and semantic lookup (a hit answers on its own with
//!   `Flow::Answer`); after: a miss's answer is stored when it ends well.
//!   After the deadline in the list, so its wrapper is inside it: an
//!   answer the deadline cut never reaches it complete; a hit skips the
//!   steps after it (it was guarded when stored);
//! - `guard_out` (10): after: the output guardrails over the answer as it
//!   streams (a hold-back window); the innermost wrapper, so the cache
//!   stores the guarded answer;
//! - then the backend (7 to 9): a route, a queue, the engine or a remote
//!   server (`Backend` wrappers the pipeline does not see).
//!
//! Embeddings (`embed`) take the same steps in the same order without the
//! stream wrappers: their answer is one value, settled when it is known.
//!
//! A step's `before` runs in list order; its `after` wraps each answer
//! stream in reverse order (the last step's wrapper is the innermost, the
//! nearest to the backend), so the meter sees what the deadline made of
//! the stream. Adding a step is one file and one line in `STEPS`.

mod admit;
mod cache;
mod context;
mod deadline;
pub mod embed;
mod evaluate;
mod guard_in;
mod guard_out;
mod resolve;
mod truncate;

pub use admit::{COST_HEADER, SERVED_BY_HEADER};
pub use context::{Answer, Call, Ctx};
pub use truncate::TRUNCATED_HEADER;

use crate::error::ApiError;
use backend_api::{GenerationEvent, GenerationStream};
use futures::StreamExt;

/// What a step's `before` decides.
pub enum Flow {
    /// On to the next step.
    Continue,
    /// Answered without the backend (a cache hit): one stream per request.
    Answer(Vec<GenerationStream>),
}

/// One step of the request path.
#[async_trait::async_trait]
pub trait Step: Send + Sync {
    /// Before the backend: continue (possibly after rewriting the call),
    /// answer on its own, or refuse.
    async fn before(&self, _ctx: &mut Ctx, _call: &mut Call) -> Result<Flow, ApiError> {
        Ok(Flow::Continue)
    }

    /// Wraps one answer stream (redaction, metering, limits).
    fn after(&self, _ctx: &Ctx, _call: &Call, stream: GenerationStream) -> GenerationStream {
        stream
    }
}

/// The steps, in order (see the module docs).
const STEPS: [&dyn Step; 8] = [
    &resolve::Resolve,
    &evaluate::Evaluate,
    &truncate::Truncate,
    &guard_in::GuardIn,
    &admit::Admit,
    &deadline::Deadline,
    &cache::CacheStep,
    &guard_out::GuardOut,
];

/// Runs the call through every step and the backend.
pub async fn run(mut ctx: Ctx, mut call: Call) -> Result<Answer, ApiError> {
    let mut ran = 0;
    let mut answered = None;
    for step in STEPS {
        ran += 1;
        match step.before(&mut ctx, &mut call).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Answer(streams)) => {
                answered = Some(streams);
                break;
            }
            Err(e) => return Err(call.abandon(e)),
        }
    }
    let streams = match answered {
        Some(s) => s,
        None => {
            let started = match ctx.deadline {
                Some(at) => tokio::time::timeout_at(at, start(&call))
                    .await
                    .unwrap_or_else(|_| Err(ApiError::Timeout(deadline::NOT_STARTED.into()))),
                None => start(&call).await,
            };
            match started {
                Ok((s, chosen)) => {
                    // Known before the headers go out (the meter sees `Started` later).
                    if let (Some(m), Some(meter)) = (chosen, &call.meter) {
                        meter.served_by(&m);
                    }
                    s
                }
                Err(e) => return Err(call.abandon(e)),
            }
        }
    };
    let streams = streams
        .into_iter()
        .map(|mut s| {
            for step in STEPS[..ran].iter().rev() {
                s = step.after(&ctx, &call, s);
            }
            s
        })
        .collect();
    Ok(Answer::new(ctx, call, streams))
}

/// Starts every request on the backend (all before reading any, so the
/// engine batches them). For a route, waits for each stream's `Started`
/// event: the model it chose (returned) is then known to the response
/// headers (streams included), and a failure before it is an HTTP error.
async fn start(call: &Call) -> Result<(Vec<GenerationStream>, Option<String>), ApiError> {
    let backend = call.backend()?;
    let mut streams = Vec::with_capacity(call.requests.len());
    for r in &call.requests {
        streams.push(backend.generate(r.clone()).await?);
    }
    if !call.is_route {
        return Ok((streams, None));
    }
    let mut chosen = None;
    let mut started = Vec::with_capacity(streams.len());
    for mut s in streams {
        // `Started` may follow a cascade's `Spent` events.
        let mut head = Vec::new();
        loop {
            match s.next().await {
                Some(Ok(e)) => {
                    let is_start = matches!(e, GenerationEvent::Started { .. });
                    if let GenerationEvent::Started { model: Some(m), .. } = &e {
                        chosen = Some(m.clone());
                    }
                    head.push(Ok(e));
                    if is_start {
                        break;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ApiError::Internal("the backend ended the stream before starting".into())),
            }
        }
        started.push(futures::stream::iter(head).chain(s).boxed());
    }
    Ok((started, chosen))
}
