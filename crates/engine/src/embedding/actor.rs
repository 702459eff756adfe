//! The embedder's actor: gathers requests for a short window, plans forward
//! passes over their rows, answers each request as soon as its rows are done.

use super::handle::EmbedderStats;
use super::{Embedder, EmbeddingError};
use std::ops::Range;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How requests are gathered into forward passes.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Gather concurrent requests into shared passes. Off: every request
    /// runs alone (its own inputs still share passes), for comparisons.
    pub enabled: bool,
    /// How long the actor waits for company after the first request of a
    /// window arrives (a request that already waited this long runs at once).
    pub max_wait: Duration,
    /// Inputs that close a window early, and the most rows of one pass.
    pub max_batch_inputs: usize,
    /// The most tokens of one pass (a longer single input still runs):
    /// past a few hundred the activations leave the cache and every token
    /// costs more, so a big window runs as several passes.
    pub max_pass_tokens: usize,
    /// Requests that may wait in the queue; beyond it `Overloaded`.
    pub queue_capacity: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            enabled: true,
            max_wait: Duration::from_millis(2),
            max_batch_inputs: 32,
            max_pass_tokens: PASS_TOKENS,
            queue_capacity: 256,
        }
    }
}

pub(crate) type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EmbeddingError>>;

/// One request as the actor sees it: tokenized rows and where to answer.
pub(crate) struct Job {
    pub rows: Vec<Vec<u32>>,
    pub arrived: Instant,
    pub reply: Reply,
}

/// The planner's cost model, in units of one token through the projections
/// and MLP (~0.15 ms here), fitted to examples/embed_probe.rs's grid: a pass
/// costs a fixed ~3 ms (dispatch, thin matmuls) plus its real tokens (the
/// same whatever the plan: padding never reaches the matmuls) plus
/// attention, which is padded to the pass's longest row and grows with its
/// square: `rows * len^2 / ATTENTION_TOKENS`.
const PASS_OVERHEAD_TOKENS: usize = 20;
const ATTENTION_TOKENS: usize = 240;
/// Default `max_pass_tokens`: with 30-token inputs, 32 concurrent requests
/// got 196 inputs/s in passes of 256 tokens, 186 of 512, 161 unbounded.
const PASS_TOKENS: usize = 256;

