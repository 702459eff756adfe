//! A linear layer: the file's quantized weights through candle's kernels,
//! or the engine's own batch-invariant kernels (see `WeightFormat`).

use super::RowMatmul;
use crate::EngineError;
use candle_core::quantized::{QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use std::borrow::Cow;

/// How weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Exactly as stored in the file, through candle's kernels (what
    /// candle-transformers runs; the reference for correctness tests).
    Native,
    /// Two batch-invariant kernels of our own: prompt rows through a
    /// bfloat16 copy of the weights (`bf16`: AVX-512 BF16 where the CPU
    /// has it, else AVX2 over the same bf16 weights widened in registers),
    /// generated rows through Q8_0 weights and a tiled int8 kernel that
    /// reads each weight once for up to four rows (`q8_panels` on AVX-512
    /// VNNI, else `q8`'s AVX2 tiles), so decoding many sequences costs
    /// little more than one
    /// (candle's Q8_0 kernel costs the same per row at any batch size, and
    /// Q4_1 has no SIMD kernel in candle at all). See BENCHMARKS.md.
    #[default]
    Fast,
}

enum Kernels {
    Native(QMatMul),
    /// Prompt rows through `dense`: bf16 weights, or (`SWITCHYARD_KERNELS=f32`,
    /// to compare) the previous f32 copy.
    Fast {
        dense: Box<dyn RowMatmul>,
        decode: Box<dyn RowMatmul>,
    },
}

pub struct Linear {
    kernels: Kernels,
    in_dim: usize,
    out_dim: usize,
    /// Added to every output row (Qwen 2's Q/K/V).
    bias: Option<Vec<f32>>,
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
        // Q8_0 blocks hold 32 values; narrower rows keep the file's format.
        if format == WeightFormat::Fast && in_dim.is_multiple_of(32) {
            let mut dense = Vec::with_capacity(out_dim * in_dim);
            for p in &parts {
                let w = p.dequantize(&Device::Cpu).and_then(|w| w.flatten_all()).and_then(|w| w.to_vec1::<f32>());
                dense.extend(w.map_err(candle_err)?);
            }
            let decode = super::q8::decode_matrix(&dense, in_dim)
                .ok_or_else(|| EngineError::Model(format!("cannot quantize a {out_dim} x {in_dim} weight")))?;
            let dense = super::bf16::prompt_matrix(&dense, in_dim);
            return Ok(Linear { kernels: Kernels::Fast { dense, decode }, in_dim, out_dim, bias: None });
        }
        let dtype = parts[0].dtype();
        let qt = if parts.len() == 1 {
            parts.into_iter().next().ok_or_else(|| EngineError::Model("no weights".into()))?
        } else if parts.iter().all(|p| p.dtype() == dtype) {
            // Row-major blocks: stacking rows is concatenating bytes.
            let mut bytes = Vec::new();
            for p in &parts {
                bytes.extend_from_slice(&p.data().map_err(candle_err)?);
            }
            let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, dtype).map_err(candle_err)?;
            QTensor::new(storage, (out_dim, in_dim)).map_err(candle_err)?
        } else {
            let f32s = parts
                .iter()
                .map(|p| p.dequantize(&Device::Cpu))
                .collect::<candle_core::Result<Vec<_>>>()
                .map_err(candle_err)?;
            QTensor::quantize(&Tensor::cat(&f32s, 0).map_err(candle_err)?, dtype).map_err(candle_err)?
        };
        Ok(Linear { kernels: Kernels::Native(QMatMul::from_qtensor(qt).map_err(candle_err)?), in_dim, out_dim, bias: None })
    }

    /// The same layer with a bias added to each output row.
    pub fn with_bias(mut self, bias: Vec<f32>) -> Result<Self, EngineError> {
        if bias.len() != self.out_dim {
            return Err(EngineError::Model(format!("bias of {} values for {} outputs", bias.len(), self.out_dim)));
        }
        self.bias = Some(bias);
        Ok(self)
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// `x` is `rows × in_dim`; returns `rows × out_dim`, bias added.
    pub fn forward(&self, x: &[f32], prompt_rows: &[bool]) -> Result<Vec<f32>, EngineError> {
        let mut y = self.matmul(x, prompt_rows)?;
        if let Some(b) = &self.bias {
            for row in y.chunks_exact_mut(self.out_dim) {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
        }
        Ok(y)
    }

    /// Rows flagged in `prompt_rows` take the dense kernel (when there is
    /// one), the others the quantized one. Each kernel's result for a row
    /// is independent of the other rows, so a sequence gets the same bits
    /// alone or batched.
    fn matmul(&self, x: &[f32], prompt_rows: &[bool]) -> Result<Vec<f32>, EngineError> {
        let rows = x.len() / self.in_dim;
        let (dense, decode) = match &self.kernels {
            Kernels::Native(mm) => return self.candle(mm, x, rows),
            Kernels::Fast { dense, decode } => (dense, decode),
        };
        let n_dense = prompt_rows.iter().filter(|p| **p).count();
        if n_dense == rows {
            return Ok(dense.matmul(x));
        }
        if n_dense == 0 {
            return Ok(decode.matmul(x));
        }
        // Both kernels write their rows straight into the step's matrix.
        let (mut xd, mut xq) = (Vec::with_capacity(n_dense * self.in_dim), Vec::new());
        let (mut rows_d, mut rows_q) = (Vec::with_capacity(n_dense), Vec::new());
        for (r, (row, &p)) in x.chunks_exact(self.in_dim).zip(prompt_rows).enumerate() {
            if p {
                xd.extend_from_slice(row);
                rows_d.push(r);
            } else {
                xq.extend_from_slice(row);
                rows_q.push(r);
            }
        }
        let mut y = vec![0.0f32; rows * self.out_dim];
        dense.matmul_into(&xd, &mut y, &rows_d);
        decode.matmul_into(&xq, &mut y, &rows_q);
        Ok(y)
    }

    fn candle(&self, mm: &QMatMul, x: &[f32], rows: usize) -> Result<Vec<f32>, EngineError> {
        let t = Tensor::from_slice(x, (rows, self.in_dim), &Device::Cpu).map_err(candle_err)?;
        let y = mm.forward(&t).map_err(candle_err)?;
        y.flatten_all().and_then(|y| y.to_vec1::<f32>()).map_err(candle_err)
    }
}
