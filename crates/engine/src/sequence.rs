//! One request's life inside the engine: its prompt, KV cache, sampler and
//! the streaming state that turns sampled tokens into text events.

use crate::kv_cache::SeqKv;
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
}

pub struct Sequence {
    req: EngineRequest,
    pub cache: SeqKv,
    /// Prompt tokens already run through the model.
    prefilled: usize,
    generated: Vec<u32>,
    decoder: StreamDecoder,
    stopper: StopMatcher,
    /// Tokens whose text has not been released yet (held by UTF-8 or stop matching).
    pending: Vec<GeneratedToken>,
    finished: bool,
    last_token_at: Option<Instant>,
}

impl Sequence {
    pub fn new(req: EngineRequest, cache: SeqKv) -> Self {
        let stopper = StopMatcher::new(req.stop.stop.clone());
        Sequence {
            req,
            cache,
            prefilled: 0,
            generated: Vec::new(),
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

    pub fn is_prefilling(&self) -> bool {
        self.prefilled < self.req.prompt.len()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The client went away (its stream was dropped).
    pub fn is_cancelled(&self) -> bool {
        self.req.events.is_closed()
    }

    /// The next prompt chunk of at most `budget` tokens.
    pub fn next_prefill_chunk(&self, budget: usize) -> Vec<u32> {
        let end = (self.prefilled + budget).min(self.req.prompt.len());
        self.req.prompt[self.prefilled..end].to_vec()
    }

    pub fn mark_prefilled(&mut self, n: usize) {
        self.prefilled += n;
    }

    /// The input of the next decode step: the last sampled token.
    pub fn decode_input(&self) -> Option<u32> {
        self.generated.last().copied()
    }

    pub fn send_started(&self) {
        let _ = self
            .req
            .events
            .send(Ok(GenerationEvent::Started { prompt_tokens: self.prompt_len() as u32, cached_tokens: 0 }));
    }

    pub fn fail(&mut self, error: BackendError) {
        let _ = self.req.events.send(Err(error));
        self.finished = true;
    }

    /// Samples from the logits of the last position and emits what became
    /// final. `context_left` is how many more positions the cache can take.
    pub fn on_logits(&mut self, logits: &mut [f32], tokenizer: &Tokenizer, context_left: usize, stats: &EngineStats) {
        let n_generated = self.generated.len() as u32;
        let banned: Vec<u32> = if self.req.stop.ignore_eos || n_generated < self.req.stop.min_tokens {
            tokenizer.end_of_generation_ids().to_vec()
        } else {
            Vec::new()
        };
        let Sampled { token, logprob, top } = self.req.sampler.sample(logits, &banned, self.req.logprobs);
        self.generated.push(token);
        stats.add_generated();
        let now = Instant::now();
        match self.last_token_at {
            None => stats.time_to_first_token.observe(now - self.req.arrived),
            Some(prev) => stats.inter_token_latency.observe(now - prev),
        }
        self.last_token_at = Some(now);
        if tokenizer.is_end_of_generation(token) && !self.req.stop.ignore_eos {
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
        let active = self.generated.len() as u32 >= self.req.stop.min_tokens;
        match self.stopper.push(&text, active) {
            StopOutcome::Stopped(t) => {
                self.emit(t);
                self.finish(FinishReason::Stop);
            }
            StopOutcome::Continue(t) => {
                if !t.is_empty() {
                    self.emit(t);
                }
                if self.generated.len() as u32 >= self.req.max_new_tokens || context_left == 0 {
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
            StopOutcome::Stopped(t) => (t, FinishReason::Stop),
            StopOutcome::Continue(mut t) => {
                t.push_str(&self.stopper.finish());
                (t, reason)
            }
        };
        self.emit(text);
        let _ = self.req.events.send(Ok(GenerationEvent::Finished {
            reason,
            prompt_tokens: self.prompt_len() as u32,
            completion_tokens: self.generated.len() as u32,
            cached_tokens: 0,
        }));
        self.finished = true;
    }
}
