//! Throughput of the batch-invariant dense kernel on this model's shapes.
//! `cargo run --release -p engine --example dense_probe`
use engine::model::dense::DenseMatrix;
use std::time::Instant;

fn main() {
    let shapes = [(960usize, 576usize), (576, 576), (3072, 576), (576, 1536)];
    let macs_per_row: usize = shapes.iter().map(|(n, k)| n * k).sum();
    let ws: Vec<DenseMatrix> = shapes
        .iter()
        .map(|&(n, k)| DenseMatrix::pack(&(0..n * k).map(|i| (i % 97) as f32 * 1e-3).collect::<Vec<_>>(), k))
        .collect();
    for m in [1usize, 4, 16, 64, 512] {
        let xs: Vec<Vec<f32>> =
            shapes.iter().map(|&(_, k)| (0..m * k).map(|i| (i % 89) as f32 * 1e-2).collect()).collect();
        let iters = (1000 / m).clamp(3, 100);
        let t = Instant::now();
        for _ in 0..iters {
            for (w, x) in ws.iter().zip(&xs) {
                std::hint::black_box(w.matmul(x));
            }
        }
        let s = t.elapsed().as_secs_f64() / iters as f64;
        println!(
            "m={m:4}: {:6.1} GMAC/s, {:6.1} rows/s over 30 layers",
            (macs_per_row * m) as f64 / s / 1e9,
            m as f64 / s / 30.0
        );
    }
}
