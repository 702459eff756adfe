//! Batch invariance rests on this: candle's quantized kernel (used for
//! decode rows) gives a row the same bits whatever rows share the matmul.
//! (candle's f32 GEMM does not, which is why prompt rows use our own
//! dense kernel, `model/dense.rs`, with the same property.)

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};

fn rows_are_independent(
    label: &str,
    mm: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>,
    k: usize,
) -> candle_core::Result<()> {
    let all = Tensor::randn(0f32, 1.0, (600, k), &Device::Cpu)?;
    let reference = mm(&all.narrow(0, 7, 1)?)?.flatten_all()?.to_vec1::<f32>()?;
    for m in [2usize, 3, 8, 15, 16, 17, 31, 64, 129, 512] {
        let start = 7usize.saturating_sub(m / 2).min(600 - m);
        let out = mm(&all.narrow(0, start, m)?)?;
        let row = out.narrow(0, 7 - start, 1)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(row == reference, "{label}: row 7 changed when computed among {m} rows");
    }
    Ok(())
}

#[test]
fn quantized_matmul_rows_do_not_depend_on_the_batch() -> candle_core::Result<()> {
    for (n, k) in [(576usize, 576usize), (1536, 576), (576, 1536)] {
        let w = Tensor::randn(0f32, 0.02, (n, k), &Device::Cpu)?;
        let q = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)?;
        rows_are_independent("q8_0", &|x| q.forward(x), k)?;
    }
    Ok(())
}
