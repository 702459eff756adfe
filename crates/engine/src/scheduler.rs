//! The engine actor: one thread owns the model, the KV block pool and the
//! schedule. Each step packs a ragged batch under a token budget: one
//! decode token for every running sequence, then prefill chunks of the
//! others in arrival order (chunked prefill, so a long prompt never stalls
//! the streams already running), then newly admitted requests, FCFS.
//!
//! Memory: blocks are taken as positions need them. When a running
//! sequence cannot get a block, the newest running sequence is preempted:
//! its blocks go back to the pool and it waits at the head of the queue to
//! be recomputed (mostly from the prefix cache, which keeps its full blocks
//! until they are evicted). A lone sequence always fits, because the
//! handle caps every request at the pool's capacity, so the engine never
//! deadlocks and never fails a request for lack of memory.

use crate::kv_cache::{BlockPool, KvStore, BLOCK_SIZE};
use crate::model::{BatchItem, Decoder};
use crate::sequence::{EngineRequest, Sequence};
use crate::stats::EngineStats;
use crate::tokenizer::Tokenizer;
use backend_api::BackendError;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// Engine knobs, with defaults sized for a small CPU machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Sequences decoded together in one step.
    pub max_num_seqs: usize,
    /// Tokens (decode + prefill) in one step.
    pub max_num_batched_tokens: usize,
    /// Memory for the KV block pool, in bytes.
    pub kv_cache_bytes: usize,
    /// Reuse the KV of prompt prefixes seen before.
    pub prefix_caching: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_num_seqs: 32, max_num_batched_tokens: 512, kv_cache_bytes: 1024 << 20, prefix_caching: true }
    }
}

impl EngineConfig {
    /// Blocks the KV budget buys for a model whose blocks take `block_bytes`.
    pub fn num_blocks(&self, block_bytes: usize) -> usize {
        self.kv_cache_bytes / block_bytes.max(1)
    }
}

/// Free blocks kept back when admitting new work, so sequences already
/// running can grow a little before anyone is preempted.
fn admission_watermark(total_blocks: usize) -> usize {
    total_blocks / 100
}

pub(crate) struct Scheduler {
    model: Decoder,
    kv: KvStore,
    pool: BlockPool,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    context_length: usize,
    waiting: VecDeque<Sequence>,
    /// In admission order: the last is the newest, preempted first.
    running: Vec<Sequence>,
    stats: Arc<EngineStats>,
}

impl Scheduler {
    pub(crate) fn new(
        model: Decoder,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
        context_length: usize,
        stats: Arc<EngineStats>,
    ) -> Self {
        let num_blocks = config.num_blocks(model.kv_block_bytes());
        let kv = model.new_kv_store(num_blocks);
        stats.set_blocks(num_blocks, 0);
        Scheduler {
            model,
            kv,
            pool: BlockPool::new(num_blocks),
            tokenizer,
            config,
            context_length,
            waiting: VecDeque::new(),
            running: Vec::new(),
            stats,
        }
    }

