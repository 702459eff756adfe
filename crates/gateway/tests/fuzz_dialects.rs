//! Robustness against any input: random and mutated bodies (see
//! `fuzz/mutate.rs`) for every dialect in `fuzz::dialects()`.
//!
//! - Parser level: parse + validate never panics, and every rejection is a
//!   4xx (`PARSER_INPUTS` per dialect; the long run is
//!   `examples/fuzz_dialects.rs`).
//! - Router level, through the whole app on the tiny random model: never a
//!   5xx (not even an error event inside a 200 stream), and every error
//!   body in the dialect's shape.
//!
//! The seed is fixed, or `SWITCHYARD_FUZZ_SEED` when set; it is printed,
//! and so is every failing input (as a byte-string literal), ready for
//! `REGRESSIONS`; the overflow it found in the engine has its own test
//! (`max_tokens_near_u32_max_is_a_400`).

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;
mod fuzz;

use common::{send_with, tiny_app, Reply, TINY};
use fuzz::{Dialect, Failure, Outcome};
use gateway::dialect::ErrorShape;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PARSER_INPUTS: u64 = 20_000;
/// Per dialect; `SWITCHYARD_FUZZ_ROUTER_INPUTS` sets another number (a
/// longer pass, still bounded by `ROUTER_TIME` per 1,000 inputs).
const ROUTER_INPUTS: u64 = 500;
/// The router-level run stops early for a dialect past this much time
/// (per 1,000 inputs asked for).
const ROUTER_TIME: Duration = Duration::from_secs(20);
/// Below `fuzz::mutate::MAX_INPUT`, so some inputs meet the body limit (413).
const BODY_LIMIT: usize = 48 * 1024;
/// Keeps the router run's inputs apart from the parser run's.
const ROUTER_SALT: u64 = 0x7007e7;

/// Dialects the tiny chat model never answers with a 200 (every valid
/// embeddings body is "does not serve embeddings", a 400).
const NO_ANSWER_ON_TINY: &[&str] = &["openai-embeddings"];

/// Inputs that once broke the property: (dialect name, body).
const REGRESSIONS: &[(&str, &[u8])] = &[];

fn dialect(name: &str) -> Dialect {
    fuzz::dialects().into_iter().find(|d| d.name == name).unwrap_or_else(|| panic!("no dialect {name}"))
}

fn report(seed: u64, failures: &[Failure]) -> String {
    let all: Vec<String> = failures.iter().map(ToString::to_string).collect();
    format!("seed {seed} (replay: SWITCHYARD_FUZZ_SEED={seed}): {} failures:\n{}", failures.len(), all.join("\n"))
}

#[test]
fn every_seed_is_accepted() {
    for d in fuzz::dialects() {
        for (i, seed) in (d.seeds)().iter().enumerate() {
            let body = seed.to_string();
            assert!(matches!(fuzz::check(&d, body.as_bytes()), Outcome::Accepted), "{} seed {i}: {body}", d.name);
        }
    }
}

#[test]
fn regressions_stay_fixed() {
    for (name, body) in REGRESSIONS {
        match fuzz::check(&dialect(name), body) {
            Outcome::Panicked(m) => panic!("{name}: {} panicked: {m}", fuzz::literal(body)),
            Outcome::Rejected(e) => assert!(e.status().is_client_error(), "{name}: {}: {e}", fuzz::literal(body)),
            Outcome::Accepted => {}
        }
    }
}

#[test]
fn parsers_and_validators_never_panic_and_reject_only_with_a_4xx() {
    let seed = fuzz::seed_from_env();
    eprintln!("fuzz seed {seed} (replay: SWITCHYARD_FUZZ_SEED={seed})");
    let mut failures = Vec::new();
    for d in fuzz::dialects() {
        let t = fuzz::run_parser(&d, seed, PARSER_INPUTS, None);
        eprintln!(
            "{}: {} inputs, {} accepted, rejected {:?}, {} panics, {:.2?}",
            d.name, t.inputs, t.accepted, t.rejected, t.panics, t.wall
        );
        // Both sides of the validator are reached, or the mutations are too weak (or too strong).
        assert!(
            t.accepted * 50 > t.inputs && t.rejected_total() * 50 > t.inputs,
            "{}: {:?}",
            d.name,
            (t.accepted, &t.rejected)
        );
        failures.extend(t.failures);
    }
    assert!(failures.is_empty(), "{}", report(seed, &failures));
}

