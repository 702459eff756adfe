//! Reads a GGUF file: model hyper-parameters, tokenizer metadata, chat
//! template and the quantized tensors.

use crate::tokenizer::TokenizerSpec;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: std::io::Error },
    #[error("not a readable GGUF file: {0}")]
    Format(String),
    #[error("GGUF metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("GGUF metadata key '{key}' has the wrong type: {message}")]
    BadKey { key: String, message: String },
    #[error("unsupported architecture '{0}' (supported: llama, mistral, granite, qwen2, qwen3, gemma2, gemma3, phi3)")]
    UnsupportedArchitecture(String),
    #[error("tensor '{name}': {message}")]
    Tensor { name: String, message: String },
}

/// An open GGUF file: metadata parsed, tensors read on demand.
pub struct GgufFile {
    content: Content,
    reader: BufReader<File>,
    pub name: Option<String>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Open { path: path.display().to_string(), source })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| GgufError::Format(e.to_string()))?;
        let name = content.metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
        Ok(GgufFile { content, reader, name })
    }

    pub(crate) fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.content.metadata.get(key).ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    pub(crate) fn bad(key: &str, e: impl std::fmt::Display) -> GgufError {
        GgufError::BadKey { key: key.to_string(), message: e.to_string() }
    }

    pub(crate) fn usize_key(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get(key)?;
        let n = match v {
            Value::U64(_) | Value::I64(_) => v.to_u64().map_err(|e| Self::bad(key, e))?,
            _ => u64::from(v.to_u32().map_err(|e| Self::bad(key, e))?),
        };
        usize::try_from(n).map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn f32_key(&self, key: &str) -> Result<f32, GgufError> {
        self.get(key)?.to_f32().map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn string_key(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.to_string().map(String::as_str).map_err(|e| Self::bad(key, e))
    }

    pub(crate) fn opt_u32(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(|v| v.to_u32().ok())
    }

    pub fn tokenizer_spec(&self) -> Result<TokenizerSpec, GgufError> {
        let strings = |key: &str| -> Result<Vec<String>, GgufError> {
            let values = self.get(key)?.to_vec().map_err(|e| Self::bad(key, e))?;
            values.iter().map(|v| v.to_string().cloned().map_err(|e| Self::bad(key, e))).collect()
        };
        let token_types = match self.content.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Self::bad("tokenizer.ggml.token_type", e))?
                .iter()
                .map(|t| t.to_i32().map_err(|e| Self::bad("tokenizer.ggml.token_type", e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let model = self.string_key("tokenizer.ggml.model")?.to_string();
        // SentencePiece files may leave these out; llama.cpp's defaults then apply.
        let spm = model == "llama";
        let flag = |key: &str, default: bool| {
            self.content.metadata.get(key).and_then(|v| v.to_bool().ok()).unwrap_or(default)
        };
        let scores = match self.content.metadata.get("tokenizer.ggml.scores") {
            Some(v) => v
                .to_vec()
                .map_err(|e| Self::bad("tokenizer.ggml.scores", e))?
                .iter()
                .map(|s| s.to_f32().map_err(|e| Self::bad("tokenizer.ggml.scores", e)))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let id_or = |key: &str, default: u32| self.opt_u32(key).or(spm.then_some(default));
        Ok(TokenizerSpec {
            pre: self.string_key("tokenizer.ggml.pre").ok().map(str::to_string),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            scores,
            merges: if self.content.metadata.contains_key("tokenizer.ggml.merges") {
                strings("tokenizer.ggml.merges")?
            } else {
                Vec::new()
            },
            bos_id: id_or("tokenizer.ggml.bos_token_id", 1),
            eos_id: id_or("tokenizer.ggml.eos_token_id", 2),
            unk_id: id_or("tokenizer.ggml.unknown_token_id", 0),
            extra_eog_ids: ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| self.opt_u32(k))
                .collect(),
            add_bos: flag("tokenizer.ggml.add_bos_token", spm),
            add_eos: flag("tokenizer.ggml.add_eos_token", false),
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix", spm),
            model,
        })
    }

    pub fn chat_template(&self) -> Option<String> {
        self.string_key("tokenizer.chat_template").ok().map(str::to_string)
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor(&mut self, name: &str) -> Result<QTensor, GgufError> {
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| GgufError::Tensor { name: name.to_string(), message: e.to_string() })
    }

    /// The tensor's shape as GGUF lists it (innermost dimension first is
    /// candle's reversed order: rows × columns for a matrix).
    pub fn tensor_dims(&self, name: &str) -> Option<Vec<usize>> {
        self.content.tensor_infos.get(name).map(|t| t.shape.dims().to_vec())
    }

    /// The storage type of each tensor, counted (for the model card).
    pub fn tensor_types(&self) -> Vec<(GgmlDType, usize)> {
        let mut counts: Vec<(GgmlDType, usize)> = Vec::new();
        for info in self.content.tensor_infos.values() {
            match counts.iter_mut().find(|(t, _)| *t == info.ggml_dtype) {
                Some((_, n)) => *n += 1,
                None => counts.push((info.ggml_dtype, 1)),
            }
        }
        counts
    }

    /// The file type llama.cpp's quantizer wrote (`general.file_type`), by
    /// name; else the most common tensor type.
    pub fn quantization(&self) -> String {
        let named = match self.opt_u32("general.file_type") {
            Some(0) => "F32",
            Some(1) => "F16",
            Some(2) => "Q4_0",
            Some(3) => "Q4_1",
            Some(7) => "Q8_0",
            Some(8) => "Q5_0",
            Some(9) => "Q5_1",
            Some(10) => "Q2_K",
            Some(11) => "Q3_K_S",
            Some(12) => "Q3_K_M",
            Some(13) => "Q3_K_L",
            Some(14) => "Q4_K_S",
            Some(15) => "Q4_K_M",
            Some(16) => "Q5_K_S",
            Some(17) => "Q5_K_M",
            Some(18) => "Q6_K",
            Some(32) => "BF16",
            _ => "",
        };
        if !named.is_empty() {
            return named.to_string();
        }
        let most = self.tensor_types().into_iter().max_by_key(|(_, n)| *n);
        most.map(|(t, _)| format!("{t:?}")).unwrap_or_default()
    }

    /// Parameters stored in the file (every tensor's elements).
    pub fn parameter_count(&self) -> usize {
        self.content.tensor_infos.values().map(|t| t.shape.elem_count()).sum()
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }
}
