//! The decode kernel on CPUs with AVX-512 VNNI: the same Q8_0 weights as
//! `q8` (32-value blocks, one f16 scale each), repacked at load so that
//! one 512-bit register holds 4 consecutive k of 16 output columns, which
//! is exactly `vpdpbusd`'s operand (16 lanes, each a 4-byte dot product
//! into an i32). A block of 32 k is then 8 instructions into one i32
//! vector per row and panel, with no horizontal sums and no per-lane
//! blends; the block's convert, scale and multiply-add happen once per
//! 8 `vpdpbusd`, and each scale vector serves every row of the tile.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so weights are stored
//! as `w + 128` (1..=255) and each row's i32 sum starts at `-128·Σx` of
//! its block: the offset cancels exactly in integers. Integer sums are
//! exact in any order, so the only rounding is the f32 chain over blocks,
//! `acc = (Σ w·x) · (dw·dx) + acc`, one per output, in block order, in
//! whatever tile the row lands: a row's result does not depend on the
//! other rows of the call (batch invariance), and the portable path below
//! reproduces it bit for bit.
//!
//! Layout: `[panel of 16 columns][block][4-k group (8)][column (16)][4]`
//! bytes (a 64-byte aligned line per group), scales `[panel][block][16]`.
//! Columns past `n` are zero weights with zero scales.

use super::q8::{self, Q8Matrix, BLOCK};
use half::f16;

const PANEL: usize = 16;
/// 4-byte groups per block.
const GROUPS: usize = BLOCK / 4;
/// Panels per tile.
const TILE_PANELS: usize = 2;
const MAX_ROWS: usize = 4;

/// One 64-byte line: 4 k of 16 columns.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

pub struct Q8Panels {
    n: usize,
    k: usize,
    /// `[panel][block][group]` lines.
    lines: Vec<Line>,
    /// `[panel][block][16]` f16 bits.
    scales: Vec<u16>,
    simd: bool,
}

/// Rows of activations: Q8_0 blocks, their scales, and `-128·Σx` per block.
struct XRows {
    quants: Vec<i8>,
    scales: Vec<f32>,
    offsets: Vec<i32>,
}

fn x_rows(x: &[f32]) -> XRows {
    let q8::Q8Rows { quants, scales } = q8::quantize_rows(x);
    let offsets = quants.chunks_exact(BLOCK).map(|b| -128 * b.iter().map(|&v| i32::from(v)).sum::<i32>()).collect();
    XRows { quants, scales, offsets }
}

/// Whether this process's decode rows take this kernel (`cpu::features`).
pub fn available() -> bool {
    super::cpu::features().avx512_vnni
}

impl Q8Panels {
    /// Repacks `q`'s blocks; `simd` picks the VNNI path (callers pass
    /// `available()`; tests pass `false` for the portable one).
    pub fn repack(q: &Q8Matrix, simd: bool) -> Self {
        let (n, k) = super::RowMatmul::dims(q);
        let kb = k / BLOCK;
        let (quants, wscales) = q.blocks();
        let n_panels = n.div_ceil(PANEL);
        let mut lines = vec![Line([128; 64]); n_panels * kb * GROUPS];
        let mut scales = vec![0u16; n_panels * kb * PANEL];
        for c in 0..n {
            let (p, j) = (c / PANEL, c % PANEL);
            for b in 0..kb {
                scales[(p * kb + b) * PANEL + j] = wscales[c * kb + b].to_bits();
                for g in 0..GROUPS {
                    let line = &mut lines[(p * kb + b) * GROUPS + g].0;
                    for t in 0..4 {
                        let w = quants[c * k + b * BLOCK + g * 4 + t];
                        line[j * 4 + t] = (i16::from(w) + 128) as u8;
                    }
                }
            }
        }
        Q8Panels { n, k, lines, scales, simd }
    }

    /// Rows `r0..r0 + R` against panels `p0..p0 + TILE_PANELS` (a panel
    /// past the last repeats the first; discarded by the caller).
    #[inline(always)]
    fn tile<const R: usize>(&self, x: &XRows, r0: usize, p0: usize) -> [[f32; TILE_PANELS * PANEL]; R] {
        let kb = self.k / BLOCK;
        let n_panels = self.n.div_ceil(PANEL);
        let panels: [usize; TILE_PANELS] = std::array::from_fn(|i| if p0 + i < n_panels { p0 + i } else { p0 });
        #[cfg(target_arch = "x86_64")]
        if self.simd && x.quants.len() >= (r0 + R) * self.k {
            // SAFETY: `simd` is set only when the CPU has AVX-512F, BW and
            // VNNI (`available`); the rows and panels are in bounds (checked
            // above and by construction: `panels < n_panels`).
            return unsafe { self.tile_vnni::<R>(x, r0, panels, kb) };
        }
        self.tile_portable::<R>(x, r0, panels, kb)
    }

