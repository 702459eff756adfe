//! Tools on the embedded engine. A model whose chat template has no tools
//! section sees them in the generic format below (the Hermes format that
//! Qwen and Hermes models were trained on, documented in the README):
//! the tool list as JSON inside `<tools></tools>` in the system turn, each
//! call the assistant made as
//!
//! ```text
//! <tool_call>
//! {"name": "get_weather", "arguments": {"city": "Paris"}}
//! </tool_call>
//! ```
//!
//! and each tool result as a user turn inside `<tool_response>` tags. The
//! answer is generated under a grammar of exactly that layout (`grammar`),
//! so [`CallParser`] can cut a call into OpenAI's deltas as it streams.

use backend_api::{ChatTurn, Role, ToolCallDelta, ToolDef};
use rand::Rng;
use serde_json::{json, Value};

pub const TOOL_CALL_TAG: &str = "<tool_call>";
/// A call, up to its function's name.
pub const CALL_START: &str = "<tool_call>\n{\"name\": \"";
/// Between the name and the arguments object.
pub const NAME_END: &str = "\", \"arguments\": ";
/// After the arguments object.
pub const CALL_END: &str = "}\n</tool_call>";
/// Between parallel calls.
pub const CALL_SEPARATOR: &str = "\n";

/// The system text that presents `defs` in the generic format.
pub fn tools_preamble(defs: &[ToolDef]) -> String {
    let mut s = String::from(
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
         You are provided with function signatures within <tools></tools> XML tags:\n<tools>",
    );
    for d in defs {
        s.push('\n');
        s.push_str(&openai_tool(d).to_string());
    }
    s.push_str(
        "\n</tools>\n\nFor each function call, return a json object with function name and arguments \
         within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>",
    );
    s
}

/// A tool as OpenAI's API writes it (what templates with a tools section expect).
pub fn openai_tool(d: &ToolDef) -> Value {
    let mut f = json!({"name": d.name, "parameters": d.parameters});
    if let Some(desc) = &d.description {
        f["description"] = json!(desc);
    }
    json!({"type": "function", "function": f})
}

/// One call as the generic format writes it.
pub fn render_call(name: &str, arguments: &str) -> String {
    // Arguments the client sent back re-serialised in the grammar's layout
    // when they parse (the model then sees what it would have written).
    let args = match serde_json::from_str::<Value>(arguments) {
        Ok(v) => pretty_inline(&v),
        Err(_) => arguments.to_string(),
    };
    format!("{CALL_START}{name}{NAME_END}{args}{CALL_END}")
}

