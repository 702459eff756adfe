//! Qwen 2 / 2.5 (biases on Q, K and V) and Qwen 3 (per-head RMS norms on
//! Q and K, no biases): NeoX RoPE, SwiGLU. Both differences are in which
//! tensors the file has, which the decoder loads when present; what the
//! family sets here is the rotary pairing.

use super::config::{ModelConfig, RopeStyle, Variant};

pub(super) fn variant(base: &ModelConfig) -> Variant {
    base.plain(RopeStyle::Neox)
}
