//! One request's life inside the engine: its prompt, KV cache, sampler and
//! the streaming state that turns sampled tokens into text events.

use crate::constraint::Constraint;
use crate::kv_cache::{block_hash, root_hash, BlockId, BlockPool};
use crate::sampler::{Sampled, Sampler};
use crate::stats::EngineStats;
use crate::stop::{StopMatcher, StopOutcome};
use crate::tokenizer::{StreamDecoder, Tokenizer};
use backend_api::{BackendError, FinishReason, GeneratedToken, GenerationEvent, StopParams, TokenAlternative};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

pub type EventSender = UnboundedSender<Result<GenerationEvent, BackendError>>;

/// What the handle sends the engine: a tokenized, checked request.
pub struct EngineRequest {
    pub prompt: Vec<u32>,
    pub sampler: Sampler,
    pub stop: StopParams,
    /// Generation budget, already capped by the context window.
    pub max_new_tokens: u32,
    pub logprobs: Option<u32>,
    pub events: EventSender,
    /// When the request reached the engine's handle (for time to first token).
    pub arrived: Instant,
    /// Prefix-cache namespace: sequences only share blocks with equal salts.
    pub cache_salt: Option<String>,
    /// The grammar the answer must follow (compiled before it got here).
    pub constraint: Option<Constraint>,
}

pub struct Sequence {
    req: EngineRequest,
    /// Prompt then generated tokens: what a recompute after preemption runs.
    tokens: Vec<u32>,
    /// Leading positions whose keys and values are in `table`'s blocks.
    computed: usize,
    /// Block table: position `p` is in block `table[p / block_size]`.
    table: Vec<BlockId>,
    /// Chain hashes of the leading full blocks, registered or hit.
    hashes: Vec<u64>,
    /// Prompt tokens served from the prefix cache at first admission.
    cached_tokens: u32,
    started: bool,
    n_generated: usize,
    decoder: StreamDecoder,
    stopper: StopMatcher,
    /// Tokens whose text has not been released yet (held by UTF-8 or stop matching).
    pending: Vec<GeneratedToken>,
    finished: bool,
    last_token_at: Option<Instant>,
}

impl Sequence {
    pub fn new(req: EngineRequest) -> Self {
        let stopper = StopMatcher::new(req.stop.stop.clone());
        Sequence {
            tokens: req.prompt.clone(),
            req,
            computed: 0,
            table: Vec::new(),
            hashes: Vec::new(),
            cached_tokens: 0,
            started: false,
            n_generated: 0,
            decoder: StreamDecoder::new(),
            stopper,
            pending: Vec::new(),
            finished: false,
            last_token_at: None,
        }
    }

    pub fn prompt_len(&self) -> usize {
        self.req.prompt.len()
    }

    /// Tokens that still need a forward pass before the next sample: the
    /// rest of the prompt (or, after preemption, of everything so far), or
    /// the one token sampled last.
    pub fn pending(&self) -> usize {
        self.tokens.len() - self.computed
    }

