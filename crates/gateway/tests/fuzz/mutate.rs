//! The mutation engine: from a pool of JSON bodies, each input is one of
//! a seed as is, a fully random JSON value, or a body after a few
//! JSON-aware mutations (values of another type, extreme numbers, odd
//! strings, deep nesting, deleted, duplicated and inserted keys, subtrees
//! of other bodies) and/or a few byte-level ones (bit flips, inserted
//! tokens, deleted or duplicated ranges, truncation, splices). Every input
//! is at most `MAX_INPUT` bytes. Everything is drawn from one seeded RNG,
//! so a seed replays a run exactly.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

/// The largest input (bytes); longer ones are truncated.
pub const MAX_INPUT: usize = 64 * 1024;
/// Pool entries larger than this are not kept (they would only be truncated).
const MAX_POOL_ENTRY: usize = 16 * 1024;
const POOL_SIZE: usize = 512;
/// Deepest nesting a mutation builds: past serde_json's limit of 128, so
/// both sides of it are tried.
const MAX_NESTING: usize = 200;

/// A string value written verbatim (not as a JSON string): raw literals
/// that `Value` cannot hold (`18446744073709551616`, `1e999`, `"\ud800"`).
const RAW: &str = "\u{1}raw:";
/// An object key written without this prefix: with the plain key next to
/// it, the object carries a duplicate key.
const DUP: &str = "\u{1}dup:";

/// Field names of every dialect, so random objects and inserted keys hit
/// the validators' branches rather than being ignored as unknown.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "prompt",
    "input",
    "role",
    "content",
    "name",
    "type",
    "text",
    "image_url",
    "url",
    "detail",
    "tool_calls",
    "tool_call_id",
    "id",
    "function",
    "arguments",
    "parameters",
    "strict",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "json_schema",
    "schema",
    "temperature",
    "top_p",
    "top_k",
    "n",
    "stream",
    "stream_options",
    "include_usage",
    "stop",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "ignore_eos",
    "min_tokens",
    "user",
    "cache_salt",
    "prompt_cache_key",
    "max_cost",
    "logprobs",
    "top_logprobs",
    "truncation",
    "echo",
    "suffix",
    "system",
    "stop_sequences",
    "metadata",
    "user_id",
    "source",
    "media_type",
    "data",
    "input_schema",
    "tool_use_id",
    "is_error",
    "disable_parallel_tool_use",
    "description",
    "encoding_format",
    "dimensions",
    "cache_control",
];

/// Top-level fields with a range or a rule.
const FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "top_k",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "min_tokens",
    "max_cost",
    "logprobs",
    "top_logprobs",
    "dimensions",
    "stop",
    "stop_sequences",
    "truncation",
    "suffix",
    "cache_salt",
    "tool_choice",
    "stream",
    "echo",
    "encoding_format",
];

/// Strings that mean something to some validator, or to a tokenizer or
/// chat template downstream, and unicode edge cases.
const STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "a\0b",
    "\u{202e}gnp.exe",
    "\u{200f}",
    "\u{200e}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{1}",
    "\u{7f}",
    "👨‍👩‍👧‍👦",
    "e\u{301}\u{301}\u{301}",
    "ﷺ",
    "𝕏",
    "null",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-0",
    "0x1F",
    "true",
    "{}",
    "[]",
    "{{ messages }}",
    "{% for m in messages %}",
    "<|im_start|>system",
    "<|im_end|>",
    "<|endoftext|>",
    "</s>",
    "<s>",
    "\r\n",
    "%s%n",
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
    "any",
    "disabled",
    "base64",
    "float",
    "tiny",
    "data:image/png;base64,iVBORw0KGgo=",
    "2023-06-01",
    "a b",
    "get_weather",
    "toolu_01B",
    "call_abc123",
];

