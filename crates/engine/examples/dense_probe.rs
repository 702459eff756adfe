//! Throughput of the prompt kernels on this model's shapes: the f32
//! `dense` kernel (the embedding model's, and the LLM's before the bf16
//! weights) and the `bf16` kernel (the path `SWITCHYARD_KERNELS` picks:
//! AVX-512 BF16 by default where the CPU has it, `avx2` for the fallback).
//! `IN_CACHE=1` uses one 2048 × 64 matrix (256 KB of bf16 weights: L2) in place of
//! a layer's projections, so the figure is the arithmetic's, not memory's.
//! `cargo run --release -p engine --example dense_probe`
use engine::model::bf16::{kernel, Bf16Matrix};
use engine::model::dense::DenseMatrix;
use engine::model::RowMatmul;
use std::time::Instant;

fn time(m: usize, macs_per_row: usize, f: impl Fn()) -> f64 {
    let iters = (2000 / m).clamp(5, 200);
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    (macs_per_row * m) as f64 / (t.elapsed().as_secs_f64() / iters as f64) / 1e9
}

fn main() {
    let in_cache = std::env::var("IN_CACHE").is_ok_and(|v| v == "1");
    let shapes: &[(usize, usize)] =
        if in_cache { &[(2048, 64)] } else { &[(960, 576), (576, 576), (3072, 576), (576, 1536)] };
    let macs_per_row: usize = shapes.iter().map(|(n, k)| n * k).sum();
    let weights = |&(n, k): &(usize, usize)| (0..n * k).map(|i| (i % 97) as f32 * 1e-3).collect::<Vec<_>>();
    let dense: Vec<DenseMatrix> = shapes.iter().map(|s| DenseMatrix::pack(&weights(s), s.1)).collect();
    let bf16: Vec<Bf16Matrix> = shapes.iter().map(|s| Bf16Matrix::pack(&weights(s), s.1)).collect();
    println!("bf16 kernel: {:?}; weights {}", kernel(), if in_cache { "in cache" } else { "one layer's projections" });
    println!("| rows | f32 dense GMAC/s | bf16 GMAC/s | bf16 / f32 |");
    println!("| ---: | ---: | ---: | ---: |");
    for m in [1usize, 4, 16, 64, 512] {
        let xs: Vec<Vec<f32>> =
            shapes.iter().map(|&(_, k)| (0..m * k).map(|i| (i % 89) as f32 * 1e-2).collect()).collect();
        let f = time(m, macs_per_row, || {
            for (w, x) in dense.iter().zip(&xs) {
                std::hint::black_box(w.matmul(x));
            }
        });
        let b = time(m, macs_per_row, || {
            for (w, x) in bf16.iter().zip(&xs) {
                std::hint::black_box(w.matmul(x));
            }
        });
        println!("| {m} | {f:.1} | {b:.1} | {:.2}x |", b / f);
    }
}
