//! Reads a GGUF file: model hyper-parameters, tokenizer metadata, chat
//! template and the quantized tensors.

use crate::tokenizer::TokenizerSpec;
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
    #[error("unsupported architecture '{0}' (llama-family models only)")]
    UnsupportedArchitecture(String),
    #[error("tensor '{name}': {message}")]
    Tensor { name: String, message: String },
}

/// Llama-family hyper-parameters from `{arch}.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_eps: f32,
    pub context_length: usize,
    pub vocab_size: usize,
}

/// An open GGUF file: metadata parsed, tensors read on demand.
pub struct GgufFile {
    content: Content,
    reader: BufReader<File>,
    pub name: Option<String>,
}

const SUPPORTED_ARCHS: &[&str] = &["llama", "mistral", "granite"];

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, GgufError> {
        let file = File::open(path).map_err(|source| GgufError::Open { path: path.display().to_string(), source })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| GgufError::Format(e.to_string()))?;
        let name = content.metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
        Ok(GgufFile { content, reader, name })
    }

    fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.content.metadata.get(key).ok_or_else(|| GgufError::MissingKey(key.to_string()))
    }

    fn bad(key: &str, e: impl std::fmt::Display) -> GgufError {
        GgufError::BadKey { key: key.to_string(), message: e.to_string() }
    }

    fn usize_key(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get(key)?;
        let n = match v {
            Value::U64(_) | Value::I64(_) => v.to_u64().map_err(|e| Self::bad(key, e))?,
            _ => u64::from(v.to_u32().map_err(|e| Self::bad(key, e))?),
        };
        usize::try_from(n).map_err(|e| Self::bad(key, e))
    }

    fn f32_key(&self, key: &str) -> Result<f32, GgufError> {
        self.get(key)?.to_f32().map_err(|e| Self::bad(key, e))
    }

    fn string_key(&self, key: &str) -> Result<&str, GgufError> {
        self.get(key)?.to_string().map(String::as_str).map_err(|e| Self::bad(key, e))
    }

    fn opt_u32(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(|v| v.to_u32().ok())
    }

    pub fn config(&self) -> Result<LlamaConfig, GgufError> {
        let arch = self.string_key("general.architecture")?.to_string();
        if !SUPPORTED_ARCHS.contains(&arch.as_str()) {
            return Err(GgufError::UnsupportedArchitecture(arch));
        }
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = self.usize_key(&k("embedding_length"))?;
        let n_head = self.usize_key(&k("attention.head_count"))?;
        let n_head_kv = self.usize_key(&k("attention.head_count_kv")).unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_embd % n_head != 0 || n_head % n_head_kv != 0 {
            return Err(Self::bad(
                &k("attention.head_count"),
                format!("{n_head} heads / {n_head_kv} kv heads for width {n_embd}"),
            ));
        }
        let head_dim = n_embd / n_head;
        if head_dim % 2 != 0 {
            return Err(Self::bad(&k("embedding_length"), "head dimension must be even for rotary embeddings"));
        }
        let vocab_size = match self.usize_key(&k("vocab_size")) {
            Ok(v) => v,
            Err(_) => {
                self.get("tokenizer.ggml.tokens")?.to_vec().map_err(|e| Self::bad("tokenizer.ggml.tokens", e))?.len()
            }
        };
        Ok(LlamaConfig {
            n_layer: self.usize_key(&k("block_count"))?,
            n_embd,
            n_ff: self.usize_key(&k("feed_forward_length"))?,
            n_head,
            n_head_kv,
            head_dim,
            rope_theta: self.f32_key(&k("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: self.f32_key(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            context_length: self.usize_key(&k("context_length")).unwrap_or(4096),
            vocab_size,
            architecture: arch,
        })
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
        Ok(TokenizerSpec {
            model: self.string_key("tokenizer.ggml.model")?.to_string(),
            pre: self.string_key("tokenizer.ggml.pre").ok().map(str::to_string),
            tokens: strings("tokenizer.ggml.tokens")?,
            token_types,
            merges: if self.content.metadata.contains_key("tokenizer.ggml.merges") {
                strings("tokenizer.ggml.merges")?
            } else {
                Vec::new()
            },
            bos_id: self.opt_u32("tokenizer.ggml.bos_token_id"),
            eos_id: self.opt_u32("tokenizer.ggml.eos_token_id"),
            extra_eog_ids: ["tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]
                .iter()
                .filter_map(|k| self.opt_u32(k))
                .collect(),
            add_bos: self
                .content
                .metadata
                .get("tokenizer.ggml.add_bos_token")
                .and_then(|v| v.to_bool().ok())
                .unwrap_or(false),
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

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }
}
