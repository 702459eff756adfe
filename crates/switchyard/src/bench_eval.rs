//! `switchyard bench eval-gate`: the regression gate's error rates, by
//! simulation. Each comparison draws a suite's items (each with its own
//! true pass probability, or true mean score), runs a base and a new
//! "model" over them with independent sampling, and asks the gate
//! (`gateway::eval::stats`) whether the new run regressed. With the same
//! model on both sides the failure share is the false-fail rate (the
//! test's size, target ≤ α + simulation error); with a true drop it is
//! the power.

use anyhow::Result;
use clap::Args;
use gateway::eval::stats::{compare_numeric, compare_pass_fail, mcnemar_drop};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Args)]
pub struct EvalGateBench {
    /// Comparisons per setting.
    #[arg(long, default_value_t = 1000)]
    comparisons: usize,
    /// Items per suite.
    #[arg(long, default_value_t = 400)]
    items: usize,
    /// The true drop of the degraded model: pass-rate points (0.05 = 5 points) and mean score.
    #[arg(long, default_value_t = 0.05)]
    drop: f64,
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// How a suite's items spread in difficulty.
#[derive(Clone, Copy)]
enum Items {
    /// Most items almost always pass or almost always fail (what evals of
    /// a fixed model at temperature > 0 look like): 55 % at 0.97, 20 % at
    /// 0.05, 25 % uniform in 0.2–0.8.
    Mixed,
    /// Every pass probability equally likely: the noisiest suite.
    Uniform,
}

impl Items {
    fn name(self) -> &'static str {
        match self {
            Items::Mixed => "mixed (55% ≈always, 20% ≈never, 25% in 0.2–0.8)",
            Items::Uniform => "uniform pass probabilities",
        }
    }

    fn draw(self, rng: &mut StdRng) -> f64 {
        match self {
            Items::Mixed => match rng.random::<f64>() {
                u if u < 0.55 => 0.97,
                u if u < 0.75 => 0.05,
                _ => rng.random_range(0.2..0.8),
            },
            Items::Uniform => rng.random::<f64>(),
        }
    }
}

/// The per-item shift that lowers the mean pass probability by `drop`
/// (clamped at 0, so found by bisection).
fn shifted(p: &[f64], drop: f64) -> Vec<f64> {
    let mean = |d: f64| p.iter().map(|x| (x - d).max(0.0)).sum::<f64>() / p.len() as f64;
    let target = mean(0.0) - drop;
    let shift = bisect(0.0, 1.0, |d| mean(d) > target);
    p.iter().map(|x| (x - shift).max(0.0)).collect()
}

