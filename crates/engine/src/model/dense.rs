//! A dense f32 matmul for prompt rows whose result for each row is
//! independent of which other rows share the call: every output element
//! is one chain of fused multiply-adds over k in order, whatever the
//! tiling. (candle's f32 GEMM is faster for big batches but changes a
//! row's bits with the batch size, which would break batch invariance.)
//!
//! Layout and tiling, as in BLIS-style GEMMs: the weights are packed once
//! into panels of 16 output columns, k-major (`[panel][k][16]`), so the
//! microkernel reads two 8-lane vectors of weights per k and broadcasts
//! one activation per row: 6 rows × 16 columns = 12 accumulators, 12 FMAs
//! per 2 vector loads and 6 broadcasts. Threads split the panels; each
//! panel stays in cache while every 6-row tile of the input passes.

use wide::f32x8;

const ROW_TILE: usize = 6;
const PANEL: usize = 16;

/// Weights `n × k`, packed in 16-column panels.
pub struct DenseMatrix {
    n: usize,
    k: usize,
    /// `[panel][k][16]`; the last panel is zero-padded.
    panels: Vec<f32>,
}

impl DenseMatrix {
    /// Packs row-major `n × k` weights.
    pub fn pack(w: &[f32], k: usize) -> Self {
        let n = w.len().checked_div(k).unwrap_or(0);
        let n_panels = n.div_ceil(PANEL);
        let mut panels = vec![0.0f32; n_panels * k * PANEL];
        for (c, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
            let (p, j) = (c / PANEL, c % PANEL);
            for (kk, v) in row.iter().enumerate() {
                panels[(p * k + kk) * PANEL + j] = *v;
            }
        }
        DenseMatrix { n, k, panels }
    }

    pub fn out_dim(&self) -> usize {
        self.n
    }
}

impl super::parallel::RowMatmul for DenseMatrix {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn matmul_into(&self, x: &[f32], y: &mut [f32], rows: &[usize]) {
        let (n, k) = (self.n, self.k);
        let m = x.len().checked_div(k).unwrap_or(0).min(rows.len());
        // Work item: one panel.
        super::parallel::column_blocks_into(y, n, &rows[..m], PANEL, |c0, c1| {
            let panel = &self.panels[c0 * k..(c0 + PANEL) * k];
            let width = c1 - c0;
            let mut out = vec![0.0f32; m * width];
            for r0 in (0..m).step_by(ROW_TILE) {
                let rows = ROW_TILE.min(m - r0);
                let tile = tile(x, k, r0, rows, panel);
                for (r, acc) in tile.iter().enumerate().take(rows) {
                    let mut row = [0.0f32; PANEL];
                    row[..8].copy_from_slice(&acc[0].to_array());
                    row[8..].copy_from_slice(&acc[1].to_array());
                    out[(r0 + r) * width..(r0 + r + 1) * width].copy_from_slice(&row[..width]);
                }
            }
            out
        })
    }
}

/// Rows `r0..r0 + rows` (at most 6; missing rows repeat the first and are
/// discarded) times one panel: `[row][half]` accumulators of 8 columns.
#[inline]
fn tile(x: &[f32], k: usize, r0: usize, rows: usize, panel: &[f32]) -> [[f32x8; 2]; ROW_TILE] {
    let xr: [&[f32]; ROW_TILE] = std::array::from_fn(|r| {
        let r = r0 + if r < rows { r } else { 0 };
        &x[r * k..(r + 1) * k]
    });
    let mut acc = [[f32x8::ZERO; 2]; ROW_TILE];
    for (kk, w) in panel.chunks_exact(PANEL).enumerate().take(k) {
        let w0 = f32x8::from(<[f32; 8]>::try_from(&w[..8]).unwrap_or_default());
        let w1 = f32x8::from(<[f32; 8]>::try_from(&w[8..]).unwrap_or_default());
        for (acc_r, xs) in acc.iter_mut().zip(&xr) {
            let xv = f32x8::splat(xs[kk]);
            acc_r[0] = xv.mul_add(w0, acc_r[0]);
            acc_r[1] = xv.mul_add(w1, acc_r[1]);
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowMatmul;

    fn matmul_rows(x: &[f32], w: &[f32], k: usize) -> Vec<f32> {
        DenseMatrix::pack(w, k).matmul(x)
    }

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
