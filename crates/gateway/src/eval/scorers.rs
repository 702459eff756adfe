//! Scorers: each turns a case's output into a score in [0, 1] and a
//! verdict. `value` fields default to the case's `expected`. Patterns and
//! schemas are compiled once, when the scorer is read (a bad one is an
//! error there, before any model call), not on every answer scored.
//! Two scorers need a model: the judge (`judge::grade`) and embedding
//! similarity (`similarity`); their callers grade them.

use crate::cache::semantic::dot;
use crate::policy::pricing::Price;
use backend_api::{EmbedInput, EmbedRequest, EmbeddingBackend};
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use std::sync::Arc;

/// A regular expression, compiled when read.
#[derive(Clone, Debug)]
pub struct Pattern(regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = String::deserialize(d)?;
        regex::Regex::new(&source).map(Pattern).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A JSON Schema, compiled when read.
#[derive(Clone)]
pub struct Schema {
    source: Value,
    validator: Arc<jsonschema::Validator>,
}

impl<'de> Deserialize<'de> for Schema {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let source = Value::deserialize(d)?;
        let validator = jsonschema::validator_for(&source).map_err(|e| serde::de::Error::custom(e.to_string()))?;
        Ok(Schema { source, validator: Arc::new(validator) })
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.source)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scorer {
    /// Equal after normalisation (trimmed by default).
    Exact {
        value: Option<String>,
        #[serde(default)]
        ignore_case: bool,
        #[serde(default)]
        ignore_punctuation: bool,
        #[serde(default)]
        collapse_whitespace: bool,
    },
    Contains {
        value: Option<String>,
    },
    Icontains {
        value: Option<String>,
    },
    StartsWith {
        value: Option<String>,
    },
    Regex {
        pattern: Pattern,
    },
    /// OpenAI evals' fuzzy match: after lower-casing and removing
    /// punctuation, articles and extra spaces, one text contains the other
    /// (any of `values`, default the case's `expected`).
    Fuzzy {
        values: Option<Vec<String>>,
    },
    /// The first number in the output, within `tolerance` of the value.
    Numeric {
        value: Option<f64>,
        #[serde(default)]
        tolerance: f64,
    },
    /// The output parses as JSON.
    Json,
    /// The output is JSON valid against `schema`.
    JsonSchema {
        schema: Schema,
    },
    /// The answer took at most `max_ms`.
    Latency {
        max_ms: f64,
    },
    /// The answer cost at most `max_usd` (its tokens at the model's price).
    Cost {
        max_usd: f64,
    },
    /// Cosine similarity of the answer's and the reference's embeddings
    /// (the in-process MiniLM), passing at `threshold` (default 0.8).
    /// Graded by the caller, which holds the embedding model.
    Similarity {
        value: Option<String>,
        threshold: Option<f64>,
    },
    /// An external program: the case and output as one JSON object on its
    /// standard input, a score from 0 to 1 (or `{"score", "pass"?,
    /// "detail"?}`) on its standard output; passing at `threshold`
    /// (default 0.5). Killed after `timeout_ms` (default 30 s).
    Command {
        argv: Vec<String>,
        threshold: Option<f64>,
        timeout_ms: Option<u64>,
    },
    /// An LLM judge grades the answer against `rubric` (0–10, passing at
    /// `threshold` × 10), or, `pairwise`, against the expected answer in
    /// both orders. Graded by the runner (it calls a model), not by `score`.
    Judge {
        /// The judge model (default: the run's `--judge-model`).
        model: Option<String>,
        rubric: String,
        #[serde(default)]
        pairwise: bool,
        threshold: Option<f64>,
    },
}

/// One scorer's verdict on one output.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub score: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Verdict {
    pub fn of(pass: bool, detail: Option<String>) -> Self {
        Verdict { pass, score: if pass { 1.0 } else { 0.0 }, detail }
    }
}

/// What a scorer sees of one answer.
pub struct Output<'a> {
    pub text: &'a str,
    pub expected: Option<&'a str>,
    pub latency_ms: f64,
    /// What the answer cost, when its price is known.
    pub cost_usd: Option<f64>,
}

