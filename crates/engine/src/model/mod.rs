//! Model architectures. One decoder (`decoder.rs`) over plain f32 rows;
//! one file per family (`llama`, `qwen`, `gemma`, `phi3`) that reads what
//! the family does differently into `config::Variant`; matmuls go through our own batch-invariant
//! kernels (`bf16` for prompt rows, `q8_panels` / `q8` for generated rows; `dense`, f32,
//! for the embedding model) or, with `WeightFormat::Native`, through
//! candle's quantized kernels.

pub mod bf16;
pub mod config;
pub mod cpu;
mod decoder;
pub mod dense;
mod gemma;
mod linear;
mod llama;
mod ops;
mod phi3;
mod qwen;
mod parallel;
pub mod q8;
pub mod q8_panels;

pub use linear::WeightFormat;
pub use config::{Activation, ModelConfig, RopeStyle};
pub use decoder::{BatchItem, Decoder, StepLogits};
pub use ops::RopeTable;
pub use parallel::RowMatmul;