/// Generation stays short: output lengths the tiny model could generate
/// (above 4, up to its context) become 1..=4, and one is added where the
/// default would be long. Longer ones stay: the context check refuses them
/// before any generation. Bodies that need no change go out byte for byte
/// (duplicate keys, odd escapes and all).
fn for_router(d: &Dialect, body: Vec<u8>, rng: &mut StdRng) -> Vec<u8> {
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(&body) else { return body };
    let context = f64::from(engine::testing::TINY_CONTEXT);
    let mut changed = false;
    for key in d.length_keys.iter().chain(&["min_tokens"]) {
        let Some(n) = obj.get(*key).and_then(Value::as_f64) else { continue };
        if n > 4.0 && n <= context && *key != "min_tokens" {
            obj.insert((*key).to_string(), rng.random_range(1..=4).into());
            changed = true;
        }
    }
    if let Some(key) = d.add_length {
        if !d.length_keys.iter().any(|k| obj.contains_key(*k)) {
            obj.insert(key.to_string(), rng.random_range(1..=4).into());
            changed = true;
        }
    }
    if changed {
        Value::Object(obj).to_string().into_bytes()
    } else {
        body
    }
}

/// Why a reply breaks the property, if it does.
fn judge(shape: ErrorShape, r: &Reply) -> Option<String> {
    if r.status.is_server_error() {
        return Some(format!("{}: {}", r.status, r.text()));
    }
    if r.status.is_success() {
        // A 200 stream must not end in an error event either.
        let is_sse = r.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        return is_sse
            .then(|| r.sse_chunks().into_iter().find(|c| c.get("error").is_some()))
            .flatten()
            .map(|e| format!("error event in a 200 stream: {e}"));
    }
    let Ok(v) = serde_json::from_slice::<Value>(&r.body) else {
        return Some(format!("{}: the error body is not JSON: {}", r.status, r.text()));
    };
    let ok = match shape {
        ErrorShape::OpenAi => {
            let e = &v["error"];
            e["message"].is_string() && e["type"].is_string() && e.get("param").is_some() && e.get("code").is_some()
        }
        ErrorShape::Anthropic => {
            v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string()
        }
    };
    (!ok).then(|| format!("{}: not in the {shape:?} error shape: {v}", r.status))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_router_no_5xx_and_every_error_in_the_dialect_s_shape() {
    let app = tiny_app(BODY_LIMIT);
    let seed = fuzz::seed_from_env();
    eprintln!("fuzz seed {seed} (replay: SWITCHYARD_FUZZ_SEED={seed})");
    let count =
        std::env::var("SWITCHYARD_FUZZ_ROUTER_INPUTS").ok().and_then(|n| n.parse().ok()).unwrap_or(ROUTER_INPUTS);
    let time_limit = ROUTER_TIME * u32::try_from(count.div_ceil(1_000)).unwrap_or(u32::MAX);
    let mut failures = Vec::new();
    for d in fuzz::dialects() {
        let seeds = (d.seeds)()
            .into_iter()
            .map(|mut s| {
                s["model"] = TINY.into();
                s
            })
            .collect();
        let mut inputs = fuzz::inputs_for(&d, seed ^ ROUTER_SALT, seeds);
        let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
        let start = Instant::now();
        for index in 0..count {
            if start.elapsed() > time_limit {
                eprintln!("{}: time is up after {index} inputs", d.name);
                break;
            }
            let raw = inputs.next_input();
            let body = for_router(&d, raw, inputs.rng());
            // Now and then without the dialect's headers (Anthropic's version).
            let headers = if inputs.rng().random_bool(0.05) { &[][..] } else { d.headers };
            let r = send_with(&app, "POST", d.path, Some(body.clone()), headers).await;
            *statuses.entry(r.status.as_u16()).or_default() += 1;
            if let Some(what) = judge(d.shape, &r) {
                failures.push(Failure { dialect: d.name, index, input: body, what });
            } else if r.status.is_success() {
                inputs.keep(&body);
            }
        }
        eprintln!("{} through the router: {statuses:?} in {:.2?}", d.name, start.elapsed());
        let answered = NO_ANSWER_ON_TINY.contains(&d.name) || statuses.contains_key(&200);
        assert!(answered && statuses.keys().any(|s| *s >= 400), "{}: {statuses:?}", d.name);
    }
    assert!(failures.is_empty(), "{}", report(seed, &failures));
}

/// Found by this harness: the engine's context-length message added an
/// output length near `u32::MAX` to the prompt's length in u32 (a panic,
/// so a 500, with overflow checks on; a wrong count in release builds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_near_u32_max_is_a_400() {
    let app = tiny_app(BODY_LIMIT);
    let cases: [(&str, &[u8]); 4] = [
        ("openai-chat", br#"{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4294967295}"#),
        ("openai-completions", br#"{"model":"tiny","prompt":"hi","max_tokens":4294967295}"#),
        // Found by the fuzzer (seed 1, 20,000 router inputs): no max_tokens, so it defaults to min_tokens.
        ("openai-completions", br#"{"model":"tiny","prompt":"def fib(n):","min_tokens":4294967295}"#),
        (
            "anthropic-messages",
            br#"{"model":"tiny","max_tokens":4294967295,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ];
    for (name, body) in cases {
        let d = dialect(name);
        let r = send_with(&app, "POST", d.path, Some(body.to_vec()), d.headers).await;
        assert_eq!(r.status, 400, "{name}: {}: {}", fuzz::literal(body), r.text());
        assert_eq!(judge(d.shape, &r), None, "{name}");
    }
}
