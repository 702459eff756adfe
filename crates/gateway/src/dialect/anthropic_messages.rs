//! Anthropic's Messages API, inbound: `POST /v1/messages` (whole, or
//! streamed with Anthropic's named events) and `/v1/messages/count_tokens`.
//! Requests become the same internal requests as OpenAI's chat, so every
//! model (embedded, remote OpenAI-compatible, remote Anthropic) answers
//! here with the same keys, limits, budgets, routes and metrics. Errors
//! come in Anthropic's shape (`{"type": "error", "error": {"type", "message"}}`).

use super::anthropic_render::{whole_message, MessageEvents};
use super::collect::collect;
use super::request_id;
use super::sse::sse_response;
use crate::cache::Directives;
use crate::error::ApiError;
use crate::pipeline::{self, Call, Ctx};
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use crate::validate::MAX_STOP_STRINGS;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use backend_api::{
    ChatTurn, ContentPart, Demands, Prompt, Role, SamplingParams, StopParams, ToolCall, ToolChoice, ToolDef, Tools,
    ValidatedRequest,
};
use protocol::anthropic::{
    Block, CountTokensRequest, CountTokensResponse, ErrorResponse, Message, MessageContent, MessagesRequest,
    SystemPrompt, Tool,
};
use serde_json::Value;
use std::sync::Arc;

/// The oldest `anthropic-version` this dialect speaks. Versions are dates;
/// later ones (the SDKs send their own release's) only add to the API.
pub const OLDEST_VERSION: &str = "2023-01-01";

/// An error in Anthropic's shape, with the status and headers of the error.
pub struct AnthropicError(pub ApiError);

impl From<ApiError> for AnthropicError {
    fn from(e: ApiError) -> Self {
        AnthropicError(e)
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        let e = self.0;
        let kind = match e.status() {
            StatusCode::BAD_REQUEST => "invalid_request_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::FORBIDDEN => "permission_error",
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
            _ => "api_error",
        };
        let body = serde_json::to_value(ErrorResponse::new(kind, e.to_string())).unwrap_or_default();
        e.respond(body)
    }
}

/// A JSON body whose failures are Anthropic-shaped.
pub struct AnthropicJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for AnthropicJson<T> {
    type Rejection = AnthropicError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AnthropicJson(super::extract::read_json(req, state).await?))
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message, None)
}

fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_date = |v: &str| {
        let b = v.as_bytes();
        b.len() == 10
            && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
    };
    match headers.get("anthropic-version").and_then(|v| v.to_str().ok()) {
        None => Err(invalid("anthropic-version: header is required".into())),
        Some(v) if is_date(v) && v >= OLDEST_VERSION => Ok(()),
        Some(v) => Err(invalid(format!(
            "anthropic-version: '{v}' is not a supported version (a date, {OLDEST_VERSION} or later)."
        ))),
    }
}

pub async fn messages(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    AnthropicJson(body): AnthropicJson<MessagesRequest>,
) -> Result<Response, AnthropicError> {
    check_version(&headers)?;
    let rid = request_id(&headers);
    let mut ctx = Ctx::new(state, principal, timing, rid.clone())?;
    ctx.end_user = body.metadata.as_ref().and_then(|m| m.user_id.clone()).filter(|u| !u.is_empty());
    let stream = body.stream;
    let directives = Directives::from_request(&headers, body.cache.as_ref())?;
    let request = validate_messages(body, &rid)?;
    let stops = request.stop.stop.clone();
    let mut call = Call::new(vec![request]);
    call.cache = directives;
    let mut answer = pipeline::run(ctx, call).await?;
    let id = format!("msg_{rid}");
    if stream {
        let renderer = MessageEvents::new(id, answer.model.clone(), stops);
        // Upstream OpenAI chunks are never relayed to this dialect.
        let mut resp = sse_response(std::mem::take(&mut answer.streams), renderer, false);
        answer.decorate(&mut resp);
        return Ok(resp);
    }
    let stream = std::mem::take(&mut answer.streams).into_iter().next();
    let done = collect(stream.ok_or_else(|| ApiError::Internal("no stream".into()))?).await?;
    let mut resp = Json(whole_message(id, answer.answering_model(), done, &stops)).into_response();
    answer.decorate(&mut resp);
    Ok(resp)
}

