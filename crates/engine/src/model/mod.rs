//! Model architectures. One file per architecture, built from small
//! modules over plain f32 rows; quantized matmuls go through candle.

pub mod dense;
mod linear;
mod llama;
mod ops;
mod parallel;
pub mod q8;

pub use linear::WeightFormat;
pub use llama::{BatchItem, Llama};
pub use ops::RopeTable;
