//! Fork-join over candle's CPU thread pool, the one candle's own quantized
//! matmuls already run on: one pool for every parallel section of a step
//! (our kernels, attention, candle's decode matmuls), rather than two pools
//! competing for the same two cores.

use std::sync::OnceLock;

/// Computes `f(i)` for every `i < n` on all cores; results in order.
pub fn map<T: Send + Sync>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let slots: Vec<OnceLock<T>> = (0..n).map(|_| OnceLock::new()).collect();
    candle_core::utils::barrier_pool().execute_chunked(n, |range| {
        for i in range {
            let _ = slots[i].set(f(i));
        }
    });
    // Every index was run exactly once above.
    slots.into_iter().filter_map(OnceLock::into_inner).collect()
}

/// Threads `map` runs on (asked once: candle reads the environment and the
/// system on every call).
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// An `m × n` row-major matrix computed by column ranges of `width` in
/// parallel: `block(c0, c1)` returns the `m × (c1 - c0)` values of columns
/// `c0..c1`, which are then scattered into place (keeping the kernels free
/// of unsafe shared writes).
pub fn column_blocks(m: usize, n: usize, width: usize, block: impl Fn(usize, usize) -> Vec<f32> + Sync) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    if m == 0 || n == 0 || width == 0 {
        return y;
    }
    let blocks = map(n.div_ceil(width), |b| block(b * width, ((b + 1) * width).min(n)));
    for (b, out) in blocks.iter().enumerate() {
        let (c0, w) = (b * width, ((b + 1) * width).min(n) - b * width);
        for (r, src) in out.chunks_exact(w).enumerate().take(m) {
            y[r * n + c0..r * n + c0 + w].copy_from_slice(src);
        }
    }
    y
}