pub async fn count_tokens(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
    timing: Option<Extension<Arc<RequestTiming>>>,
    headers: HeaderMap,
    AnthropicJson(body): AnthropicJson<CountTokensRequest>,
) -> Result<Response, AnthropicError> {
    check_version(&headers)?;
    let rid = request_id(&headers);
    let ctx = Ctx::new(state, principal, timing, rid.clone())?;
    let turns = turns(body.system.as_ref(), &body.messages)?;
    let tools = tools(body.tools.as_deref(), None)?;
    let mut requests =
        vec![request(&rid, body.model, turns, tools, SamplingParams::default(), StopParams::default(), false)];
    let (model, backend) = ctx.state.lookup(&mut requests)?;
    if !ctx.principal.allows_model(&model) {
        return Err(ApiError::ModelNotAllowed(model).into());
    }
    let input_tokens = match requests.first() {
        Some(r) => backend.count_prompt_tokens(r).map_err(ApiError::from)?,
        None => 0,
    };
    Ok(Json(CountTokensResponse { input_tokens }).into_response())
}

fn request(
    rid: &str,
    model: String,
    turns: Vec<ChatTurn>,
    tools: Option<Tools>,
    sampling: SamplingParams,
    stop: StopParams,
    stream: bool,
) -> ValidatedRequest {
    ValidatedRequest {
        request_id: rid.to_string(),
        model,
        prompt: Prompt::Chat(turns),
        sampling,
        stop,
        logprobs: None,
        cache_salt: None,
        tools,
        demands: Demands { stream, output: None, max_cost_usd: None },
    }
}

/// A Messages API body → the internal request.
pub fn validate_messages(req: MessagesRequest, rid: &str) -> Result<ValidatedRequest, ApiError> {
    let max_tokens = match req.max_tokens {
        None => return Err(invalid("max_tokens: Field required".into())),
        Some(m) if m >= 1 && m <= i64::from(u32::MAX) => m as u32,
        Some(m) => return Err(invalid(format!("max_tokens: {m} is not valid: it must be at least 1."))),
    };
    let temperature = req.temperature.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&temperature) {
        return Err(invalid(format!("temperature: {temperature} is not valid: it must be between 0 and 1.")));
    }
    let top_p = req.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid(format!("top_p: {top_p} is not valid: it must be greater than 0 and at most 1.")));
    }
    let top_k = match req.top_k {
        None => 0,
        Some(k) if k >= 0 => u32::try_from(k).unwrap_or(u32::MAX),
        Some(k) => return Err(invalid(format!("top_k: {k} is not valid: it must be 0 or more."))),
    };
    let stop = req.stop_sequences.unwrap_or_default();
    if stop.len() > MAX_STOP_STRINGS {
        return Err(invalid(format!("stop_sequences: at most {MAX_STOP_STRINGS} are allowed, got {}.", stop.len())));
    }
    if stop.iter().any(String::is_empty) {
        return Err(invalid("stop_sequences: each must be non-empty.".into()));
    }
    let turns = turns(req.system.as_ref(), &req.messages)?;
    let tools = tools(req.tools.as_deref(), req.tool_choice.as_ref())?;
    let sampling = SamplingParams { temperature, top_p, top_k, ..Default::default() };
    let stop = StopParams { max_tokens: Some(max_tokens), stop, ignore_eos: false, min_tokens: 0 };
    Ok(request(rid, req.model, turns, tools, sampling, stop, req.stream))
}

fn system_text(system: &SystemPrompt) -> Result<String, ApiError> {
    match system {
        SystemPrompt::Text(t) => Ok(t.clone()),
        SystemPrompt::Blocks(blocks) => {
            let mut out = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match (b.kind.as_str(), &b.text) {
                    ("text", Some(t)) => out.push(t.as_str()),
                    _ => {
                        return Err(invalid(format!("system.{i}: only text blocks are allowed in the system prompt.")))
                    }
                }
            }
            Ok(out.join("\n\n"))
        }
    }
}

/// The conversation: `system` first, then each message; a user message's
/// `tool_result` blocks become tool turns, an assistant's `tool_use`
/// blocks its tool calls.
fn turns(system: Option<&SystemPrompt>, messages: &[Message]) -> Result<Vec<ChatTurn>, ApiError> {
    if messages.is_empty() {
        return Err(invalid("messages: at least one message is required.".into()));
    }
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(s) = system {
        out.push(ChatTurn::new(Role::System, system_text(s)?));
    }
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(invalid(format!("messages.{i}.role: '{other}' is not one of 'user', 'assistant'."))),
        };
        let blocks = match &m.content {
            MessageContent::Text(t) => {
                out.push(ChatTurn::new(role, t.clone()));
                continue;
            }
            MessageContent::Blocks(b) => b,
        };
        let mut turn = ChatTurn { content: Vec::new(), ..ChatTurn::new(role, "") };
        for (j, b) in blocks.iter().enumerate() {
            block(b, role, &mut turn, &mut out, &format!("messages.{i}.content.{j}"))?;
        }
        if !turn.content.is_empty() || !turn.tool_calls.is_empty() {
            out.push(turn);
        }
    }
    Ok(out)
}

