//! The regression gate's statistics: paired tests of a new run against a
//! base run on the same cases, one-sided (only a drop is a regression).
//!
//! - pass/fail: McNemar's test on the discordant pairs, as a binomial
//!   test with the mid-p correction (the exact test's p-value counts the
//!   observed outcome whole, which makes it markedly conservative at the
//!   small discordant counts evals have; mid-p counts it half and stays
//!   close to its level — the simulation in `switchyard bench eval-gate`
//!   measures both);
//! - numeric scores: a paired sign-flip permutation test of the mean
//!   difference (Monte Carlo, seeded, with the +1 correction);
//! - several scorers at once: Holm's step-down correction.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// ln P(X = k) for X ~ Binomial(n, 1/2), for k = 0..=n.
fn ln_binomial_half(n: u64) -> Vec<f64> {
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut ln = n as f64 * 0.5f64.ln();
    out.push(ln);
    for k in 0..n {
        ln += ((n - k) as f64).ln() - ((k + 1) as f64).ln();
        out.push(ln);
    }
    out
}

/// One-sided McNemar p-value that the new run is worse: `worse` cases
/// passed in the base run and failed in the new one, `better` the
/// reverse. `mid_p` counts the observed outcome's probability half.
pub fn mcnemar_drop(worse: u64, better: u64, mid_p: bool) -> f64 {
    let n = worse + better;
    if n == 0 {
        return 1.0;
    }
    let ln = ln_binomial_half(n);
    // P(X >= worse), X ~ Bin(n, 1/2).
    let tail: f64 = ln[worse as usize..].iter().map(|l| l.exp()).sum();
    let p = if mid_p { tail - 0.5 * ln[worse as usize].exp() } else { tail };
    p.clamp(0.0, 1.0)
}

/// One-sided sign-flip permutation p-value that the mean of `diffs`
/// (new − base per case) is below zero; `rounds` random sign patterns.
pub fn sign_flip_drop(diffs: &[f64], rounds: usize, seed: u64) -> f64 {
    if diffs.is_empty() || diffs.iter().all(|d| *d == 0.0) {
        return 1.0;
    }
    let observed: f64 = diffs.iter().sum();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut as_low = 0usize;
    for _ in 0..rounds {
        let s: f64 = diffs.iter().map(|d| if rng.random::<bool>() { *d } else { -*d }).sum();
        // A tolerance so ties (all-equal magnitudes) count as "as extreme".
        if s <= observed + 1e-12 {
            as_low += 1;
        }
    }
    (as_low + 1) as f64 / (rounds + 1) as f64
}

/// Holm's adjusted p-values, in the input's order.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// One scorer's paired comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub scorer: String,
    /// Mean score (pass rate for pass/fail) of the base and the new run.
    pub base_mean: f64,
    pub new_mean: f64,
    pub cases: usize,
    /// Pass/fail only: cases that went pass → fail and fail → pass.
    pub worse: u64,
    pub better: u64,
    pub p_value: f64,
    /// After Holm's correction over all scorers compared.
    pub p_adjusted: f64,
}

impl Comparison {
    pub fn drop(&self) -> f64 {
        self.base_mean - self.new_mean
    }

    /// A regression: significant at `alpha` and at least `max_drop`.
    pub fn regressed(&self, alpha: f64, max_drop: f64) -> bool {
        self.p_adjusted < alpha && self.drop() >= max_drop && self.drop() > 0.0
    }
}

/// Paired pass/fail outcomes of one scorer: (base, new) per case.
pub fn compare_pass_fail(scorer: &str, pairs: &[(bool, bool)]) -> Comparison {
    let worse = pairs.iter().filter(|(b, n)| *b && !*n).count() as u64;
    let better = pairs.iter().filter(|(b, n)| !*b && *n).count() as u64;
    let mean = |f: fn(&(bool, bool)) -> bool| pairs.iter().filter(|p| f(p)).count() as f64 / pairs.len().max(1) as f64;
    let p = mcnemar_drop(worse, better, true);
    Comparison {
        scorer: scorer.to_string(),
        base_mean: mean(|p| p.0),
        new_mean: mean(|p| p.1),
        cases: pairs.len(),
        worse,
        better,
        p_value: p,
        p_adjusted: p,
    }
}

/// Paired numeric scores of one scorer: (base, new) per case.
pub fn compare_numeric(scorer: &str, pairs: &[(f64, f64)], seed: u64) -> Comparison {
    let n = pairs.len().max(1) as f64;
    let diffs: Vec<f64> = pairs.iter().map(|(b, x)| x - b).collect();
    let p = sign_flip_drop(&diffs, 10_000, seed);
    Comparison {
        scorer: scorer.to_string(),
        base_mean: pairs.iter().map(|p| p.0).sum::<f64>() / n,
        new_mean: pairs.iter().map(|p| p.1).sum::<f64>() / n,
        cases: pairs.len(),
        worse: pairs.iter().filter(|(b, x)| x < b).count() as u64,
        better: pairs.iter().filter(|(b, x)| x > b).count() as u64,
        p_value: p,
        p_adjusted: p,
    }
}

/// Applies Holm's correction across `comparisons` (in place).
pub fn adjust(comparisons: &mut [Comparison]) {
    let p: Vec<f64> = comparisons.iter().map(|c| c.p_value).collect();
    for (c, a) in comparisons.iter_mut().zip(holm(&p)) {
        c.p_adjusted = a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_the_binomial_tail() {
        // 8 worse, 2 better: P(X >= 8 | n = 10) = (45 + 10 + 1) / 1024.
        assert!((mcnemar_drop(8, 2, false) - 56.0 / 1024.0).abs() < 1e-12);
        assert!((mcnemar_drop(8, 2, true) - (56.0 - 22.5) / 1024.0).abs() < 1e-12);
        assert_eq!(mcnemar_drop(0, 0, true), 1.0);
        // Improvements are never a regression.
        assert!(mcnemar_drop(0, 30, true) > 0.99);
        // Large counts stay finite (no underflow to 0/0).
        let p = mcnemar_drop(1100, 900, true);
        assert!(p > 0.0 && p < 1e-5, "{p}");
    }

    #[test]
    fn holm_steps_down() {
        let a = holm(&[0.01, 0.04, 0.03]);
        assert!((a[0] - 0.03).abs() < 1e-12 && (a[2] - 0.06).abs() < 1e-12 && (a[1] - 0.06).abs() < 1e-12, "{a:?}");
    }

    #[test]
    fn sign_flip_sees_a_consistent_drop_and_not_noise() {
        let drop: Vec<f64> = (0..50).map(|i| -0.1 - (i % 3) as f64 * 0.01).collect();
        assert!(sign_flip_drop(&drop, 2000, 1) < 0.001);
        let noise: Vec<f64> = (0..50).map(|i| if i % 2 == 0 { 0.1 } else { -0.1 }).collect();
        assert!(sign_flip_drop(&noise, 2000, 1) > 0.3);
    }

    #[test]
    fn a_regression_needs_significance_and_size() {
        let pairs: Vec<(bool, bool)> = (0..400).map(|i| (i % 10 != 0, i % 10 != 0 && i % 7 != 0)).collect();
        let c = compare_pass_fail("exact", &pairs);
        assert!(c.worse > 40 && c.better == 0 && c.p_value < 1e-9);
        assert!(c.regressed(0.05, 0.02) && !c.regressed(0.05, 0.5));
    }
}
