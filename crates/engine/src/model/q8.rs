//! An int8 matmul for generated (decode) rows that reads each weight block
//! once for a tile of up to four rows, so a step decoding many sequences
//! costs far less per token than one decoding a single sequence (candle's
//! Q8_0 kernel does one matrix-vector product per row and gains nothing).
//!
//! Weights and activations are quantized in blocks of 32 with one f32
//! scale each, as GGML's Q8_0. A block's dot product is exact integer
//! arithmetic (AVX2 `maddubs` on |w| and x·sign(w), which cannot saturate
//! because both sides stay within ±127); each block lands in 8 f32 lanes
//! (lane `l` holds bytes `4l..4l+4`) with one fused multiply-add by
//! `dx·dw`, and the lanes are reduced in a fixed order. Nothing depends on
//! the other rows of the call, so a row's result is the same alone or in
//! any batch (batch invariance), and the portable fallback reproduces the
//! AVX2 path bit for bit.
//!
//! From four rows on the kernel is bound by arithmetic, not memory: on
//! this machine's Zen 3 cores the block loop (sign, maddubs, madd,
//! convert, scale, FMA) does ~36 GMAC/s per core even with everything in
//! L1. A kernel over the file's own Q4_1 nibbles (unsigned, so no `sign`,
//! and 20 bytes per block instead of 34) was measured and dropped: no
//! faster from two rows on, because the per-block scale product that any
//! per-32-block format needs remains (BENCHMARKS.md, "the step's serial
//! work onto both cores").
//!
//! On CPUs with AVX-512 VNNI, `decode_matrix` repacks these same blocks
//! for `q8_panels` instead (3x this kernel at 16 rows). A first VNNI
//! variant in this row-major layout, two blocks per `vpdpbusd`, was
//! slower than this AVX2 path (37–39 vs 44–45 GMAC/s at 4–32 rows): the
//! per-block convert, scale and FMA stayed, on vectors built by blends.
//! The panel layout is what removed them (BENCHMARKS.md, "Engine kernels
//! on AVX-512").

use half::f16;

pub const BLOCK: usize = 32;
const MAX_ROWS: usize = 4;
/// Columns whose weights stay in cache while every row tile passes.
const COL_BLOCK: usize = 64;
/// Work items per thread: enough to balance, few enough that the fixed
/// cost of an item (a buffer, a copy) stays small at one row.
const ITEMS_PER_THREAD: usize = 4;

/// Weights `n × k`, quantized per 32-value block. Scales are f16, as in
/// GGML's Q8_0: at one row the kernel streams every weight from memory
/// once per step, so 34 bytes per block instead of 36 is 6% more speed.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    quants: Vec<i8>,
    scales: Vec<f16>,
}

/// One quantized row of activations or column of weights: `kb` blocks of
/// 32 values and their scales.
type QRow<'a, S> = (&'a [i8], &'a [S]);

/// Rows of activations, quantized per block.
pub(super) struct Q8Rows {
    pub quants: Vec<i8>,
    pub scales: Vec<f32>,
}

/// Quantizes one block of activations (the portable path, and the
/// reference the AVX-512 one reproduces bit for bit).
fn quantize_block(x: &[f32], out: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, v) in out.iter_mut().zip(x) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    d
}

/// One 32-value block with AVX-512: the same maximum (exact in any
/// order), scale, product and rounding (half away from zero, as
/// `f32::round`: add the sign's 0.5⁻ and truncate, exact for every f32)
/// as `quantize_block`.
///
/// # Safety
/// Needs AVX-512F and BW; `x` and `out` hold at least 32 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_block_avx512(x: &[f32], out: &mut [i8]) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: 32 f32 in bounds (caller's contract).
    let v = unsafe { [_mm512_loadu_ps(x.as_ptr()), _mm512_loadu_ps(x.as_ptr().add(16))] };
    let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v[0]), _mm512_abs_ps(v[1])));
    let d = amax / 127.0;
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    let (inv, half, sign) = (_mm512_set1_ps(inv), _mm512_set1_ps(0.49999997), _mm512_set1_epi32(i32::MIN));
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    for (i, v) in v.iter().enumerate() {
        let t = _mm512_mul_ps(*v, inv);
        let signed_half = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_and_si512(_mm512_castps_si512(t), sign),
            _mm512_castps_si512(half),
        ));
        let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(_mm512_add_ps(t, signed_half));
        let q = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(r, lo), hi));
        // SAFETY: 16 bytes at `16 i` of the 32 (caller's contract).
        unsafe { _mm_storeu_si128(out.as_mut_ptr().add(16 * i).cast::<__m128i>(), _mm512_cvtepi32_epi8(q)) };
    }
    d
}

