//! The engine actor: one thread owns the model, every sequence's KV cache
//! and the schedule. Each step packs a ragged batch under a token budget:
//! one decode token for every running sequence, then prefill chunks of the
//! others in arrival order (chunked prefill, so a long prompt never stalls
//! the streams already running).

use crate::model::{BatchItem, Llama};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_num_seqs: 32, max_num_batched_tokens: 512 }
    }
}

pub(crate) struct Scheduler {
    model: Llama,
    tokenizer: Arc<Tokenizer>,
    config: EngineConfig,
    context_length: usize,
    waiting: VecDeque<EngineRequest>,
    running: Vec<Sequence>,
    stats: Arc<EngineStats>,
}

impl Scheduler {
    pub(crate) fn new(
        model: Llama,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
        context_length: usize,
        stats: Arc<EngineStats>,
    ) -> Self {
        Scheduler { model, tokenizer, config, context_length, waiting: VecDeque::new(), running: Vec::new(), stats }
    }

    /// Runs until every handle is dropped and all work is done.
    pub(crate) fn run(mut self, mut requests: UnboundedReceiver<EngineRequest>) {
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                match requests.blocking_recv() {
                    Some(r) => self.waiting.push_back(r),
                    None => return,
                }
            }
            while let Ok(r) = requests.try_recv() {
                self.waiting.push_back(r);
            }
            self.step();
            self.stats.set_queue(self.running.len(), self.waiting.len());
        }
    }

    fn admit(&mut self) {
        let before = self.waiting.len();
        self.waiting.retain(|r| !r.events.is_closed());
        self.stats.add_cancelled((before - self.waiting.len()) as u64);
        while self.running.len() < self.config.max_num_seqs {
            let Some(req) = self.waiting.pop_front() else {
                break;
            };
            let seq = Sequence::new(req, self.model.new_cache());
            seq.send_started();
            self.running.push(seq);
        }
    }

    /// One forward pass over everything schedulable, then sampling.
    pub(crate) fn step(&mut self) {
        // Cancelled sequences leave first; dropping them frees their KV.
        let before = self.running.len();
        self.running.retain(|s| !s.is_cancelled());
        self.stats.add_cancelled((before - self.running.len()) as u64);
        self.admit();
        self.stats.set_queue(self.running.len(), self.waiting.len());
        let mut budget = self.config.max_num_batched_tokens;
        // Per running sequence: the tokens it runs this step, and whether it samples.
        let mut plan: Vec<Option<(Vec<u32>, bool)>> = Vec::with_capacity(self.running.len());
        for seq in &self.running {
            plan.push(match seq.decode_input() {
                Some(tok) if !seq.is_prefilling() && budget > 0 => {
                    budget -= 1;
                    Some((vec![tok], true))
                }
                _ => None,
            });
        }
        for (seq, slot) in self.running.iter().zip(plan.iter_mut()) {
            if seq.is_prefilling() && budget > 0 {
                let chunk = seq.next_prefill_chunk(budget);
                budget -= chunk.len();
                let last = seq.cache.len() + chunk.len() == seq.prompt_len();
                *slot = Some((chunk, last));
            }
        }
        let mut items: Vec<BatchItem<'_>> = self
            .running
            .iter_mut()
            .zip(plan.iter())
            .filter_map(|(seq, p)| {
                let prompt = seq.is_prefilling();
                p.as_ref().map(|(tokens, want)| BatchItem { tokens, cache: &mut seq.cache, want_logits: *want, prompt })
            })
            .collect();
        if items.is_empty() {
            return;
        }
        let result = self.model.forward(&mut items);
        drop(items);
        let mut prompt_tokens = 0u64;
        match result {
            Ok(logits) => {
                let mut logits = logits.into_iter();
                for (seq, p) in self.running.iter_mut().zip(plan.iter()) {
                    let Some((tokens, _)) = p else { continue };
                    let out = logits.next().flatten();
                    if seq.is_prefilling() {
                        seq.mark_prefilled(tokens.len());
                        prompt_tokens += tokens.len() as u64;
                    }
                    if let Some(mut l) = out {
                        let left = self.context_length.saturating_sub(seq.cache.len() + 1);
                        seq.on_logits(&mut l, &self.tokenizer, left, &self.stats);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "forward pass failed; failing the sequences of this step");
                for (seq, p) in self.running.iter_mut().zip(plan.iter()) {
                    if p.is_some() {
                        seq.fail(BackendError::Internal(e.to_string()));
                    }
                }
            }
        }
        self.stats.add_step(prompt_tokens);
        self.running.retain(|s| !s.is_finished());
    }
}
