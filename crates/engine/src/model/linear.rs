//! A linear layer over quantized weights, run through candle's CPU kernels.

use crate::EngineError;
use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use std::borrow::Cow;

/// How weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as stored in the file (what candle-transformers runs).
    Native,
    /// Re-quantized to Q8_0 at load where the file's format has no fast CPU
    /// kernel in candle (Q4_1, Q5_*): about 2x the speed of Q4_1 here, at
    /// a small precision cost. See BENCHMARKS.md for the measurement.
    #[default]
    Fast,
}

impl WeightFormat {
    fn target(self, dtype: GgmlDType, k: usize) -> GgmlDType {
        match (self, dtype) {
            (WeightFormat::Fast, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1) if k % 32 == 0 => {
                GgmlDType::Q8_0
            }
            _ => dtype,
        }
    }
}

/// From this many rows per matmul, the f32 GEMM beats the quantized kernel.
/// Measured with `cargo run --release -p engine --example kernel_probe` on
/// the 2-core dev machine: Q8_0 stays at ~14 GMAC/s whatever the batch,
/// f32 GEMM grows from 4 (1 row) to 14 (16 rows) and 55 GMAC/s (512 rows).
pub const GEMM_MIN_ROWS: usize = 16;

pub struct Linear {
    mm: QMatMul,
    /// Dequantized, transposed weights (`in_dim × out_dim`) for large
    /// batches (prefill); only in `WeightFormat::Fast`.
    dense_t: Option<Tensor>,
    in_dim: usize,
    out_dim: usize,
}

fn candle_err(e: candle_core::Error) -> EngineError {
    EngineError::Model(e.to_string())
}

impl Linear {
    /// Builds one layer from weights stacked along the output dimension
    /// (fused q|k|v or gate|up: one kernel launch instead of several, and
    /// the same per-column results as separate matmuls).
    pub fn stacked(parts: Vec<QTensor>, format: WeightFormat) -> Result<Self, EngineError> {
        let mut dims = Vec::with_capacity(parts.len());
        for p in &parts {
            let (n, k) = p.shape().dims2().map_err(candle_err)?;
            dims.push((n, k));
        }
        let Some(&(_, in_dim)) = dims.first() else {
            return Err(EngineError::Model("linear layer without weights".into()));
        };
        if dims.iter().any(|&(_, k)| k != in_dim) {
            return Err(EngineError::Model(format!("stacked weights disagree on input width: {dims:?}")));
        }
        let out_dim: usize = dims.iter().map(|(n, _)| n).sum();
        let dtype = parts[0].dtype();
        let target = format.target(dtype, in_dim);
        let same_dtype = parts.iter().all(|p| p.dtype() == dtype);
        let qt = if target == dtype && same_dtype {
            if parts.len() == 1 {
                parts.into_iter().next().ok_or_else(|| EngineError::Model("no weights".into()))?
            } else {
                // Row-major blocks: stacking rows is concatenating bytes.
                let mut bytes = Vec::new();
                for p in &parts {
                    bytes.extend_from_slice(&p.data().map_err(candle_err)?);
                }
                let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype).map_err(candle_err)?;
                QTensor::new(storage, (out_dim, in_dim)).map_err(candle_err)?
            }
        } else {
            let f32s = parts.iter().map(|p| p.dequantize(&Device::Cpu)).collect::<candle_core::Result<Vec<_>>>().map_err(candle_err)?;
            let stacked = Tensor::cat(&f32s, 0).map_err(candle_err)?;
            QTensor::quantize(&stacked, target).map_err(candle_err)?
        };
        let dense_t = match format {
            WeightFormat::Fast => Some(
                qt.dequantize(&Device::Cpu).and_then(|w| w.t()).and_then(|w| w.contiguous()).map_err(candle_err)?,
            ),
            WeightFormat::Native => None,
        };
        Ok(Linear { mm: QMatMul::from_qtensor(qt).map_err(candle_err)?, dense_t, in_dim, out_dim })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// `x` is `rows × in_dim`; returns `rows × out_dim`.
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>, EngineError> {
        let rows = x.len() / self.in_dim;
        let t = Tensor::from_slice(x, (rows, self.in_dim), &Device::Cpu).map_err(candle_err)?;
        let y = match &self.dense_t {
            Some(w) if rows >= GEMM_MIN_ROWS => t.matmul(w),
            _ => self.mm.forward(&t),
        }
        .map_err(candle_err)?;
        y.flatten_all().and_then(|y| y.to_vec1::<f32>()).map_err(candle_err)
    }
}