/// Every matmul of a step quantizes its rows on the calling thread while
/// the others wait, so this is vectorized by hand where the CPU allows:
/// the scalar loop was ~10 % of a decode step at 16 rows.
pub(super) fn quantize_rows(x: &[f32]) -> Q8Rows {
    quantize_rows_with(x, super::cpu::features().avx512_vnni)
}

/// The loop over blocks inside the AVX-512 function, so the block's code
/// is inlined (a call per 32 values was measurable).
///
/// # Safety
/// Needs AVX-512F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_blocks_avx512<'a>(blocks: impl Iterator<Item = (&'a [f32], &'a mut [i8])>) -> Vec<f32> {
    // SAFETY: the caller's CPU features; `chunks_exact` hands out whole
    // 32-value blocks.
    blocks.map(|(x, q)| unsafe { quantize_block_avx512(x, q) }).collect()
}

fn quantize_rows_with(x: &[f32], avx512: bool) -> Q8Rows {
    let mut quants = vec![0i8; x.len()];
    let blocks = x.chunks_exact(BLOCK).zip(quants.chunks_exact_mut(BLOCK));
    #[cfg(target_arch = "x86_64")]
    if avx512 {
        // SAFETY: `avx512_vnni` implies AVX-512F and BW (`cpu::detect`).
        let scales = unsafe { quantize_blocks_avx512(blocks) };
        return Q8Rows { quants, scales };
    }
    let _ = avx512;
    let scales = blocks.map(|(x, q)| quantize_block(x, q)).collect();
    Q8Rows { quants, scales }
}

