//! Model architectures. One file per architecture, built from small
//! modules over plain f32 rows; matmuls go through our own batch-invariant
//! kernels (`dense` for prompt rows, `q8` for generated rows) or, with
//! `WeightFormat::Native`, through candle's quantized kernels.

pub mod dense;
mod linear;
mod llama;
mod ops;
mod parallel;
pub mod q8;

pub use linear::WeightFormat;
pub use llama::{BatchItem, Llama, StepLogits};
pub use ops::RopeTable;
