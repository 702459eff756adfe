//! A dense f32 matmul whose result for each row is independent of which
//! other rows share the call: every output element is one dot product,
//! accumulated lane by lane in the same fixed order whatever the tiling.
//! (candle's f32 GEMM is faster for big batches but changes a row's bits
//! with the batch size, which would break batch invariance.)
//!
//! Tiling: threads split the output columns; each works through column
//! blocks that stay in L2 while every 4-row tile of the input streams past,
//! computing 4 rows × 2 columns of dot products per pass over k, in 8-lane
//! vectors (`wide::f32x8`: AVX2 FMAs with `-C target-cpu=native`).

use super::ops::{lanes, reduce};
use wide::f32x8;

const LANES: usize = 8;
const ROW_TILE: usize = 4;
const COL_TILE: usize = 2;
/// Columns per cache block: 64 × 1536 × 4 bytes = 384 KiB at most.
const COL_BLOCK: usize = 64;

/// `y[m × n] = x[m × k] · wᵀ` with `w` row-major `n × k`.
pub fn matmul_rows(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
    let (m, n) = (x.len() / k, w.len() / k);
    let mut y = vec![0.0f32; m * n];
    if m == 0 || n == 0 {
        return y;
    }
    // Work item: one column block; the output is written through a
    // per-block buffer and scattered, keeping the code free of unsafe.
    let blocks: Vec<(usize, Vec<f32>)> = super::parallel::map(n.div_ceil(COL_BLOCK), |b| {
        let c0 = b * COL_BLOCK;
        let c1 = (c0 + COL_BLOCK).min(n);
        let width = c1 - c0;
        let mut out = vec![0.0f32; m * width];
        for r0 in (0..m).step_by(ROW_TILE) {
            let rows = ROW_TILE.min(m - r0);
            for c in (c0..c1).step_by(COL_TILE) {
                let cols = COL_TILE.min(c1 - c);
                let tile = dot_tile(x, w, k, r0, rows, c, cols);
                for (r, tile_row) in tile.iter().enumerate().take(rows) {
                    for (j, v) in tile_row.iter().enumerate().take(cols) {
                        out[(r0 + r) * width + (c - c0) + j] = *v;
                    }
                }
            }
        }
        (c0, out)
    });
    for (c0, out) in blocks {
        let width = out.len() / m;
        for r in 0..m {
            y[r * n + c0..r * n + c0 + width].copy_from_slice(&out[r * width..(r + 1) * width]);
        }
    }
    y
}

/// Dot products of up to 4 rows of `x` with up to 2 rows of `w`. Missing
/// rows/columns are computed on a repeat of the first (and discarded), so
/// the arithmetic of every real element is always the same.
#[inline]
fn dot_tile(
    x: &[f32],
    w: &[f32],
    k: usize,
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
) -> [[f32; COL_TILE]; ROW_TILE] {
    let xr: [&[f32]; ROW_TILE] = std::array::from_fn(|r| {
        let r = r0 + if r < rows { r } else { 0 };
        &x[r * k..(r + 1) * k]
    });
    let wr: [&[f32]; COL_TILE] = std::array::from_fn(|c| {
        let c = c0 + if c < cols { c } else { 0 };
        &w[c * k..(c + 1) * k]
    });
    let mut acc = [[f32x8::ZERO; COL_TILE]; ROW_TILE];
    let full = k / LANES * LANES;
    let mut i = 0;
    while i < full {
        let w0 = lanes(&wr[0][i..i + LANES]);
        let w1 = lanes(&wr[1][i..i + LANES]);
        for r in 0..ROW_TILE {
            let xv = lanes(&xr[r][i..i + LANES]);
            acc[r][0] = xv.mul_add(w0, acc[r][0]);
            acc[r][1] = xv.mul_add(w1, acc[r][1]);
        }
        i += LANES;
    }
    let mut out = [[0.0f32; COL_TILE]; ROW_TILE];
    for r in 0..ROW_TILE {
        for c in 0..COL_TILE {
            // Fixed reduction of the lanes, then the scalar tail.
            let mut s = reduce(acc[r][c]);
            for j in full..k {
                s = xr[r][j].mul_add(wr[c][j], s);
            }
            out[r][c] = s;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
        let (m, n) = (x.len() / k, w.len() / k);
        let mut y = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                y[r * n + c] = (0..k).map(|i| f64::from(x[r * k + i]) * f64::from(w[c * k + i])).sum::<f64>() as f32;
            }
        }
        y
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn matches_a_naive_matmul() {
        for (m, n, k) in [(1, 1, 8), (3, 5, 13), (9, 130, 64), (17, 67, 100)] {
            let (x, w) = (data(m * k, 1), data(n * k, 2));
            let (got, want) = (matmul_rows(&x, &w, k), naive(&x, &w, k));
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() < 1e-3, "{m}x{n}x{k}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn rows_do_not_depend_on_their_neighbours() {
        let k = 96;
        let (x, w) = (data(40 * k, 3), data(70 * k, 4));
        let alone = matmul_rows(&x[13 * k..14 * k], &w, k);
        for (start, m) in [(13, 2), (12, 3), (10, 5), (0, 40), (11, 9)] {
            let y = matmul_rows(&x[start * k..(start + m) * k], &w, k);
            assert_eq!(&y[(13 - start) * 70..(14 - start) * 70], alone.as_slice(), "among {m} rows");
        }
    }
}