/// The fixed-order sum of 8 lanes every path uses.
#[inline(always)]
fn reduce(l: [f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// The decode kernel over row-major `n × k` weights: Q8_0 repacked for
/// AVX-512 VNNI where the CPU has it (`q8_panels`), else this module's
/// AVX2 tiles. `None` when k is not a multiple of 32.
pub fn decode_matrix(w: &[f32], k: usize) -> Option<Box<dyn super::RowMatmul>> {
    let q = Q8Matrix::quantize(w, k)?;
    if super::q8_panels::available() {
        Some(Box::new(super::q8_panels::Q8Panels::repack(&q, true)))
    } else {
        Some(Box::new(q))
    }
}

impl Q8Matrix {
    /// Quantizes row-major `n × k` f32 weights; `None` when k is not a
    /// multiple of 32.
    pub fn quantize(w: &[f32], k: usize) -> Option<Self> {
        if k == 0 || !k.is_multiple_of(BLOCK) || !w.len().is_multiple_of(k) {
            return None;
        }
        let mut quants = vec![0i8; w.len()];
        let scales = w
            .chunks_exact(BLOCK)
            .zip(quants.chunks_exact_mut(BLOCK))
            .map(|(x, q)| {
                // Quantize against the scale as stored, so rounding the
                // scale to f16 costs no accuracy in the quants.
                let d = f16::from_f32(x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0);
                let inv = if d.to_f32() > 0.0 { 1.0 / d.to_f32() } else { 0.0 };
                for (o, v) in q.iter_mut().zip(x) {
                    *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
                }
                d
            })
            .collect();
        Some(Q8Matrix { n: w.len() / k, k, quants, scales })
    }

    pub fn out_dim(&self) -> usize {
        self.n
    }

    /// The quantized weights, row-major, and their per-block scales.
    pub fn blocks(&self) -> (&[i8], &[f16]) {
        (&self.quants, &self.scales)
    }

    /// Rows `r0..r0+R` against columns `cols.0..cols.1`, `C` at a time,
    /// into `out` (rows × the item's width, the item starting at
    /// `item.0`). A partial last column tile repeats its first column and
    /// discards the copies.
    fn tiles<const R: usize, const C: usize>(
        &self,
        xq: &Q8Rows,
        r0: usize,
        item: (usize, usize),
        (c0, c1): (usize, usize),
        out: &mut [f32],
    ) {
        let (k, kb) = (self.k, self.k / BLOCK);
        let width = item.1 - item.0;
        let xs: [QRow<f32>; R] =
            std::array::from_fn(|r| (&xq.quants[(r0 + r) * k..][..k], &xq.scales[(r0 + r) * kb..][..kb]));
        for c in (c0..c1).step_by(C) {
            let cols = C.min(c1 - c);
            let ws: [QRow<f16>; C] = std::array::from_fn(|j| {
                let col = c + if j < cols { j } else { 0 };
                (&self.quants[col * k..][..k], &self.scales[col * kb..][..kb])
            });
            let tile = tile::<R, C>(&xs, &ws, kb);
            for (r, tr) in tile.iter().enumerate() {
                for (j, v) in tr.iter().enumerate().take(cols) {
                    out[(r0 + r) * width + (c - item.0) + j] = *v;
                }
            }
        }
    }
}

impl super::parallel::RowMatmul for Q8Matrix {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn matmul_into(&self, x: &[f32], y: &mut [f32], rows: &[usize]) {
        let (k, n) = (self.k, self.n);
        let m = (x.len() / k).min(rows.len());
        if m == 0 || n == 0 {
            return;
        }
        let xq = quantize_rows(&x[..m * k]);
        let items = super::parallel::threads() * ITEMS_PER_THREAD;
        let item_width = n.div_ceil(items).next_multiple_of(8).max(32);
        super::parallel::column_blocks_into(y, n, &rows[..m], item_width, |c0, c1| {
            let mut out = vec![0.0f32; m * (c1 - c0)];
            for cb in (c0..c1).step_by(COL_BLOCK) {
                let cb_end = (cb + COL_BLOCK).min(c1);
                let mut r0 = 0;
                while r0 < m {
                    let rows = MAX_ROWS.min(m - r0);
                    // One column per tile keeps the weight stream sequential.
                    match rows {
                        1 => self.tiles::<1, 1>(&xq, r0, (c0, c1), (cb, cb_end), &mut out),
                        2 => self.tiles::<2, 1>(&xq, r0, (c0, c1), (cb, cb_end), &mut out),
                        3 => self.tiles::<3, 1>(&xq, r0, (c0, c1), (cb, cb_end), &mut out),
                        _ => self.tiles::<4, 1>(&xq, r0, (c0, c1), (cb, cb_end), &mut out),
                    }
                    r0 += rows;
                }
            }
            out
        })
    }
}

/// Dot products of `R` quantized rows with `C` quantized columns, each
/// slice holding `kb` blocks (the callers slice them so).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[inline(always)]
fn tile<const R: usize, const C: usize>(xs: &[QRow<f32>; R], ws: &[QRow<f16>; C], kb: usize) -> [[f32; C]; R] {
    let short = |q: &[i8], scales: usize| q.len() < kb * BLOCK || scales < kb;
    if xs.iter().any(|(q, s)| short(q, s.len())) || ws.iter().any(|(q, s)| short(q, s.len())) {
        return portable_tile(xs, ws, kb);
    }
    // SAFETY: the build enables AVX2 and FMA (the cfg above), and every
    // slice holds at least `kb` blocks (checked above).
    unsafe { tile_avx2(xs, ws, kb) }
}

/// # Safety
/// Needs AVX2 and FMA, and at least `kb` blocks in every slice.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma"))]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize, const C: usize>(
    xs: &[QRow<f32>; R],
    ws: &[QRow<f16>; C],
    kb: usize,
) -> [[f32; C]; R] {
    use std::arch::x86_64::*;
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); C]; R];
    let mut w = [_mm256_setzero_si256(); C];
    let mut w_abs = [_mm256_setzero_si256(); C];
    let mut w_scale = [_mm256_setzero_ps(); C];
    for b in 0..kb {
        for j in 0..C {
            // SAFETY: block `b < kb` lies within the slice (caller's contract).
            w[j] = unsafe { _mm256_loadu_si256(ws[j].0.as_ptr().add(b * BLOCK).cast::<__m256i>()) };
            w_abs[j] = _mm256_sign_epi8(w[j], w[j]);
            w_scale[j] = _mm256_set1_ps(ws[j].1[b].to_f32());
        }
        for r in 0..R {
            // SAFETY: as above.
            let x = unsafe { _mm256_loadu_si256(xs[r].0.as_ptr().add(b * BLOCK).cast::<__m256i>()) };
            let x_scale = _mm256_set1_ps(xs[r].1[b]);
            for j in 0..C {
                let products = _mm256_maddubs_epi16(w_abs[j], _mm256_sign_epi8(x, w[j]));
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(products, ones));
                acc[r][j] = _mm256_fmadd_ps(sums, _mm256_mul_ps(x_scale, w_scale[j]), acc[r][j]);
            }
        }
    }
    let mut out = [[0f32; C]; R];
    for r in 0..R {
        for j in 0..C {
            let mut l = [0f32; 8];
            // SAFETY: `l` is 8 f32s, exactly one unaligned 256-bit store.
            unsafe { _mm256_storeu_ps(l.as_mut_ptr(), acc[r][j]) };
            out[r][j] = reduce(l);
        }
    }
    out
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2", target_feature = "fma")))]
fn tile<const R: usize, const C: usize>(xs: &[QRow<f32>; R], ws: &[QRow<f16>; C], kb: usize) -> [[f32; C]; R] {
    portable_tile(xs, ws, kb)
}

