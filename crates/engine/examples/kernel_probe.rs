//! Measures candle's CPU matmul kernels on this model's shapes, per weight
//! format and batch size, to decide which format the engine runs.
//! `cargo run --release -p engine --example kernel_probe`
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    // (n, k): the projections of one SmolLM2-135M layer.
    let shapes = [(576usize, 576usize), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)];
    let weights: Vec<Tensor> =
        shapes.iter().map(|&(n, k)| Tensor::randn(0f32, 0.02, (n, k), &dev)).collect::<candle_core::Result<_>>()?;
    let macs_per_row: usize = shapes.iter().map(|(n, k)| n * k).sum();
    for m in [1usize, 2, 4, 8, 16, 32, 64, 512] {
        let x = Tensor::randn(0f32, 1.0, (m, 576), &dev)?;
        let x2 = Tensor::randn(0f32, 1.0, (m, 1536), &dev)?;
        let mut line = format!("m={m:4}");
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q4_0, GgmlDType::Q8_0, GgmlDType::F16, GgmlDType::F32] {
            let mms: Vec<QMatMul> = weights
                .iter()
                .map(|w| QTensor::quantize(w, dtype).and_then(QMatMul::from_qtensor))
                .collect::<candle_core::Result<_>>()?;
            let mms: Vec<QMatMul> = if dtype == GgmlDType::F32 {
                weights.iter().map(|w| QMatMul::Tensor(w.clone())).collect()
            } else if dtype == GgmlDType::F16 {
                weights
                    .iter()
                    .map(|w| w.to_dtype(candle_core::DType::F16).map(QMatMul::TensorF16))
                    .collect::<candle_core::Result<_>>()?
            } else {
                mms
            };
            let iters = (2000 / m).clamp(3, 200);
            let run = |mms: &[QMatMul]| -> candle_core::Result<()> {
                for (i, mm) in mms.iter().enumerate() {
                    let inp = if i == 6 { &x2 } else { &x };
                    let _ = mm.forward(inp)?;
                }
                Ok(())
            };
            run(&mms)?;
            let t = Instant::now();
            for _ in 0..iters {
                run(&mms)?;
            }
            let s = t.elapsed().as_secs_f64() / iters as f64;
            let gmacs = (macs_per_row * m) as f64 / s / 1e9;
            line += &format!("  {dtype:?}: {:7.1} rows/s ({gmacs:5.1} GMAC/s)", m as f64 / s / 30.0);
        }
        println!("{line}");
    }
    Ok(())
}
