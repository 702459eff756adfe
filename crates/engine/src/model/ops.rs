//! Row-wise kernels on plain f32 slices. The model is small enough that
//! candle's per-op allocation and dispatch would cost more than the math.

use wide::f32x8;

const LANES: usize = 8;

/// RMS norm of each `dim`-wide row, scaled by `weight`, written into `out`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    let parallel = out.len() >= super::parallel::PARALLEL_MIN_VALUES;
    super::parallel::rows_mut(out, dim, parallel, |r, dst| {
        let Some(row) = x.get(r * dim..(r + 1) * dim) else { return };
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for ((d, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *d = v * scale * w;
        }
    });
}

/// RMS norm of each `weight.len()`-wide head of `x`, in place (Qwen 3 and
/// Gemma 3 normalise every query and key head on its own).
pub fn rms_norm_heads(x: &mut [f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    for head in x.chunks_exact_mut(dim) {
        let mean_sq = head.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for (v, w) in head.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// `gate_up` rows are `[gate (n_ff) | up (n_ff)]`; returns `silu(gate) * up`.
pub fn swiglu(gate_up: &[f32], n_ff: usize) -> Vec<f32> {
    gated(gate_up, n_ff, |g| g / (f32x8::ONE + (-g).exp()))
}

/// The same with GELU's tanh approximation: `gelu(gate) * up` (Gemma's GeGLU).
pub fn geglu(gate_up: &[f32], n_ff: usize) -> Vec<f32> {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    gated(gate_up, n_ff, |g| {
        let inner = f32x8::splat(SQRT_2_OVER_PI) * (g + f32x8::splat(0.044_715) * g * g * g);
        // tanh(z) = 1 - 2 / (1 + e^{2z}), which saturates cleanly at both ends.
        let tanh = f32x8::ONE - f32x8::splat(2.0) / (f32x8::ONE + (inner + inner).exp());
        f32x8::splat(0.5) * g * (f32x8::ONE + tanh)
    })
}

/// `act(gate) * up` per row, eight lanes at a time (the tail through the
/// same code, padded, so every element gets the same function).
fn gated(gate_up: &[f32], n_ff: usize, act: impl Fn(f32x8) -> f32x8 + Sync) -> Vec<f32> {
    let rows = gate_up.len() / (2 * n_ff);
    let mut out = vec![0.0f32; rows * n_ff];
    let act_mul = |g: &[f32], u: &[f32], o: &mut [f32]| {
        let (mut ga, mut ua) = ([0.0f32; LANES], [0.0f32; LANES]);
        ga[..g.len()].copy_from_slice(g);
        ua[..u.len()].copy_from_slice(u);
        let r = act(f32x8::from(ga)) * f32x8::from(ua);
        o.copy_from_slice(&r.to_array()[..o.len()]);
    };
    let parallel = out.len() >= super::parallel::PARALLEL_MIN_VALUES;
    super::parallel::rows_mut(&mut out, n_ff, parallel, |r, dst| {
        let Some(row) = gate_up.get(r * 2 * n_ff..(r + 1) * 2 * n_ff) else { return };
        let (gate, up) = row.split_at(n_ff);
        for ((g, u), o) in gate.chunks(LANES).zip(up.chunks(LANES)).zip(dst.chunks_mut(LANES)) {
            act_mul(g, u, o);
        }
    });
    out
}

/// `c · tanh(v / c)` in place (Gemma 2's soft-capping of scores and logits).
pub fn softcap(values: &mut [f32], c: f32) {
    for v in values.iter_mut() {
        *v = c * (*v / c).tanh();
    }
}

/// Attention scores of one query head against one block of 16 keys stored
/// transposed (`keys[d * 16 + slot]`): `out[slot] = scale · q·k_slot`,
/// each an FMA chain over d in order.
#[inline]
pub fn block_scores(q: &[f32], keys: &[f32], scale: f32, out: &mut [f32]) {
    let (mut a, mut b) = (f32x8::ZERO, f32x8::ZERO);
    for (qd, k) in q.iter().zip(keys.chunks_exact(2 * LANES)) {
        let qv = f32x8::splat(*qd);
        a = qv.mul_add(lanes(k), a);
        b = qv.mul_add(lanes(&k[LANES..]), b);
    }
    let s = f32x8::splat(scale);
    out[..LANES].copy_from_slice(&(a * s).to_array());
    out[LANES..2 * LANES].copy_from_slice(&(b * s).to_array());
}

/// `acc += Σ_j p_j · v_j` over one block of values: row `j` of the head's
/// values is `values[j * stride + off..][..8 * N]`. The head's output stays
/// in registers across the whole context (a fixed `N` lets the compiler
/// keep the accumulators out of memory); positions are summed in order.
#[inline]
pub fn weighted_sum<const N: usize>(acc: &mut [f32x8; N], values: &[f32], stride: usize, off: usize, p: &[f32]) {
    for (row, w) in values.chunks_exact(stride).zip(p) {
        let pv = f32x8::splat(*w);
        let Some(row) = row.get(off..off + N * LANES) else { return };
        for (a, c) in acc.iter_mut().zip(row.chunks_exact(LANES)) {
            *a = pv.mul_add(lanes(c), *a);
        }
    }
}

/// Sum of the 8 lanes in a fixed pairwise order (part of batch invariance:
/// a row's result never depends on how its work was scheduled).
#[inline]
pub(crate) fn reduce(v: f32x8) -> f32 {
    let l = v.to_array();
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
}

/// The first 8 values of `s` as one SIMD vector.
#[inline]
pub(crate) fn lanes(s: &[f32]) -> f32x8 {
    let mut a = [0.0f32; 8];
    a.copy_from_slice(&s[..8]);
    f32x8::from(a)
}

/// `acc += scale · x` (the residual add; `scale` is 1 but for Granite).
pub fn add_scaled(acc: &mut [f32], x: &[f32], scale: f32) {
    if scale == 1.0 {
        for (a, b) in acc.iter_mut().zip(x) {
            *a += b;
        }
    } else {
        for (a, b) in acc.iter_mut().zip(x) {
            *a += scale * b;
        }
    }
}

/// Softmax over `xs` in place (numerically stable).
pub fn softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // Eight exponentials at a time (attention calls this for every head of
    // every row over the whole context); the tail goes through the same
    // vector code, padded, so every element gets the same function.
    let m = f32x8::splat(max);
    let mut sums = f32x8::ZERO;
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        let e = (lanes(c) - m).exp();
        sums += e;
        c.copy_from_slice(&e.to_array());
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut pad = [f32::NEG_INFINITY; LANES];
        pad[..tail.len()].copy_from_slice(tail);
        let e = (f32x8::from(pad) - m).exp();
        sums += e;
        tail.copy_from_slice(&e.to_array()[..tail.len()]);
    }
    let sum = reduce(sums);
    if sum > 0.0 {
        let inv = 1.0 / sum;
        for v in xs.iter_mut() {
            *v *= inv;
        }
    }
}

/// Precomputed rotary-embedding angles for every position up to the context.
pub struct RopeTable {
    half: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Angles `pos / scale · θ^(-2i/d) / factor_i` for every position; the
    /// factors (Llama 3.1, LongRoPE) default to 1.
    pub fn new(head_dim: usize, max_positions: usize, theta: f32, scale: f32, factors: Option<&[f32]>) -> Self {
        let half = head_dim / 2;
        let freqs: Vec<f32> = (0..half)
            .map(|i| {
                let f = 1.0 / theta.powf((2 * i) as f32 / head_dim as f32);
                f / factors.and_then(|fs| fs.get(i)).copied().unwrap_or(1.0)
            })
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            let p = pos as f32 / scale;
            for f in &freqs {
                let angle = p * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { half, cos, sin }
    }

    pub fn max_positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates each head of one token's `x` (heads × head_dim) at `pos`,
    /// pairing dimensions as the family does (`RopeStyle`).
    pub fn apply(&self, x: &mut [f32], pos: usize, style: super::config::RopeStyle) {
        let half = self.half;
        let base = pos * half;
        let (cos, sin) = (&self.cos[base..base + half], &self.sin[base..base + half]);
        for head in x.chunks_exact_mut(2 * half) {
            match style {
                super::config::RopeStyle::Interleaved => {
                    for i in 0..half {
                        let (a, b) = (head[2 * i], head[2 * i + 1]);
                        head[2 * i] = a * cos[i] - b * sin[i];
                        head[2 * i + 1] = a * sin[i] + b * cos[i];
                    }
                }
                super::config::RopeStyle::Neox => {
                    let (lo, hi) = head.split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * cos[i] - b * sin[i];
                        hi[i] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let x = [3.0f32, 4.0, 0.0, 0.0];
        let mut out = [0.0; 4];
        rms_norm(&x, &[1.0; 4], 0.0, &mut out);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-5);
    }

    #[test]
    fn geglu_matches_the_tanh_gelu_formula() {
        let g: Vec<f32> = (0..19).map(|i| (i as f32 - 9.0) * 0.9).collect();
        let gate_up: Vec<f32> = g.iter().chain(std::iter::repeat_n(&2.0, 19)).copied().collect();
        for (a, x) in geglu(&gate_up, 19).iter().zip(&g) {
            let want = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh()) * 2.0;
            assert!((a - want).abs() <= 1e-5 * (1.0 + want.abs()), "{x}: {a} vs {want}");
        }
    }

    #[test]
    fn softmax_sums_to_one_and_handles_neg_inf() {
        let mut x = [1.0f32, 2.0, f32::NEG_INFINITY];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[2], 0.0);
    }

    #[test]
    fn vector_softmax_and_swiglu_match_scalar_math() {
        for n in [1usize, 7, 8, 9, 16, 37, 200] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = x.iter().map(|v| (v - max).exp()).sum();
            let mut got = x.clone();
            softmax_in_place(&mut got);
            for (g, v) in got.iter().zip(&x) {
                assert!((g - (v - max).exp() / total).abs() < 1e-6, "n={n}");
            }
            let gate_up: Vec<f32> = x.iter().chain(x.iter().rev()).copied().collect();
            let act = swiglu(&gate_up, n);
            for (i, a) in act.iter().enumerate() {
                let (g, u) = (x[i], x[n - 1 - i]);
                let want = g / (1.0 + (-g).exp()) * u;
                assert!((a - want).abs() <= 1e-5 * (1.0 + want.abs()), "n={n} i={i}: {a} vs {want}");
            }
        }
    }

    #[test]
    fn block_scores_and_weighted_sum_match_scalar() {
        let hd = 64;
        let q: Vec<f32> = (0..hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let keys: Vec<Vec<f32>> =
            (0..16).map(|s| (0..hd).map(|d| ((s * 7 + d) as f32 * 0.11).cos()).collect()).collect();
        let transposed: Vec<f32> = (0..hd).flat_map(|d| keys.iter().map(move |k| k[d])).collect();
        let mut out = [0.0f32; 16];
        block_scores(&q, &transposed, 0.5, &mut out);
        for (s, k) in keys.iter().enumerate() {
            let want: f32 = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * 0.5;
            assert!((out[s] - want).abs() < 1e-4, "slot {s}");
        }
        let p: Vec<f32> = (0..16).map(|i| i as f32 / 100.0).collect();
        // Rows of 80 values; the head is the 64 after an offset of 8.
        let rows: Vec<f32> = keys.iter().flat_map(|k| [vec![9.0; 8], k.clone(), vec![9.0; 8]].concat()).collect();
        let mut acc = [f32x8::ZERO; 8];
        weighted_sum(&mut acc, &rows, 80, 8, &p);
        let sum: Vec<f32> = acc.iter().flat_map(|a| a.to_array()).collect();
        for d in 0..hd {
            let want: f32 = keys.iter().zip(&p).map(|(k, w)| k[d] * w).sum();
            assert!((sum[d] - want).abs() < 1e-5, "dim {d}");
        }
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        use crate::model::RopeStyle;
        let t = RopeTable::new(4, 8, 10_000.0, 1.0, None);
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            let mut x = [1.0f32, 2.0, 3.0, 4.0];
            t.apply(&mut x, 0, style);
            assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
            t.apply(&mut x, 5, style);
            let norm: f32 = x.iter().map(|v| v * v).sum();
            assert!((norm - 30.0).abs() < 1e-4);
        }
        // NeoX pairs x[i] with x[i + d/2]: at position 1 the first
        // dimension (frequency 1) turns (1, 0) into (cos 1, sin 1).
        let mut x = [1.0f32, 0.0, 0.0, 0.0];
        t.apply(&mut x, 1, RopeStyle::Neox);
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[2] - 1f32.sin()).abs() < 1e-6 && x[1] == 0.0);
    }
}