/// Numbers written verbatim: extremes and boundaries `Value` cannot
/// always hold (`2^64`, `1e309`, `-0`).
const NUMBERS: &[&str] = &[
    "18446744073709551616",
    "18446744073709551615",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "4294967295",
    "4294967296",
    "2147483648",
    "1e308",
    "-1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "5e-324",
    "-0",
    "-0.0",
    "0e0",
    "1E+2",
    "1.0",
    "0.5",
    "2.5",
    "123456789012345678901234567890",
    "-1",
    "0",
    "1",
    "2",
    "3",
    "16",
    "17",
    "20",
    "21",
    "64",
    "65",
    "128",
    "129",
    "-2",
    "-2.0001",
    "2.0001",
    "1.0000001",
    "0.0000001",
];

/// Literals written verbatim that `String` cannot hold (lone surrogate
/// escapes), or that are almost JSON.
const MALFORMED: &[&str] = &[
    r#""\ud800""#,
    r#""\udfff""#,
    r#""\ud800\udc00""#,
    r#""\udbff\udfff""#,
    r#""\udc00\ud800""#,
    r#""a\u0000b""#,
    r#""\u202e""#,
    r#""\x41""#,
    r#""\u12""#,
    r#""\/""#,
    "NaN",
    "Infinity",
    "-Infinity",
    "nul",
    "tru",
    "01",
    ".5",
    "+1",
    "1.",
    "0x10",
    "[1,]",
    "{\"a\":1,}",
    "'single'",
];

/// A verbatim literal: mostly a number, sometimes malformed.
fn literal(rng: &mut StdRng) -> &'static str {
    if rng.random_bool(0.7) {
        pick_str(rng, NUMBERS)
    } else {
        pick_str(rng, MALFORMED)
    }
}

/// Byte sequences inserted by byte-level mutations.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-",
    b"1e999",
    b"{}",
    b"[]",
    b"\"a\":1,",
    b"\\u0000",
    b"\\ud800",
    b"\\uDFFF",
    b"\xf0\x9f",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\0",
    b" \t\r\n",
    b"\"model\":\"tiny\",",
    b"\"max_tokens\":-1,",
    b"\"stream\":true,",
];

/// The seeded source of inputs for one dialect.
pub struct Inputs {
    rng: StdRng,
    /// Seeds and accepted mutants, mutated further.
    pool: Vec<Value>,
    seeds: usize,
    /// Bodies to splice in and subtrees to graft (every dialect's seeds).
    donors: Vec<Value>,
    donor_bytes: Vec<Vec<u8>>,
}

