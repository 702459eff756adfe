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

/// Below this many values an elementwise pass stays on the calling thread
/// (a fork-join costs more than it saves).
pub const PARALLEL_MIN_VALUES: usize = 16 * 1024;

/// Calls `f(r, row)` for every `row_len`-wide row of `out`, on all cores
/// when `parallel` (callers judge whether the work is worth a fork-join).
/// Each row is computed by one call whatever the split, so results never
/// depend on it.
pub fn rows_mut(out: &mut [f32], row_len: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync) {
    if row_len == 0 {
        return;
    }
    let rows = out.len() / row_len;
    if !parallel || rows < 2 {
        for (r, row) in out.chunks_exact_mut(row_len).enumerate() {
            f(r, row);
        }
        return;
    }
    let shared = SharedMatrix::new(out, row_len);
    // SAFETY: `r < rows`, and each index runs once, so no two calls share a row.
    map(rows, |r| f(r, unsafe { shared.row(r) }));
}

/// Threads `map` runs on (asked once: candle reads the environment and the
/// system on every call).
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// A matmul whose result for a row does not depend on the other rows of
/// the call (the engine's kernels: `bf16`, `dense`, `q8`).
pub trait RowMatmul: Send + Sync {
    /// `(n, k)`: the weights are `n × k`.
    fn dims(&self) -> (usize, usize);

    /// Row `r` of `x · wᵀ` into row `rows[r]` of `y` (`n` wide).
    fn matmul_into(&self, x: &[f32], y: &mut [f32], rows: &[usize]);

    /// `y[m × n] = x[m × k] · wᵀ`.
    fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let (n, k) = self.dims();
        let m = x.len().checked_div(k).unwrap_or(0);
        new_matrix(m, n, |y, rows| self.matmul_into(x, y, rows))
    }
}

/// A new `m × n` matrix filled by `fill(y, rows)` with the identity row map
/// (for kernels whose `matmul_into` writes chosen rows of a larger one).
pub fn new_matrix(m: usize, n: usize, fill: impl FnOnce(&mut [f32], &[usize])) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    fill(&mut y, &(0..m).collect::<Vec<_>>());
    y
}

/// Columns computed in parallel by ranges of `width`: `block(c0, c1)`
/// returns the `rows.len() × (c1 - c0)` values of columns `c0..c1`, and the
/// thread that computed them writes row `r` of them into row `rows[r]` of
/// `y` (row-major, `n` wide). Writing in place from both threads matters: a
/// scatter left to the calling thread was ~8% of a step's time with the
/// other core waiting, and the row map lets prompt and decode rows of one
/// step land in one matrix without a merge copy.
pub fn column_blocks_into(
    y: &mut [f32],
    n: usize,
    rows: &[usize],
    width: usize,
    block: impl Fn(usize, usize) -> Vec<f32> + Sync,
) {
    if rows.is_empty() || n == 0 || width == 0 {
        return;
    }
    let out = SharedMatrix::new(y, n);
    map(n.div_ceil(width), |b| {
        let (c0, c1) = (b * width, ((b + 1) * width).min(n));
        // Each block index runs once: its columns are written by no other call.
        out.write_columns(rows, c0, c1, &block(c0, c1));
    });
}

/// A row-major matrix that parallel work items fill by disjoint parts:
/// whole rows (`rows_mut`) or column ranges (`column_blocks_into`).
struct SharedMatrix {
    ptr: *mut f32,
    rows: usize,
    cols: usize,
}

// SAFETY: the callers above hand each row, or each column range, to exactly
// one work item, and the matrix outlives the parallel section.
unsafe impl Sync for SharedMatrix {}

impl SharedMatrix {
    fn new(m: &mut [f32], cols: usize) -> Self {
        SharedMatrix { ptr: m.as_mut_ptr(), rows: m.len().checked_div(cols).unwrap_or(0), cols }
    }

    /// Row `r`.
    ///
    /// # Safety
    /// `r < rows`, and no other live reference may point into that row.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, r: usize) -> &mut [f32] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.cols), self.cols) }
    }

    /// Writes row `r` of `vals` (`(c1 - c0)` wide, row-major) into columns
    /// `c0..c1` of row `dest[r]`; rows outside the matrix are skipped. The
    /// caller writes these columns from this call only.
    fn write_columns(&self, dest: &[usize], c0: usize, c1: usize, vals: &[f32]) {
        let w = c1.min(self.cols).saturating_sub(c0);
        if w == 0 {
            return;
        }
        for (src, &r) in vals.chunks_exact(c1 - c0).zip(dest) {
            if r >= self.rows {
                continue;
            }
            // SAFETY: `r < rows` and `c0 + w <= cols` keep the destination
            // inside the matrix; no other item writes these columns.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(r * self.cols + c0), w) };
        }
    }
}

/// Test support: `len` values in [-1, 1) from a fixed hash of the index.
#[cfg(test)]
pub(crate) fn test_data(len: usize, seed: u32) -> Vec<f32> {
    (0..len).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 2000) as f32 / 1000.0 - 1.0).collect()
}

/// Test support: row 13 of `x` (`k` wide, at least 40 rows) gets the
/// same bits from `mm` alone and among neighbours in batches of several
/// sizes and offsets.
#[cfg(test)]
pub(crate) fn assert_rows_independent(label: &str, mm: &dyn RowMatmul, x: &[f32]) {
    let (n, k) = mm.dims();
    let alone = mm.matmul(&x[13 * k..14 * k]);
    for (start, m) in [(13, 2), (12, 3), (10, 5), (0, 40), (11, 9), (13, 4)] {
        let y = mm.matmul(&x[start * k..(start + m) * k]);
        assert_eq!(&y[(13 - start) * n..(14 - start) * n], alone.as_slice(), "{label}: among {m} rows");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_blocks_put_every_block_in_place() {
        let (m, n) = (5, 37);
        // Widths that divide n and that leave a partial last block.
        for width in [1, 8, 10, 37, 64] {
            // Block rows land in rows 4, 0, 2, 6, 5 of a 7-row matrix.
            let dest = [4, 0, 2, 6, 5];
            let mut y = vec![-1.0f32; 7 * n];
            column_blocks_into(&mut y, n, &dest, width, |c0, c1| {
                (0..m).flat_map(|r| (c0..c1).map(move |c| (r * 1000 + c) as f32)).collect()
            });
            for (row, got) in y.chunks_exact(n).enumerate() {
                let want: Vec<f32> = match dest.iter().position(|&d| d == row) {
                    Some(r) => (0..n).map(|c| (r * 1000 + c) as f32).collect(),
                    None => vec![-1.0; n],
                };
                assert_eq!(got, want.as_slice(), "width {width}, row {row}");
            }
        }
    }

    #[test]
    fn rows_mut_hands_each_row_to_one_call_in_parallel_or_not() {
        let row_len = 7;
        for parallel in [false, true] {
            let mut out = vec![0.0f32; 300 * row_len];
            rows_mut(&mut out, row_len, parallel, |r, row| {
                for (i, v) in row.iter_mut().enumerate() {
                    *v += (r * row_len + i) as f32;
                }
            });
            let want: Vec<f32> = (0..out.len()).map(|i| i as f32).collect();
            assert_eq!(out, want, "parallel {parallel}");
        }
    }
}