/// The point in `lo..hi` where `below` (true at `lo`, false at `hi`, one
/// switch) turns false.
fn bisect(mut lo: f64, mut hi: f64, below: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        if below(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// The one-sided standard normal critical value at `alpha` (bisection on
/// the upper tail, ½·erfc(z/√2)).
fn z_quantile(alpha: f64) -> f64 {
    bisect(0.0, 10.0, |z| 0.5 * erfc(z / std::f64::consts::SQRT_2) > alpha)
}

/// The complementary error function by the Chebyshev fit of Numerical
/// Recipes' `erfcc` (relative error below 1.2e-7: plenty for a critical
/// value; std has no erfc).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Share of comparisons the gate fails, with the mid-p and the exact test,
/// and with a reference: the same one-sided z-test on (worse − better)
/// told every item's true pass probability, so it knows that difference's
/// variance under no regression (Σ 2p(1−p)) instead of estimating it from
/// the pairs: what estimating the variance costs the gate.
fn pass_fail_rate(args: &EvalGateBench, items: Items, drop: f64, rng: &mut StdRng) -> (f64, f64, f64) {
    let (mut mid, mut exact, mut known) = (0, 0, 0);
    let critical = z_quantile(args.alpha);
    for _ in 0..args.comparisons {
        let p: Vec<f64> = (0..args.items).map(|_| items.draw(rng)).collect();
        let q = if drop > 0.0 { shifted(&p, drop) } else { p.clone() };
        let pairs: Vec<(bool, bool)> =
            p.iter().zip(&q).map(|(a, b)| (rng.random::<f64>() < *a, rng.random::<f64>() < *b)).collect();
        let c = compare_pass_fail("pass", &pairs);
        // The pure test (no size floor): significant and a drop.
        if c.regressed(args.alpha, 0.0) {
            mid += 1;
        }
        if mcnemar_drop(c.worse, c.better, false) < args.alpha && c.drop() > 0.0 {
            exact += 1;
        }
        let null_variance: f64 = p.iter().map(|x| 2.0 * x * (1.0 - x)).sum();
        if null_variance > 0.0 && (c.worse as f64 - c.better as f64) / null_variance.sqrt() > critical {
            known += 1;
        }
    }
    let n = args.comparisons as f64;
    (mid as f64 / n, exact as f64 / n, known as f64 / n)
}

/// Share of comparisons the gate fails on numeric scores: true means
/// uniform in 0.2–1.0, each run adds noise uniform in ±0.25 (sd ≈ 0.144).
fn numeric_rate(args: &EvalGateBench, drop: f64, rng: &mut StdRng) -> f64 {
    let mut fails = 0;
    for k in 0..args.comparisons {
        let pairs: Vec<(f64, f64)> = (0..args.items)
            .map(|_| {
                let mu: f64 = rng.random_range(0.2..1.0);
                (mu + rng.random_range(-0.25..0.25), mu - drop + rng.random_range(-0.25..0.25))
            })
            .collect();
        if compare_numeric("score", &pairs, args.seed ^ k as u64).regressed(args.alpha, 0.0) {
            fails += 1;
        }
    }
    fails as f64 / args.comparisons as f64
}

pub fn run(args: &EvalGateBench) -> Result<()> {
    anyhow::ensure!(args.comparisons > 0 && args.items > 0, "comparisons and items must be positive");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let n = args.comparisons as f64;
    // Binomial standard error of a rate near α, for reading the figures.
    let se = (args.alpha * (1.0 - args.alpha) / n).sqrt();
    println!(
        "{} comparisons of {} items, alpha {}, one-sided (simulation error at alpha: ±{:.1} points, 2 s.e.)",
        args.comparisons,
        args.items,
        args.alpha,
        200.0 * se
    );
    for items in [Items::Mixed, Items::Uniform] {
        let (same_mid, same_exact, same_known) = pass_fail_rate(args, items, 0.0, &mut rng);
        let (drop_mid, drop_exact, drop_known) = pass_fail_rate(args, items, args.drop, &mut rng);
        println!("pass/fail, {}:", items.name());
        println!(
            "  same model: gate fails {:.1}% (McNemar mid-p), {:.1}% (exact McNemar), {:.1}% (known-variance z-test)",
            100.0 * same_mid,
            100.0 * same_exact,
            100.0 * same_known
        );
        println!(
            "  true {:.0}-point drop: caught {:.1}% (mid-p), {:.1}% (exact), {:.1}% (known-variance z-test, a reference)",
            100.0 * args.drop,
            100.0 * drop_mid,
            100.0 * drop_exact,
            100.0 * drop_known
        );
    }
    let same = numeric_rate(args, 0.0, &mut rng);
    let caught = numeric_rate(args, args.drop, &mut rng);
    let small = numeric_rate(args, args.drop / 5.0, &mut rng);
    println!("numeric scores (sign-flip permutation, 10,000 flips):");
    println!("  same model: gate fails {:.1}%", 100.0 * same);
    println!(
        "  true drop {:.3}: caught {:.1}%; true drop {:.3}: caught {:.1}%",
        args.drop,
        100.0 * caught,
        args.drop / 5.0,
        100.0 * small
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn normal_critical_values() {
        assert!((super::z_quantile(0.05) - 1.644_854).abs() < 1e-4);
        assert!((super::z_quantile(0.025) - 1.959_964).abs() < 1e-4);
        assert!((super::z_quantile(0.01) - 2.326_348).abs() < 1e-4);
    }
}