impl Inputs {
    pub fn new(seed: u64, seeds: Vec<Value>, donors: Vec<Value>) -> Self {
        let donor_bytes = donors.iter().map(|v| v.to_string().into_bytes()).collect();
        Inputs { rng: StdRng::seed_from_u64(seed), seeds: seeds.len(), pool: seeds, donors, donor_bytes }
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// The next input.
    pub fn next_input(&mut self) -> Vec<u8> {
        let roll = self.rng.random_range(0..100);
        let mut bytes = if roll < 3 {
            self.pool[self.rng.random_range(0..self.seeds)].to_string().into_bytes()
        } else if roll < 8 {
            let v = if self.rng.random_bool(0.7) {
                random_object(&mut self.rng, 3)
            } else {
                random_value(&mut self.rng, 3)
            };
            write(&v)
        } else {
            let mut v = self.pool[self.rng.random_range(0..self.pool.len())].clone();
            let json_level = roll < 80;
            if json_level {
                for _ in 0..self.rng.random_range(1..=4) {
                    self.mutate_value(&mut v);
                }
            }
            let mut bytes = write(&v);
            if !json_level || self.rng.random_bool(0.2) {
                for _ in 0..self.rng.random_range(1..=3) {
                    self.mutate_bytes(&mut bytes);
                }
            }
            bytes
        };
        bytes.truncate(MAX_INPUT);
        bytes
    }

    /// Feeds back an input the dialect accepted: it joins the pool, so
    /// later mutations stack on bodies that got past the validator.
    pub fn keep(&mut self, input: &[u8]) {
        if input.len() > MAX_POOL_ENTRY {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(input) else { return };
        if self.pool.len() < POOL_SIZE {
            self.pool.push(v);
        } else {
            let i = self.rng.random_range(self.seeds..POOL_SIZE);
            self.pool[i] = v;
        }
    }

    fn mutate_value(&mut self, root: &mut Value) {
        let rng = &mut self.rng;
        let op = rng.random_range(0..16);
        if op >= 14 {
            // A top-level field at a boundary: the validators' range checks.
            if let Value::Object(o) = root {
                let v = if rng.random_bool(0.8) { raw(pick_str(rng, NUMBERS)) } else { Value::String(odd_string(rng)) };
                o.insert(pick_str(rng, FIELDS).to_string(), v);
            }
            return;
        }
        // Key-level operations act on an object: the picked node, or its root.
        if op >= 10 {
            if let Value::Object(o) = pick(root, rng) {
                mutate_object(o, op, rng, &self.donors);
            } else if let Value::Object(o) = root {
                mutate_object(o, op, rng, &self.donors);
            }
            return;
        }
        let node = pick(root, rng);
        *node = match op {
            0 => random_value(rng, 2),
            1 => raw(literal(rng)),
            2 => Value::String(odd_string(rng)),
            3 => nested(rng),
            4 => match rng.random_range(0..3) {
                0 => Value::Array(vec![]),
                1 => Value::Object(Map::new()),
                _ => Value::Null,
            },
            5 => {
                // Another body's subtree in this place.
                let mut donor = self.donors[rng.random_range(0..self.donors.len())].clone();
                pick(&mut donor, rng).take()
            }
            6 => match node.take() {
                // Wrap in an array, or unwrap one.
                Value::Array(mut a) if !a.is_empty() => a.swap_remove(0),
                other => Value::Array(vec![other]),
            },
            7 => retype(node.take(), rng),
            8 => grow(node.take(), rng),
            _ => match node.take() {
                Value::Number(n) => raw(&extreme_near(&n, rng)),
                Value::Bool(b) => Value::Bool(!b),
                Value::String(s) if rng.random_bool(0.5) => Value::String(format!("{s}{}", odd_string(rng))),
                _ => raw(literal(rng)),
            },
        };
    }

    fn mutate_bytes(&mut self, b: &mut Vec<u8>) {
        let rng = &mut self.rng;
        if b.is_empty() {
            b.extend_from_slice(TOKENS[rng.random_range(0..TOKENS.len())]);
            return;
        }
        let at = rng.random_range(0..=b.len());
        match rng.random_range(0..10) {
            0 => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = at.min(b.len() - 1);
                b[i] = *[0u8, 0xff, b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', 0xc0, 0xed, b'0', b'-', b'e']
                    .choose(rng)
                    .unwrap_or(&0);
            }
            2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            3 => {
                let end = (at + rng.random_range(1..=16)).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let end = (at + rng.random_range(1..=64)).min(b.len());
                let chunk = b[at..end].to_vec();
                let to = rng.random_range(0..=b.len());
                b.splice(to..to, chunk);
            }
            5 => b.truncate(at),
            6 => {
                // Splice: this body's head onto another body's tail.
                let other = &self.donor_bytes[rng.random_range(0..self.donor_bytes.len())];
                let from = rng.random_range(0..=other.len());
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
            7 => {
                let number = literal(rng);
                replace_token(b, rng, |c| c.is_ascii_digit(), number.as_bytes());
            }
            8 => {
                let esc: &[u8] =
                    [&b"\\ud800"[..], b"\\udfff\\ud800", b"\\u0000", b"\\", b"\\x", b"\xff\xfe", b"\xed\xb0\x80"]
                        .choose(rng)
                        .copied()
                        .unwrap_or(b"\\");
                replace_token(b, rng, |c| c.is_ascii_alphabetic(), esc);
            }
            _ => {
                let pad: &[u8] = [&b"\xef\xbb\xbf"[..], b" ", b"\n\n", b"\0", b"}", b"]", b"{}"]
                    .choose(rng)
                    .copied()
                    .unwrap_or(b" ");
                if rng.random_bool(0.5) {
                    b.splice(0..0, pad.iter().copied());
                } else {
                    b.extend_from_slice(pad);
                }
            }
        }
    }
}

/// A random node: a walk from the root that stops at a leaf, or at random.
fn pick<'a>(root: &'a mut Value, rng: &mut StdRng) -> &'a mut Value {
    let mut node = root;
    let mut depth = 0;
    loop {
        let n = match &*node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if n == 0 || rng.random_bool(if depth == 0 { 0.05 } else { 0.3 }) {
            return node;
        }
        let i = rng.random_range(0..n);
        depth += 1;
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).expect("i < len"),
            other => return other,
        };
    }
}

