//! Step 2 of the request path: wire JSON → `ValidatedRequest`, every field
//! typed and bounded, with OpenAI's 400 for anything out of range.

use crate::error::ApiError;
use backend_api::{
    ChatTurn, ContentPart, Demands, OutputConstraint, Prompt, Role, SamplingParams, StopParams, ToolCall, ToolChoice,
    ToolDef, Tools, ValidatedRequest,
};
use protocol::{ChatCompletionRequest, CompletionRequest, MessageContent, PromptInput, SamplingFields, ToolSpec};
use serde_json::Value;

/// Most stop strings one request may carry.
pub const MAX_STOP_STRINGS: usize = 16;
/// Most top log-probabilities per token.
pub const MAX_TOP_LOGPROBS: i64 = 20;
/// Most tools one request may offer (OpenAI's limit).
pub const MAX_TOOLS: usize = 128;
/// `max_tokens` of a text completion that names none (OpenAI's completions API).
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// Fields common to both endpoints, validated.
pub struct Common {
    pub sampling: SamplingParams,
    pub stop: StopParams,
    pub stream: bool,
    pub include_usage: bool,
    pub cache_salt: Option<String>,
    pub demands: Demands,
}

fn invalid(message: String, param: &'static str) -> ApiError {
    ApiError::invalid(message, param)
}

fn validate_common(
    f: &SamplingFields,
    max_tokens: Option<i64>,
    max_tokens_param: &'static str,
) -> Result<Common, ApiError> {
    let temperature = f.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid(
            format!("{temperature} is not valid for 'temperature': it must be between 0 and 2."),
            "temperature",
        ));
    }
    let top_p = f.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(invalid(
            format!("{top_p} is not valid for 'top_p': it must be greater than 0 and at most 1."),
            "top_p",
        ));
    }
    let top_k = match f.top_k {
        None | Some(-1) | Some(0) => 0,
        Some(k) if k > 0 => u32::try_from(k).unwrap_or(u32::MAX),
        Some(k) => {
            return Err(invalid(
                format!("{k} is not valid for 'top_k': use a positive number, or 0 / -1 for no limit."),
                "top_k",
            ))
        }
    };
    if let Some(n) = f.n {
        if n != 1 {
            return Err(invalid(format!("{n} is not valid for 'n': only n = 1 is supported."), "n"));
        }
    }
    for (name, v) in [("presence_penalty", f.presence_penalty), ("frequency_penalty", f.frequency_penalty)] {
        if let Some(v) = v {
            if !(-2.0..=2.0).contains(&v) {
                return Err(ApiError::InvalidRequest {
                    message: format!("{v} is not valid for '{name}': it must be between -2 and 2."),
                    param: Some(name.to_string()),
                    code: None,
                });
            }
        }
    }
    let max_tokens = match max_tokens {
        None => None,
        Some(m) if m >= 1 && m <= i64::from(u32::MAX) => Some(m as u32),
        Some(m) => {
            return Err(invalid(
                format!("{m} is not valid for '{max_tokens_param}': it must be at least 1."),
                max_tokens_param,
            ));
        }
    };
    let min_tokens = match f.min_tokens {
        None => 0,
        Some(m) if m >= 0 && max_tokens.is_none_or(|mt| m <= i64::from(mt)) && m <= i64::from(u32::MAX) => m as u32,
        Some(m) => {
            return Err(invalid(
                format!("{m} is not valid for 'min_tokens': it must be between 0 and max_tokens."),
                "min_tokens",
            ))
        }
    };
    let stop = f.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOP_STRINGS {
        return Err(invalid(
            format!("At most {MAX_STOP_STRINGS} stop sequences are allowed, got {}.", stop.len()),
            "stop",
        ));
    }
    if f.stream_options.is_some() && !f.stream {
        return Err(invalid("'stream_options' is only allowed when 'stream' is true.".into(), "stream_options"));
    }
    if f.cache_salt.as_deref().is_some_and(str::is_empty) {
        return Err(invalid("'cache_salt' must not be empty.".into(), "cache_salt"));
    }
    let output = match &f.response_format {
        None => None,
        Some(v) => output_constraint(v)?,
    };
    if let Some(c) = f.max_cost {
        if !(c.is_finite() && c >= 0.0) {
            return Err(invalid(format!("{c} is not valid for 'max_cost': use dollars, 0 or more."), "max_cost"));
        }
    }
    Ok(Common {
        demands: Demands { stream: f.stream, output, max_cost_usd: f.max_cost },
        cache_salt: f.cache_salt.clone(),
        sampling: SamplingParams {
            temperature,
            top_p,
            top_k,
            seed: f.seed.map(|s| s as u64),
            presence_penalty: f.presence_penalty.unwrap_or(0.0),
            frequency_penalty: f.frequency_penalty.unwrap_or(0.0),
        },
        stop: StopParams { max_tokens, stop, ignore_eos: f.ignore_eos, min_tokens },
        stream: f.stream,
        include_usage: f.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// `response_format` as a typed constraint (`text` is none).
pub fn output_constraint(v: &Value) -> Result<Option<OutputConstraint>, ApiError> {
    let bad = |m: &str| invalid(m.to_string(), "response_format");
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputConstraint::JsonObject)),
        Some("json_schema") => {
            let spec = v.get("json_schema").ok_or_else(|| bad("'response_format.json_schema' is required."))?;
            let name = spec
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("'response_format.json_schema.name' is required."))?;
            let schema = spec.get("schema").cloned().unwrap_or_else(|| serde_json::json!({}));
            if !schema.is_object() && !schema.is_boolean() {
                return Err(bad("'response_format.json_schema.schema' must be a JSON Schema object."));
            }
            let strict = spec.get("strict").and_then(Value::as_bool).unwrap_or(false);
            Ok(Some(OutputConstraint::JsonSchema { name: name.to_string(), schema, strict }))
        }
        _ => Err(bad("'response_format.type' must be one of 'text', 'json_object', 'json_schema'.")),
    }
}