pub(crate) fn run(model: Embedder, queue: Receiver<Job>, cfg: BatchConfig, stats: &EmbedderStats) {
    // Requests the last window served: one means nobody else is sending, so
    // the next window does not wait for company (a lone client pays no
    // window); under concurrency the window waits, and requests that
    // arrive during a pass are taken by the next window at once anyway.
    let mut last_window = 1;
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        if cfg.enabled {
            let wait = if last_window > 1 { cfg.max_wait } else { Duration::ZERO };
            let deadline = jobs[0].arrived + wait;
            let mut inputs = jobs[0].rows.len();
            while inputs < cfg.max_batch_inputs {
                // Past the deadline this still takes what is already queued.
                match queue.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(job) => {
                        inputs += job.rows.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        stats.windows.fetch_add(1, Relaxed);
        last_window = jobs.len();
        serve(&model, jobs, &cfg, stats);
    }
}

/// Runs every row of `jobs` in planned passes; a request is answered after
/// the pass that completes it, skipped if its caller has gone.
fn serve(model: &Embedder, jobs: Vec<Job>, cfg: &BatchConfig, stats: &EmbedderStats) {
    let mut out: Vec<Vec<Vec<f32>>> = jobs.iter().map(|j| vec![Vec::new(); j.rows.len()]).collect();
    let mut left: Vec<usize> = jobs.iter().map(|j| j.rows.len()).collect();
    let mut replies: Vec<Option<Reply>> = Vec::with_capacity(jobs.len());
    let mut rows: Vec<(usize, usize, Vec<u32>)> = Vec::new();
    for (j, job) in jobs.into_iter().enumerate() {
        stats.requests.fetch_add(1, Relaxed);
        rows.extend(job.rows.into_iter().enumerate().map(|(r, ids)| (j, r, ids)));
        replies.push(Some(job.reply));
    }
    rows.sort_by_key(|(_, _, ids)| ids.len());
    let lens: Vec<usize> = rows.iter().map(|(_, _, ids)| ids.len()).collect();
    for range in plan(&lens, cfg.max_batch_inputs, cfg.max_pass_tokens) {
        // A request whose caller has gone is dropped here and counted now,
        // not after the window: a caller answered by a later pass of this
        // window may read the stats before the window ends.
        for (j, _, _) in &rows[range.clone()] {
            if replies[*j].as_ref().is_some_and(|r| r.is_closed()) {
                replies[*j] = None;
                stats.skipped_requests.fetch_add(1, Relaxed);
            }
        }
        let live: Vec<&(usize, usize, Vec<u32>)> =
            rows[range].iter().filter(|(j, _, _)| replies[*j].is_some()).collect();
        if live.is_empty() {
            continue;
        }
        let batch: Vec<&[u32]> = live.iter().map(|(_, _, ids)| ids.as_slice()).collect();
        let width = batch.iter().map(|r| r.len()).max().unwrap_or(0);
        stats.forward_passes.fetch_add(1, Relaxed);
        stats.inputs.fetch_add(batch.len() as u64, Relaxed);
        stats.tokens.fetch_add(batch.iter().map(|r| r.len() as u64).sum(), Relaxed);
        stats.padded_tokens.fetch_add((batch.len() * width) as u64, Relaxed);
        // A panic inside the forward fails this pass's requests, not the
        // actor (which would leave every later request `Stopped`).
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.embed_batch(&batch)))
            .unwrap_or_else(|_| Err(EmbeddingError::Forward("the forward pass panicked".into())));
        match result {
            Ok(vectors) => {
                for ((j, r, _), v) in live.iter().zip(vectors) {
                    out[*j][*r] = v;
                    left[*j] -= 1;
                    if left[*j] == 0 {
                        if let Some(reply) = replies[*j].take() {
                            let _ = reply.send(Ok(std::mem::take(&mut out[*j])));
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedding forward pass failed");
                for (j, _, _) in &live {
                    if let Some(reply) = replies[*j].take() {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }
}

/// Cuts rows sorted by length into consecutive passes of at most `max_rows`
/// rows and `max_tokens` tokens that minimise the modelled cost (dynamic
/// programming; n is small): a short row joins a long one's pass only if
/// padding its attention costs less than another pass.
pub(crate) fn plan(lens: &[usize], max_rows: usize, max_tokens: usize) -> Vec<Range<usize>> {
    let n = lens.len();
    let max_rows = max_rows.max(1);
    let mut prefix = vec![0; n + 1];
    for (i, len) in lens.iter().enumerate() {
        prefix[i + 1] = prefix[i] + len;
    }
    // best[j]: cost of the first j rows; cut[j]: where its last pass starts.
    let mut best = vec![usize::MAX; n + 1];
    let mut cut = vec![0; n + 1];
    best[0] = 0;
    for j in 1..=n {
        let attention = lens[j - 1] * lens[j - 1] / ATTENTION_TOKENS;
        for i in j.saturating_sub(max_rows)..j {
            if j - i > 1 && prefix[j] - prefix[i] > max_tokens {
                continue;
            }
            let cost = best[i].saturating_add(PASS_OVERHEAD_TOKENS + (j - i) * attention);
            if cost < best[j] {
                best[j] = cost;
                cut[j] = i;
            }
        }
    }
    let mut ranges = Vec::new();
    let mut j = n;
    while j > 0 {
        ranges.push(cut[j]..j);
        j = cut[j];
    }
    ranges.reverse();
    ranges
}

#[cfg(test)]
mod tests {
    use super::plan;

    #[test]
    fn equal_lengths_fill_passes_up_to_the_row_limit() {
        assert_eq!(plan(&[10; 70], 32, 4096), vec![0..6, 6..38, 38..70]);
    }

    #[test]
    fn short_rows_split_from_long_ones_only_when_padding_costs_more_than_a_pass() {
        // Short rows beside a slightly longer one: padded attention costs less than a pass.
        assert_eq!(plan(&[8, 8, 12, 30], 32, 4096), vec![0..4]);
        // Thirty short rows beside two of 250: their attention padded to 250
        // would cost ~8,000 token-equivalents.
        let mut lens = vec![12; 30];
        lens.extend([250, 250]);
        assert_eq!(plan(&lens, 32, 4096), vec![0..30, 30..32]);
    }

    #[test]
    fn every_row_is_planned_once_in_order() {
        assert!(plan(&[], 32, 4096).is_empty());
        let lens: Vec<usize> = (1..=100).map(|i| i * 2).collect();
        let ranges = plan(&lens, 16, 300);
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(100));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        assert!(ranges.iter().all(|r| !r.is_empty() && r.len() <= 16));
        assert!(ranges.iter().all(|r| r.len() == 1 || lens[r.clone()].iter().sum::<usize>() <= 300));
    }
}