impl Scorer {
    pub fn name(&self) -> &'static str {
        match self {
            Scorer::Exact { .. } => "exact",
            Scorer::Contains { .. } => "contains",
            Scorer::Icontains { .. } => "icontains",
            Scorer::StartsWith { .. } => "starts_with",
            Scorer::Regex { .. } => "regex",
            Scorer::Fuzzy { .. } => "fuzzy",
            Scorer::Numeric { .. } => "numeric",
            Scorer::Json => "json",
            Scorer::JsonSchema { .. } => "json_schema",
            Scorer::Latency { .. } => "latency",
            Scorer::Cost { .. } => "cost",
            Scorer::Similarity { .. } => "similarity",
            Scorer::Command { .. } => "command",
            Scorer::Judge { pairwise: false, .. } => "judge",
            Scorer::Judge { pairwise: true, .. } => "judge_pairwise",
        }
    }

    /// Checks what can be checked before any model call (a bad regex, a
    /// scorer that needs an expected value the case lacks).
    pub fn check(&self, expected: Option<&str>) -> Result<(), String> {
        let needs = |v: &Option<String>| {
            if v.is_none() && expected.is_none() {
                Err(format!("scorer '{}' needs a 'value' or the case's 'expected'", self.name()))
            } else {
                Ok(())
            }
        };
        match self {
            Scorer::Similarity { threshold: Some(t), .. } if !(0.0..=1.0).contains(t) => {
                Err("scorer 'similarity': 'threshold' must be between 0 and 1".into())
            }
            Scorer::Exact { value, .. }
            | Scorer::Contains { value }
            | Scorer::Icontains { value }
            | Scorer::StartsWith { value }
            | Scorer::Similarity { value, .. } => needs(value),
            Scorer::Fuzzy { values: None } if expected.is_none() => {
                Err("scorer 'fuzzy' needs 'values' or the case's 'expected'".into())
            }
            Scorer::Numeric { value, .. } => match (value, expected.map(str::trim).map(str::parse::<f64>)) {
                (Some(_), _) | (None, Some(Ok(_))) => Ok(()),
                _ => Err("scorer 'numeric' needs a numeric 'value' or 'expected'".into()),
            },
            Scorer::Judge { pairwise: true, .. } if expected.is_none() => {
                Err("a pairwise judge needs the case's 'expected' answer to compare with".into())
            }
            Scorer::Command { argv, .. } if argv.is_empty() => Err("scorer 'command' needs 'argv'".into()),
            Scorer::Json
            | Scorer::Regex { .. }
            | Scorer::JsonSchema { .. }
            | Scorer::Cost { .. }
            | Scorer::Latency { .. }
            | Scorer::Judge { .. }
            | Scorer::Fuzzy { .. }
            | Scorer::Command { .. } => Ok(()),
        }
    }

    pub fn score(&self, out: &Output) -> Verdict {
        let expected = |v: &Option<String>| v.clone().or_else(|| out.expected.map(str::to_string)).unwrap_or_default();
        match self {
            Scorer::Exact { value, ignore_case, ignore_punctuation, collapse_whitespace } => {
                let norm = |s: &str| normalise(s, *ignore_case, *ignore_punctuation, *collapse_whitespace);
                Verdict::of(norm(out.text) == norm(&expected(value)), None)
            }
            Scorer::Contains { value } => Verdict::of(out.text.contains(&expected(value)), None),
            Scorer::Icontains { value } => {
                Verdict::of(out.text.to_lowercase().contains(&expected(value).to_lowercase()), None)
            }
            Scorer::StartsWith { value } => Verdict::of(out.text.trim_start().starts_with(&expected(value)), None),
            Scorer::Regex { pattern } => Verdict::of(pattern.0.is_match(out.text), None),
            Scorer::Fuzzy { values } => {
                let refs =
                    values.clone().unwrap_or_else(|| out.expected.map(|e| vec![e.to_string()]).unwrap_or_default());
                Verdict::of(refs.iter().any(|r| fuzzy_match(out.text, r)), None)
            }
            Scorer::Numeric { value, tolerance } => {
                let want = value.or_else(|| out.expected.and_then(|e| e.trim().parse().ok()));
                match (first_number(out.text), want) {
                    (Some(got), Some(want)) => {
                        Verdict::of((got - want).abs() <= *tolerance, Some(format!("{got} vs {want}")))
                    }
                    (None, _) => Verdict::of(false, Some("no number in the output".into())),
                    (_, None) => Verdict::of(false, Some("no expected number".into())),
                }
            }
            Scorer::Json => match serde_json::from_str::<Value>(out.text.trim()) {
                Ok(_) => Verdict::of(true, None),
                Err(e) => Verdict::of(false, Some(e.to_string())),
            },
            Scorer::JsonSchema { schema } => {
                let why = match serde_json::from_str::<Value>(out.text.trim()) {
                    Err(e) => Some(format!("not JSON: {e}")),
                    Ok(v) => schema.validator.iter_errors(&v).next().map(|e| e.to_string()),
                };
                Verdict::of(why.is_none(), why)
            }
            Scorer::Latency { max_ms } => {
                Verdict::of(out.latency_ms <= *max_ms, Some(format!("{:.0} ms", out.latency_ms)))
            }
            Scorer::Cost { max_usd } => match out.cost_usd {
                Some(c) => Verdict::of(c <= *max_usd, Some(format!("${c:.6}"))),
                None => Verdict::of(
                    false,
                    Some("the answer's cost is unknown (no price for its model, or no usage)".into()),
                ),
            },
            Scorer::Judge { .. } | Scorer::Similarity { .. } => {
                Verdict::of(false, Some(format!("scorer '{}' needs a model: graded by its caller", self.name())))
            }
            Scorer::Command { argv, threshold, timeout_ms } => {
                let case =
                    serde_json::json!({"output": out.text, "expected": out.expected, "latency_ms": out.latency_ms});
                let limit = std::time::Duration::from_millis(timeout_ms.unwrap_or(30_000));
                match run_command(argv, &case.to_string(), limit) {
                    Ok((score, pass, detail)) => {
                        Verdict { pass: pass.unwrap_or(score >= threshold.unwrap_or(0.5)), score, detail }
                    }
                    Err(e) => Verdict::of(false, Some(e)),
                }
            }
        }
    }
}

