//! Shared and durable state behind one trait: rate-limit and budget
//! counters, spend, and API keys.
//!
//! - `embedded`: in-process counters plus an append-only file for keys and
//!   spend (the default; one process).
//! - `redis`: counters as atomic Lua scripts on Redis's clock, keys in a
//!   hash, so any number of gateway replicas enforce one exact limit
//!   (through the `redis` crate's multiplexed, reconnecting connection).
//!
//! The store knows counters, not policies: a counter is a name, a window
//! (`Period`), a limit and an amount. `policy` decides which counters a
//! request touches.

pub mod embedded;
pub mod redis;

use crate::policy::keys::KeyRecord;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The store cannot be reached now (Redis down); callers apply `fail_open`.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    #[error("state store error: {0}")]
    Internal(String),
}

/// How a counter's window is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// Fixed windows of this many seconds, aligned to the Unix epoch on the
    /// store's clock (so 86 400 is the UTC day).
    Seconds(u64),
    /// A named window the caller computed (a calendar month, "2026-11").
    Named(String),
    /// Never resets.
    Total,
}

/// One counter a request reserves against.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSpec {
    pub name: String,
    pub period: Period,
    pub limit: u64,
    pub amount: u64,
    /// Spend: settled amounts must survive a crash.
    pub durable: bool,
}

/// A counter's state as seen by one reservation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterState {
    pub limit: u64,
    /// Including this reservation when admitted; without it when denied.
    pub used: u64,
    /// Milliseconds until the window resets; `None` for a window that never does.
    pub reset_ms: Option<u64>,
}

impl CounterState {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// What was reserved, to settle later against the same windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    /// Per counter: the concrete window key, the amount reserved, durable.
    pub slots: Vec<(String, u64, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reservation {
    Admitted {
        ticket: Ticket,
        states: Vec<CounterState>,
    },
    /// Nothing was reserved; `index` is the first counter that would overflow.
    Denied {
        index: usize,
        states: Vec<CounterState>,
    },
}

#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Reserves every counter's amount, all or nothing, atomically with
    /// respect to every other reservation on this store.
    async fn reserve(&self, counters: &[CounterSpec]) -> Result<Reservation, StoreError>;
    /// Replaces each slot's reserved amount by the actual one (same order as
    /// the ticket). The embedded store has durable slots on disk when this
    /// returns (microseconds; a `kill -9` must not lose the spend of a
    /// finished response). Redis queues it and writes batches a few
    /// milliseconds later, off the response path: a settlement lost there
    /// only over-counts, since the reservation (never less than the real
    /// usage, completions being capped) stays.
    async fn settle(&self, ticket: &Ticket, actual: &[u64]) -> Result<(), StoreError>;
    /// The current value of a counter's current window (spend so far).
    async fn read(&self, name: &str, period: &Period) -> Result<u64, StoreError>;

    async fn put_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    async fn key_by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Keeps a scored sample of live evaluation `eval` (the newest
    /// `EVAL_SAMPLES_KEPT` of each evaluation stay; on Redis, shared by
    /// every replica).
    async fn put_eval_sample(&self, eval: &str, sample: &serde_json::Value) -> Result<(), StoreError>;
    /// The kept samples of `eval`, newest first, at most `limit`.
    async fn eval_samples(&self, eval: &str, limit: usize) -> Result<Vec<serde_json::Value>, StoreError>;
}

/// Live-evaluation samples kept per evaluation by the state store.
pub const EVAL_SAMPLES_KEPT: usize = 1000;

/// Milliseconds until the end of the fixed window containing `now_ms`.
pub fn window_index_and_reset(now_ms: u64, seconds: u64) -> (u64, u64) {
    let len = seconds.max(1) * 1000;
    let index = now_ms / len;
    (index, (index + 1) * len - now_ms)
}

/// The concrete key of a counter's window at `now_ms`, and its reset.
pub fn slot_key(name: &str, period: &Period, now_ms: u64) -> (String, Option<u64>) {
    match period {
        Period::Seconds(s) => {
            let (index, reset) = window_index_and_reset(now_ms, *s);
            (format!("{name}:{s}s:{index}"), Some(reset))
        }
        Period::Named(n) => (format!("{name}:{n}"), None),
        Period::Total => (format!("{name}:total"), None),
    }
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
