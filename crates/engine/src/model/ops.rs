//! Row-wise kernels on plain f32 slices. The model is small enough that
//! candle's per-op allocation and dispatch would cost more than the math.

use wide::f32x8;

/// RMS norm of each `dim`-wide row, scaled by `weight`, written into `out`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let dim = weight.len();
    for (row, dst) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / dim as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for ((d, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *d = v * scale * w;
        }
    }
}

/// `gate_up` rows are `[gate (n_ff) | up (n_ff)]`; returns `silu(gate) * up`.
pub fn swiglu(gate_up: &[f32], n_ff: usize) -> Vec<f32> {
    let rows = gate_up.len() / (2 * n_ff);
    let mut out = Vec::with_capacity(rows * n_ff);
    for row in gate_up.chunks_exact(2 * n_ff) {
        let (gate, up) = row.split_at(n_ff);
        out.extend(gate.iter().zip(up).map(|(g, u)| g / (1.0 + (-g).exp()) * u));
    }
    out
}

/// Dot product in 8 lanes, reduced in a fixed order (attention scores).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n / 8 * 8;
    let mut acc = f32x8::ZERO;
    for (x, y) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        acc = lanes(x).mul_add(lanes(y), acc);
    }
    let mut s = reduce(acc);
    for i in full..n {
        s = a[i].mul_add(b[i], s);
    }
    s
}

/// `out += p * v` (attention's weighted sum of values).
#[inline]
pub fn axpy(out: &mut [f32], p: f32, v: &[f32]) {
    let pv = f32x8::splat(p);
    let full = out.len().min(v.len()) / 8 * 8;
    for (o, x) in out[..full].chunks_exact_mut(8).zip(v[..full].chunks_exact(8)) {
        o.copy_from_slice(&lanes(x).mul_add(pv, lanes(o)).to_array());
    }
    for i in full..out.len().min(v.len()) {
        out[i] = v[i].mul_add(p, out[i]);
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

pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Softmax over `xs` in place (numerically stable).
pub fn softmax_in_place(xs: &mut [f32]) {
    let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in xs.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in xs.iter_mut() {
            *v /= sum;
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
    pub fn new(head_dim: usize, max_positions: usize, theta: f32) -> Self {
        let half = head_dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for i in 0..half {
                let freq = 1.0 / theta.powf((2 * i) as f32 / head_dim as f32);
                let angle = pos as f32 * freq;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { half, cos, sin }
    }

    pub fn max_positions(&self) -> usize {
        self.cos.len() / self.half.max(1)
    }

    /// Rotates each head of one token's `x` (heads × head_dim) at `pos`.
    /// GGUF llama weights are permuted for the interleaved pairing
    /// (x[2i], x[2i+1]), llama.cpp's "normal" rope.
    pub fn apply(&self, x: &mut [f32], pos: usize) {
        let base = pos * self.half;
        let (cos, sin) = (&self.cos[base..base + self.half], &self.sin[base..base + self.half]);
        for head in x.chunks_exact_mut(2 * self.half) {
            for i in 0..self.half {
                let (a, b) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = a * cos[i] - b * sin[i];
                head[2 * i + 1] = a * sin[i] + b * cos[i];
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
    fn softmax_sums_to_one_and_handles_neg_inf() {
        let mut x = [1.0f32, 2.0, f32::NEG_INFINITY];
        softmax_in_place(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[2], 0.0);
    }

    #[test]
    fn dot_and_axpy_match_scalar() {
        let a: Vec<f32> = (0..70).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..70).map(|i| 1.0 - i as f32 * 0.01).collect();
        let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - want).abs() < 1e-3);
        let mut out = b.clone();
        axpy(&mut out, 0.5, &a);
        for i in 0..70 {
            assert!((out[i] - (b[i] + 0.5 * a[i])).abs() < 1e-5);
        }
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        let t = RopeTable::new(4, 8, 10_000.0);
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        t.apply(&mut x, 0);
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0]);
        t.apply(&mut x, 5);
        let norm: f32 = x.iter().map(|v| v * v).sum();
        assert!((norm - 30.0).abs() < 1e-4);
    }
}