fn normalise(s: &str, ignore_case: bool, ignore_punctuation: bool, collapse_whitespace: bool) -> String {
    let mut t: String = s.trim().to_string();
    if ignore_case {
        t = t.to_lowercase();
    }
    if ignore_punctuation {
        t = t.chars().filter(|c| !c.is_ascii_punctuation()).collect();
    }
    if collapse_whitespace {
        t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    t
}

/// What an answer cost at `price`; unknown (`None`) when no usage was
/// reported (zero tokens both ways), so a `cost` scorer fails rather than
/// passing a free answer that was only unmetered.
pub fn cost_usd(prompt_tokens: u32, completion_tokens: u32, price: &Price) -> Option<f64> {
    if prompt_tokens == 0 && completion_tokens == 0 {
        return None;
    }
    let (input, output) = (f64::from(prompt_tokens), f64::from(completion_tokens));
    Some((input * price.input_per_million + output * price.output_per_million) / 1e6)
}

/// Grades every scorer but the judge (whose callers ask its model each in
/// their own way): in place, through `embedder` (its model's name and it)
/// for similarity, on a blocking thread for a command (a program may take
/// its time; the async runtime's threads must not wait for it).
pub async fn grade(scorer: &Scorer, out: &Output<'_>, embedder: Option<(&str, &dyn EmbeddingBackend)>) -> Verdict {
    match scorer {
        Scorer::Similarity { .. } => match embedder {
            Some((model, e)) => similarity(e, model, scorer, out).await,
            None => Verdict::of(false, Some("no embedding model".into())),
        },
        Scorer::Command { .. } => {
            let (scorer, text, expected) = (scorer.clone(), out.text.to_string(), out.expected.map(str::to_string));
            let (latency_ms, cost_usd) = (out.latency_ms, out.cost_usd);
            tokio::task::spawn_blocking(move || {
                scorer.score(&Output { text: &text, expected: expected.as_deref(), latency_ms, cost_usd })
            })
            .await
            .unwrap_or_else(|e| Verdict::of(false, Some(format!("the scorer stopped: {e}"))))
        }
        scorer => scorer.score(out),
    }
}

/// Grades a `similarity` scorer with `embedder`'s `model`: the cosine of
/// the answer's and the reference's vectors (clamped at 0).
pub async fn similarity(embedder: &dyn EmbeddingBackend, model: &str, scorer: &Scorer, out: &Output<'_>) -> Verdict {
    let Scorer::Similarity { value, threshold } = scorer else { return Verdict::of(false, None) };
    let Some(reference) = value.as_deref().or(out.expected) else {
        return Verdict::of(false, Some("no reference answer".into()));
    };
    let request = EmbedRequest {
        request_id: "eval-similarity".into(),
        model: model.to_string(),
        inputs: vec![EmbedInput::Text(out.text.to_string()), EmbedInput::Text(reference.to_string())],
        dimensions: None,
    };
    match embedder.embed(request).await {
        Ok(e) if e.vectors.len() == 2 => {
            let cosine = cosine(&e.vectors[0], &e.vectors[1]);
            let score = cosine.clamp(0.0, 1.0);
            Verdict { pass: score >= threshold.unwrap_or(0.8), score, detail: Some(format!("cosine {cosine:.3}")) }
        }
        Ok(_) => Verdict::of(false, Some("the embedding model answered the wrong number of vectors".into())),
        Err(e) => Verdict::of(false, Some(format!("embedding failed: {e}"))),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 || a.len() != b.len() {
        0.0
    } else {
        f64::from(dot(a, b) / norms)
    }
}

/// Runs a command scorer: JSON in, a score (or an object with one) out.
/// Blocking: callers on an async runtime run it with `spawn_blocking`.
fn run_command(
    argv: &[String],
    input: &str,
    limit: std::time::Duration,
) -> Result<(f64, Option<bool>, Option<String>), String> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    let (program, args) = argv.split_first().ok_or("no command")?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // On its own thread: a program that never reads a large input must
        // not block us past the time limit (its verdict comes below).
        let input = input.to_string();
        std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
    }
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} took longer than {} ms", limit.as_millis()));
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let mut stdout = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = out.take(1 << 20).read_to_string(&mut stdout);
    }
    if !status.success() {
        return Err(format!("{program} exited with {status}"));
    }
    let text = stdout.trim();
    let parsed = match serde_json::from_str::<Value>(text) {
        Ok(Value::Number(n)) => n.as_f64().map(|s| (s, None, None)),
        Ok(Value::Object(o)) => o.get("score").and_then(Value::as_f64).map(|s| {
            let pass = o.get("pass").and_then(Value::as_bool);
            (s, pass, o.get("detail").and_then(Value::as_str).map(str::to_string))
        }),
        _ => None,
    };
    match parsed {
        Some((s, pass, detail)) if (0.0..=1.0).contains(&s) => Ok((s, pass, detail)),
        _ => Err(format!("{program} printed no score from 0 to 1: {:?}", text.chars().take(80).collect::<String>())),
    }
}

