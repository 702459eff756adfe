//! Llama, Mistral and Granite: the plain decoder (interleaved RoPE,
//! SwiGLU, RMS norms). Granite adds four multipliers of its own.

use super::config::{linear_rope_scale, ModelConfig, RopeStyle, Variant};
use crate::gguf::{GgufError, GgufFile};

pub(super) fn variant(file: &GgufFile, base: &ModelConfig) -> Result<Variant, GgufError> {
    let mut v = base.plain(RopeStyle::Interleaved);
    v.layers = base.global_layers(linear_rope_scale(file, base));
    if base.architecture == "granite" {
        let opt = |s: &str| file.f32_key(&base.key(s)).ok();
        if let Some(s) = opt("embedding_scale") {
            v.embed_scale = s;
        }
        if let Some(s) = opt("attention.scale") {
            v.attn_scale = s;
        }
        if let Some(s) = opt("residual_scale") {
            v.residual_scale = s;
        }
        match opt("logit_scale") {
            Some(0.0) => {
                return Err(GgufError::BadKey { key: base.key("logit_scale"), message: "must not be 0".into() })
            }
            Some(s) => v.logit_scale = 1.0 / s,
            None => {}
        }
    }
    Ok(v)
}
