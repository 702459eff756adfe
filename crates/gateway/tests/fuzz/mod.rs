//! A property/fuzz harness for the dialects' parsers and validators, shared
//! by `tests/fuzz_dialects.rs` (a short run in the test suite, plus the same
//! inputs through the router) and `examples/fuzz_dialects.rs` (the long run).
//!
//! The property: for any body, parse + validate never panics, and every
//! rejection is a 4xx (never a 5xx).
//!
//! - `corpus`: realistic seed bodies per dialect;
//! - `mutate`: the seeded mutation engine (JSON-aware and byte-level);
//! - here: the table of dialects (adding one is one entry), one input's
//!   check, a whole run and its tally, failures printed for replay.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod corpus;
pub mod mutate;

use gateway::dialect::extract::parse_body;
use gateway::dialect::ErrorShape;
use gateway::error::ApiError;
use mutate::Inputs;
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// The seed of a run when `SWITCHYARD_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5717_c4ad;

/// One wire format under test.
pub struct Dialect {
    pub name: &'static str,
    /// Where the router serves it (for the router-level check).
    pub path: &'static str,
    pub shape: ErrorShape,
    /// Headers a well-formed request carries.
    pub headers: &'static [(&'static str, &'static str)],
    pub seeds: fn() -> Vec<Value>,
    /// Parses and validates a body, as the handler does before the pipeline.
    pub check: fn(&[u8]) -> Result<(), ApiError>,
    /// Output-length fields the router-level check clamps (so generation is
    /// quick), and the one it adds when none is set and the default is long.
    pub length_keys: &'static [&'static str],
    pub add_length: Option<&'static str>,
}

fn chat(b: &[u8]) -> Result<(), ApiError> {
    gateway::validate::validate_chat(parse_body(b)?, "rid").map(drop)
}

fn completions(b: &[u8]) -> Result<(), ApiError> {
    gateway::validate::validate_completion(parse_body(b)?, "rid").map(drop)
}

fn messages(b: &[u8]) -> Result<(), ApiError> {
    gateway::dialect::anthropic_messages::validate_messages(parse_body(b)?, "rid").map(drop)
}

/// Parse only: count_tokens' validation is private to its handler (the
/// router-level check reaches it).
fn count_tokens(b: &[u8]) -> Result<(), ApiError> {
    parse_body::<protocol::anthropic::CountTokensRequest>(b).map(drop)
}

fn embeddings(b: &[u8]) -> Result<(), ApiError> {
    gateway::dialect::embeddings::validate_embeddings(parse_body(b)?, "rid").map(drop)
}

const ANTHROPIC_HEADERS: &[(&str, &str)] = &[("anthropic-version", "2023-06-01")];

/// Every dialect, in the order runs report them.
pub fn dialects() -> Vec<Dialect> {
    use ErrorShape::{Anthropic, OpenAi};
    vec![
        Dialect {
            name: "openai-chat",
            path: "/v1/chat/completions",
            shape: OpenAi,
            headers: &[],
            seeds: corpus::openai_chat,
            check: chat,
            length_keys: &["max_tokens", "max_completion_tokens"],
            add_length: Some("max_tokens"),
        },
        Dialect {
            name: "openai-completions",
            path: "/v1/completions",
            shape: OpenAi,
            headers: &[],
            seeds: corpus::openai_completions,
            check: completions,
            length_keys: &["max_tokens"],
            add_length: None,
        },
        Dialect {
            name: "anthropic-messages",
            path: "/v1/messages",
            shape: Anthropic,
            headers: ANTHROPIC_HEADERS,
            seeds: corpus::anthropic_messages,
            check: messages,
            length_keys: &["max_tokens"],
            add_length: None,
        },
        Dialect {
            name: "anthropic-count-tokens",
            path: "/v1/messages/count_tokens",
            shape: Anthropic,
            headers: ANTHROPIC_HEADERS,
            seeds: corpus::anthropic_messages,
            check: count_tokens,
            length_keys: &[],
            add_length: None,
        },
        Dialect {
            name: "openai-embeddings",
            path: "/v1/embeddings",
            shape: OpenAi,
            headers: &[],
            seeds: corpus::openai_embeddings,
            check: embeddings,
            length_keys: &[],
            add_length: None,
        },
    ]
}

/// Every dialect's seeds: donors of subtrees and splices, so one
/// dialect's fields turn up in another's bodies.
pub fn donors() -> Vec<Value> {
    let mut all = corpus::openai_chat();
    all.extend(corpus::openai_completions());
    all.extend(corpus::anthropic_messages());
    all.extend(corpus::openai_embeddings());
    all
}

