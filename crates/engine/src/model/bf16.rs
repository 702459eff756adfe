//! A matmul for prompt rows over weights held as bfloat16: half the memory
//! of an f32 copy, and on CPUs with AVX-512 BF16 twice the multiply-adds
//! per instruction (`vdpbf16ps`: 16 lanes × 2 products into f32).
//!
//! Layout: panels of 16 output columns, k in pairs, `[panel][k/2][16][2]`
//! (k padded to even with zeros), so one 512-bit load holds a k-pair of
//! 16 columns, exactly `vdpbf16ps`'s operand. Two paths, chosen once at
//! run time (`kernel()`):
//!
//! - `Avx512Bf16`: activations rounded to bf16 (nearest-even), each
//!   k-pair broadcast and multiplied into f32 lanes; 6 rows × 32 columns
//!   per tile.
//! - `Avx2`: the same bf16 weights widened to f32 in registers (a shift and
//!   a mask), f32 activations, FMA; 6 rows × 16 columns per tile. Also
//!   what runs where AVX-512 BF16 is missing, and what
//!   `SWITCHYARD_KERNELS=avx2` forces (CI tests both paths; `cpu`).
//!
//! In both, every output element is one chain over k in order, whatever
//! the tile it lands in, so a row's result does not depend on the other
//! rows of the call (batch invariance). The two paths differ from each
//! other in the last bits (bf16 vs f32 activations).

/// Weights `n × k` as bf16 bits, in 16-column panels of k-pairs.
pub struct Bf16Matrix {
    n: usize,
    k: usize,
    /// `[panel][k_pairs][16][2]`; the last panel and odd k zero-padded.
    panels: Vec<u16>,
    kernel: Kernel,
}

const ROW_TILE: usize = 6;
const PANEL: usize = 16;

/// Which instructions the prompt kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Avx512Bf16,
    Avx2,
    Portable,
}

/// The kernel this process uses (`cpu::features`).
pub fn kernel() -> Kernel {
    kernel_for(super::cpu::features())
}

fn kernel_for(f: super::cpu::Features) -> Kernel {
    if f.avx512_bf16 {
        Kernel::Avx512Bf16
    } else if f.avx2 {
        Kernel::Avx2
    } else {
        Kernel::Portable
    }
}

/// The prompt kernel over row-major `n × k` weights: bf16, or with
/// `SWITCHYARD_KERNELS=f32` (to compare) the previous f32 copy (`dense`).
pub fn prompt_matrix(w: &[f32], k: usize) -> Box<dyn super::RowMatmul> {
    if super::cpu::f32_prompt_weights() {
        Box::new(super::dense::DenseMatrix::pack(w, k))
    } else {
        Box::new(Bf16Matrix::pack(w, k))
    }
}

