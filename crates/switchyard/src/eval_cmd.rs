//! `switchyard eval`: run a suite against a model of a running Switchyard
//! (`run`), and gate a new run against a base run (`compare`).
//!
//! A suite is JSON lines, one case each: `{"id", "messages" | "prompt",
//! "expected"?, "tags"?, "scorers"?, "repeats"?, "max_tokens"?}` (scorers
//! as in `gateway::eval::scorers`; none means `exact` on `expected`).
//! Model calls are cached on disk by their exact request (and repeat
//! number), so an unchanged re-run, or a run resumed after an
//! interruption, calls the model only for what it has not answered yet.

use anyhow::{bail, Context, Result};
use backend_api::{Backend, ChatTurn, Demands, Prompt, Role, SamplingParams, StopParams, ValidatedRequest};
use clap::{Args, Subcommand};
use futures::StreamExt;
use gateway::backends::config::{BackendConfig, Dialect, RemoteModel, Timeouts};
use gateway::backends::openai::OpenAiBackend;
use gateway::eval::scorers::{Output, Scorer, Verdict};
use gateway::eval::stats::{adjust, compare_numeric, compare_pass_fail, Comparison};
use gateway::registry::{Capabilities, ModelCard};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Run a suite (JSON lines) against a model; write results JSON and JUnit XML.
    Run(RunArgs),
    /// Compare two results files: paired tests per scorer, Holm-corrected; exit 1 on a real regression.
    Compare(CompareArgs),
}

