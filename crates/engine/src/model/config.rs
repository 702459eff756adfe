//! A decoder's hyper-parameters, read from `{arch}.*` metadata: the shape
//! every family shares (`ModelConfig`) and the knobs in which families
//! differ (`Variant`), which each architecture's own file sets
//! (`llama.rs`, `qwen.rs`, `gemma.rs`, `phi3.rs`). One forward pass
//! (`decoder.rs`) reads them; no family has a forward of its own.

use crate::gguf::{GgufError, GgufFile};

/// How rotary embeddings pair a head's dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RopeStyle {
    /// (x[2i], x[2i+1]): llama.cpp's "normal" rope (GGUF llama weights
    /// are permuted for it).
    #[default]
    Interleaved,
    /// (x[i], x[i + d/2]): GPT-NeoX's, used by Qwen, Gemma and Phi-3.
    Neox,
}

/// The MLP's gate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// SwiGLU: silu(gate) · up.
    #[default]
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma).
    GeluTanh,
}

/// One layer's attention: its window and rotary base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerAttention {
    /// A sliding-window layer sees only the last `window` positions
    /// (itself included), as llama.cpp's standard SWA masks them.
    pub window: Option<usize>,
    pub rope_theta: f32,
    /// Positions are divided by this (linear RoPE scaling).
    pub rope_scale: f32,
}

/// What one family does differently from a plain llama decoder.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    pub rope: RopeStyle,
    pub activation: Activation,
    /// Token embeddings are multiplied by this (Gemma: √d).
    pub embed_scale: f32,
    /// Attention scores are q·k times this (usually 1/√head_dim).
    pub attn_scale: f32,
    /// Each block's output is multiplied by this before the residual add (Granite).
    pub residual_scale: f32,
    /// Logits are multiplied by this (Granite divides by its logit scale).
    pub logit_scale: f32,
    /// Scores soft-capped as c·tanh(s/c) before the softmax (Gemma 2).
    pub attn_softcap: Option<f32>,
    /// Logits soft-capped likewise (Gemma 2).
    pub final_softcap: Option<f32>,
    pub layers: Vec<LayerAttention>,
}

/// A decoder's shape and its family's variant.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub rms_eps: f32,
    /// The file's rotary base (`rope.freq_base`; a family may use others per layer).
    pub rope_theta: f32,
    pub context_length: usize,
    pub vocab_size: usize,
    pub variant: Variant,
}

impl ModelConfig {
    /// Reads the file's architecture and hyper-parameters; a family we do
    /// not run, or metadata that contradicts itself, is refused naming the key.
    pub fn read(file: &GgufFile) -> Result<Self, GgufError> {
        let arch = file.string_key("general.architecture")?.to_string();
        let mut cfg = Self::shape(file, arch)?;
        cfg.variant = match cfg.architecture.as_str() {
            "llama" | "mistral" | "granite" => super::llama::variant(file, &cfg)?,
            "qwen2" | "qwen3" => super::qwen::variant(&cfg),
            "gemma2" | "gemma3" => super::gemma::variant(file, &cfg)?,
            "phi3" => super::phi3::variant(&cfg),
            _ => return Err(GgufError::UnsupportedArchitecture(cfg.architecture)),
        };
        Ok(cfg)
    }

    /// The keys every family shares, with a plain llama variant.
    fn shape(file: &GgufFile, arch: String) -> Result<Self, GgufError> {
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = file.usize_key(&k("embedding_length"))?;
        let n_head = file.usize_key(&k("attention.head_count"))?;
        let n_head_kv = file.usize_key(&k("attention.head_count_kv")).unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(GgufError::BadKey {
                key: k("attention.head_count_kv"),
                message: format!("{n_head} query heads cannot share {n_head_kv} KV heads"),
            });
        }
        // Qwen 3 and Gemma give the head width; others imply it.
        let head_dim = match file.usize_key(&k("attention.key_length")) {
            Ok(d) => d,
            Err(_) if n_embd % n_head == 0 => n_embd / n_head,
            Err(_) => {
                return Err(GgufError::BadKey {
                    key: k("embedding_length"),
                    message: format!("width {n_embd} is not a multiple of {n_head} heads"),
                })
            }
        };
        if let Ok(v) = file.usize_key(&k("attention.value_length")) {
            if v != head_dim {
                return Err(GgufError::BadKey {
                    key: k("attention.value_length"),
                    message: format!("{v} differs from the key length {head_dim}"),
                });
            }
        }
        // Attention keeps a head's output in registers, 8 lanes at a time.
        if ![8, 16, 32, 64, 128, 256].contains(&head_dim) {
            return Err(GgufError::BadKey {
                key: k("attention.key_length"),
                message: format!("head dimension {head_dim} is not supported (8, 16, 32, 64, 128 or 256)"),
            });
        }
        let vocab_size = match file.usize_key(&k("vocab_size")) {
            Ok(v) => v,
            Err(_) => file
                .get("tokenizer.ggml.tokens")?
                .to_vec()
                .map_err(|e| GgufError::BadKey { key: "tokenizer.ggml.tokens".into(), message: e.to_string() })?
                .len(),
        };
        let n_layer = file.usize_key(&k("block_count"))?;
        if n_layer == 0 {
            return Err(GgufError::BadKey { key: k("block_count"), message: "no layers".into() });
        }
        let mut cfg = ModelConfig {
            n_layer,
            n_embd,
            n_ff: file.usize_key(&k("feed_forward_length"))?,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps: file.f32_key(&k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_theta: file.f32_key(&k("rope.freq_base")).unwrap_or(10_000.0),
            context_length: file.usize_key(&k("context_length")).unwrap_or(4096),
            vocab_size,
            architecture: arch,
            variant: Variant::default(),
        };
        cfg.variant = cfg.plain(RopeStyle::Interleaved);
        Ok(cfg)
    }

    /// Width of all query heads (not always `n_embd`: Gemma 3 270M has
    /// 4 heads of 256 over a width of 640).
    pub fn q_width(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of one token's K (or V) across all KV heads.
    pub fn kv_width(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// `{arch}.s`, the name of one of this family's keys.
    pub(crate) fn key(&self, s: &str) -> String {
        format!("{}.{s}", self.architecture)
    }

    /// Every layer global, at the file's rotary base.
    pub(crate) fn global_layers(&self, rope_scale: f32) -> Vec<LayerAttention> {
        vec![LayerAttention { window: None, rope_theta: self.rope_theta, rope_scale }; self.n_layer]
    }

    /// The variant of a plain llama decoder of this shape.
    pub(crate) fn plain(&self, rope: RopeStyle) -> Variant {
        Variant {
            rope,
            activation: Activation::Silu,
            embed_scale: 1.0,
            attn_scale: 1.0 / (self.head_dim as f32).sqrt(),
            residual_scale: 1.0,
            logit_scale: 1.0,
            attn_softcap: None,
            final_softcap: None,
            layers: self.global_layers(1.0),
        }
    }
}

/// Linear RoPE scaling from `{arch}.rope.scaling.*`, else 1.
pub(crate) fn linear_rope_scale(file: &GgufFile, base: &ModelConfig) -> f32 {
    let kind = file.string_key(&base.key("rope.scaling.type")).unwrap_or("none");
    match (kind, file.f32_key(&base.key("rope.scaling.factor"))) {
        ("linear", Ok(f)) if f > 0.0 => f,
        _ => 1.0,
    }
}