/// f32 → bf16 bits, rounding to nearest even (NaN stays NaN).
pub fn to_bf16(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Rows of `k` activations as k-pairs of bf16 bits (lo = even k; an odd
/// k's last pair has 0 above).
fn bf16_pairs(x: &[f32], k: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let mut out = vec![0u32; x.len().checked_div(k).unwrap_or(0) * pairs];
    for (dst, row) in out.chunks_exact_mut(pairs).zip(x.chunks_exact(k)) {
        for (d, p) in dst.iter_mut().zip(row.chunks_exact(2)) {
            *d = u32::from(to_bf16(p[0])) | (u32::from(to_bf16(p[1])) << 16);
        }
        if let (Some(d), [last]) = (dst.last_mut(), row.chunks_exact(2).remainder()) {
            *d = u32::from(to_bf16(*last));
        }
    }
    out
}

/// bf16 bits → f32 (exact).
pub fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

impl Bf16Matrix {
    /// Packs row-major `n × k` f32 weights (rounded to bf16).
    pub fn pack(w: &[f32], k: usize) -> Self {
        Self::pack_for(w, k, kernel())
    }

    fn pack_for(w: &[f32], k: usize, kernel: Kernel) -> Self {
        let n = w.len().checked_div(k).unwrap_or(0);
        let pairs = k.div_ceil(2);
        let n_panels = n.div_ceil(PANEL);
        let mut panels = vec![0u16; n_panels * pairs * PANEL * 2];
        for (c, row) in w.chunks_exact(k.max(1)).enumerate().take(n) {
            let (p, j) = (c / PANEL, c % PANEL);
            for (kk, v) in row.iter().enumerate() {
                panels[((p * pairs + kk / 2) * PANEL + j) * 2 + kk % 2] = to_bf16(*v);
            }
        }
        Bf16Matrix { n, k, panels, kernel }
    }

    pub fn out_dim(&self) -> usize {
        self.n
    }

    /// Bytes the weights take.
    pub fn bytes(&self) -> usize {
        self.panels.len() * 2
    }
}

impl super::parallel::RowMatmul for Bf16Matrix {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    fn matmul_into(&self, x: &[f32], y: &mut [f32], rows: &[usize]) {
        let (n, k) = (self.n, self.k);
        let m = x.len().checked_div(k).unwrap_or(0).min(rows.len());
        if m == 0 || n == 0 {
            return;
        }
        let pairs = k.div_ceil(2);
        // Activations as k-pairs: bf16 bits (lo = even k) for the BF16
        // path, f32 (odd k padded with 0) for the others. Plain loops over
        // slices, which vectorize (iterator adaptors here did not, and
        // were ~4 % of a 512-token prompt on one thread).
        let xb: Vec<u32> = match self.kernel {
            Kernel::Avx512Bf16 => bf16_pairs(&x[..m * k], k),
            _ => Vec::new(),
        };
        let xf: Vec<f32> = match self.kernel {
            Kernel::Avx512Bf16 => Vec::new(),
            _ => {
                let mut xf = vec![0.0f32; m * 2 * pairs];
                for (dst, row) in xf.chunks_exact_mut(2 * pairs).zip(x.chunks_exact(k)) {
                    dst[..k].copy_from_slice(row);
                }
                xf
            }
        };
        let panel_len = pairs * PANEL * 2;
        // Work item: two panels (32 columns).
        super::parallel::column_blocks_into(y, n, &rows[..m], 2 * PANEL, |c0, c1| {
            let first = c0 / PANEL;
            let count = (c1 - c0).div_ceil(PANEL);
            let panels: [&[u16]; 2] = std::array::from_fn(|p| {
                let p = first + p.min(count - 1);
                &self.panels[p * panel_len..(p + 1) * panel_len]
            });
            let width = c1 - c0;
            let mut out = vec![0.0f32; m * width];
            for r0 in (0..m).step_by(ROW_TILE) {
                let rows = ROW_TILE.min(m - r0);
                let tile = match self.kernel {
                    Kernel::Avx512Bf16 => tile_bf16(&xb, pairs, r0, rows, panels),
                    Kernel::Avx2 => tile_f32(&xf, pairs, r0, rows, panels, true),
                    Kernel::Portable => tile_f32(&xf, pairs, r0, rows, panels, false),
                };
                for (r, acc) in tile.iter().enumerate().take(rows) {
                    out[(r0 + r) * width..(r0 + r + 1) * width].copy_from_slice(&acc[..width]);
                }
            }
            out
        })
    }
}

type Tile = [[f32; 2 * PANEL]; ROW_TILE];

/// Rows `r0..r0 + rows` (missing rows repeat the first; discarded) times
/// two panels, through `vdpbf16ps`.
fn tile_bf16(xb: &[u32], pairs: usize, r0: usize, rows: usize, panels: [&[u16]; 2]) -> Tile {
    #[cfg(target_arch = "x86_64")]
    {
        let ok = panels.iter().all(|p| p.len() >= pairs * PANEL * 2) && xb.len() >= (r0 + rows) * pairs;
        if ok {
            // SAFETY: chosen only when the CPU has AVX-512F and BF16
            // (`detect`); the slices were checked to hold every k-pair.
            return unsafe { tile_bf16_avx512(xb, pairs, r0, rows, panels) };
        }
    }
    // Not reached on a CPU without BF16 (`detect` never picks it there).
    let xf: Vec<f32> = xb.iter().flat_map(|p| [from_bf16(*p as u16), from_bf16((p >> 16) as u16)]).collect();
    tile_f32(&xf, pairs, r0, rows, panels, false)
}

/// # Safety
/// Needs AVX-512F and AVX-512 BF16; every panel holds `pairs` k-pairs and
/// `xb` the rows' pairs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_bf16_avx512(xb: &[u32], pairs: usize, r0: usize, rows: usize, panels: [&[u16]; 2]) -> Tile {
    use std::arch::x86_64::*;
    let xr: [&[u32]; ROW_TILE] = std::array::from_fn(|r| {
        let r = r0 + if r < rows { r } else { 0 };
        &xb[r * pairs..(r + 1) * pairs]
    });
    let mut acc = [[_mm512_setzero_ps(); 2]; ROW_TILE];
    for i in 0..pairs {
        // SAFETY: pair `i < pairs` of each panel is 32 u16 (64 bytes) in bounds.
        let w: [__m512bh; 2] = std::array::from_fn(|p| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                panels[p].as_ptr().add(i * PANEL * 2).cast::<__m512i>(),
            ))
        });
        for (acc_r, x) in acc.iter_mut().zip(&xr) {
            // SAFETY: a bf16 pair per 32-bit lane is exactly `__m512bh`.
            let xv = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(x[i] as i32)) };
            acc_r[0] = _mm512_dpbf16_ps(acc_r[0], w[0], xv);
            acc_r[1] = _mm512_dpbf16_ps(acc_r[1], w[1], xv);
        }
    }
    let mut out = [[0f32; 2 * PANEL]; ROW_TILE];
    for (o, a) in out.iter_mut().zip(&acc) {
        // SAFETY: `o` is 32 f32s: two unaligned 512-bit stores.
        unsafe {
            _mm512_storeu_ps(o.as_mut_ptr(), a[0]);
            _mm512_storeu_ps(o.as_mut_ptr().add(PANEL), a[1]);
        }
    }
    out
}