#[derive(Args)]
pub struct RunArgs {
    suite: PathBuf,
    /// Base URL of a Switchyard (or any OpenAI-compatible server), with /v1.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    url: String,
    /// API key, if the server wants one.
    #[arg(long, env = "SWITCHYARD_EVAL_KEY")]
    key: Option<String>,
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Repeats of every case (a case's own `repeats` wins).
    #[arg(long, default_value_t = 1)]
    repeats: u32,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Results JSON.
    #[arg(long, default_value = "eval-results.json")]
    out: PathBuf,
    /// JUnit XML for CI (one test case per case and scorer).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Where model answers are cached.
    #[arg(long, default_value = ".switchyard-eval-cache")]
    cache: PathBuf,
    /// Call the model even for answers in the cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
pub struct CompareArgs {
    base: PathBuf,
    new: PathBuf,
    /// Significance level after Holm's correction.
    #[arg(long, default_value_t = 0.05)]
    alpha: f64,
    /// The smallest drop that matters (pass-rate points as a fraction, or mean score).
    #[arg(long, default_value_t = 0.02)]
    max_drop: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    id: String,
    messages: Option<Vec<Message>>,
    prompt: Option<String>,
    expected: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    scorers: Vec<Scorer>,
    repeats: Option<u32>,
    max_tokens: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize, Clone)]
struct Message {
    role: String,
    content: String,
}

/// One answer of one case, scored.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct CaseResult {
    id: String,
    repeat: u32,
    #[serde(default)]
    tags: Vec<String>,
    input: Value,
    expected: Option<String>,
    output: String,
    latency_ms: f64,
    cached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    scores: BTreeMap<String, Verdict>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Results {
    suite: String,
    model: String,
    cases: Vec<CaseResult>,
    model_calls: usize,
}

/// A cached answer.
#[derive(Serialize, Deserialize)]
struct Cached {
    output: String,
    latency_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Run(args) => run_suite(&args).await,
        EvalCommand::Compare(args) => {
            if compare(&args)? {
                // A real regression: CI goes red.
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

fn read_suite(path: &Path) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut case: Case = serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
        if case.messages.is_some() == case.prompt.is_some() {
            bail!("{}:{}: a case has 'messages' or 'prompt', not both or neither", path.display(), i + 1);
        }
        if case.scorers.is_empty() {
            case.scorers.push(Scorer::Exact {
                value: None,
                ignore_case: false,
                ignore_punctuation: false,
                collapse_whitespace: false,
            });
        }
        for s in &case.scorers {
            s.check(case.expected.as_deref())
                .map_err(|e| anyhow::anyhow!("{}:{} ({}): {e}", path.display(), i + 1, case.id))?;
        }
        if cases.iter().any(|c| c.id == case.id) {
            bail!("{}:{}: id '{}' is used twice", path.display(), i + 1, case.id);
        }
        cases.push(case);
    }
    Ok(cases)
}

fn backend(args: &RunArgs) -> Result<OpenAiBackend> {
    let card = ModelCard {
        name: args.model.clone(),
        context_length: 1 << 20,
        max_output_tokens: None,
        capabilities: Capabilities::OPENAI,
        weight: 1,
        aliases: Vec::new(),
    };
    let config = BackendConfig {
        name: "eval".into(),
        dialect: Dialect::OpenAi,
        base_url: args.url.trim_end_matches('/').to_string(),
        api_key: args.key.clone(),
        extra_roots: Vec::new(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(300),
            total: Duration::from_secs(600),
        },
        queue: None,
        health_check_interval: None,
        passthrough: false,
        validate: false,
        models: vec![RemoteModel {
            name: args.model.clone(),
            upstream: args.model.clone(),
            context_length: 1 << 20,
            card,
            price: None,
        }],
    };
    OpenAiBackend::new(config).map_err(|e| anyhow::anyhow!(e))
}

fn request(args: &RunArgs, case: &Case) -> ValidatedRequest {
    let prompt = match (&case.messages, &case.prompt) {
        (Some(m), _) => Prompt::Chat(
            m.iter()
                .map(|m| {
                    let role = match m.role.as_str() {
                        "system" | "developer" => Role::System,
                        "assistant" => Role::Assistant,
                        _ => Role::User,
                    };
                    ChatTurn::new(role, m.content.clone())
                })
                .collect(),
        ),
        (None, p) => Prompt::Text(p.clone().unwrap_or_default()),
    };
    ValidatedRequest {
        request_id: format!("eval-{}", case.id),
        model: args.model.clone(),
        prompt,
        sampling: SamplingParams { temperature: args.temperature, ..SamplingParams::default() },
        stop: StopParams { max_tokens: Some(case.max_tokens.unwrap_or(args.max_tokens)), ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools: None,
        demands: Demands::default(),
    }
}

/// The cache key: everything that decides the answer, and the repeat.
fn cache_key(args: &RunArgs, case: &Case, repeat: u32) -> String {
    let what = json!({"url": args.url, "model": args.model, "messages": case.messages, "prompt": case.prompt,
        "temperature": args.temperature, "max_tokens": case.max_tokens.unwrap_or(args.max_tokens), "repeat": repeat});
    format!("{:x}", Sha256::digest(what.to_string().as_bytes()))
}

async fn answer(backend: &OpenAiBackend, req: ValidatedRequest) -> Result<(String, f64)> {
    let started = Instant::now();
    let mut stream = backend.generate(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut text = String::new();
    while let Some(ev) = stream.next().await {
        if let backend_api::GenerationEvent::Delta { text: t, .. } = ev.map_err(|e| anyhow::anyhow!("{e}"))? {
            text.push_str(&t);
        }
    }
    Ok((text, started.elapsed().as_secs_f64() * 1e3))
}

async fn run_suite(args: &RunArgs) -> Result<()> {
    let cases = read_suite(&args.suite)?;
    let backend = backend(args)?;
    std::fs::create_dir_all(&args.cache).with_context(|| format!("creating {}", args.cache.display()))?;
    let jobs: Vec<(&Case, u32)> =
        cases.iter().flat_map(|c| (0..c.repeats.unwrap_or(args.repeats).max(1)).map(move |r| (c, r))).collect();
    let total = jobs.len();
    let mut done = 0usize;
    let mut calls = 0usize;
    let mut results = Vec::with_capacity(total);
    let mut stream = futures::stream::iter(jobs.into_iter().map(|(case, repeat)| {
        let backend = &backend;
        async move {
            let file = args.cache.join(format!("{}.json", cache_key(args, case, repeat)));
            if !args.no_cache {
                if let Some(c) = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok()) {
                    return Ok::<_, anyhow::Error>((case, repeat, c, true));
                }
            }
            match answer(backend, request(args, case)).await {
                Ok((output, latency_ms)) => {
                    let cached = Cached { output, latency_ms, error: None };
                    // Written as soon as it came: an interrupted run resumes from here.
                    std::fs::write(&file, serde_json::to_vec(&cached)?)?;
                    Ok((case, repeat, cached, false))
                }
                // A failed call fails the case's scorers and is not cached.
                Err(e) => Ok((
                    case,
                    repeat,
                    Cached { output: String::new(), latency_ms: 0.0, error: Some(e.to_string()) },
                    false,
                )),
            }
        }
    }))
    .buffer_unordered(args.concurrency.max(1));
    while let Some(r) = stream.next().await {
        let (case, repeat, answer, from_cache) = r?;
        calls += usize::from(!from_cache);
        let out = Output { text: &answer.output, expected: case.expected.as_deref(), latency_ms: answer.latency_ms };
        let mut scores = BTreeMap::new();
        for (i, s) in case.scorers.iter().enumerate() {
            let name = if case.scorers[..i].iter().any(|o| o.name() == s.name()) {
                format!("{}#{i}", s.name())
            } else {
                s.name().to_string()
            };
            let verdict = match &answer.error {
                Some(e) => Verdict { pass: false, score: 0.0, detail: Some(format!("the model call failed: {e}")) },
                None => s.score(&out),
            };
            scores.insert(name, verdict);
        }
        results.push(CaseResult {
            id: case.id.clone(),
            repeat,
            tags: case.tags.clone(),
            input: json!({"messages": case.messages, "prompt": case.prompt}),
            expected: case.expected.clone(),
            output: answer.output,
            latency_ms: answer.latency_ms,
            cached: from_cache,
            error: answer.error.clone(),
            scores,
        });
        done += 1;
        if done.is_multiple_of((total / 10).max(1)) || done == total {
            eprintln!("[{done}/{total}] {calls} model calls");
        }
    }
    results.sort_by(|a, b| (a.id.as_str(), a.repeat).cmp(&(b.id.as_str(), b.repeat)));
    summarise(&results);
    let out = Results {
        suite: args.suite.display().to_string(),
        model: args.model.clone(),
        cases: results,
        model_calls: calls,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&out)).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{} answers ({} model calls), results in {}", out.cases.len(), calls, args.out.display());
    Ok(())
}

/// Pass rate per scorer and per tag, and the flaky cases (verdicts that
/// disagree across repeats).
fn summarise(results: &[CaseResult]) {
    let mut by: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in results {
        for (name, v) in &r.scores {
            for key in std::iter::once(format!("scorer {name}")).chain(r.tags.iter().map(|t| format!("tag {t}"))) {
                let e = by.entry(key).or_default();
                e.0 += usize::from(v.pass);
                e.1 += 1;
            }
        }
    }
    for (k, (pass, n)) in &by {
        println!("{k}: {pass}/{n} passed ({:.1}%)", 100.0 * *pass as f64 / *n as f64);
    }
    let mut verdicts: BTreeMap<(&str, &str), Vec<bool>> = BTreeMap::new();
    for r in results {
        for (name, v) in &r.scores {
            verdicts.entry((r.id.as_str(), name.as_str())).or_default().push(v.pass);
        }
    }
    for ((id, scorer), v) in verdicts.iter().filter(|(_, v)| v.iter().any(|p| *p) && v.iter().any(|p| !*p)) {
        let rate = v.iter().filter(|p| **p).count() as f64 / v.len() as f64;
        println!("flaky: {id} ({scorer}) passed {:.0}% of {} repeats", 100.0 * rate, v.len());
    }
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn junit(results: &Results) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures) = (0, 0);
    for r in &results.cases {
        for (name, v) in &r.scores {
            tests += 1;
            let id = xml_escape(&format!("{} #{} [{name}]", r.id, r.repeat));
            let secs = r.latency_ms / 1e3;
            if v.pass {
                cases.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{id}\" time=\"{secs:.3}\"/>\n",
                    xml_escape(&results.suite)
                ));
            } else {
                failures += 1;
                let msg = xml_escape(&format!(
                    "expected {:?}, got {:?}{}",
                    r.expected,
                    r.output,
                    v.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
                cases.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{id}\" time=\"{secs:.3}\"><failure message=\"{msg}\"/></testcase>\n",
                    xml_escape(&results.suite)
                ));
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n{cases}  </testsuite>\n</testsuites>\n",
        xml_escape(&results.suite)
    )
}

fn read_results(path: &Path) -> Result<Results> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a results file", path.display()))
}

