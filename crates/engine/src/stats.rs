//! Live engine counters, written by the actor each step and read by anyone
//! holding the handle (metrics, tests, admin views).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A fixed-bucket latency histogram with lock-free updates.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last slot counts values above every bound.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// Cumulative counts per bucket bound, as Prometheus exposes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it), then +Inf.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            buckets.push((LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), cumulative));
        }
        HistogramSnapshot {
            buckets,
            count: cumulative,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[derive(Debug, Default)]
pub struct EngineStats {
    running: AtomicU64,
    peak_running: AtomicU64,
    waiting: AtomicU64,
    steps: AtomicU64,
    generated_tokens: AtomicU64,
    prompt_tokens: AtomicU64,
    cancelled: AtomicU64,
    preemptions: AtomicU64,
    kv_blocks_total: AtomicU64,
    kv_blocks_used: AtomicU64,
    prefix_query_tokens: AtomicU64,
    prefix_hit_tokens: AtomicU64,
    /// Request arrival → first generated token.
    pub time_to_first_token: Histogram,
    /// Between consecutive generated tokens of one sequence.
    pub inter_token_latency: Histogram,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub running: u64,
    /// Most sequences ever running in one step.
    pub peak_running: u64,
    pub waiting: u64,
    pub steps: u64,
    pub generated_tokens: u64,
    pub prompt_tokens: u64,
    pub cancelled: u64,
    /// Sequences sent back to the queue to free KV blocks.
    pub preemptions: u64,
    pub kv_blocks_total: u64,
    /// Blocks referenced by a sequence (free cached blocks not included).
    pub kv_blocks_used: u64,
    /// Prompt tokens of admitted requests, and those served from the prefix cache.
    pub prefix_query_tokens: u64,
    pub prefix_hit_tokens: u64,
}

impl EngineStats {
    pub(crate) fn set_queue(&self, running: usize, waiting: usize) {
        self.running.store(running as u64, Ordering::Relaxed);
        self.peak_running.fetch_max(running as u64, Ordering::Relaxed);
        self.waiting.store(waiting as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_step(&self, prompt_tokens: u64) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(prompt_tokens, Ordering::Relaxed);
    }

    /// Counted when the token is sampled, before any event about it is
    /// sent, so a client that saw a token also sees it counted.
    pub(crate) fn add_generated(&self) {
        self.generated_tokens.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_cancelled(&self, n: u64) {
        self.cancelled.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_preemption(&self) {
        self.preemptions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_blocks(&self, total: usize, used: usize) {
        self.kv_blocks_total.store(total as u64, Ordering::Relaxed);
        self.kv_blocks_used.store(used as u64, Ordering::Relaxed);
    }

    /// One request's first admission: its prompt, and how much of it hit.
    pub(crate) fn add_prefix_lookup(&self, prompt_tokens: usize, hit_tokens: usize) {
        self.prefix_query_tokens.fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.prefix_hit_tokens.fetch_add(hit_tokens as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            running: self.running.load(Ordering::Relaxed),
            peak_running: self.peak_running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            generated_tokens: self.generated_tokens.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            cancelled: self.cancelled.load(Ordering::Relaxed),
            preemptions: self.preemptions.load(Ordering::Relaxed),
            kv_blocks_total: self.kv_blocks_total.load(Ordering::Relaxed),
            kv_blocks_used: self.kv_blocks_used.load(Ordering::Relaxed),
            prefix_query_tokens: self.prefix_query_tokens.load(Ordering::Relaxed),
            prefix_hit_tokens: self.prefix_hit_tokens.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        for ms in [1, 7, 7, 90, 2_000, 100_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 6);
        assert_eq!(s.buckets[0], (0.005, 1));
        assert_eq!(s.buckets[1], (0.01, 3));
        assert_eq!(s.buckets.last().map(|b| b.1), Some(6));
        assert_eq!(s.buckets[s.buckets.len() - 2], (60.0, 5));
        assert!((s.sum_seconds - 102.105).abs() < 1e-6);
    }
}
