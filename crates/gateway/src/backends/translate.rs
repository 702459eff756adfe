//! The internal request as an upstream's JSON body: OpenAI's chat or
//! completions, or Anthropic's Messages API (tools, tool calls, tool
//! results and images translated both ways' conventions).

use backend_api::{ChatTurn, ContentPart, OutputConstraint, Prompt, Role, ToolChoice, Tools, ValidatedRequest};
use serde_json::{json, Value};

/// Anthropic requires `max_tokens`; this is sent when the request has none.
const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 4096;

fn openai_content(t: &ChatTurn) -> Value {
    if t.first_media().is_none() {
        return if t.content.is_empty() && !t.tool_calls.is_empty() { Value::Null } else { json!(t.text()) };
    }
    t.content
        .iter()
        .map(|p| match p {
            ContentPart::Text(text) => json!({"type": "text", "text": text}),
            ContentPart::Image { url } => json!({"type": "image_url", "image_url": {"url": url}}),
        })
        .collect()
}

fn openai_message(t: &ChatTurn) -> Value {
    let mut m = json!({"role": t.role.as_str(), "content": openai_content(t)});
    if !t.tool_calls.is_empty() {
        m["tool_calls"] = t
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    if let Some(id) = &t.tool_call_id {
        m["tool_call_id"] = json!(id);
    }
    if let Some(name) = &t.name {
        m["name"] = json!(name);
    }
    m
}

fn openai_tools(body: &mut Value, tools: &Tools) {
    body["tools"] = tools
        .defs
        .iter()
        .map(|d| {
            let mut f = json!({"name": d.name, "parameters": d.parameters});
            if let Some(desc) = &d.description {
                f["description"] = json!(desc);
            }
            if d.strict {
                f["strict"] = json!(true);
            }
            json!({"type": "function", "function": f})
        })
        .collect();
    body["tool_choice"] = match &tools.choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
    };
    if !tools.parallel {
        body["parallel_tool_calls"] = json!(false);
    }
}

/// The upstream path and JSON body for a request.
/// A streaming client's answer is streamed from the upstream; another's is
/// asked for whole.
pub fn request_body(r: &ValidatedRequest, upstream: &str) -> (&'static str, Value) {
    let s = &r.sampling;
    let mut body = json!({
        "model": upstream,
        "stream": r.demands.stream,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
    });
    let path = match &r.prompt {
        Prompt::Chat(turns) => {
            body["messages"] = turns.iter().map(openai_message).collect();
            "/chat/completions"
        }
        Prompt::Text(text) => {
            body["prompt"] = json!(text);
            "/completions"
        }
    };
    if r.demands.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(m) = r.stop.max_tokens {
        body["max_tokens"] = json!(m);
    }
    if !r.stop.stop.is_empty() {
        body["stop"] = json!(r.stop.stop);
    }
    if let Some(seed) = s.seed {
        body["seed"] = json!(seed);
    }
    // Extensions (vLLM, llama.cpp) only when asked for: OpenAI rejects unknown fields.
    if s.top_k > 0 {
        body["top_k"] = json!(s.top_k);
    }
    if r.stop.ignore_eos {
        body["ignore_eos"] = json!(true);
    }
    if r.stop.min_tokens > 0 {
        body["min_tokens"] = json!(r.stop.min_tokens);
    }
    match &r.demands.output {
        None => {}
        Some(OutputConstraint::JsonObject) => body["response_format"] = json!({"type": "json_object"}),
        Some(OutputConstraint::JsonSchema { name, schema, strict }) => {
            body["response_format"] =
                json!({"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}})
        }
    }
    if let Some(t) = &r.tools {
        openai_tools(&mut body, t);
    }
    match (r.logprobs, &r.prompt) {
        (None, _) => {}
        (Some(n), Prompt::Chat(_)) => {
            body["logprobs"] = json!(true);
            if n > 0 {
                body["top_logprobs"] = json!(n);
            }
        }
        (Some(n), Prompt::Text(_)) => body["logprobs"] = json!(n),
    }
    (path, body)
}

/// An image part as a Messages API source: `data:` URLs as base64.
fn anthropic_image(url: &str) -> Value {
    if let Some((meta, data)) = url.strip_prefix("data:").and_then(|u| u.split_once(',')) {
        let media = meta.strip_suffix(";base64").unwrap_or(meta);
        return json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}});
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// One turn as Messages API blocks, with the role it is sent as (tool
/// results are the user's).
fn anthropic_blocks(t: &ChatTurn) -> (&'static str, Vec<Value>) {
    if t.role == Role::Tool {
        let id = t.tool_call_id.clone().unwrap_or_default();
        return ("user", vec![json!({"type": "tool_result", "tool_use_id": id, "content": t.text()})]);
    }
    let mut blocks: Vec<Value> = t
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text(text) if text.is_empty() => None,
            ContentPart::Text(text) => Some(json!({"type": "text", "text": text})),
            ContentPart::Image { url } => Some(anthropic_image(url)),
        })
        .collect();
    for c in &t.tool_calls {
        let input: Value = serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
        blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
    }
    (if t.role == Role::Assistant { "assistant" } else { "user" }, blocks)
}