/// A case's mean score over its repeats, and whether it had one repeat.
type CaseScore = (f64, bool);

/// Per scorer and case: the mean score over repeats, and whether every
/// score was 0 or 1 with one repeat (then the test is McNemar's).
fn per_case(r: &Results) -> BTreeMap<String, BTreeMap<String, CaseScore>> {
    let mut sums: BTreeMap<String, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for c in &r.cases {
        for (name, v) in &c.scores {
            let e = sums.entry(name.clone()).or_default().entry(c.id.clone()).or_default();
            e.0 += v.score;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(scorer, cases)| {
            let cases = cases.into_iter().map(|(id, (sum, n))| (id, (sum / n as f64, n == 1))).collect();
            (scorer, cases)
        })
        .collect()
}

/// Prints the comparison; true when the gate fails.
fn compare(args: &CompareArgs) -> Result<bool> {
    let (base, new) = (read_results(&args.base)?, read_results(&args.new)?);
    let (b, n) = (per_case(&base), per_case(&new));
    let mut comparisons: Vec<Comparison> = Vec::new();
    let mut changes: Vec<String> = Vec::new();
    for (scorer, base_cases) in &b {
        let Some(new_cases) = n.get(scorer) else { continue };
        let paired: Vec<(&String, CaseScore, CaseScore)> =
            base_cases.iter().filter_map(|(id, bv)| new_cases.get(id).map(|nv| (id, *bv, *nv))).collect();
        if paired.is_empty() {
            continue;
        }
        let binary = paired
            .iter()
            .all(|(_, (bs, b1), (ns, n1))| *b1 && *n1 && [0.0, 1.0].contains(bs) && [0.0, 1.0].contains(ns));
        let seed = 0x5EED ^ comparisons.len() as u64;
        comparisons.push(if binary {
            compare_pass_fail(scorer, &paired.iter().map(|(_, b, n)| (b.0 == 1.0, n.0 == 1.0)).collect::<Vec<_>>())
        } else {
            compare_numeric(scorer, &paired.iter().map(|(_, b, n)| (b.0, n.0)).collect::<Vec<_>>(), seed)
        });
        for (id, bv, nv) in &paired {
            if (bv.0 - nv.0).abs() > 1e-9 {
                let kind = if nv.0 < bv.0 { "regressed" } else { "improved" };
                changes.push(format!("  {kind}: {id} [{scorer}] {:.2} -> {:.2}", bv.0, nv.0));
            }
        }
    }
    adjust(&mut comparisons);
    changes.sort();
    println!(
        "base {} ({}) vs new {} ({}); alpha {}, max drop {}",
        args.base.display(),
        base.model,
        args.new.display(),
        new.model,
        args.alpha,
        args.max_drop
    );
    let mut failed = false;
    for c in &comparisons {
        let regressed = c.regressed(args.alpha, args.max_drop);
        failed |= regressed;
        println!(
            "{:<14} {:>6.3} -> {:>6.3} ({:+.3}) over {} cases, {} worse / {} better, p = {:.4} (Holm {:.4}){}",
            c.scorer,
            c.base_mean,
            c.new_mean,
            c.new_mean - c.base_mean,
            c.cases,
            c.worse,
            c.better,
            c.p_value,
            c.p_adjusted,
            if regressed { "  REGRESSION" } else { "" }
        );
    }
    for line in changes.iter().take(50) {
        println!("{line}");
    }
    if changes.len() > 50 {
        println!("  … {} more changed cases", changes.len() - 50);
    }
    println!("{}", if failed { "gate: FAIL (a significant drop at least max_drop)" } else { "gate: pass" });
    Ok(failed)
}