/// The same tile with f32 activations and the weights widened to f32: per
/// k-pair, `acc += x[2i]·w[2i]`, then `acc += x[2i+1]·w[2i+1]`, each a
/// fused multiply-add (`simd`: AVX2, 8 lanes; else the same chain lane by
/// lane, bit for bit).
fn tile_f32(xf: &[f32], pairs: usize, r0: usize, rows: usize, panels: [&[u16]; 2], simd: bool) -> Tile {
    #[cfg(target_arch = "x86_64")]
    {
        let ok = panels.iter().all(|p| p.len() >= pairs * PANEL * 2) && xf.len() >= (r0 + rows) * 2 * pairs;
        if simd && ok {
            // SAFETY: `simd` is set only when the CPU has AVX2 and FMA
            // (`detect`); the slices were checked to hold every k-pair.
            return unsafe { tile_f32_avx2(xf, pairs, r0, rows, panels) };
        }
    }
    let _ = simd;
    let mut out = [[0f32; 2 * PANEL]; ROW_TILE];
    for (r, o) in out.iter_mut().enumerate() {
        let row = r0 + if r < rows { r } else { 0 };
        let x = &xf[row * 2 * pairs..(row + 1) * 2 * pairs];
        for (c, acc) in o.iter_mut().enumerate() {
            let (p, j) = (c / PANEL, c % PANEL);
            for i in 0..pairs {
                let w = &panels[p][(i * PANEL + j) * 2..][..2];
                *acc = x[2 * i].mul_add(from_bf16(w[0]), *acc);
                *acc = x[2 * i + 1].mul_add(from_bf16(w[1]), *acc);
            }
        }
    }
    out
}