    /// # Safety
    /// Needs AVX-512F, BW and VNNI; `x` holds rows `r0..r0 + R` and every
    /// panel index is below the number of panels.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile_vnni<const R: usize>(
        &self,
        x: &XRows,
        r0: usize,
        panels: [usize; TILE_PANELS],
        kb: usize,
    ) -> [[f32; TILE_PANELS * PANEL]; R] {
        use std::arch::x86_64::*;
        let k = self.k;
        let mut acc = [[_mm512_setzero_ps(); TILE_PANELS]; R];
        for b in 0..kb {
            // Two i32 chains per row and panel (even and odd groups): half
            // the dependency chain, the same exact integer sum.
            let mut sums = [[[_mm512_setzero_si512(); 2]; TILE_PANELS]; R];
            for (r, s) in sums.iter_mut().enumerate() {
                let start = _mm512_set1_epi32(x.offsets[(r0 + r) * kb + b]);
                for sp in s.iter_mut() {
                    sp[0] = start;
                }
            }
            for g in 0..GROUPS {
                // SAFETY: the line index is in bounds for every panel < n_panels.
                let w: [__m512i; TILE_PANELS] = std::array::from_fn(|i| unsafe {
                    _mm512_load_si512(self.lines.as_ptr().add((panels[i] * kb + b) * GROUPS + g).cast::<__m512i>())
                });
                for (r, s) in sums.iter_mut().enumerate() {
                    let at = (r0 + r) * k + b * BLOCK + g * 4;
                    // SAFETY: `at + 4 <= (r0 + R) * k <= quants.len()`.
                    let four = unsafe { std::ptr::read_unaligned(x.quants.as_ptr().add(at).cast::<i32>()) };
                    let xv = _mm512_set1_epi32(four);
                    for (sp, wp) in s.iter_mut().zip(&w) {
                        sp[g % 2] = _mm512_dpbusd_epi32(sp[g % 2], *wp, xv);
                    }
                }
            }
            // SAFETY: 16 f16 scales of this panel and block, in bounds.
            let dw: [__m512; TILE_PANELS] = std::array::from_fn(|i| unsafe {
                _mm512_cvtph_ps(_mm256_loadu_si256(
                    self.scales.as_ptr().add((panels[i] * kb + b) * PANEL).cast::<__m256i>(),
                ))
            });
            for (r, (a, s)) in acc.iter_mut().zip(&sums).enumerate() {
                let dx = _mm512_set1_ps(x.scales[(r0 + r) * kb + b]);
                for ((ap, sp), dwp) in a.iter_mut().zip(s).zip(&dw) {
                    let sum = _mm512_cvtepi32_ps(_mm512_add_epi32(sp[0], sp[1]));
                    *ap = _mm512_fmadd_ps(sum, _mm512_mul_ps(*dwp, dx), *ap);
                }
            }
        }
        let mut out = [[0f32; TILE_PANELS * PANEL]; R];
        for (o, a) in out.iter_mut().zip(&acc) {
            for (i, ap) in a.iter().enumerate() {
                // SAFETY: 16 f32 within the row's 32.
                unsafe { _mm512_storeu_ps(o.as_mut_ptr().add(i * PANEL), *ap) };
            }
        }
        out
    }

    /// The same arithmetic, column by column.
    fn tile_portable<const R: usize>(
        &self,
        x: &XRows,
        r0: usize,
        panels: [usize; TILE_PANELS],
        kb: usize,
    ) -> [[f32; TILE_PANELS * PANEL]; R] {
        let k = self.k;
        std::array::from_fn(|r| {
            std::array::from_fn(|c| {
                let (p, j) = (panels[c / PANEL], c % PANEL);
                let mut acc = 0f32;
                for b in 0..kb {
                    let mut sum = x.offsets[(r0 + r) * kb + b];
                    for g in 0..GROUPS {
                        let line = &self.lines[(p * kb + b) * GROUPS + g].0;
                        for t in 0..4 {
                            let xq = i32::from(x.quants[(r0 + r) * k + b * BLOCK + g * 4 + t]);
                            sum += i32::from(line[j * 4 + t]) * xq;
                        }
                    }
                    let scale =
                        f16::from_bits(self.scales[(p * kb + b) * PANEL + j]).to_f32() * x.scales[(r0 + r) * kb + b];
                    acc = (sum as f32).mul_add(scale, acc);
                }
                acc
            })
        })
    }

    /// Every row of `x` against columns `cols.0..cols.1` into `out`
    /// (`m × width`, row-major).
    fn tiles_into(&self, x: &XRows, m: usize, cols: (usize, usize), out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if self.simd {
            // SAFETY: `simd` is set only when the CPU has AVX-512F, BW and
            // VNNI (`available`).
            return unsafe { self.tiles_into_vnni(x, m, cols, out) };
        }
        self.tiles_loop(x, m, cols, out);
    }

    /// The tile loop compiled with the VNNI features, so `tile_vnni` is
    /// inlined into it (the crate is built for x86-64-v3: across a plain
    /// function's call it could not be).
    ///
    /// # Safety
    /// Needs AVX-512F, BW and VNNI.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tiles_into_vnni(&self, x: &XRows, m: usize, cols: (usize, usize), out: &mut [f32]) {
        self.tiles_loop(x, m, cols, out);
    }

    /// Column tiles outer, row groups inner: a tile's weights (32 columns
    /// × k bytes, 20 KB at k = 640) stay in L1 while every row group reads
    /// them. Rows outer re-streamed the whole item from memory once per
    /// 4 rows: a 262,144-column output projection (Gemma's vocabulary,
    /// 178 MB of Q8_0) was read 4 times per step at 16 sequences.
    #[inline(always)]
    fn tiles_loop(&self, x: &XRows, m: usize, (c0, c1): (usize, usize), out: &mut [f32]) {
        let width = c1 - c0;
        for c in (c0..c1).step_by(TILE_PANELS * PANEL) {
            let cols = (TILE_PANELS * PANEL).min(c1 - c);
            let mut r0 = 0;
            while r0 < m {
                let rows = MAX_ROWS.min(m - r0);
                let mut put = |tile: &[[f32; TILE_PANELS * PANEL]]| {
                    for (r, t) in tile.iter().enumerate() {
                        out[(r0 + r) * width + (c - c0)..][..cols].copy_from_slice(&t[..cols]);
                    }
                };
                match rows {
                    1 => put(&self.tile::<1>(x, r0, c / PANEL)),
                    2 => put(&self.tile::<2>(x, r0, c / PANEL)),
                    3 => put(&self.tile::<3>(x, r0, c / PANEL)),
                    _ => put(&self.tile::<4>(x, r0, c / PANEL)),
                }
                r0 += rows;
            }
        }
    }
}

