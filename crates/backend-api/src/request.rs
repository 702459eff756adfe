use serde_json::Value;

/// A request that passed validation: every field typed and bounded, the
/// model resolved. Backends take nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedRequest {
    pub request_id: String,
    /// The backend's own name for the model.
    pub model: String,
    pub prompt: Prompt,
    pub sampling: SamplingParams,
    pub stop: StopParams,
    /// Top log-probabilities to return per token; `None` = no log-probs.
    pub logprobs: Option<u32>,
    /// Prefix-cache namespace: requests share cached prompt prefixes only
    /// with requests of the same salt (`None` is the shared namespace).
    pub cache_salt: Option<String>,
    /// Functions the model may call, and whether it must (chat only).
    pub tools: Option<Tools>,
    /// What the answer must be, beyond its tokens: for routing, and for
    /// backends that cannot honour it to refuse it.
    pub demands: Demands,
}

/// Routing needs of a request that a model may or may not meet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demands {
    /// The client reads the answer as a stream.
    pub stream: bool,
    /// The answer must be JSON (`response_format`).
    pub output: Option<OutputConstraint>,
    /// Highest estimated cost, in US dollars, of a model a route may pick.
    pub max_cost_usd: Option<f64>,
}

/// A constraint on the answer's text.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConstraint {
    /// Any JSON object.
    JsonObject,
    /// JSON valid against `schema` (`strict`: exactly, as OpenAI's structured outputs).
    JsonSchema { name: String, schema: Value, strict: bool },
}

/// The tools offered to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    pub defs: Vec<ToolDef>,
    pub choice: ToolChoice,
    /// More than one call may come in one answer.
    pub parallel: bool,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    pub strict: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No call: the tools are context only.
    None,
    /// At least one call.
    Required,
    /// This function must be called.
    Named(String),
}

/// A call the assistant made (in the history, or in an answer).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the JSON text the model wrote.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Chat turns, rendered by the model's own chat template.
    Chat(Vec<ChatTurn>),
    /// Raw text, tokenized as is.
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions (OpenAI's `system` and `developer`, Anthropic's `system`).
    System,
    User,
    Assistant,
    /// A tool's result, answering the assistant's call `tool_call_id`.
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One part of a turn's content.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text(String),
    /// An image by URL (`data:` URLs included); only models that see images take it.
    Image {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// The assistant's calls (assistant turns).
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool turn answers.
    pub tool_call_id: Option<String>,
    /// The participant's name, when given.
    pub name: Option<String>,
}

impl ChatTurn {
    /// A turn of plain text.
    pub fn new(role: Role, text: impl Into<String>) -> Self {
        ChatTurn {
            role,
            content: vec![ContentPart::Text(text.into())],
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// The text parts, joined.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let ContentPart::Text(t) = p {
                out.push_str(t);
            }
        }
        out
    }

    /// Bytes of text in the turn (content, calls and their arguments).
    pub fn text_len(&self) -> usize {
        let content: usize = self.content.iter().map(|p| if let ContentPart::Text(t) = p { t.len() } else { 0 }).sum();
        content + self.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>()
    }

    /// The index of the first part that is not text.
    pub fn first_media(&self) -> Option<usize> {
        self.content.iter().position(|p| !matches!(p, ContentPart::Text(_)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// In (0, 1].
    pub top_p: f32,
    /// 0 = off.
    pub top_k: u32,
    pub seed: Option<u64>,
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            seed: None,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
        }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, ..Default::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StopParams {
    /// `None` = until end of sequence or the context window is full.
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    pub min_tokens: u32,
}