    /// Runs until every handle is dropped and all work is done.
    pub(crate) fn run(mut self, mut requests: UnboundedReceiver<EngineRequest>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match requests.blocking_recv() {
                    Some(r) => self.waiting.push_back(Sequence::new(r)),
                    None => return,
                }
            }
            while let Ok(r) = requests.try_recv() {
                self.waiting.push_back(Sequence::new(r));
            }
            self.step();
        }
    }

    fn publish(&self) {
        self.stats.set_queue(self.running.len(), self.waiting.len());
        self.stats.set_blocks(self.pool.total(), self.pool.used());
    }

    /// Sends the newest running sequence back to the head of the queue.
    fn preempt_newest(&mut self) {
        if let Some(mut seq) = self.running.pop() {
            seq.release(&mut self.pool);
            self.waiting.push_front(seq);
            self.stats.add_preemption();
        }
    }

    /// Drops sequences whose client went away, returning their blocks.
    fn drop_cancelled(&mut self) {
        let mut cancelled = 0;
        for seq in self.running.iter_mut().chain(self.waiting.iter_mut()) {
            if seq.is_cancelled() {
                seq.release(&mut self.pool);
                cancelled += 1;
            }
        }
        self.running.retain(|s| !s.is_cancelled());
        self.waiting.retain(|s| !s.is_cancelled());
        self.stats.add_cancelled(cancelled);
    }

    /// Decides how many tokens each running sequence runs this step
    /// (parallel to `running`), admitting and preempting as needed.
    fn schedule(&mut self) -> Vec<usize> {
        let mut budget = self.config.max_num_batched_tokens;
        let mut plan = vec![0; self.running.len()];
        // 1. One token for every decoding sequence, oldest first; a
        //    sequence that cannot get a block preempts the newest (itself
        //    last).
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            if self.running[i].is_decoding() {
                let need = self.running[i].computed() + 1;
                while !self.running[i].reserve(&mut self.pool, need, BLOCK_SIZE) {
                    self.preempt_newest();
                    plan.truncate(self.running.len());
                    if i >= self.running.len() {
                        break;
                    }
                }
                if i >= self.running.len() {
                    break;
                }
                plan[i] = 1;
                budget -= 1;
            }
            i += 1;
        }
        // 2. Prefill chunks of running sequences, as far as blocks allow.
        for (seq, n) in self.running.iter_mut().zip(plan.iter_mut()) {
            if budget == 0 {
                break;
            }
            if *n == 0 && !seq.is_decoding() {
                let take = seq.pending().min(budget).min(seq.room(self.pool.available(), BLOCK_SIZE));
                if take > 0 && seq.reserve(&mut self.pool, seq.computed() + take, BLOCK_SIZE) {
                    *n = take;
                    budget -= take;
                }
            }
        }
        // 3. Admit waiting sequences in order while there is budget, a
        //    sequence slot and memory beyond the watermark (an idle engine
        //    ignores the watermark). Newcomers never preempt anyone.
        let watermark = admission_watermark(self.pool.total());
        while budget > 0 && self.running.len() < self.config.max_num_seqs {
            let Some(mut seq) = self.waiting.pop_front() else { break };
            let hit = self.attach(&mut seq);
            let keep = if self.running.is_empty() { 0 } else { watermark };
            let free = self.pool.available().saturating_sub(keep);
            let take = seq.pending().min(budget).min(seq.room(free, BLOCK_SIZE));
            if take == 0 || !seq.reserve(&mut self.pool, seq.computed() + take, BLOCK_SIZE) {
                seq.release(&mut self.pool);
                self.waiting.push_front(seq);
                break;
            }
            if !seq.is_started() {
                self.stats.add_prefix_lookup(seq.prompt_len(), hit);
                seq.start(hit);
            }
            self.running.push(seq);
            plan.push(take);
            budget -= take;
        }
        // 4. Nothing could run (every running sequence is prefilling and
        //    the pool is dry): preempt the newest until the oldest moves.
        while plan.iter().all(|&n| n == 0) && self.running.len() > 1 {
            self.preempt_newest();
            plan.truncate(self.running.len());
            let seq = &mut self.running[0];
            let take = seq.pending().min(self.config.max_num_batched_tokens);
            let take = take.min(seq.room(self.pool.available(), BLOCK_SIZE));
            if take > 0 && seq.reserve(&mut self.pool, seq.computed() + take, BLOCK_SIZE) {
                plan[0] = take;
            }
        }
        plan
    }

    /// Attaches the longest cached prefix (when prefix caching is on);
    /// returns the positions it covers.
    fn attach(&mut self, seq: &mut Sequence) -> usize {
        if self.config.prefix_caching {
            seq.attach_prefix(&mut self.pool, BLOCK_SIZE)
        } else {
            0
        }
    }

    /// One forward pass over everything schedulable, then sampling.
    pub(crate) fn step(&mut self) {
        self.drop_cancelled();
        let plan = self.schedule();
        self.publish();
        let items: Vec<BatchItem<'_>> = self
            .running
            .iter()
            .zip(&plan)
            .filter(|(_, &n)| n > 0)
            .map(|(seq, &n)| BatchItem {
                tokens: seq.next_tokens(n),
                start: seq.computed(),
                blocks: seq.table(),
                want_logits: n == seq.pending(),
                prompt_end: seq.prompt_len(),
            })
            .collect();
        if items.is_empty() {
            self.fail_unschedulable();
            return;
        }
        let result = self.model.forward(&mut self.kv, &items);
        drop(items);
        let mut prompt_tokens = 0u64;
        match result {
            Ok(mut logits) => {
                let mut item = 0;
                for (seq, &n) in self.running.iter_mut().zip(&plan) {
                    if n == 0 {
                        continue;
                    }
                    let out = logits.row_mut(item);
                    item += 1;
                    prompt_tokens += seq.prompt_rows_in(seq.computed(), n) as u64;
                    seq.mark_computed(n);
                    if self.config.prefix_caching {
                        seq.register_full_blocks(&mut self.pool, BLOCK_SIZE);
                    }
                    if let Some(l) = out {
                        let left = self.context_length.saturating_sub(seq.computed() + 1);
                        seq.on_logits(l, &self.tokenizer, left, &self.stats);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "forward pass failed; failing the sequences of this step");
                for (seq, &n) in self.running.iter_mut().zip(&plan) {
                    if n > 0 {
                        seq.fail(BackendError::Internal(e.to_string()));
                    }
                }
            }
        }
        self.stats.add_step(prompt_tokens);
        for seq in self.running.iter_mut().filter(|s| s.is_finished()) {
            seq.release(&mut self.pool);
        }
        self.running.retain(|s| !s.is_finished());
        self.publish();
    }

    /// A step with work but nothing schedulable can only mean a sequence
    /// larger than the whole pool (the handle prevents it); fail it rather
    /// than spin.
    fn fail_unschedulable(&mut self) {
        if self.running.is_empty() && self.waiting.is_empty() {
            return;
        }
        let mut seq = match self.running.pop() {
            Some(s) => s,
            None => match self.waiting.pop_front() {
                Some(s) => s,
                None => return,
            },
        };
        tracing::error!("a sequence does not fit in the KV cache; failing it");
        seq.release(&mut self.pool);
        seq.fail(BackendError::Internal("the request does not fit in the KV cache (--kv-cache-mib)".into()));
        self.publish();
    }
}
