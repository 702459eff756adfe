//! Model architectures. One file per architecture, built from small
//! modules over plain f32 rows; matmuls go through our own batch-invariant
//! kernels (`bf16` for prompt rows, `q8_panels` / `q8` for generated rows; `dense`, f32,
//! for the embedding model) or, with `WeightFormat::Native`, through
//! candle's quantized kernels.

pub mod bf16;
pub mod cpu;
pub mod dense;
mod linear;
mod llama;
mod ops;
mod parallel;
pub mod q8;
pub mod q8_panels;

pub use linear::WeightFormat;
pub use llama::{BatchItem, Llama, StepLogits};
pub use ops::RopeTable;
pub use parallel::RowMatmul;
