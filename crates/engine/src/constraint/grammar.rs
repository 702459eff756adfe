//! The grammar a request's answer must follow, in llguidance's Lark syntax:
//! a JSON Schema for `response_format`, the tool-call format of `tools`
//! (see `tools`), or a choice between an answer and calls for `auto`.

use super::tools::{CALL_END, CALL_SEPARATOR, CALL_START, NAME_END, TOOL_CALL_TAG};
use backend_api::{OutputConstraint, ToolChoice, ToolDef, Tools};
use serde_json::{json, Value};

/// A request's grammar and what its answer may hold.
#[derive(Debug, Clone, PartialEq)]
pub struct GrammarSpec {
    pub lark: String,
    /// The answer may be tool calls (to be parsed out of the text).
    pub calls: bool,
    /// The answer must be tool calls (no text alternative).
    pub calls_only: bool,
    /// The request field a compile error is about.
    pub param: &'static str,
}

/// The grammar for a request, if its answer is constrained at all.
pub fn for_request(output: Option<&OutputConstraint>, tools: Option<&Tools>) -> Option<GrammarSpec> {
    let answer = output.map(|o| format!("%json {}", schema_of(o)));
    let tools = tools.filter(|t| t.choice != ToolChoice::None && !t.defs.is_empty());
    let Some(tools) = tools else {
        return answer.map(|a| GrammarSpec {
            lark: format!("start: {a}\n"),
            calls: false,
            calls_only: false,
            param: "response_format",
        });
    };
    let defs: Vec<&ToolDef> = match &tools.choice {
        ToolChoice::Named(n) => tools.defs.iter().filter(|d| &d.name == n).collect(),
        _ => tools.defs.iter().collect(),
    };
    let mut lark = String::new();
    let calls_only = matches!(tools.choice, ToolChoice::Required | ToolChoice::Named(_));
    let more = if tools.parallel && !matches!(tools.choice, ToolChoice::Named(_)) {
        format!(" ({} call)*", literal(CALL_SEPARATOR))
    } else {
        String::new()
    };
    if calls_only {
        lark.push_str("start: calls\n");
    } else {
        // Text, or (from its first byte) calls: text may not open with the tag.
        let text = answer.unwrap_or_else(|| "TEXT".to_string());
        lark.push_str(&format!("start: {text} | calls\n"));
        lark.push_str(&format!("TEXT: /(?s:.+)/ & ~/(?s:{}.*)/\n", regex_escape(TOOL_CALL_TAG)));
    }
    lark.push_str(&format!("calls: call{more}\n"));
    let alternatives: Vec<String> = (0..defs.len()).map(|i| format!("call_{i}")).collect();
    lark.push_str(&format!("call: {}\n", alternatives.join(" | ")));
    for (i, d) in defs.iter().enumerate() {
        let head = literal(&format!("{CALL_START}{}{NAME_END}", d.name));
        lark.push_str(&format!("call_{i}: {head} args_{i} {}\n", literal(CALL_END)));
        lark.push_str(&format!("args_{i}: %json {}\n", arguments_schema(&d.parameters)));
    }
    Some(GrammarSpec { lark, calls: true, calls_only, param: "tools" })
}

/// The schema an answer must meet, with the layout the grammar fixes: no
/// free whitespace (a small model otherwise pads forever), Python-style
/// separators (what models saw most in training).
fn schema_of(o: &OutputConstraint) -> Value {
    let schema = match o {
        OutputConstraint::JsonObject => json!({"type": "object"}),
        OutputConstraint::JsonSchema { schema, .. } => schema.clone(),
    };
    with_layout(schema)
}

/// A function's parameters: an object (an absent or empty schema takes any object).
fn arguments_schema(parameters: &Value) -> Value {
    match parameters {
        Value::Object(m) if !m.is_empty() => with_layout(parameters.clone()),
        _ => with_layout(json!({"type": "object"})),
    }
}

fn with_layout(mut schema: Value) -> Value {
    if let Value::Object(m) = &mut schema {
        m.insert(
            "x-guidance".into(),
            json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}

/// A Lark string literal (JSON string syntax).
fn literal(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// Escapes regex meta characters only (`\<` would be a word boundary).
fn regex_escape(s: &str) -> String {
    s.chars().map(|c| if "\\.+*?()|[]{}^$#&-~/".contains(c) { format!("\\{c}") } else { c.to_string() }).collect()
}
