//! Gemma 2 and Gemma 3: embeddings scaled by √d, GeGLU (tanh GELU),
//! pre- and post-norms around attention and MLP (the converter already
//! stores the norms' weights as 1 + w), NeoX RoPE, and sliding-window
//! layers interleaved with global ones. Queries are scaled by
//! 1/√key_length (27B: 1/√(d/heads)), as llama.cpp does.
//!
//! Gemma 2: every other layer local (even ones), one rotary base, scores
//! soft-capped at `attn_logit_softcapping` and logits at
//! `final_logit_softcapping`. Gemma 3: five local layers to one global
//! (`sliding_window_pattern`), local layers at base 10,000 (or
//! `rope.freq_base_swa`), global ones at `rope.freq_base` with the file's
//! linear scaling; per-head Q/K norms instead of soft-capping.

use super::config::{linear_rope_scale, Activation, LayerAttention, ModelConfig, RopeStyle, Variant};
use crate::gguf::{GgufError, GgufFile};

pub(super) fn variant(file: &GgufFile, base: &ModelConfig) -> Result<Variant, GgufError> {
    let mut v = base.plain(RopeStyle::Neox);
    v.activation = Activation::GeluTanh;
    v.embed_scale = (base.n_embd as f32).sqrt();
    // gemma_pytorch's query_pre_attn_scalar: d/heads for the 27B models (62 or 46 layers), else head_dim.
    let big = matches!((base.architecture.as_str(), base.n_layer), ("gemma3", 62) | ("gemma2", 46));
    let scalar = if big { base.n_embd / base.n_head } else { base.head_dim };
    v.attn_scale = 1.0 / (scalar as f32).sqrt();
    let positive = |key: &str| -> Result<Option<f32>, GgufError> {
        match file.f32_key(&base.key(key)) {
            Ok(c) if c > 0.0 => Ok(Some(c)),
            Ok(0.0) => Ok(None),
            Ok(c) => Err(GgufError::BadKey { key: base.key(key), message: format!("{c} is negative") }),
            Err(_) => Ok(None),
        }
    };
    v.final_softcap = positive("final_logit_softcapping")?;
    let window = match file.usize_key(&base.key("attention.sliding_window")) {
        Ok(0) | Err(_) => None,
        Ok(w) => Some(w),
    };
    let global_scale = linear_rope_scale(file, base);
    if base.architecture == "gemma2" {
        v.attn_softcap = positive("attn_logit_softcapping")?;
        v.layers = (0..base.n_layer)
            .map(|i| LayerAttention {
                window: window.filter(|_| i % 2 == 0),
                rope_theta: base.rope_theta,
                rope_scale: global_scale,
            })
            .collect();
    } else {
        let pattern = file.usize_key(&base.key("attention.sliding_window_pattern")).unwrap_or(6);
        let local_theta = file.f32_key(&base.key("rope.freq_base_swa")).unwrap_or(10_000.0);
        v.layers = (0..base.n_layer)
            .map(|i| {
                // llama.cpp's pattern: layer i is local unless i % n == n - 1.
                let local = window.is_some() && (pattern == 0 || i % pattern < pattern - 1);
                if local {
                    LayerAttention { window, rope_theta: local_theta, rope_scale: 1.0 }
                } else {
                    LayerAttention { window: None, rope_theta: base.rope_theta, rope_scale: global_scale }
                }
            })
            .collect();
    }
    Ok(v)
}
