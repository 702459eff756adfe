//! Decode-kernel throughput on this model's shapes over 30 layers (so the
//! weights stream from memory as in a real step): candle's Q8_0 kernel vs
//! the engine's own int8 kernels (AVX2 tiles, and the AVX-512 VNNI panels
//! where the CPU has them), by number of rows. `LAYERS=1` keeps one
//! layer's weights (3.7 MB) in cache.
//! `RAYON_NUM_THREADS=1 cargo run --release -p engine --example q8_probe`
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use engine::model::q8::Q8Matrix;
use engine::model::q8_panels::{self, Q8Panels};
use engine::model::RowMatmul;
use std::time::Instant;

fn main() -> candle_core::Result<()> {
    let dev = Device::Cpu;
    let shapes = [(960usize, 576usize), (576, 576), (3072, 576), (576, 1536)];
    let layers: usize = std::env::var("LAYERS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let macs_per_row: usize = layers * shapes.iter().map(|(n, k)| n * k).sum::<usize>();
    let mut ours = Vec::new();
    let mut panels = Vec::new();
    let mut candle = Vec::new();
    for l in 0..layers {
        for (s, &(n, k)) in shapes.iter().enumerate() {
            let w: Vec<f32> = (0..n * k).map(|i| ((i * 31 + l * 7 + s) % 211) as f32 * 1e-3 - 0.1).collect();
            let q = Q8Matrix::quantize(&w, k).ok_or_else(|| candle_core::Error::Msg("k".into()))?;
            if q8_panels::available() {
                panels.push((Q8Panels::repack(&q, true), k));
            }
            ours.push((q, k));
            let t = Tensor::from_slice(&w, (n, k), &dev)?;
            candle.push((QMatMul::from_qtensor(QTensor::quantize(&t, GgmlDType::Q8_0)?)?, k));
        }
    }
    for m in [1usize, 2, 4, 8, 16, 32] {
        let x576: Vec<f32> = (0..m * 576).map(|i| (i % 89) as f32 * 1e-2 - 0.4).collect();
        let x1536: Vec<f32> = (0..m * 1536).map(|i| (i % 83) as f32 * 1e-2 - 0.4).collect();
        let t576 = Tensor::from_slice(&x576, (m, 576), &dev)?;
        let t1536 = Tensor::from_slice(&x1536, (m, 1536), &dev)?;
        let iters = (200 / m).clamp(5, 50);
        let time = |f: &dyn Fn() -> candle_core::Result<()>| -> candle_core::Result<f64> {
            f()?;
            let t = Instant::now();
            for _ in 0..iters {
                f()?;
            }
            Ok(t.elapsed().as_secs_f64() / iters as f64)
        };
        let c = time(&|| {
            for (mm, k) in &candle {
                std::hint::black_box(mm.forward(if *k == 576 { &t576 } else { &t1536 })?);
            }
            Ok(())
        })?;
        let o = time(&|| {
            for (mm, k) in &ours {
                std::hint::black_box(mm.matmul(if *k == 576 { &x576 } else { &x1536 }));
            }
            Ok(())
        })?;
        let v = time(&|| {
            for (mm, k) in &panels {
                std::hint::black_box(mm.matmul(if *k == 576 { &x576 } else { &x1536 }));
            }
            Ok(())
        })?;
        let g = |s: f64| (macs_per_row * m) as f64 / s / 1e9;
        let vnni = if panels.is_empty() {
            "no AVX-512 VNNI".to_string()
        } else {
            format!("VNNI panels {:6.2} ms/step {:5.1} GMAC/s ({:.2}x AVX2)", v * 1e3, g(v), o / v)
        };
        println!(
            "m={m:3}: candle Q8_0 {:6.2} ms {:5.1} GMAC/s | AVX2 tiles {:6.2} ms {:5.1} GMAC/s | {vnni}",
            c * 1e3,
            g(c),
            o * 1e3,
            g(o),
        );
    }
    Ok(())
}
