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
    /// What the answer must be, beyond its tokens: for routing, and for
    /// backends that cannot honour it to refuse it.
    pub demands: Demands,
}

/// Routing needs of a request that a model may or may not meet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Demands {
    /// The client reads the answer as a stream.
    pub stream: bool,
    /// `response_format` asks for JSON (`json_object` or `json_schema`),
    /// passed to the upstream as given.
    pub response_format: Option<serde_json::Value>,
    /// Highest estimated cost, in US dollars, of a model a route may pick.
    pub max_cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Chat turns, rendered by the model's own chat template.
    Chat(Vec<ChatTurn>),
    /// Raw text, tokenized as is.
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    pub role: String,
    pub content: String,
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
