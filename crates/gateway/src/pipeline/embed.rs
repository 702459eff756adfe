//! The request path of `/v1/embeddings`, in the pipeline's order without
//! the stream wrappers (an embedding answer is one value, known whole):
//! resolve (the model, the key may use it), admit (its tokens counted by
//! the model's tokenizer and reserved against every rate limit and budget),
//! the backend within the request's time limit, then settle the real
//! usage (the meter's job for generations).

use super::Ctx;
use crate::error::ApiError;
use crate::policy::admission::Estimate;
use axum::http::HeaderValue;
use backend_api::{EmbedRequest, Embedded};

/// An answered embeddings call and what its response needs.
pub struct EmbedAnswer {
    pub embedded: Embedded,
    /// The model asked for, aliases resolved.
    pub model: String,
    pub headers: axum::http::HeaderMap,
}

pub async fn run(mut ctx: Ctx, mut request: EmbedRequest, dimensions: Option<u32>) -> Result<EmbedAnswer, ApiError> {
    let (model, backend) = match ctx.state.embedder(&request.model) {
        Some(found) => found,
        None if ctx.state.backend_for(ctx.state.resolve(&request.model)).is_some() => {
            return Err(ApiError::invalid(format!("The model '{}' does not serve embeddings.", request.model), "model"))
        }
        None => return Err(ApiError::ModelNotFound(request.model)),
    };
    request.model.clone_from(&model);
    if let Some(t) = &ctx.timing {
        t.set_model(&model);
    }
    if !ctx.principal.allows_model(&model) {
        return Err(ApiError::ModelNotAllowed(model));
    }
    if let (Some(asked), Some(has)) = (dimensions, backend.dimensions(&model)) {
        if asked != has {
            return Err(ApiError::invalid(
                format!(
                    "The model '{model}' makes vectors of {has} dimensions; 'dimensions' = {asked} cannot be served."
                ),
                "dimensions",
            ));
        }
    }
    let prompt_tokens = backend.count_tokens(&request)?;
    let policy = ctx.state.policy().clone();
    let estimate = Estimate { prompt_tokens: u64::from(prompt_tokens), max_completion_tokens: 0 };
    let candidates = ctx.state.candidates(&model);
    let mut admission = policy.admit(&ctx.principal, ctx.end_user.as_deref(), &model, &candidates, estimate).await?;
    ctx.headers.extend(std::mem::take(&mut admission.headers));
    if let Some(t) = &ctx.timing {
        t.backend_started();
    }
    let limit = policy.settings.request_timeout;
    let result = match tokio::time::timeout(limit, backend.embed(request)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(_) => Err(ApiError::Timeout(super::deadline::NOT_STARTED.into())),
    };
    if let Some(t) = &ctx.timing {
        t.backend_finished();
    }
    let embedded = match result {
        Ok(e) => e,
        Err(e) => {
            admission.settle(0, 0, &[]).await;
            return Err(e);
        }
    };
    if let Some(chosen) = &embedded.model {
        // A route chose: that model's price, and the header names it.
        admission.model.clone_from(chosen);
        if let Ok(v) = HeaderValue::try_from(chosen.as_str()) {
            ctx.headers.insert(super::SERVED_BY_HEADER, v);
        }
    }
    let cost = admission.settle(u64::from(embedded.prompt_tokens), 0, &[]).await;
    if let Ok(v) = HeaderValue::try_from(super::context::format_usd(cost)) {
        ctx.headers.insert(super::COST_HEADER, v);
    }
    Ok(EmbedAnswer { embedded, model, headers: ctx.headers })
}