/// JSON with ", " and ": " separators on one line (Python's json.dumps).
fn pretty_inline(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let items: Vec<String> =
                m.iter().map(|(k, v)| format!("{}: {}", Value::String(k.clone()), pretty_inline(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(pretty_inline).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The conversation in the generic format: tools in the system turn,
/// calls in the assistant's text, results as user turns.
pub fn generic_turns(turns: &[ChatTurn], defs: Option<&[ToolDef]>) -> Vec<(Role, String)> {
    let mut out: Vec<(Role, String)> = Vec::with_capacity(turns.len() + 1);
    let mut rest = turns;
    if let Some(defs) = defs.filter(|d| !d.is_empty()) {
        let preamble = tools_preamble(defs);
        match turns.first() {
            Some(t) if t.role == Role::System => {
                out.push((Role::System, format!("{}\n\n{preamble}", t.text())));
                rest = &turns[1..];
            }
            _ => out.push((Role::System, preamble)),
        }
    }
    for t in rest {
        match t.role {
            Role::Tool => out.push((Role::User, format!("<tool_response>\n{}\n</tool_response>", t.text()))),
            Role::Assistant if !t.tool_calls.is_empty() => {
                let mut text = t.text();
                for c in &t.tool_calls {
                    if !text.is_empty() {
                        text.push_str(CALL_SEPARATOR);
                    }
                    text.push_str(&render_call(&c.name, &c.arguments));
                }
                out.push((Role::Assistant, text));
            }
            role => out.push((role, t.text())),
        }
    }
    out
}

/// A fresh call id in OpenAI's style.
pub fn call_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..24).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect();
    format!("call_{tail}")
}

/// What the parser makes of generated text.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Text(String),
    Call(ToolCallDelta),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// `auto`: text or calls, not known until the tag can be told apart.
    Undecided,
    Text,
    /// Before a call's name is complete.
    Head,
    Arguments,
    /// After a call: a separator and another call, or the end.
    Between,
}

/// Turns an answer streamed in the generic format into text or tool-call
/// deltas: the first delta of a call carries its id and name, later ones
/// pieces of its arguments, never a byte of the surrounding markup.
#[derive(Debug)]
pub struct CallParser {
    state: State,
    buf: String,
    index: u32,
    calls: u32,
}

impl CallParser {
    /// `calls_only`: the grammar allows nothing but calls.
    pub fn new(calls_only: bool) -> Self {
        CallParser {
            state: if calls_only { State::Head } else { State::Undecided },
            buf: String::new(),
            index: 0,
            calls: 0,
        }
    }

    /// Calls begun so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    pub fn push(&mut self, text: &str) -> Vec<Parsed> {
        self.buf.push_str(text);
        let mut out = Vec::new();
        loop {
            match self.state {
                State::Undecided => {
                    if self.buf.starts_with(TOOL_CALL_TAG) {
                        self.state = State::Head;
                    } else if TOOL_CALL_TAG.starts_with(self.buf.as_str()) {
                        return out;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Text => {
                    if !self.buf.is_empty() {
                        out.push(Parsed::Text(std::mem::take(&mut self.buf)));
                    }
                    return out;
                }
                State::Head => {
                    let Some(body) = self.buf.strip_prefix(CALL_START) else { return out };
                    let Some(end) = body.find(NAME_END) else { return out };
                    let name = body[..end].to_string();
                    self.buf = body[end + NAME_END.len()..].to_string();
                    out.push(Parsed::Call(ToolCallDelta {
                        index: self.index,
                        id: Some(call_id()),
                        name: Some(name),
                        arguments: String::new(),
                    }));
                    self.calls += 1;
                    self.state = State::Arguments;
                }
                State::Arguments => {
                    // Arguments are compact JSON: no raw newline inside, so
                    // the first CALL_END ends them.
                    if let Some(end) = self.buf.find(CALL_END) {
                        let args = self.buf[..end].to_string();
                        self.buf = self.buf[end + CALL_END.len()..].to_string();
                        self.arguments(args, &mut out);
                        self.index += 1;
                        self.state = State::Between;
                    } else {
                        // Keep back what may be the start of CALL_END.
                        let keep = (1..CALL_END.len()).rev().find(|&k| self.buf.ends_with(&CALL_END[..k])).unwrap_or(0);
                        let cut = self.buf.len() - keep;
                        let args: String = self.buf.drain(..cut).collect();
                        self.arguments(args, &mut out);
                        return out;
                    }
                }
                State::Between => {
                    if self.buf.len() < CALL_SEPARATOR.len() {
                        return out;
                    }
                    if self.buf.starts_with(CALL_SEPARATOR) {
                        self.buf.drain(..CALL_SEPARATOR.len());
                        self.state = State::Head;
                    } else {
                        // Cannot happen under the grammar; never lose text.
                        self.state = State::Text;
                    }
                }
            }
        }
    }

    /// The end of the answer: text still held (an undecided prefix) comes out.
    pub fn finish(&mut self) -> Vec<Parsed> {
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Undecided | State::Text if !rest.is_empty() => vec![Parsed::Text(rest)],
            State::Arguments if !rest.is_empty() => {
                let mut out = Vec::new();
                self.arguments(rest, &mut out);
                out
            }
            _ => Vec::new(),
        }
    }

    fn arguments(&self, args: String, out: &mut Vec<Parsed>) {
        if !args.is_empty() {
            out.push(Parsed::Call(ToolCallDelta { index: self.index, id: None, name: None, arguments: args }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(p: &mut CallParser, text: &str, step: usize) -> Vec<Parsed> {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for piece in chars.chunks(step) {
            out.extend(p.push(&piece.iter().collect::<String>()));
        }
        out.extend(p.finish());
        out
    }

    fn calls(out: &[Parsed]) -> Vec<(String, String)> {
        let mut calls: Vec<(String, String)> = Vec::new();
        for p in out {
            if let Parsed::Call(d) = p {
                if let Some(name) = &d.name {
                    assert!(d.id.as_ref().is_some_and(|id| id.starts_with("call_")));
                    calls.push((name.clone(), String::new()));
                }
                if let Some(last) = calls.get_mut(d.index as usize) {
                    last.1.push_str(&d.arguments);
                }
            }
        }
        calls
    }

    #[test]
    fn calls_come_out_whole_at_any_chunking() {
        let text = format!("{}\n{}", render_call("get_weather", r#"{"city":"Paris"}"#), render_call("f", "{}"));
        for step in 1..12 {
            let out = feed(&mut CallParser::new(true), &text, step);
            assert_eq!(
                calls(&out),
                vec![("get_weather".into(), r#"{"city": "Paris"}"#.into()), ("f".into(), "{}".into())],
                "step {step}"
            );
            assert!(out.iter().all(|p| matches!(p, Parsed::Call(_))));
        }
    }

    #[test]
    fn auto_tells_text_from_calls() {
        for step in 1..6 {
            let out = feed(&mut CallParser::new(false), "<tool and more", step);
            let text: String = out.iter().map(|p| if let Parsed::Text(t) = p { t.as_str() } else { "" }).collect();
            assert_eq!(text, "<tool and more");
            let mut p = CallParser::new(false);
            let out = feed(&mut p, &render_call("f", r#"{"a": "}\n"}"#), step);
            assert_eq!(calls(&out), vec![("f".into(), r#"{"a": "}\n"}"#.into())]);
            assert_eq!(p.calls(), 1);
        }
        let out = feed(&mut CallParser::new(false), "<tool", 2);
        assert_eq!(out, vec![Parsed::Text("<tool".into())]);
    }

    #[test]
    fn history_is_rendered_in_the_generic_format() {
        use backend_api::ToolCall;
        let defs = vec![ToolDef {
            name: "f".into(),
            description: Some("does f".into()),
            parameters: json!({"type": "object"}),
            strict: false,
        }];
        let mut call = ChatTurn::new(Role::Assistant, "");
        call.tool_calls = vec![ToolCall { id: "call_1".into(), name: "f".into(), arguments: r#"{"x":1}"#.into() }];
        let turns = vec![ChatTurn::new(Role::User, "hi"), call, ChatTurn::new(Role::Tool, "42")];
        let out = generic_turns(&turns, Some(&defs));
        assert_eq!(out[0].0, Role::System);
        assert!(out[0].1.contains(r#""description":"does f""#), "{}", out[0].1);
        assert_eq!(
            out[2],
            (Role::Assistant, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>".into())
        );
        assert_eq!(out[3], (Role::User, "<tool_response>\n42\n</tool_response>".into()));
    }
}