/// The same arithmetic as the AVX2 path, lane by lane.
#[allow(dead_code)]
fn portable_tile<const R: usize, const C: usize>(xs: &[QRow<f32>; R], ws: &[QRow<f16>; C], kb: usize) -> [[f32; C]; R] {
    std::array::from_fn(|r| {
        std::array::from_fn(|j| {
            let (xq, xd) = xs[r];
            let (wq, wd) = ws[j];
            let mut lanes = [0f32; 8];
            for b in 0..kb.min(xd.len()).min(wd.len()) {
                let scale = xd[b] * wd[b].to_f32();
                for (l, lane) in lanes.iter_mut().enumerate() {
                    let i = b * BLOCK + 4 * l;
                    let sum: i32 = (i..i + 4).map(|i| i32::from(xq[i]) * i32::from(wq[i])).sum();
                    *lane = (sum as f32).mul_add(scale, *lane);
                }
            }
            reduce(lanes)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowMatmul;

    use crate::model::parallel::test_data as data;

    fn quantized(w: &[f32], k: usize) -> Q8Matrix {
        Q8Matrix::quantize(w, k).unwrap_or_else(|| unreachable!("k is a multiple of 32"))
    }

    #[test]
    fn close_to_the_f32_product() {
        let (m, n, k) = (5, 37, 96);
        let (x, w) = (data(m * k, 1), data(n * k, 2));
        let y = quantized(&w, k).matmul(&x);
        for r in 0..m {
            for c in 0..n {
                let exact: f32 = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
                let got = y[r * n + c];
                assert!((got - exact).abs() < 0.05 * (1.0 + exact.abs()), "{r},{c}: {got} vs {exact}");
            }
        }
    }

    #[test]
    fn rows_do_not_depend_on_their_neighbours() {
        let k = 64;
        let (x, w) = (data(40 * k, 3), data(70 * k, 4));
        crate::model::parallel::assert_rows_independent("q8", &quantized(&w, k), &x);
    }

    #[test]
    fn the_simd_path_equals_the_portable_one_bit_for_bit() {
        let (m, n, k) = (4, 6, 128);
        let (x, w) = (data(m * k, 5), data(n * k, 6));
        let (xq, wq) = (quantize_rows(&x), quantized(&w, k));
        let kb = k / BLOCK;
        let xs: [QRow<f32>; 4] =
            std::array::from_fn(|r| (&xq.quants[r * k..(r + 1) * k], &xq.scales[r * kb..(r + 1) * kb]));
        let ws: [QRow<f16>; 2] =
            std::array::from_fn(|j| (&wq.quants[j * k..(j + 1) * k], &wq.scales[j * kb..(j + 1) * kb]));
        assert_eq!(tile::<4, 2>(&xs, &ws, kb), portable_tile::<4, 2>(&xs, &ws, kb));
    }

    #[test]
    fn extreme_values_do_not_saturate() {
        // Every product at the ±127 limit, both signs: exact integer sums.
        let k = 64;
        let x: Vec<f32> = (0..k).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
        let w: Vec<f32> = (0..k).map(|i| if i % 2 == 0 { -1.0 } else { 1.0 }).collect();
        let exact: f32 = x.iter().zip(&w).map(|(a, b)| a * b).sum();
        let q = quantized(&w, k);
        // This kernel, and the VNNI panels' portable and (where the CPU
        // has it) VNNI paths over the same blocks.
        let panels = |simd| Box::new(super::super::q8_panels::Q8Panels::repack(&q, simd)) as Box<dyn RowMatmul>;
        let mut kernels = vec![("panels, portable", panels(false))];
        if super::super::q8_panels::available() {
            kernels.push(("panels, VNNI", panels(true)));
        }
        kernels.push(("q8", Box::new(q)));
        for (label, mm) in kernels {
            let y = mm.matmul(&x);
            assert!((y[0] - exact).abs() < 1e-3, "{label}: {} vs {exact}", y[0]);
        }
    }

    #[test]
    fn vectorized_quantization_equals_the_scalar_one() {
        if !crate::model::cpu::features().avx512_vnni {
            return;
        }
        // Ties (x.5) both ways, the value just below a half, zeros, and a
        // block whose maximum is 127 so the scale is exactly 1.
        let mut x = data(64 * 32, 9);
        x[..8].copy_from_slice(&[127.0, 0.5, -0.5, 2.5, -3.5, 0.49999997, -126.5, 0.0]);
        x[32..64].fill(0.0);
        let (fast, slow) = (quantize_rows_with(&x, true), quantize_rows_with(&x, false));
        assert_eq!(fast.quants, slow.quants);
        assert_eq!(fast.scales, slow.scales);
        assert_eq!(&slow.quants[..8], &[127, 1, -1, 3, -4, 0, -127, 0]);
    }

    #[test]
    fn rejects_widths_not_divisible_by_the_block() {
        assert!(Q8Matrix::quantize(&[0.0; 40], 40).is_none());
    }
}
