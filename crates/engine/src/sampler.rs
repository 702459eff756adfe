//! Turns logits into the next token: penalties, then greedy or
//! temperature / top-k / top-p sampling with a seeded RNG, plus the
//! log-probabilities the client asked for.

use backend_api::SamplingParams;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// How often each token was generated so far (for the penalties).
    counts: HashMap<u32, u32>,
}

/// The chosen token and, when asked, its log-prob and the top alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub token: u32,
    pub logprob: Option<f32>,
    pub top: Vec<(u32, f32)>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = match params.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Sampler { params, rng, counts: HashMap::new() }
    }

    /// Picks the next token. `banned` tokens (end-of-sequence before
    /// `min_tokens`, or with `ignore_eos`) can never be chosen.
    /// Log-probs are of the model's own distribution, before penalties.
    pub fn sample(&mut self, logits: &mut [f32], banned: &[u32], logprobs: Option<u32>) -> Sampled {
        let log_probs = logprobs.map(|_| log_softmax(logits));
        for (&tok, &count) in &self.counts {
            if let Some(l) = logits.get_mut(tok as usize) {
                *l -= self.params.frequency_penalty * count as f32 + self.params.presence_penalty;
            }
        }
        for &b in banned {
            if let Some(l) = logits.get_mut(b as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        let token = if self.params.temperature <= 0.0 { argmax(logits) } else { self.sample_random(logits) };
        *self.counts.entry(token).or_insert(0) += 1;
        let (logprob, top) = match (log_probs, logprobs) {
            (Some(lp), Some(n)) => (lp.get(token as usize).copied(), top_n(&lp, n as usize)),
            _ => (None, Vec::new()),
        };
        Sampled { token, logprob, top }
    }

    fn sample_random(&mut self, logits: &[f32]) -> u32 {
        let inv_t = 1.0 / self.params.temperature;
        let mut cands: Vec<(u32, f32)> =
            logits.iter().enumerate().filter(|(_, l)| l.is_finite()).map(|(i, &l)| (i as u32, l * inv_t)).collect();
        if cands.is_empty() {
            return argmax(logits);
        }
        // Highest first; ties broken by id so a seed always gives the same order.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.params.top_k as usize;
        if k > 0 && k < cands.len() {
            // Only the k best need ordering, not the whole vocabulary.
            cands.select_nth_unstable_by(k - 1, order);
            cands.truncate(k);
            cands.sort_unstable_by(order);
        } else if self.params.top_p < 1.0 {
            cands.sort_unstable_by(order);
        }
        // Without top-k / top-p no order is needed: sampling walks the
        // vocabulary in id order (sorting 49k logits per token cost ~2 ms).
        let max = cands.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<f32> = cands.iter().map(|(_, l)| (l - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        if self.params.top_p < 1.0 {
            let mut cum = 0.0;
            let mut keep = probs.len();
            for (i, p) in probs.iter().enumerate() {
                cum += p;
                if cum >= self.params.top_p {
                    keep = i + 1;
                    break;
                }
            }
            probs.truncate(keep);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (i, p) in probs.iter().enumerate() {
            if r < *p {
                return cands[i].0;
            }
            r -= p;
        }
        cands[probs.len() - 1].0
    }
}

/// Index of the largest logit; the lowest index wins ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln() + max;
    logits.iter().map(|l| l - lse).collect()
}

fn top_n(log_probs: &[f32], n: usize) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut idx: Vec<(u32, f32)> = log_probs.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
    let n = n.min(idx.len());
    idx.select_nth_unstable_by(n - 1, |a, b| b.1.total_cmp(&a.1));
    idx.truncate(n);
    idx.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams { temperature, seed: Some(7), ..Default::default() }
    }

    #[test]
    fn greedy_takes_argmax() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], None).token, 1);
    }

    #[test]
    fn banned_tokens_are_never_chosen() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[1], None).token, 2);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let draw = || {
            let mut s = Sampler::new(params(1.0));
            (0..20).map(|_| s.sample(&mut logits.clone(), &[], None).token).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplingParams { top_k: 1, ..params(1.5) });
        for _ in 0..10 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 0.9, 0.5], &[], None).token, 1);
        }
    }

    #[test]
    fn tiny_top_p_keeps_only_the_best() {
        let mut s = Sampler::new(SamplingParams { top_p: 0.01, ..params(1.0) });
        for _ in 0..10 {
            assert_eq!(s.sample(&mut [0.0, 1.0, 0.9, 0.5], &[], None).token, 1);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // p = softmax([0, ln 3]) = [0.25, 0.75]
        let mut s = Sampler::new(params(1.0));
        let n = 4000;
        let ones = (0..n).filter(|_| s.sample(&mut [0.0, 3f32.ln()], &[], None).token == 1).count();
        let frac = ones as f64 / n as f64;
        assert!((frac - 0.75).abs() < 0.03, "{frac}");
    }

    #[test]
    fn top_k_keeps_only_the_k_best() {
        let mut s = Sampler::new(SamplingParams { top_k: 2, ..params(2.0) });
        for _ in 0..200 {
            let t = s.sample(&mut [0.0, 1.0, 0.9, 0.5, 0.95], &[], None).token;
            assert!(t == 1 || t == 4, "{t}");
        }
    }

    #[test]
    fn frequency_penalty_discourages_repeats() {
        let mut s = Sampler::new(SamplingParams { frequency_penalty: 2.0, ..params(0.0) });
        assert_eq!(s.sample(&mut [1.0, 0.5], &[], None).token, 0);
        // 1.0 - 2.0 < 0.5: the repeat loses.
        assert_eq!(s.sample(&mut [1.0, 0.5], &[], None).token, 1);
    }

    #[test]
    fn logprobs_are_normalised_and_sorted() {
        let mut s = Sampler::new(params(0.0));
        let out = s.sample(&mut [1.0, 2.0, 3.0], &[], Some(2));
        let lp = out.logprob.unwrap_or(f32::NAN);
        assert!((lp - (3.0 - (1f32.exp() + 2f32.exp() + 3f32.exp()).ln())).abs() < 1e-5);
        assert_eq!(out.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![2, 1]);
    }
}
