//! Fitting a chat into the model's context when asked to (`truncation:
//! "auto"` or the server's `truncation` setting): the oldest turns go
//! first; the system prompt and the last user turn always stay.

use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;
use backend_api::{Backend, BackendError, Prompt, Role, ValidatedRequest};
use std::sync::Arc;

/// Header on a response whose prompt was trimmed: how many turns were dropped.
pub const TRUNCATED_HEADER: &str = "x-switchyard-truncated-messages";

pub struct Truncate;

#[async_trait::async_trait]
impl Step for Truncate {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        if !call.truncation.unwrap_or(ctx.state.policy().settings.truncate_by_default) {
            return Ok(Flow::Continue);
        }
        let backend = call.backend()?.clone();
        let context = backend.context_length(&call.model).unwrap_or(u32::MAX);
        let mut dropped = 0;
        for r in call.requests.iter_mut().filter(|r| matches!(r.prompt, Prompt::Chat(_))) {
            dropped += fit_to_context(&backend, context, r)?;
        }
        if dropped > 0 {
            tracing::info!(model = %call.model, dropped_turns = dropped, "prompt truncated to fit the context");
            ctx.headers.insert(TRUNCATED_HEADER, dropped.into());
        }
        Ok(Flow::Continue)
    }
}

/// Drops the fewest oldest turns that make the request fit `context`
/// (prompt + completion cap). Returns how many were dropped.
pub fn fit_to_context(
    backend: &Arc<dyn Backend>,
    context: u32,
    request: &mut ValidatedRequest,
) -> Result<usize, ApiError> {
    let reserve = request.stop.max_tokens.unwrap_or(1).max(1);
    let fits = |r: &ValidatedRequest| -> Result<bool, BackendError> {
        Ok(backend.count_prompt_tokens(r)?.saturating_add(reserve) <= context)
    };
    if fits(request)? {
        return Ok(0);
    }
    let Prompt::Chat(turns) = &request.prompt else { return Ok(0) };
    let last_user = turns.iter().rposition(|t| t.role == Role::User);
    // Turns that may go, oldest first.
    let droppable: Vec<usize> =
        (0..turns.len()).filter(|&i| turns[i].role != Role::System && Some(i) != last_user).collect();
    let without = |n: usize| {
        let mut r = request.clone();
        if let Prompt::Chat(t) = &mut r.prompt {
            let gone = &droppable[..n];
            *t = t.iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, x)| x.clone()).collect();
        }
        r
    };
    if !fits(&without(droppable.len()))? {
        return Err(ApiError::InvalidRequest {
            message: format!(
                "The prompt does not fit this model's context of {context} tokens (with {reserve} for the completion) even with every droppable turn removed: shorten the system prompt or the last user message, or lower max_tokens."
            ),
            param: Some("messages".into()),
            code: Some("context_length_exceeded".into()),
        });
    }
    // Fewer dropped turns means a longer prompt: search for the smallest n that fits.
    let (mut lo, mut hi) = (1, droppable.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fits(&without(mid))? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    *request = without(lo);
    Ok(lo)
}