/// # Safety
/// Needs AVX2 and FMA; every panel holds `pairs` k-pairs and `xf` the
/// rows' `2·pairs` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_f32_avx2(xf: &[f32], pairs: usize, r0: usize, rows: usize, panels: [&[u16]; 2]) -> Tile {
    use std::arch::x86_64::*;
    let xr: [&[f32]; ROW_TILE] = std::array::from_fn(|r| {
        let r = r0 + if r < rows { r } else { 0 };
        &xf[r * 2 * pairs..(r + 1) * 2 * pairs]
    });
    let high = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
    let mut out = [[0f32; 2 * PANEL]; ROW_TILE];
    // One panel at a time: 6 rows × 16 columns = 12 accumulators.
    for (p, panel) in panels.iter().enumerate() {
        let mut acc = [[_mm256_setzero_ps(); 2]; ROW_TILE];
        for i in 0..pairs {
            // Columns 0–7 and 8–15 of pair i: 16 u16 (32 bytes) each.
            let [lo, hi]: [__m256i; 2] = std::array::from_fn(|h| {
                // SAFETY: pair `i < pairs` is 32 u16 in bounds.
                unsafe { _mm256_loadu_si256(panel.as_ptr().add(i * PANEL * 2 + h * 16).cast::<__m256i>()) }
            });
            // Even k: the low u16 of each lane moved up; odd k: the high u16 kept.
            let even = [_mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)), _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16))];
            let odd =
                [_mm256_castsi256_ps(_mm256_and_si256(lo, high)), _mm256_castsi256_ps(_mm256_and_si256(hi, high))];
            for (acc_r, x) in acc.iter_mut().zip(&xr) {
                let (x0, x1) = (_mm256_set1_ps(x[2 * i]), _mm256_set1_ps(x[2 * i + 1]));
                for h in 0..2 {
                    acc_r[h] = _mm256_fmadd_ps(x0, even[h], acc_r[h]);
                    acc_r[h] = _mm256_fmadd_ps(x1, odd[h], acc_r[h]);
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&acc) {
            // SAFETY: 8 f32s per store, within the row's 32.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr().add(p * PANEL), a[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(p * PANEL + 8), a[1]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RowMatmul;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0).collect()
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

    fn detect(asked: &str) -> Kernel {
        kernel_for(crate::model::cpu::detect(asked))
    }

    fn kernels() -> Vec<Kernel> {
        // Every path this CPU can run.
        [Kernel::Portable, Kernel::Avx2, Kernel::Avx512Bf16]
            .into_iter()
            .filter(|k| {
                *k == Kernel::Portable
                    || detect("") == Kernel::Avx512Bf16
                    || (*k == Kernel::Avx2 && detect("avx2") == Kernel::Avx2)
            })
            .collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3F80);
        assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0, "a tie rounds to even");
        assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn close_to_the_f32_product_on_every_path() {
        for kernel in kernels() {
            for (m, n, k) in [(1, 1, 8), (3, 5, 13), (9, 130, 64), (17, 67, 100), (7, 40, 576)] {
                let (x, w) = (data(m * k, 1), data(n * k, 2));
                let got = Bf16Matrix::pack_for(&w, k, kernel).matmul(&x);
                for (g, e) in got.iter().zip(naive(&x, &w, k)) {
                    // bf16 keeps 8 bits: ~0.4 % per product, averaging out.
                    assert!((g - e).abs() < 0.02 * (1.0 + (k as f32).sqrt()), "{kernel:?} {m}x{n}x{k}: {g} vs {e}");
                }
            }
        }
    }

    #[test]
    fn rows_do_not_depend_on_their_neighbours_on_every_path() {
        let k = 96;
        let (x, w) = (data(40 * k, 3), data(70 * k, 4));
        for kernel in kernels() {
            let q = Bf16Matrix::pack_for(&w, k, kernel);
            crate::model::parallel::assert_rows_independent(&format!("{kernel:?}"), &q, &x);
        }
    }

    #[test]
    fn the_avx2_path_equals_the_portable_one_bit_for_bit() {
        if detect("avx2") != Kernel::Avx2 {
            return;
        }
        let k = 100;
        let (x, w) = (data(9 * k, 5), data(45 * k, 6));
        let simd = Bf16Matrix::pack_for(&w, k, Kernel::Avx2).matmul(&x);
        let portable = Bf16Matrix::pack_for(&w, k, Kernel::Portable).matmul(&x);
        assert_eq!(simd, portable);
    }

    #[test]
    fn activation_pairs_hold_every_value_in_order() {
        for k in [1, 2, 7, 64] {
            let x = data(3 * k, 8);
            let pairs = bf16_pairs(&x, k);
            let back: Vec<f32> = pairs
                .chunks_exact(k.div_ceil(2))
                .flat_map(|row| row.iter().flat_map(|p| [from_bf16(*p as u16), from_bf16((p >> 16) as u16)]).take(k))
                .collect();
            let want: Vec<f32> = x.iter().map(|v| from_bf16(to_bf16(*v))).collect();
            assert_eq!(back, want, "k {k}");
            if k % 2 == 1 {
                assert!(pairs.chunks_exact(k.div_ceil(2)).all(|row| row[row.len() - 1] >> 16 == 0), "k {k}: padding");
            }
        }
    }

    #[test]
    fn half_the_bytes_of_f32() {
        let m = Bf16Matrix::pack_for(&data(64 * 576, 7), 576, Kernel::Portable);
        assert_eq!(m.bytes(), 64 * 576 * 2);
    }
}
