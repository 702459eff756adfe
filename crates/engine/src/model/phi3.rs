//! Phi-3 / Phi-4: fused `attn_qkv` and gate|up (`ffn_up` of 2·n_ff rows)
//! tensors, which the decoder splits on load, and NeoX RoPE, scaled by the
//! file's `rope_factors_short` when it has them (LongRoPE). Its sliding
//! window is ignored, as llama.cpp does (the conversions declare one the
//! checkpoints were not trained with consistently).

use super::config::{ModelConfig, RopeStyle, Variant};

pub(super) fn variant(base: &ModelConfig) -> Variant {
    base.plain(RopeStyle::Neox)
}