fn content_parts(content: Option<&MessageContent>, index: usize) -> Result<Vec<ContentPart>, ApiError> {
    match content {
        None => Ok(Vec::new()),
        Some(MessageContent::Text(t)) => Ok(vec![ContentPart::Text(t.clone())]),
        Some(MessageContent::Parts(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let part = match (p.kind.as_str(), &p.text, &p.image_url) {
                    ("text", Some(t), _) => ContentPart::Text(t.clone()),
                    ("image_url", _, Some(img)) => ContentPart::Image { url: img.url.clone() },
                    ("text", None, _) | ("image_url", _, None) => {
                        return Err(invalid(
                            format!("messages[{index}].content[{j}]: a '{}' part needs its '{}' field.", p.kind, p.kind),
                            "messages",
                        ))
                    }
                    (other, _, _) => {
                        return Err(invalid(
                            format!("messages[{index}].content[{j}]: content parts of type '{other}' are not supported; use 'text' or 'image_url'."),
                            "messages",
                        ))
                    }
                };
                out.push(part);
            }
            Ok(out)
        }
    }
}

/// `tools`, `tool_choice` and `parallel_tool_calls`, validated.
fn tools(
    specs: Option<&[ToolSpec]>,
    choice: Option<&Value>,
    parallel: Option<bool>,
) -> Result<Option<Tools>, ApiError> {
    let specs = specs.unwrap_or_default();
    if specs.len() > MAX_TOOLS {
        return Err(invalid(format!("At most {MAX_TOOLS} tools are allowed, got {}.", specs.len()), "tools"));
    }
    let mut defs: Vec<ToolDef> = Vec::with_capacity(specs.len());
    for (i, t) in specs.iter().enumerate() {
        let Some(f) = t.function.as_ref().filter(|_| t.kind == "function") else {
            return Err(invalid(
                format!("tools[{i}]: only tools of type 'function' with a 'function' object are supported."),
                "tools",
            ));
        };
        if f.name.is_empty()
            || f.name.len() > 64
            || !f.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(
                format!("tools[{i}].function.name must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'."),
                "tools",
            ));
        }
        if defs.iter().any(|d| d.name == f.name) {
            return Err(invalid(format!("tools[{i}]: the function name '{}' is listed twice.", f.name), "tools"));
        }
        let parameters =
            f.parameters.clone().unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
        if !parameters.is_object() {
            return Err(invalid(format!("tools[{i}].function.parameters must be a JSON Schema object."), "tools"));
        }
        defs.push(ToolDef {
            name: f.name.clone(),
            description: f.description.clone(),
            parameters,
            strict: f.strict.unwrap_or(false),
        });
    }
    let choice = match choice {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(invalid(
                    format!("'{other}' is not one of 'none', 'auto', 'required' or a named function."),
                    "tool_choice",
                ))
            }
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) if defs.iter().any(|d| d.name == name) => ToolChoice::Named(name.to_string()),
            Some(name) => {
                return Err(invalid(
                    format!("tool_choice names the function '{name}', which is not in 'tools'."),
                    "tool_choice",
                ))
            }
            None => {
                return Err(invalid(
                    "'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}.".into(),
                    "tool_choice",
                ))
            }
        },
    };
    if defs.is_empty() {
        if matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
            return Err(invalid("'tool_choice' requires 'tools'.".into(), "tool_choice"));
        }
        return Ok(None);
    }
    Ok(Some(Tools { defs, choice, parallel: parallel.unwrap_or(true) }))
}

