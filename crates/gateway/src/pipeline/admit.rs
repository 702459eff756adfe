//! Steps 3 and 4, and 11 after the backend: the prompt is counted with the
//! backend's own tokenizer, a request without a completion cap gets the
//! server's default, and the estimate is reserved against the caller's
//! limits and budgets. After: each answer stream is metered, and the
//! reservation settles to the real usage when the last one ends.

use super::{Call, Ctx, Flow, Step};
use crate::error::ApiError;
use crate::policy::admission::Estimate;
use crate::policy::meter::Meter;
use crate::policy::Principal;
use backend_api::GenerationStream;

/// Which model answered a request that named a route (streams included:
/// the pipeline waits for a route's choice before the headers go out).
pub const SERVED_BY_HEADER: &str = "x-switchyard-model";

/// The request's cost in US dollars (answers returned whole; a stream's
/// cost is known only after its headers went out, so it is in the metrics
/// and the spend, not in a header).
pub const COST_HEADER: &str = "x-switchyard-cost-usd";

pub struct Admit;

#[async_trait::async_trait]
impl Step for Admit {
    async fn before(&self, ctx: &mut Ctx, call: &mut Call) -> Result<Flow, ApiError> {
        let backend = call.backend()?.clone();
        let policy = ctx.state.policy().clone();
        let context = backend.context_length(&call.model).unwrap_or(u32::MAX);
        let default_cap = policy.settings.default_max_tokens;
        let mut estimate = Estimate { prompt_tokens: 0, max_completion_tokens: 0 };
        for r in call.requests.iter_mut() {
            if let Principal::Key(k) = &ctx.principal {
                r.cache_salt = k.cache_salt(r.cache_salt.take());
            }
            let prompt = backend.count_prompt_tokens(r)?;
            let room = context.saturating_sub(prompt);
            if r.stop.max_tokens.is_none() {
                // No unbounded answers: the server's default cap (chat; the
                // completions dialect sets OpenAI's 16 itself).
                r.stop.max_tokens = Some(default_cap.min(room).max(1));
            }
            estimate.prompt_tokens += u64::from(prompt);
            estimate.max_completion_tokens += u64::from(r.stop.max_tokens.unwrap_or(room));
        }
        let candidates = ctx.state.candidates(&call.model);
        let mut admission =
            policy.admit(&ctx.principal, ctx.end_user.as_deref(), &call.model, &candidates, estimate).await?;
        ctx.headers.extend(std::mem::take(&mut admission.headers));
        call.meter = Some(Meter::new(admission, call.requests.len(), ctx.timing.clone()));
        if let Some(t) = &ctx.timing {
            t.backend_started();
        }
        Ok(Flow::Continue)
    }

    fn after(&self, _ctx: &Ctx, call: &Call, stream: GenerationStream) -> GenerationStream {
        match &call.meter {
            Some(m) => m.wrap(stream),
            None => stream,
        }
    }
}
