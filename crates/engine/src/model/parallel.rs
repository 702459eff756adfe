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