/// Key-level mutations of one object.
fn mutate_object(obj: &mut Map<String, Value>, op: usize, rng: &mut StdRng, donors: &[Value]) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    match (op, keys.choose(rng)) {
        (10, Some(k)) => {
            obj.remove(k);
        }
        (11, Some(k)) => {
            // The same key twice: once as it was, once with another value.
            let other = if rng.random_bool(0.5) { random_value(rng, 1) } else { raw(literal(rng)) };
            obj.insert(format!("{DUP}{k}"), other);
        }
        (12, _) => {
            let k = pick_str(rng, KEYS).to_string();
            let v = match rng.random_range(0..10) {
                0..=3 => raw(pick_str(rng, NUMBERS)),
                4 | 5 => random_value(rng, 2),
                6 => raw(pick_str(rng, MALFORMED)),
                // The value this key has in some body.
                _ => donors.iter().find_map(|d| find_key(d, &k, 0)).unwrap_or(Value::Null),
            };
            obj.insert(k, v);
        }
        (_, Some(k)) => {
            // Rename a key to another known one (moves a value into a field of another type).
            if let Some(v) = obj.remove(k) {
                obj.insert(pick_str(rng, KEYS).to_string(), v);
            }
        }
        _ => {}
    }
}

fn find_key(v: &Value, k: &str, depth: usize) -> Option<Value> {
    if depth > 8 {
        return None;
    }
    match v {
        Value::Object(o) => o.get(k).cloned().or_else(|| o.values().find_map(|c| find_key(c, k, depth + 1))),
        Value::Array(a) => a.iter().find_map(|c| find_key(c, k, depth + 1)),
        _ => None,
    }
}

fn raw(literal: &str) -> Value {
    Value::String(format!("{RAW}{literal}"))
}

fn pick_str<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// A value of some other type standing for this one (`5` ↔ `"5"`, …).
fn retype(v: Value, rng: &mut StdRng) -> Value {
    match v {
        Value::Number(n) if rng.random_bool(0.5) => Value::String(n.to_string()),
        Value::Number(n) => Value::Bool(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.parse::<f64>() {
            Ok(_) => raw(&s),
            Err(_) => Value::Array(s.chars().take(8).map(|c| Value::String(c.to_string())).collect()),
        },
        Value::Bool(b) => Value::from(u8::from(b)),
        Value::Array(a) => Value::Object(a.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect()),
        Value::Object(o) => Value::Array(o.into_iter().map(|(_, v)| v).collect()),
        Value::Null => Value::String("null".into()),
    }
}

/// An array or string made long: many copies of an element, about
/// `MAX_INPUT` bytes at most (twice an element, when one is larger).
fn grow(v: Value, rng: &mut StdRng) -> Value {
    let copies = |one: &Value, rng: &mut StdRng| {
        let size = write(one).len().max(1);
        rng.random_range(2..=(MAX_INPUT / size).clamp(2, 300))
    };
    match v {
        Value::Array(a) if !a.is_empty() => {
            let one = a[rng.random_range(0..a.len())].clone();
            let n = copies(&one, rng);
            Value::Array(vec![one; n])
        }
        Value::String(s) => {
            let unit = if s.is_empty() { "x".to_string() } else { s };
            let n = rng.random_range(2..=(40_000 / unit.len().max(1)).max(2));
            Value::String(cap(unit.repeat(n)))
        }
        other => {
            let n = copies(&other, rng);
            Value::Array(vec![other; n])
        }
    }
}

/// The same number pushed to an extreme: negative, zero, just out of
/// range, or far out.
fn extreme_near(n: &serde_json::Number, rng: &mut StdRng) -> String {
    let f = n.as_f64().unwrap_or(0.0);
    match rng.random_range(0..6) {
        0 => format!("{}", -f),
        1 => format!("{}", f + 1.0),
        2 => format!("{}", f * 1e10),
        3 => format!("{f}e300"),
        4 => format!("{}.5", n.as_i64().unwrap_or(1)),
        _ => literal(rng).to_string(),
    }
}

/// A string with an edge case in it: known values, unicode, NUL, very long.
fn odd_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 | 1 => pick_str(rng, STRINGS).to_string(),
        2 => (0..rng.random_range(1..32)).filter_map(|_| char::from_u32(rng.random_range(0..0x11_0000))).collect(),
        3 => cap(pick_str(rng, STRINGS).repeat(rng.random_range(100..2_000))),
        _ => "x".repeat(rng.random_range(1_000..40_000)),
    }
}

