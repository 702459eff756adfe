//! `POST /v1/moderations`: OpenAI's moderation dialect, answered by a model
//! with the `moderation` capability (`model` may be left out: the first
//! one configured). `input` is a string, strings, or text parts. The key
//! must be allowed the model; a moderation call reserves one request
//! against the key's request-rate limits (no tokens, no cost).

use super::extract::OpenAiJson;
use super::request_id;
use crate::error::ApiError;
use crate::pipeline::Ctx;
use crate::policy::admission::Estimate;
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::sync::Arc;

/// Most inputs one request may carry.
pub const MAX_INPUTS: usize = 128;

#[derive(Debug, serde::Deserialize)]
pub struct ModerationRequest {
    input: Value,
    model: Option<String>,
}

fn inputs(v: &Value) -> Result<Vec<String>, ApiError> {
    let bad = |m: String| ApiError::invalid(m, "input");
    let list = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("text") => o
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| bad(format!("input[{i}].text must be a string."))),
                _ => Err(bad(format!("input[{i}] must be a string or a text part (images are not moderated here)."))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad("'input' must be a string or an array.".into())),
    };
    if list.is_empty() || list.len() > MAX_INPUTS {
        return Err(bad(format!("'input' must hold 1 to {MAX_INPUTS} texts, got {}.", list.len())));
    }
    Ok(list)
}

pub async fn moderations(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    OpenAiJson(body): OpenAiJson<ModerationRequest>,
) -> Result<Response, ApiError> {
    let rid = request_id(&headers);
    let ctx = Ctx::new(state, principal, timing, rid.clone())?;
    let texts = inputs(&body.input)?;
    let Some((model, moderator)) = ctx.state.moderator(body.model.as_deref()) else {
        return Err(ApiError::ModelNotFound(body.model.unwrap_or_else(|| "moderation".into())));
    };
    if !ctx.principal.allows_model(&model) {
        return Err(ApiError::ModelNotAllowed(model));
    }
    let policy = ctx.state.policy().clone();
    let estimate = Estimate { prompt_tokens: 0, max_completion_tokens: 0 };
    let admission = policy.admit(&ctx.principal, None, &model, std::slice::from_ref(&model), estimate).await?;
    let verdicts = moderator.moderate(&model, texts).await;
    admission.settle(0, 0, &[]).await;
    let verdicts = verdicts?;
    let body = json!({"id": format!("modr-{rid}"), "model": model, "results": verdicts});
    Ok(Json(body).into_response())
}