fn block(b: &Block, role: Role, turn: &mut ChatTurn, out: &mut Vec<ChatTurn>, at: &str) -> Result<(), ApiError> {
    let need = |what: &str| invalid(format!("{at}.{what}: Field required"));
    match (b.kind.as_str(), role) {
        ("text", _) => turn.content.push(ContentPart::Text(b.text.clone().ok_or_else(|| need("text"))?)),
        ("image", Role::User) => {
            let source = b.source.as_ref().ok_or_else(|| need("source"))?;
            let url = match source.get("type").and_then(Value::as_str) {
                Some("base64") => format!(
                    "data:{};base64,{}",
                    source.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
                    source.get("data").and_then(Value::as_str).ok_or_else(|| need("source.data"))?
                ),
                Some("url") => source.get("url").and_then(Value::as_str).ok_or_else(|| need("source.url"))?.to_string(),
                _ => return Err(invalid(format!("{at}.source.type: must be 'base64' or 'url'."))),
            };
            turn.content.push(ContentPart::Image { url });
        }
        ("tool_use", Role::Assistant) => turn.tool_calls.push(ToolCall {
            id: b.id.clone().ok_or_else(|| need("id"))?,
            name: b.name.clone().ok_or_else(|| need("name"))?,
            arguments: b.input.as_ref().map_or_else(|| "{}".to_string(), Value::to_string),
        }),
        ("tool_result", Role::User) => {
            let id = b.tool_use_id.clone().ok_or_else(|| need("tool_use_id"))?;
            let text = match &b.content {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => {
                    parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
                }
                Some(_) => return Err(invalid(format!("{at}.content: must be a string or text blocks."))),
            };
            let text = if b.is_error.unwrap_or(false) { format!("Error: {text}") } else { text };
            // Results answer the assistant's calls: they go before this message's own text.
            if !turn.content.is_empty() {
                out.push(std::mem::replace(turn, ChatTurn { content: Vec::new(), ..ChatTurn::new(Role::User, "") }));
            }
            out.push(ChatTurn { tool_call_id: Some(id), ..ChatTurn::new(Role::Tool, text) });
        }
        (kind, _) => {
            return Err(invalid(format!("{at}.type: '{kind}' blocks are not accepted in a {} message.", role.as_str())))
        }
    }
    Ok(())
}

fn tools(tools: Option<&[Tool]>, choice: Option<&protocol::anthropic::ToolChoice>) -> Result<Option<Tools>, ApiError> {
    let tools = tools.unwrap_or_default();
    let mut defs: Vec<ToolDef> = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        if t.name.is_empty() || defs.iter().any(|d| d.name == t.name) {
            return Err(invalid(format!("tools.{i}.name: must be non-empty and unique.")));
        }
        let parameters = t.input_schema.clone().unwrap_or_else(|| serde_json::json!({"type": "object"}));
        defs.push(ToolDef { name: t.name.clone(), description: t.description.clone(), parameters, strict: false });
    }
    let (choice, parallel) = match choice {
        None => (ToolChoice::Auto, true),
        Some(c) => {
            let kind = match (c.kind.as_str(), &c.name) {
                ("auto", _) => ToolChoice::Auto,
                ("any", _) => ToolChoice::Required,
                ("none", _) => ToolChoice::None,
                ("tool", Some(n)) if defs.iter().any(|d| &d.name == n) => ToolChoice::Named(n.clone()),
                ("tool", _) => return Err(invalid("tool_choice.name: must name one of the tools.".into())),
                (other, _) => {
                    return Err(invalid(format!(
                        "tool_choice.type: '{other}' is not one of 'auto', 'any', 'tool', 'none'."
                    )))
                }
            };
            (kind, !c.disable_parallel_tool_use)
        }
    };
    if defs.is_empty() {
        if matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
            return Err(invalid("tool_choice: requires tools.".into()));
        }
        return Ok(None);
    }
    Ok(Some(Tools { defs, choice, parallel }))
}
