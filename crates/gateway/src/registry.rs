//! The model registry: what each model can do, so routes pick only models
//! that can serve a request, and a model asked for directly refuses what it
//! cannot do with a clear 400 instead of an upstream's surprise.

use backend_api::{Prompt, ToolChoice, ValidatedRequest};

/// What a model can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub chat: bool,
    pub completions: bool,
    pub streaming: bool,
    /// `response_format` JSON (object or schema).
    pub json_mode: bool,
    /// Token log-probabilities.
    pub logprobs: bool,
    /// Function calling (`tools` with a `tool_choice` other than `none`).
    pub tools: bool,
    /// Image parts in user messages.
    pub vision: bool,
    /// `/v1/embeddings`.
    pub embeddings: bool,
    /// `/v1/moderations` (and `moderation` guardrails).
    pub moderation: bool,
}

pub const CAPABILITY_NAMES: [&str; 9] =
    ["chat", "completions", "streaming", "json_mode", "logprobs", "tools", "vision", "embeddings", "moderation"];

impl Capabilities {
    /// The embedded engine: JSON mode and tools by constrained decoding, text only.
    pub const LOCAL: Capabilities = Capabilities {
        chat: true,
        completions: true,
        streaming: true,
        json_mode: true,
        logprobs: true,
        tools: true,
        vision: false,
        embeddings: false,
        moderation: false,
    };
    /// An OpenAI-compatible server, unless its config says otherwise
    /// (images only when listed: most such servers serve text models).
    pub const OPENAI: Capabilities = Capabilities {
        chat: true,
        completions: true,
        streaming: true,
        json_mode: true,
        logprobs: true,
        tools: true,
        vision: false,
        embeddings: false,
        moderation: false,
    };
    /// The Messages API has no JSON mode and no log-probabilities.
    pub const ANTHROPIC: Capabilities = Capabilities {
        chat: true,
        completions: true,
        streaming: true,
        json_mode: false,
        logprobs: false,
        tools: true,
        vision: false,
        embeddings: false,
        moderation: false,
    };

    /// The names of what it can do, as the config lists them.
    pub fn names(self) -> Vec<&'static str> {
        let on = [
            self.chat,
            self.completions,
            self.streaming,
            self.json_mode,
            self.logprobs,
            self.tools,
            self.vision,
            self.embeddings,
            self.moderation,
        ];
        CAPABILITY_NAMES.into_iter().zip(on).filter_map(|(n, on)| on.then_some(n)).collect()
    }
}

/// One model as routing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCard {
    pub name: String,
    pub context_length: u32,
    /// Most tokens one answer may ask for (`None`: up to the context).
    pub max_output_tokens: Option<u32>,
    pub capabilities: Capabilities,
    /// Share of the traffic under the `weighted` strategy.
    pub weight: u32,
    /// Other names clients may send for it.
    pub aliases: Vec<String>,
}

impl ModelCard {
    pub fn local(name: &str, context_length: u32) -> Self {
        ModelCard {
            name: name.to_string(),
            context_length,
            max_output_tokens: None,
            capabilities: Capabilities::LOCAL,
            weight: 1,
            aliases: Vec::new(),
        }
    }

    /// Why this model cannot serve `r`, if it cannot: a capability it
    /// lacks or an answer longer than it allows. With `prompt_tokens`, also
    /// a request that does not fit its context.
    pub fn unfit(&self, r: &ValidatedRequest, prompt_tokens: Option<u32>) -> Option<String> {
        let c = self.capabilities;
        let lacks = match &r.prompt {
            Prompt::Chat(_) if !c.chat => Some("chat completions"),
            Prompt::Text(_) if !c.completions => Some("text completions"),
            _ if r.demands.stream && !c.streaming => Some("streaming"),
            _ if r.demands.output.is_some() && !c.json_mode => Some("JSON 'response_format'"),
            _ if r.logprobs.is_some() && !c.logprobs => Some("log-probabilities"),
            _ if r.tools.as_ref().is_some_and(|t| t.choice != ToolChoice::None) && !c.tools => Some("tools"),
            _ => None,
        };
        if let (Prompt::Chat(turns), false) = (&r.prompt, c.vision) {
            if let Some((i, j)) = turns.iter().enumerate().find_map(|(i, t)| Some((i, t.first_media()?))) {
                return Some(format!("messages[{i}].content[{j}]: model '{}' reads text only, not images", self.name));
            }
        }
        if let Some(what) = lacks {
            return Some(format!("model '{}' does not support {what}", self.name));
        }
        if let (Some(asked), Some(max)) = (r.stop.max_tokens, self.max_output_tokens) {
            if asked > max {
                return Some(format!("model '{}' answers with at most {max} tokens, {asked} asked", self.name));
            }
        }
        let prompt = prompt_tokens?;
        let needed = u64::from(prompt) + u64::from(r.stop.max_tokens.unwrap_or(1));
        (needed > u64::from(self.context_length)).then(|| {
            format!("model '{}' has a context of {} tokens, the request needs {needed}", self.name, self.context_length)
        })
    }

    /// The completion tokens an estimate should assume.
    pub fn expected_output(&self, r: &ValidatedRequest, prompt_tokens: u32) -> u32 {
        let room = self.context_length.saturating_sub(prompt_tokens);
        r.stop.max_tokens.unwrap_or(self.max_output_tokens.unwrap_or(room).min(room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_api::{ChatTurn, Demands, SamplingParams, StopParams};

    fn request(chat: bool, demands: Demands, max_tokens: Option<u32>) -> ValidatedRequest {
        let prompt = if chat {
            Prompt::Chat(vec![ChatTurn::new(backend_api::Role::User, "hi")])
        } else {
            Prompt::Text("hi".into())
        };
        ValidatedRequest {
            request_id: "r".into(),
            model: "m".into(),
            prompt,
            sampling: SamplingParams::default(),
            stop: StopParams { max_tokens, ..Default::default() },
            logprobs: None,
            cache_salt: None,
            tools: None,
            demands,
        }
    }

    #[test]
    fn a_card_refuses_what_its_model_cannot_do() {
        let mut card = ModelCard::local("m", 100);
        assert_eq!(card.unfit(&request(true, Demands::default(), Some(10)), Some(50)), None);
        let json = Demands { output: Some(backend_api::OutputConstraint::JsonObject), ..Default::default() };
        assert_eq!(card.unfit(&request(true, json.clone(), None), None), None);
        card.capabilities.json_mode = false;
        assert!(card.unfit(&request(true, json, None), None).is_some_and(|w| w.contains("JSON")));
        card.capabilities.completions = false;
        assert!(card.unfit(&request(false, Demands::default(), None), None).is_some_and(|w| w.contains("text")));
        card.max_output_tokens = Some(8);
        assert!(card.unfit(&request(true, Demands::default(), Some(9)), None).is_some_and(|w| w.contains("at most 8")));
        assert!(card.unfit(&request(true, Demands::default(), Some(8)), Some(92)).is_none(), "exactly fits");
        assert!(card
            .unfit(&request(true, Demands::default(), Some(8)), Some(93))
            .is_some_and(|w| w.contains("context")));
        assert_eq!(card.expected_output(&request(true, Demands::default(), None), 95), 5);
        assert_eq!(card.expected_output(&request(true, Demands::default(), None), 10), 8);
    }

    #[test]
    fn capabilities_have_names() {
        assert_eq!(Capabilities::ANTHROPIC.names(), ["chat", "completions", "streaming", "tools"]);
        assert_eq!(Capabilities::LOCAL.names(), ["chat", "completions", "streaming", "json_mode", "logprobs", "tools"]);
    }
}