/// The Messages API body: system turns joined into `system`, consecutive
/// turns of one role merged (the API wants user and assistant in turn),
/// tool results sent as the user's `tool_result` blocks.
pub fn anthropic_body(r: &ValidatedRequest, upstream: &str) -> Value {
    let s = &r.sampling;
    let single;
    let turns: &[ChatTurn] = match &r.prompt {
        Prompt::Chat(turns) => turns,
        Prompt::Text(text) => {
            single = [ChatTurn::new(Role::User, text.clone())];
            &single
        }
    };
    let system: Vec<String> = turns.iter().filter(|t| t.role == Role::System).map(ChatTurn::text).collect();
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for t in turns.iter().filter(|t| t.role != Role::System) {
        let (role, blocks) = anthropic_blocks(t);
        match messages.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => messages.push((role, blocks)),
        }
    }
    let mut body = json!({
        "model": upstream,
        "max_tokens": r.stop.max_tokens.unwrap_or(ANTHROPIC_DEFAULT_MAX_TOKENS),
        "messages": messages.iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
        "stream": true,
        "temperature": s.temperature.min(1.0),
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if s.top_p < 1.0 {
        body["top_p"] = json!(s.top_p);
    }
    if s.top_k > 0 {
        body["top_k"] = json!(s.top_k);
    }
    if !r.stop.stop.is_empty() {
        body["stop_sequences"] = json!(r.stop.stop);
    }
    if let Some(t) = &r.tools {
        body["tools"] = t
            .defs
            .iter()
            .map(|d| {
                let mut tool = json!({"name": d.name, "input_schema": d.parameters});
                if let Some(desc) = &d.description {
                    tool["description"] = json!(desc);
                }
                tool
            })
            .collect();
        let mut choice = match &t.choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Named(n) => json!({"type": "tool", "name": n}),
        };
        if !t.parallel {
            choice["disable_parallel_tool_use"] = json!(true);
        }
        body["tool_choice"] = choice;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::{SamplingParams, StopParams, ToolCall, ToolDef};

    fn request() -> ValidatedRequest {
        let call = ToolCall { id: "c1".into(), name: "f".into(), arguments: "{\"x\":1}".into() };
        let turns = vec![
            ChatTurn::new(Role::System, "be brief"),
            ChatTurn::new(Role::User, "hi"),
            ChatTurn { tool_calls: vec![call], content: Vec::new(), ..ChatTurn::new(Role::Assistant, "") },
            ChatTurn { tool_call_id: Some("c1".into()), ..ChatTurn::new(Role::Tool, "42") },
        ];
        ValidatedRequest {
            request_id: "r".into(),
            model: "m".into(),
            prompt: Prompt::Chat(turns),
            sampling: SamplingParams::default(),
            stop: StopParams::default(),
            logprobs: None,
            cache_salt: None,
            tools: Some(Tools {
                defs: vec![ToolDef {
                    name: "f".into(),
                    description: None,
                    parameters: json!({"type": "object"}),
                    strict: false,
                }],
                choice: ToolChoice::Required,
                parallel: false,
            }),
            demands: Default::default(),
        }
    }

    #[test]
    fn tools_and_their_history_reach_openai_as_openai_spells_them() {
        let (path, body) = request_body(&request(), "up");
        assert_eq!(path, "/chat/completions");
        assert_eq!(body["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(body["parallel_tool_calls"], false);
    }

    #[test]
    fn tools_and_their_history_reach_anthropic_as_blocks() {
        let body = anthropic_body(&request(), "up");
        assert_eq!(body["system"], "be brief");
        assert_eq!(body["messages"][1]["content"][0]["type"], "tool_use");
        assert_eq!(body["messages"][1]["content"][0]["input"]["x"], 1);
        assert_eq!(body["messages"][2]["role"], "user");
        assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(body["tool_choice"], json!({"type": "any", "disable_parallel_tool_use": true}));
        assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    }
}