    /// Running a single generated token per step (as opposed to a prompt,
    /// or a recompute after preemption).
    pub fn is_decoding(&self) -> bool {
        self.n_generated > 0 && self.pending() == 1
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The client went away (its stream was dropped).
    pub fn is_cancelled(&self) -> bool {
        self.req.events.is_closed()
    }

    pub fn computed(&self) -> usize {
        self.computed
    }

    pub fn table(&self) -> &[BlockId] {
        &self.table
    }

    /// The next `n` tokens to run, at positions `computed()..`.
    pub fn next_tokens(&self, n: usize) -> &[u32] {
        &self.tokens[self.computed..(self.computed + n).min(self.tokens.len())]
    }

    /// Positions this sequence could hold with its blocks plus `free` more.
    pub fn room(&self, free_blocks: usize, block_size: usize) -> usize {
        (self.table.len() + free_blocks) * block_size - self.computed
    }

    /// Grows the block table to cover `positions`; false (keeping what it
    /// got) when the pool runs dry.
    pub fn reserve(&mut self, pool: &mut BlockPool, positions: usize, block_size: usize) -> bool {
        while self.table.len() * block_size < positions {
            match pool.allocate() {
                Some(b) => self.table.push(b),
                None => return false,
            }
        }
        true
    }

    /// Reuses the longest cached prefix (whole blocks, always leaving the
    /// last token to compute so there are logits to sample from). Returns
    /// the positions served from the cache.
    pub fn attach_prefix(&mut self, pool: &mut BlockPool, block_size: usize) -> usize {
        if !self.table.is_empty() {
            return 0;
        }
        let mut parent = root_hash(self.req.cache_salt.as_deref());
        let reusable = self.tokens.len().saturating_sub(1) / block_size;
        for chunk in self.tokens.chunks_exact(block_size).take(reusable) {
            let hash = block_hash(parent, chunk);
            let Some(id) = pool.lookup(hash, parent, chunk) else { break };
            pool.acquire(id);
            self.table.push(id);
            self.hashes.push(hash);
            parent = hash;
        }
        self.computed = self.table.len() * block_size;
        self.computed
    }

    /// Registers every block that became full in the prefix cache.
    pub fn register_full_blocks(&mut self, pool: &mut BlockPool, block_size: usize) {
        let full = (self.computed / block_size).min(self.table.len());
        while self.hashes.len() < full {
            let i = self.hashes.len();
            let parent = self.hashes.last().copied().unwrap_or_else(|| root_hash(self.req.cache_salt.as_deref()));
            let chunk = &self.tokens[i * block_size..(i + 1) * block_size];
            let hash = block_hash(parent, chunk);
            pool.register(self.table[i], hash, parent, chunk);
            self.hashes.push(hash);
        }
    }

    /// Gives every block back (finished, cancelled or preempted). A
    /// preempted sequence starts over from its tokens, usually mostly from
    /// its own blocks still in the prefix cache.
    pub fn release(&mut self, pool: &mut BlockPool) {
        pool.release_all(&self.table);
        self.table.clear();
        self.hashes.clear();
        self.computed = 0;
    }

    /// After a forward pass over the next `n` tokens.
    pub fn mark_computed(&mut self, n: usize) {
        self.computed = (self.computed + n).min(self.tokens.len());
    }

    /// Positions in the cache that came from the prompt, among `n` just run.
    pub fn prompt_rows_in(&self, start: usize, n: usize) -> usize {
        self.prompt_len().saturating_sub(start).min(n)
    }

    /// The first admission's `Started` event, with the cached prompt tokens.
    pub fn start(&mut self, cached_tokens: usize) {
        if self.started {
            return;
        }
        self.started = true;
        self.cached_tokens = cached_tokens as u32;
        let _ = self.req.events.send(Ok(GenerationEvent::Started {
            prompt_tokens: self.prompt_len() as u32,
            cached_tokens: self.cached_tokens,
            model: None,
            verbatim: false,
        }));
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    pub fn fail(&mut self, error: BackendError) {
        let _ = self.req.events.send(Err(error));
        self.finished = true;
    }

    /// Samples from the logits of the last position and emits what became
    /// final. `context_left` is how many more positions the cache can take.
    pub fn on_logits(&mut self, logits: &mut [f32], tokenizer: &Tokenizer, context_left: usize, stats: &EngineStats) {
        let n_generated = self.n_generated as u32;
        let mut banned: Vec<u32> = if self.req.stop.ignore_eos || n_generated < self.req.stop.min_tokens {
            tokenizer.end_of_generation_ids().to_vec()
        } else {
            Vec::new()
        };
        if let Some(c) = self.req.constraint.as_mut() {
            if c.is_stopped() {
                // The grammar is complete and nothing may follow.
                return self.finish(FinishReason::Stop);
            }
            if let Err(e) = c.mask(logits) {
                return self.fail(BackendError::Internal(format!("the output grammar failed: {e}")));
            }
            // Where the grammar allows only the end, `min_tokens` and
            // `ignore_eos` yield: the answer must stay valid.
            if !banned.is_empty()
                && logits.iter().enumerate().all(|(i, l)| !l.is_finite() || banned.contains(&(i as u32)))
            {
                banned.clear();
            }
        }
        let Sampled { token, logprob, top } = self.req.sampler.sample(logits, &banned, self.req.logprobs);
        if let Some(c) = self.req.constraint.as_mut() {
            if !tokenizer.is_end_of_generation(token) {
                if let Err(e) = c.accept(token) {
                    return self.fail(BackendError::Internal(format!("the output grammar failed: {e}")));
                }
            }
        }
        self.tokens.push(token);
        self.n_generated += 1;
        stats.add_generated();
        let now = Instant::now();
        match self.last_token_at {
            None => stats.time_to_first_token.observe(now - self.req.arrived),
            Some(prev) => stats.inter_token_latency.observe(now - prev),
        }
        self.last_token_at = Some(now);
        // Under a grammar an end is only sampled where the grammar ends.
        if tokenizer.is_end_of_generation(token) && (!self.req.stop.ignore_eos || self.req.constraint.is_some()) {
            return self.finish(FinishReason::Stop);
        }
        let bytes = tokenizer.token_bytes(token);
        let alt = |(id, lp): (u32, f32)| {
            let b = tokenizer.token_bytes(id);
            TokenAlternative { id, text: String::from_utf8_lossy(&b).into_owned(), bytes: b, logprob: lp }
        };
        self.pending.push(GeneratedToken {
            id: token,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes: bytes.clone(),
            logprob,
            top_logprobs: top.into_iter().map(alt).collect(),
        });
        let text = self.decoder.push(&bytes);
        let active = self.n_generated as u32 >= self.req.stop.min_tokens;
        match self.stopper.push(&text, active) {
            StopOutcome::Stopped(t, i) => {
                self.emit(t);
                self.finish(FinishReason::StopString(stop_index(i)));
            }
            StopOutcome::Continue(t) => {
                if !t.is_empty() {
                    self.emit(t);
                }
                if self.n_generated as u32 >= self.req.max_new_tokens || context_left == 0 {
                    self.finish(FinishReason::Length);
                }
            }
        }
    }

    fn emit(&mut self, text: String) {
        let tokens = std::mem::take(&mut self.pending);
        if !text.is_empty() || !tokens.is_empty() {
            let _ = self.req.events.send(Ok(GenerationEvent::Delta { text, tokens }));
        }
    }

    fn finish(&mut self, reason: FinishReason) {
        // Release whatever partial text was held back, unless it completes a stop string.
        let tail = self.decoder.finish();
        let (text, reason) = match self.stopper.push(&tail, true) {
            StopOutcome::Stopped(t, i) => (t, FinishReason::StopString(stop_index(i))),
            StopOutcome::Continue(mut t) => {
                t.push_str(&self.stopper.finish());
                (t, reason)
            }
        };
        self.emit(text);
        let _ = self.req.events.send(Ok(GenerationEvent::Finished {
            reason,
            prompt_tokens: self.prompt_len() as u32,
            completion_tokens: self.n_generated as u32,
            cached_tokens: self.cached_tokens,
        }));
        self.finished = true;
    }
}

/// A stop string's index as the event carries it (requests have at most 16).
fn stop_index(i: usize) -> u8 {
    u8::try_from(i).unwrap_or(u8::MAX)
}
