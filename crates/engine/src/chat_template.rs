//! Renders chat turns with the model's own Jinja template
//! (`tokenizer.chat_template`), so prompts look exactly as in training.

use crate::constraint::tools::{generic_turns, openai_tool};
use backend_api::{ChatTurn, Role, ToolDef};
use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;
use serde_json::{json, Value};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TemplateError {
    #[error("chat template does not compile: {0}")]
    Compile(String),
    #[error("chat template rejected the conversation: {0}")]
    Render(String),
}

/// ChatML, for GGUF files that carry no template of their own.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma's turns (`<start_of_turn>user` … `<end_of_turn>`; the assistant is
/// `model`, a system turn goes before the first user turn), for Gemma files
/// that carry no template. No `bos_token`: the tokenizer adds BOS itself.
pub const GEMMA: &str = "{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

/// Phi-3's `<|user|>` … `<|end|>` turns.
pub const PHI3: &str = "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}";

/// The template for a file that carries none, by its architecture.
pub fn for_family(architecture: &str) -> &'static str {
    match architecture {
        "gemma2" | "gemma3" => GEMMA,
        "phi3" => PHI3,
        _ => CHATML,
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template renders `tools` and tool calls itself; otherwise the
    /// generic format of `constraint::tools` is written into the turns.
    has_tools: bool,
    /// The tokenizer adds BOS itself, so a template's own leading BOS text
    /// is dropped (as llama.cpp does), never encoded twice.
    strip_bos: bool,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<String>,
}

impl Message {
    fn plain(role: Role, content: String) -> Self {
        Message { role: role.as_str(), content, tool_calls: Vec::new(), tool_call_id: None }
    }
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        // Templates written for Python's Jinja call str methods (.strip(), .startswith()).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template_owned(TEMPLATE_NAME, source.to_string()).map_err(|e| TemplateError::Compile(e.to_string()))?;
        let has_tools = source.contains("tools");
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            has_tools,
            strip_bos: false,
        })
    }

    /// Tells the template that the tokenizer adds BOS to every prompt.
    pub fn with_tokenizer_bos(mut self, adds_bos: bool) -> Self {
        self.strip_bos = adds_bos && !self.bos_token.is_empty();
        self
    }

    /// Renders the conversation, ending with the assistant's turn opener;
    /// `tools` are the functions offered to the model, if any.
    pub fn render(&self, turns: &[ChatTurn], tools: Option<&[ToolDef]>) -> Result<String, TemplateError> {
        let messages: Vec<Message> = if self.has_tools {
            turns.iter().map(own_message).collect()
        } else {
            generic_turns(turns, tools).into_iter().map(|(role, text)| Message::plain(role, text)).collect()
        };
        let tools: Option<Vec<Value>> = tools.filter(|_| self.has_tools).map(|d| d.iter().map(openai_tool).collect());
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(|e| TemplateError::Compile(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            tools => tools,
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map(|out| match out.strip_prefix(&self.bos_token) {
            Some(rest) if self.strip_bos => rest.to_string(),
            _ => out,
        })
        .map_err(|e| TemplateError::Render(e.to_string()))
    }
}

/// A turn for a template that renders tools itself (arguments as objects,
/// as Hugging Face templates expect them).
fn own_message(t: &ChatTurn) -> Message {
    let tool_calls = t
        .tool_calls
        .iter()
        .map(|c| {
            let args = serde_json::from_str::<Value>(&c.arguments).unwrap_or_else(|_| json!(c.arguments));
            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
        })
        .collect();
    Message { role: t.role.as_str(), content: t.text(), tool_calls, tool_call_id: t.tool_call_id.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::Role;

    fn turn(role: &str, content: &str) -> ChatTurn {
        let role = match role {
            "system" => Role::System,
            "assistant" => Role::Assistant,
            "tool" => Role::Tool,
            _ => Role::User,
        };
        ChatTurn::new(role, content)
    }

    #[test]
    fn chatml_renders_turns_and_generation_prompt() -> Result<(), TemplateError> {
        let t = ChatTemplate::new(CHATML, "", "")?;
        let out = t.render(&[turn("system", "Be brief."), turn("user", "Hi")], None)?;
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        Ok(())
    }

    #[test]
    fn raise_exception_becomes_an_error() -> Result<(), TemplateError> {
        let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok";
        let t = ChatTemplate::new(src, "", "")?;
        assert!(
            matches!(t.render(&[turn("assistant", "x")], None), Err(TemplateError::Render(m)) if m.contains("first must be user"))
        );
        Ok(())
    }

    #[test]
    fn python_string_methods_work() -> Result<(), TemplateError> {
        let t = ChatTemplate::new("{{ messages[0]['content'].strip() }}", "", "")?;
        assert_eq!(t.render(&[turn("user", "  padded  ")], None)?, "padded");
        Ok(())
    }

    #[test]
    fn a_template_with_a_tools_section_renders_them_itself() -> Result<(), TemplateError> {
        let src = "{% for t in tools %}[{{ t.function.name }}]{% endfor %}{% for m in messages %}{{ m.role }}:{{ m.content }}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments.x }}){% endfor %};{% endfor %}";
        let t = ChatTemplate::new(src, "", "")?;
        let defs = [ToolDef { name: "f".into(), description: None, parameters: json!({}), strict: false }];
        let mut call = turn("assistant", "");
        call.tool_calls =
            vec![backend_api::ToolCall { id: "c".into(), name: "f".into(), arguments: r#"{"x": 7}"#.into() }];
        let out = t.render(&[turn("user", "hi"), call, turn("tool", "ok")], Some(&defs))?;
        assert_eq!(out, "[f]user:hi;assistant:f(7);tool:ok;");
        // Without a tools section the generic format goes into the turns.
        let plain = ChatTemplate::new(CHATML, "", "")?.render(&[turn("user", "hi")], Some(&defs))?;
        assert!(plain.starts_with("<|im_start|>system\n# Tools") && plain.contains("<tool_call>"), "{plain}");
        Ok(())
    }

    #[test]
    fn gemma_turns_and_a_leading_bos_the_tokenizer_adds_anyway() -> Result<(), TemplateError> {
        let t = ChatTemplate::new(GEMMA, "<bos>", "<eos>")?;
        let out = t.render(&[turn("system", "Be brief."), turn("user", "Hi"), turn("assistant", "Hello")], None)?;
        assert_eq!(
            out,
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n"
        );
        let with_bos = ChatTemplate::new("{{ bos_token }}x", "<bos>", "")?;
        assert_eq!(with_bos.render(&[turn("user", "a")], None)?, "<bos>x");
        assert_eq!(with_bos.with_tokenizer_bos(true).render(&[turn("user", "a")], None)?, "x");
        Ok(())
    }

    #[test]
    fn broken_template_is_an_error() {
        assert!(matches!(ChatTemplate::new("{% for %}", "", ""), Err(TemplateError::Compile(_))));
    }
}
