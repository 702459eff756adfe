//! A linear layer over quantized weights, run through candle's CPU kernels.

use super::dense;
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
            (WeightFormat::Fast, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1)
                if k.is_multiple_of(32) =>
            {
                GgmlDType::Q8_0
            }
            _ => dtype,
        }
    }
}

pub struct Linear {
    mm: QMatMul,
    /// Dequantized weights (`out_dim × in_dim`) for prompt rows; only in
    /// `WeightFormat::Fast`. Why two copies: candle's quantized kernel is
    /// the fastest for one row (decode) but does not speed up with more
    /// rows, while an f32 kernel over many rows (prefill) is several times
    /// faster (`examples/kernel_probe.rs`, BENCHMARKS.md).
    dense: Option<Vec<f32>>,
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
            let f32s = parts
                .iter()
                .map(|p| p.dequantize(&Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(candle_err)?;
            let stacked = Tensor::cat(&f32s, 0).map_err(candle_err)?;
            QTensor::quantize(&stacked, target).map_err(candle_err)?
        };
        let dense = match format {
            WeightFormat::Fast => Some(
                qt.dequantize(&Device::Cpu)
                    .and_then(|w| w.flatten_all())
                    .and_then(|w| w.to_vec1::<f32>())
                    .map_err(candle_err)?,
            ),
            WeightFormat::Native => None,
        };
        Ok(Linear { mm: QMatMul::from_qtensor(qt).map_err(candle_err)?, dense, in_dim, out_dim })
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// `x` is `rows × in_dim`; returns `rows × out_dim`. Rows flagged in
    /// `prompt_rows` take the dense kernel (when there is one), the others
    /// the quantized one. Each kernel's result for a row is independent of
    /// the other rows, so a sequence gets the same bits alone or batched.
    pub fn forward(&self, x: &[f32], prompt_rows: &[bool]) -> Result<Vec<f32>, EngineError> {
        let rows = x.len() / self.in_dim;
        let Some(dense) = &self.dense else {
            return self.quantized(x, rows);
        };
        let n_dense = prompt_rows.iter().filter(|p| **p).count();
        if n_dense == rows {
            return Ok(dense::matmul_rows(x, dense, self.in_dim));
        }
        if n_dense == 0 {
            return self.quantized(x, rows);
        }
        let (mut xd, mut xq) = (Vec::with_capacity(n_dense * self.in_dim), Vec::new());
        for (row, &p) in x.chunks_exact(self.in_dim).zip(prompt_rows) {
            if p {
                xd.extend_from_slice(row)
            } else {
                xq.extend_from_slice(row)
            }
        }
        let yd = dense::matmul_rows(&xd, dense, self.in_dim);
        let yq = self.quantized(&xq, rows - n_dense)?;
        let (mut d, mut q) = (yd.chunks_exact(self.out_dim), yq.chunks_exact(self.out_dim));
        let mut y = Vec::with_capacity(rows * self.out_dim);
        for &p in prompt_rows {
            let src = if p { d.next() } else { q.next() };
            y.extend_from_slice(src.ok_or_else(|| EngineError::Model("row count mismatch".into()))?);
        }
        Ok(y)
    }

    fn quantized(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
        let t = Tensor::from_slice(x, (rows, self.in_dim), &Device::Cpu).map_err(candle_err)?;
        let y = self.mm.forward(&t).map_err(candle_err)?;
        y.flatten_all().and_then(|y| y.to_vec1::<f32>()).map_err(candle_err)
    }
}