/// Work items per thread: enough to balance, few enough that an item's
/// fixed cost (a buffer, a copy) stays small at one row.
const ITEMS_PER_THREAD: usize = 3;

impl super::parallel::RowMatmul for Q8Panels {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn matmul_into(&self, x: &[f32], y: &mut [f32], rows: &[usize]) {
        let (k, n) = (self.k, self.n);
        let m = x.len().checked_div(k).unwrap_or(0).min(rows.len());
        if m == 0 || n == 0 {
            return;
        }
        let xq = x_rows(&x[..m * k]);
        let items = super::parallel::threads() * ITEMS_PER_THREAD;
        // Items start on a tile boundary (32 columns).
        let item_width = n.div_ceil(items).next_multiple_of(TILE_PANELS * PANEL);
        super::parallel::column_blocks_into(y, n, &rows[..m], item_width, |c0, c1| {
            let mut out = vec![0.0f32; m * (c1 - c0)];
            self.tiles_into(&xq, m, (c0, c1), &mut out);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowMatmul;

    use crate::model::parallel::test_data as data;

    fn matrix(n: usize, k: usize, seed: u32, simd: bool) -> Q8Panels {
        let q = Q8Matrix::quantize(&data(n * k, seed), k).unwrap_or_else(|| unreachable!("k is a multiple of 32"));
        Q8Panels::repack(&q, simd)
    }

    fn paths() -> Vec<bool> {
        if available() {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    #[test]
    fn close_to_the_q8_kernel() {
        for simd in paths() {
            for (m, n, k) in [(1, 1, 32), (5, 37, 96), (9, 130, 64), (4, 48, 576)] {
                let x = data(m * k, 1);
                let q = Q8Matrix::quantize(&data(n * k, 2), k).unwrap_or_else(|| unreachable!());
                let want = q.matmul(&x);
                let got = Q8Panels::repack(&q, simd).matmul(&x);
                for (g, w) in got.iter().zip(&want) {
                    // The same integer block sums; only the f32 summation order differs.
                    assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "simd {simd} {m}x{n}x{k}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn rows_do_not_depend_on_their_neighbours() {
        let k = 64;
        let x = data(40 * k, 3);
        for simd in paths() {
            crate::model::parallel::assert_rows_independent(&format!("simd {simd}"), &matrix(70, k, 4, simd), &x);
        }
    }

    #[test]
    fn the_vnni_path_equals_the_portable_one_bit_for_bit() {
        if !available() {
            return;
        }
        let (m, n, k) = (7, 53, 160);
        let x = data(m * k, 5);
        assert_eq!(matrix(n, k, 6, true).matmul(&x), matrix(n, k, 6, false).matmul(&x));
    }
}
