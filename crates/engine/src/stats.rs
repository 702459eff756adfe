//! Live engine counters, written by the actor each step and read by anyone
//! holding the handle (metrics, tests, admin views).

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct EngineStats {
    running: AtomicU64,
    peak_running: AtomicU64,
    waiting: AtomicU64,
    steps: AtomicU64,
    generated_tokens: AtomicU64,
    prompt_tokens: AtomicU64,
    cancelled: AtomicU64,
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
}

impl EngineStats {
    pub(crate) fn set_queue(&self, running: usize, waiting: usize) {
        self.running.store(running as u64, Ordering::Relaxed);
        self.peak_running.fetch_max(running as u64, Ordering::Relaxed);
        self.waiting.store(waiting as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_step(&self, prompt_tokens: u64, generated_tokens: u64) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(prompt_tokens, Ordering::Relaxed);
        self.generated_tokens.fetch_add(generated_tokens, Ordering::Relaxed);
    }

    pub(crate) fn add_cancelled(&self, n: u64) {
        self.cancelled.fetch_add(n, Ordering::Relaxed);
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
        }
    }
}