/// The run's seed: `SWITCHYARD_FUZZ_SEED` (decimal or `0x` hex) when set.
pub fn seed_from_env() -> u64 {
    match std::env::var("SWITCHYARD_FUZZ_SEED") {
        Ok(s) => parse_seed(&s).unwrap_or_else(|| panic!("SWITCHYARD_FUZZ_SEED={s:?} is not a number")),
        Err(_) => DEFAULT_SEED,
    }
}

pub fn parse_seed(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A dialect's own stream of inputs: adding a dialect leaves the others'
/// inputs for a given seed unchanged.
pub fn inputs_for(d: &Dialect, seed: u64, seeds: Vec<Value>) -> Inputs {
    let name_hash =
        d.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    Inputs::new(seed ^ name_hash, seeds, donors())
}

/// What one input did.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    Rejected(ApiError),
    /// The panic's message and location.
    Panicked(String),
}

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Panics inside `check` are recorded (message and location) instead of
/// printed; any other panic goes to the previous hook as usual.
fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                CAUGHT.with(|c| *c.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input through the dialect's parse + validate.
pub fn check(d: &Dialect, input: &[u8]) -> Outcome {
    record_panics();
    FUZZING.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| (d.check)(input)));
    FUZZING.with(|f| f.set(false));
    match result {
        Ok(Ok(())) => Outcome::Accepted,
        Ok(Err(e)) => Outcome::Rejected(e),
        Err(_) => Outcome::Panicked(CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_else(|| "a panic".into())),
    }
}

/// An input that broke the property, with what it did.
pub struct Failure {
    pub dialect: &'static str,
    pub index: u64,
    pub input: Vec<u8>,
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} input #{}: {}", self.dialect, self.index, self.what)?;
        write!(f, "  input ({} bytes): {}", self.input.len(), literal(&self.input))
    }
}

/// The input as a Rust byte-string literal, ready for a regression test.
pub fn literal(input: &[u8]) -> String {
    format!("b\"{}\"", input.escape_ascii())
}

/// A run's counts for one dialect.
#[derive(Default)]
pub struct Tally {
    pub inputs: u64,
    pub accepted: u64,
    /// Rejections by HTTP status.
    pub rejected: BTreeMap<u16, u64>,
    pub panics: u64,
    /// Rejections with a 5xx status.
    pub server_errors: u64,
    /// Rejections by what they said (digits and quoted values blanked):
    /// which of the validators' branches the inputs reached.
    pub reasons: BTreeMap<String, u64>,
    /// The first few failures, in full.
    pub failures: Vec<Failure>,
    pub wall: Duration,
}

/// Failures kept in full per run (the counts go on).
const KEEP_FAILURES: usize = 10;

impl Tally {
    pub fn ok(&self) -> bool {
        self.panics == 0 && self.server_errors == 0 && self.failures.is_empty()
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn fail(&mut self, dialect: &'static str, index: u64, input: &[u8], what: String) {
        if self.failures.len() < KEEP_FAILURES {
            self.failures.push(Failure { dialect, index, input: input.to_vec(), what });
        }
    }
}

/// A rejection's message without its values, so alike ones count together.
pub fn reason(e: &ApiError) -> String {
    let mut out = String::new();
    let mut quoted = None;
    for c in e.to_string().chars().take(200) {
        match (quoted, c) {
            (None, '\'' | '`' | '"') => {
                quoted = Some(c);
                out.push_str("..");
            }
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, c) if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// The parser-level run: `count` inputs (or fewer, when `time_limit` runs
/// out first) through parse + validate, each checked against the property.
pub fn run_parser(d: &Dialect, seed: u64, count: u64, time_limit: Option<Duration>) -> Tally {
    let mut inputs = inputs_for(d, seed, (d.seeds)());
    let mut tally = Tally::default();
    let start = Instant::now();
    for index in 0..count {
        if index % 1024 == 0 && time_limit.is_some_and(|t| start.elapsed() > t) {
            break;
        }
        let input = inputs.next_input();
        tally.inputs += 1;
        match check(d, &input) {
            Outcome::Accepted => {
                tally.accepted += 1;
                inputs.keep(&input);
            }
            Outcome::Rejected(e) => {
                let status = e.status();
                *tally.rejected.entry(status.as_u16()).or_default() += 1;
                *tally.reasons.entry(reason(&e)).or_default() += 1;
                if status.is_server_error() {
                    tally.server_errors += 1;
                }
                if !status.is_client_error() {
                    tally.fail(d.name, index, &input, format!("rejected with {status}, not a 4xx: {e}"));
                }
            }
            Outcome::Panicked(message) => {
                tally.panics += 1;
                tally.fail(d.name, index, &input, format!("panicked: {message}"));
            }
        }
    }
    tally.wall = start.elapsed();
    tally
}
