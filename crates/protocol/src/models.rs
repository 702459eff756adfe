use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Model {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// The context window served, where known (an extension of OpenAI's
    /// object; vLLM reports it as `max_model_len`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
    /// What the file is, for models run in-process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<ModelDetails>,
}

/// An embedded model's card: what its GGUF file says it is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct ModelDetails {
    /// `general.architecture` (`llama`, `qwen2`, `gemma3`, …).
    pub architecture: String,
    /// Parameters stored in the file.
    pub parameters: u64,
    /// The file type (`Q4_K_M`, `Q8_0`, …), or its most common tensor type.
    pub quantization: String,
    /// The vocabulary kind: `gpt2` (byte-level BPE) or `llama` (SentencePiece).
    pub tokenizer: String,
    /// The window the file was trained for (the served one may be less).
    pub trained_context_length: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<Model>,
}
