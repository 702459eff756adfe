//! Renders chat turns with the model's own Jinja template
//! (`tokenizer.chat_template`), so prompts look exactly as in training.

use backend_api::ChatTurn;
use minijinja::{context, Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;
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

pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: String,
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
        Ok(ChatTemplate { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// Renders the conversation, ending with the assistant's turn opener.
    pub fn render(&self, turns: &[ChatTurn]) -> Result<String, TemplateError> {
        let messages: Vec<Message> =
            turns.iter().map(|t| Message { role: t.role.as_str(), content: t.text() }).collect();
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(|e| TemplateError::Compile(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token,
            eos_token => self.eos_token,
        })
        .map_err(|e| TemplateError::Render(e.to_string()))
    }
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
        let out = t.render(&[turn("system", "Be brief."), turn("user", "Hi")])?;
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
            matches!(t.render(&[turn("assistant", "x")]), Err(TemplateError::Render(m)) if m.contains("first must be user"))
        );
        Ok(())
    }

    #[test]
    fn python_string_methods_work() -> Result<(), TemplateError> {
        let t = ChatTemplate::new("{{ messages[0]['content'].strip() }}", "", "")?;
        assert_eq!(t.render(&[turn("user", "  padded  ")])?, "padded");
        Ok(())
    }

    #[test]
    fn broken_template_is_an_error() {
        assert!(matches!(ChatTemplate::new("{% for %}", "", ""), Err(TemplateError::Compile(_))));
    }
}