/// Lower-cased, without punctuation, articles and extra spaces.
fn fuzzy_normal(s: &str) -> String {
    let s: String = s.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect();
    s.split_whitespace().filter(|w| !matches!(*w, "a" | "an" | "the")).collect::<Vec<_>>().join(" ")
}

fn fuzzy_match(a: &str, b: &str) -> bool {
    let (a, b) = (fuzzy_normal(a), fuzzy_normal(b));
    if a.is_empty() || b.is_empty() {
        return a == b;
    }
    a.contains(&b) || b.contains(&a)
}

/// The first number written in `text` ("1,234.5" and "-3" included).
fn first_number(text: &str) -> Option<f64> {
    static NUMBER: std::sync::LazyLock<Option<regex::Regex>> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"-?\d[\d,]*(?:\.\d+)?").ok());
    NUMBER.as_ref()?.find(text).and_then(|m| m.as_str().replace(',', "").parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn score(spec: Value, text: &str, expected: Option<&str>) -> bool {
        let s: Scorer = serde_json::from_value(spec).unwrap_or(Scorer::Json);
        s.score(&Output { text, expected, latency_ms: 10.0, cost_usd: Some(0.002) }).pass
    }

    #[test]
    fn each_scorer_decides() {
        assert!(score(json!({"type": "exact", "ignore_case": true}), " Paris\n", Some("paris")));
        assert!(!score(json!({"type": "exact"}), "Paris.", Some("Paris")));
        assert!(score(json!({"type": "exact", "ignore_punctuation": true}), "Paris.", Some("Paris")));
        assert!(score(json!({"type": "icontains", "value": "PARIS"}), "It is Paris.", None));
        assert!(!score(json!({"type": "contains"}), "It is paris.", Some("Paris")));
        assert!(score(json!({"type": "regex", "pattern": "^\\d+$"}), "42", None));
        assert!(score(json!({"type": "numeric", "tolerance": 0.5}), "about 1,234.2 km", Some("1234")));
        assert!(!score(json!({"type": "numeric"}), "none", Some("3")));
        assert!(score(
            json!({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}),
            "{\"a\": 1}",
            None
        ));
        assert!(!score(json!({"type": "json_schema", "schema": {"type": "object", "required": ["a"]}}), "{}", None));
        assert!(score(json!({"type": "latency", "max_ms": 20}), "", None));
        assert!(score(json!({"type": "cost", "max_usd": 0.01}), "", None));
        // No usage reported is an unknown cost, not a free answer.
        let price = |input_per_million, output_per_million| Price { input_per_million, output_per_million };
        assert_eq!(cost_usd(0, 0, &price(1.0, 1.0)), None);
        assert_eq!(cost_usd(1000, 500, &price(2.0, 4.0)), Some(0.004));
        assert!(!score(json!({"type": "cost", "max_usd": 0.001}), "", None));
        assert!(score(json!({"type": "starts_with", "value": "Yes"}), "  Yes, indeed", None));
        assert!(score(json!({"type": "fuzzy"}), "It is the Eiffel Tower!", Some("eiffel tower")));
        assert!(score(json!({"type": "fuzzy", "values": ["x", "Paris"]}), "paris.", None));
        assert!(!score(json!({"type": "fuzzy"}), "London", Some("Paris")));
        // A command: the case as JSON in, a score out.
        let grep = json!({"type": "command", "argv": ["sh", "-c", "grep -q Paris && echo 1 || echo 0"]});
        assert!(score(grep.clone(), "It is Paris", None));
        assert!(!score(grep, "It is Rome", None));
        let obj =
            json!({"type": "command", "argv": ["sh", "-c", "cat >/dev/null; echo '{\"score\": 0.2, \"pass\": true}'"]});
        assert!(score(obj, "x", None));
        assert!(!score(json!({"type": "command", "argv": ["sh", "-c", "echo lots"]}), "x", None));
        assert!(!score(json!({"type": "command", "argv": ["sh", "-c", "sleep 5"], "timeout_ms": 100}), "x", None));
    }

    #[test]
    fn bad_specs_are_caught_before_any_call() {
        // Patterns and schemas compile when read.
        let bad = serde_json::from_value::<Scorer>(json!({"type": "regex", "pattern": "("}));
        assert!(matches!(&bad, Err(e) if e.to_string().contains("regex parse error")), "{bad:?}");
        let bad = serde_json::from_value::<Scorer>(json!({"type": "json_schema", "schema": {"type": 7}}));
        assert!(bad.is_err());
        let s: Scorer = serde_json::from_value(json!({"type": "similarity", "threshold": 2.0})).unwrap_or(Scorer::Json);
        assert!(s.check(Some("x")).is_err() && s.check(None).is_err());
        let s: Scorer = serde_json::from_value(json!({"type": "exact"})).unwrap_or(Scorer::Json);
        assert!(s.check(None).is_err() && s.check(Some("x")).is_ok());
        assert!(serde_json::from_value::<Scorer>(json!({"type": "exact", "typo": 1})).is_err());
    }
}