/// At most 40,000 bytes of `s` (cut at a character boundary).
fn cap(mut s: String) -> String {
    let mut end = s.len().min(40_000);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s
}

/// Arrays or objects nested up to `MAX_NESTING` deep.
fn nested(rng: &mut StdRng) -> Value {
    let depth = rng.random_range(1..=MAX_NESTING);
    let mut v = if rng.random_bool(0.5) { Value::from(1) } else { Value::String("x".into()) };
    let objects = rng.random_bool(0.3);
    for _ in 0..depth {
        v = if objects { Value::Object(Map::from_iter([("content".to_string(), v)])) } else { Value::Array(vec![v]) };
    }
    v
}

/// A small random JSON value, at most `depth` deep.
pub fn random_value(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => match rng.random_range(0..3) {
            0 => Value::from(rng.random_range(-3i64..=130)),
            1 => serde_json::Number::from_f64(rng.random_range(-3.0..3.0)).map_or(Value::Null, Value::Number),
            _ => raw(literal(rng)),
        },
        3 | 4 => Value::String(if rng.random_bool(0.8) { pick_str(rng, STRINGS).to_string() } else { odd_string(rng) }),
        5 => Value::Array((0..rng.random_range(0..5)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => random_object(rng, depth - 1),
    }
}

/// A random object whose keys are mostly field names of the dialects.
pub fn random_object(rng: &mut StdRng, depth: usize) -> Value {
    let n = rng.random_range(0..6);
    Value::Object((0..n).map(|_| (pick_str(rng, KEYS).to_string(), random_value(rng, depth))).collect())
}

/// The body's bytes, with `RAW` strings written verbatim and `DUP` keys
/// written as the key they duplicate.
pub fn write(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_into(v, &mut out);
    out
}

fn write_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::String(s) => match s.strip_prefix(RAW) {
            Some(lit) => out.extend_from_slice(lit.as_bytes()),
            None => out.extend_from_slice(Value::String(s.clone()).to_string().as_bytes()),
        },
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_into(x, out);
            }
            out.push(b']');
        }
        Value::Object(o) => {
            out.push(b'{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let k = k.strip_prefix(DUP).unwrap_or(k);
                out.extend_from_slice(Value::String(k.to_string()).to_string().as_bytes());
                out.push(b':');
                write_into(x, out);
            }
            out.push(b'}');
        }
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// Replaces one run of bytes matching `class` (found from a random place)
/// with `with`.
fn replace_token(b: &mut Vec<u8>, rng: &mut StdRng, class: fn(u8) -> bool, with: &[u8]) {
    let from = rng.random_range(0..b.len());
    let Some(start) = b[from..].iter().position(|&c| class(c)).map(|p| p + from) else { return };
    let end = b[start..].iter().position(|&c| !class(c)).map_or(b.len(), |p| p + start);
    b.splice(start..end, with.iter().copied());
}