pub struct ValidChat {
    pub request: ValidatedRequest,
    pub common: Common,
    /// `truncation`: Some(true) = "auto", Some(false) = "disabled", None = the server's default.
    pub truncation: Option<bool>,
}

pub fn validate_chat(req: ChatCompletionRequest, request_id: &str) -> Result<ValidChat, ApiError> {
    if req.messages.is_empty() {
        return Err(invalid("'messages' must contain at least one message.".into(), "messages"));
    }
    let max_tokens = req.max_completion_tokens.or(req.sampling.max_tokens);
    let param = if req.max_completion_tokens.is_some() { "max_completion_tokens" } else { "max_tokens" };
    let common = validate_common(&req.sampling, max_tokens, param)?;
    let mut turns = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            other => {
                return Err(invalid(
                    format!(
                    "messages[{i}].role '{other}' is not one of 'system', 'developer', 'user', 'assistant', 'tool'."
                ),
                    "messages",
                ))
            }
        };
        let content = content_parts(m.content.as_ref(), i)?;
        if role != Role::User {
            if let Some(j) = content.iter().position(|p| !matches!(p, ContentPart::Text(_))) {
                return Err(invalid(
                    format!("messages[{i}].content[{j}]: only user messages may carry images."),
                    "messages",
                ));
            }
        }
        let tool_calls: Vec<ToolCall> = match (&m.tool_calls, role) {
            (None, _) => Vec::new(),
            (Some(calls), Role::Assistant) => calls
                .iter()
                .map(|c| ToolCall {
                    id: c.id.clone(),
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
                .collect(),
            (Some(_), _) => {
                return Err(invalid(format!("messages[{i}]: only assistant messages carry 'tool_calls'."), "messages"))
            }
        };
        if role == Role::Tool && m.tool_call_id.is_none() {
            return Err(invalid(format!("messages[{i}]: a tool message needs 'tool_call_id'."), "messages"));
        }
        turns.push(ChatTurn { role, content, tool_calls, tool_call_id: m.tool_call_id.clone(), name: m.name.clone() });
    }
    let logprobs = match (req.logprobs.unwrap_or(false), req.top_logprobs) {
        (false, Some(_)) => {
            return Err(invalid("'top_logprobs' requires 'logprobs' to be true.".into(), "top_logprobs"))
        }
        (false, None) => None,
        (true, None) => Some(0),
        (true, Some(n)) if i64::from(n) <= MAX_TOP_LOGPROBS => Some(n),
        (true, Some(n)) => {
            return Err(invalid(
                format!("{n} is not valid for 'top_logprobs': at most {MAX_TOP_LOGPROBS}."),
                "top_logprobs",
            ))
        }
    };
    let request = ValidatedRequest {
        request_id: request_id.to_string(),
        model: req.model,
        prompt: Prompt::Chat(turns),
        sampling: common.sampling.clone(),
        stop: common.stop.clone(),
        logprobs,
        cache_salt: common.cache_salt.clone(),
        tools: tools(req.tools.as_deref(), req.tool_choice.as_ref(), req.parallel_tool_calls)?,
        demands: common.demands.clone(),
    };
    let truncation = match req.truncation.as_deref() {
        None => None,
        Some("auto") => Some(true),
        Some("disabled") => Some(false),
        Some(other) => {
            return Err(invalid(format!("'{other}' is not one of 'auto', 'disabled'."), "truncation"));
        }
    };
    Ok(ValidChat { request, common, truncation })
}

