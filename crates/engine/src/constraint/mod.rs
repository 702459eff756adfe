//! Constrained decoding: a request's `response_format` or tools become a
//! grammar (`grammar`), compiled by llguidance over the model's own
//! vocabulary (`vocab`) into a per-sequence [`Constraint`] that masks the
//! logits of every step, so the answer cannot leave the grammar. Compiling
//! runs on the caller's task (`spawn_blocking`), never on the engine
//! thread; the engine only computes masks (tens of µs) and commits tokens.

pub mod grammar;
pub mod tools;
mod vocab;

use crate::tokenizer::Tokenizer;
use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Compiled grammars kept for reuse (a client sends the same schema again
/// and again); a copy shares the lexer states its original has built.
const CACHED_GRAMMARS: usize = 128;

/// Compiles grammars for one model (its vocabulary's token trie is built once).
pub struct Grammars {
    factory: ParserFactory,
    cache: Mutex<Cache>,
    vocab: usize,
}

#[derive(Default)]
struct Cache {
    compiled: HashMap<String, Matcher>,
    order: VecDeque<String>,
}

impl Grammars {
    pub fn new(tokenizer: &Arc<Tokenizer>) -> Result<Self, String> {
        let env = vocab::tok_env(tokenizer)?;
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
        // Errors come back as values; nothing is printed.
        factory.quiet();
        Ok(Grammars { factory, cache: Mutex::default(), vocab: tokenizer.vocab_size() })
    }

    /// Compiles a grammar in llguidance's Lark syntax (JSON Schemas inside
    /// as `%json { … }`). Takes milliseconds for big schemas: call it off
    /// the engine thread. The error names what cannot be enforced.
    pub fn compile(&self, lark: &str) -> Result<Constraint, String> {
        if let Some(m) = self.cache.lock().ok().and_then(|c| c.compiled.get(lark).cloned()) {
            return Ok(Constraint { matcher: m, vocab: self.vocab });
        }
        let compiled = self.compile_fresh(lark)?;
        if let Ok(mut c) = self.cache.lock() {
            // Two requests may compile the same grammar at once: listed once.
            if c.compiled.insert(lark.to_string(), compiled.matcher.clone()).is_none() {
                c.order.push_back(lark.to_string());
            }
            if c.order.len() > CACHED_GRAMMARS {
                if let Some(old) = c.order.pop_front() {
                    c.compiled.remove(&old);
                }
            }
        }
        Ok(compiled)
    }

    /// Compiles without the cache (what a first request with a schema pays).
    pub fn compile_fresh(&self, lark: &str) -> Result<Constraint, String> {
        let parser =
            self.factory.create_parser(TopLevelGrammar::from_lark(lark.to_string())).map_err(|e| e.to_string())?;
        let matcher = Matcher::new(Ok(parser));
        match matcher.get_error() {
            Some(e) => Err(e),
            None => Ok(Constraint { matcher, vocab: self.vocab }),
        }
    }
}

/// One sequence's grammar state.
pub struct Constraint {
    matcher: Matcher,
    /// The vocabulary's size: logits beyond it (padding) are never allowed.
    vocab: usize,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint").field("stopped", &self.matcher.is_stopped()).finish()
    }
}

impl Constraint {
    /// Sets every logit the grammar does not allow next to -inf (the
    /// end-of-generation tokens are allowed once the grammar is complete,
    /// and are all that is allowed when nothing can follow).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), String> {
        let mask = self.matcher.compute_mask_or_eos().map_err(|e| e.to_string())?;
        mask.iter_unset_entries(|i| {
            if let Some(l) = logits.get_mut(i) {
                *l = f32::NEG_INFINITY;
            }
        });
        // Rows wider than the vocabulary (padding) are never allowed.
        logits.iter_mut().skip(self.vocab).for_each(|l| *l = f32::NEG_INFINITY);
        Ok(())
    }

    /// Advances the grammar past `token` (which the last mask allowed).
    pub fn accept(&mut self, token: u32) -> Result<(), String> {
        self.matcher.consume_token(token).map_err(|e| e.to_string())
    }

    /// Nothing but the end of generation can follow.
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }

    /// The grammar is complete here (an end of generation would be valid).
    pub fn is_accepting(&mut self) -> bool {
        self.matcher.is_accepting().unwrap_or(false)
    }
}