pub struct ValidCompletion {
    /// One request per prompt (a prompt array gives several choices).
    pub requests: Vec<ValidatedRequest>,
    pub prompts: Vec<String>,
    pub common: Common,
    pub echo: bool,
}

pub fn validate_completion(req: CompletionRequest, request_id: &str) -> Result<ValidCompletion, ApiError> {
    let mut common = validate_common(&req.sampling, req.sampling.max_tokens, "max_tokens")?;
    if common.stop.max_tokens.is_none() {
        common.stop.max_tokens = Some(COMPLETIONS_DEFAULT_MAX_TOKENS.max(common.stop.min_tokens));
    }
    if req.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(invalid("'suffix' is not supported.".into(), "suffix"));
    }
    let prompts = match req.prompt {
        PromptInput::One(p) => vec![p],
        PromptInput::Many(ps) => ps,
    };
    if prompts.is_empty() {
        return Err(invalid("'prompt' must not be an empty array.".into(), "prompt"));
    }
    if prompts.len() > 64 {
        return Err(invalid(format!("At most 64 prompts per request, got {}.", prompts.len()), "prompt"));
    }
    if prompts.iter().any(String::is_empty) {
        return Err(invalid("'prompt' must not be empty.".into(), "prompt"));
    }
    let logprobs = match req.logprobs {
        None => None,
        Some(n) if (0..=MAX_TOP_LOGPROBS).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(invalid(
                format!("{n} is not valid for 'logprobs': it must be between 0 and {MAX_TOP_LOGPROBS}."),
                "logprobs",
            ))
        }
    };
    if req.echo && common.stream {
        return Err(invalid("'echo' is not supported together with 'stream'.".into(), "echo"));
    }
    let requests = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| ValidatedRequest {
            request_id: format!("{request_id}-{i}"),
            model: req.model.clone(),
            prompt: Prompt::Text(p.clone()),
            sampling: common.sampling.clone(),
            stop: common.stop.clone(),
            logprobs,
            cache_salt: common.cache_salt.clone(),
            tools: None,
            demands: common.demands.clone(),
        })
        .collect();
    Ok(ValidCompletion { requests, prompts, common, echo: req.echo })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::extract::parse_body;

    fn chat(json: &str) -> Result<ValidChat, ApiError> {
        validate_chat(parse_body(json.as_bytes())?, "req")
    }

    fn param_of(r: Result<ValidChat, ApiError>) -> Option<String> {
        match r {
            Err(ApiError::InvalidRequest { param, .. }) => param,
            _ => Some("<no error>".into()),
        }
    }

    #[test]
    fn accepts_a_minimal_chat() -> Result<(), ApiError> {
        let v = chat(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)?;
        assert_eq!(v.request.prompt, Prompt::Chat(vec![ChatTurn::new(Role::User, "hi")]));
        assert_eq!(v.request.sampling.temperature, 1.0);
        Ok(())
    }

    #[test]
    fn content_parts_are_joined() -> Result<(), ApiError> {
        let v = chat(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
        )?;
        let Prompt::Chat(turns) = &v.request.prompt else { return Err(ApiError::invalid("not a chat", None)) };
        assert_eq!(turns[0].text(), "ab");
        Ok(())
    }

    #[test]
    fn rejects_out_of_range_values_naming_the_param() {
        let base = r#""model":"m","messages":[{"role":"user","content":"hi"}]"#;
        for (extra, param) in [
            (r#""temperature":2.5"#, "temperature"),
            (r#""temperature":-0.1"#, "temperature"),
            (r#""top_p":0"#, "top_p"),
            (r#""top_p":1.5"#, "top_p"),
            (r#""n":2"#, "n"),
            (r#""max_tokens":-5"#, "max_tokens"),
            (r#""max_tokens":0"#, "max_tokens"),
            (r#""max_completion_tokens":-1"#, "max_completion_tokens"),
            (r#""top_logprobs":3"#, "top_logprobs"),
            (r#""presence_penalty":3"#, "presence_penalty"),
            (r#""stream_options":{"include_usage":true}"#, "stream_options"),
        ] {
            assert_eq!(param_of(chat(&format!("{{{base},{extra}}}"))), Some(param.to_string()), "{extra}");
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        for body in [
            r#"{"model":"m"}"#,
            r#"{"model":"m","messages":"hi"}"#,
            r#"{"model":"m","messages":[]}"#,
            r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"audio","text":"x"}]}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"a b"}}]}"#,
            r#"{"model":"m","messages":[{"role":"tool","content":"x"}]}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}"#,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#,
            r#"[1,2]"#,
            r#"{not json"#,
        ] {
            assert!(matches!(chat(body), Err(ApiError::InvalidRequest { .. })), "{body}");
        }
    }

    #[test]
    fn tools_and_json_are_typed() -> Result<(), ApiError> {
        let v = chat(
            r#"{"model":"m","messages":[{"role":"user","content":"x"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"c1","content":"42"}],
              "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
              "tool_choice":{"type":"function","function":{"name":"f"}},
              "response_format":{"type":"json_schema","json_schema":{"name":"s","schema":{"type":"object"},"strict":true}}}"#,
        )?;
        let tools = v.request.tools.clone().ok_or_else(|| ApiError::invalid("no tools", None))?;
        assert_eq!(tools.choice, ToolChoice::Named("f".into()));
        assert!(matches!(v.request.demands.output, Some(OutputConstraint::JsonSchema { strict: true, .. })));
        let Prompt::Chat(turns) = &v.request.prompt else { return Err(ApiError::invalid("not a chat", None)) };
        assert_eq!((turns[1].tool_calls[0].name.as_str(), turns[2].tool_call_id.as_deref()), ("f", Some("c1")));
        let img = chat(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:x"}}]}]}"#,
        )?;
        let Prompt::Chat(turns) = &img.request.prompt else { return Err(ApiError::invalid("not a chat", None)) };
        assert_eq!(turns[0].first_media(), Some(0));
        Ok(())
    }

    #[test]
    fn completion_prompt_array_gives_one_request_each() -> Result<(), ApiError> {
        let v = validate_completion(parse_body(br#"{"model":"m","prompt":["a","b"],"max_tokens":3}"#)?, "r")?;
        assert_eq!(v.requests.len(), 2);
        assert_eq!(v.requests[1].prompt, Prompt::Text("b".into()));
        assert_eq!(v.requests[0].stop.max_tokens, Some(3));
        let v = validate_completion(parse_body(br#"{"model":"m","prompt":"a"}"#)?, "r")?;
        assert_eq!(v.requests[0].stop.max_tokens, Some(COMPLETIONS_DEFAULT_MAX_TOKENS), "OpenAI's default");
        Ok(())
    }
}
