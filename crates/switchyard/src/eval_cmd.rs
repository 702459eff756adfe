//! `switchyard eval`: run a suite against a model of a running Switchyard
//! (`run`), and gate a new run against a base run (`compare`).
//!
//! A suite is JSON lines, one case each: `{"id", "messages" | "prompt",
//! "expected"?, "tags"?, "scorers"?, "repeats"?, "max_tokens"?}` (scorers
//! as in `gateway::eval::scorers`; none means `exact` on `expected`).
//! Model calls are cached on disk by their exact request (and repeat
//! number), so an unchanged re-run, or a run resumed after an
//! interruption, calls the model only for what it has not answered yet.

use crate::eval_judge as judge;
use crate::eval_report as report;
use anyhow::{bail, Context, Result};
use backend_api::{Backend, ChatTurn, Demands, Prompt, Role, SamplingParams, StopParams, ValidatedRequest};
use clap::{Args, Subcommand};
use futures::StreamExt;
use gateway::backends::config::{BackendConfig, Dialect, RemoteModel, Timeouts};
use gateway::backends::openai::OpenAiBackend;
use gateway::dialect::collect::collect;
use gateway::eval::scorers::{Output, Scorer, Verdict};
use gateway::eval::stats::{adjust, compare_numeric, compare_pass_fail, Comparison};
use gateway::registry::{Capabilities, ModelCard};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
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
    /// A self-contained HTML report.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Where model answers are cached.
    #[arg(long, default_value = ".switchyard-eval-cache")]
    cache: PathBuf,
    /// Call the model even for answers in the cache.
    #[arg(long)]
    no_cache: bool,
    /// The model of `judge` scorers that name none.
    #[arg(long)]
    judge_model: Option<String>,
    /// The judge's price in US dollars per million tokens, for its cost line.
    #[arg(long, default_value_t = 0.0)]
    judge_input_per_million: f64,
    #[arg(long, default_value_t = 0.0)]
    judge_output_per_million: f64,
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
    /// The same summary as a self-contained HTML page.
    #[arg(long)]
    html: Option<PathBuf>,
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
    #[serde(default)]
    judge: JudgeUsage,
}

/// What judging cost: tokens of every verdict used (cached or not).
#[derive(Debug, Serialize, Deserialize, Default)]
struct JudgeUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: f64,
}

/// A cached answer.
#[derive(Serialize, Deserialize, Clone, Default)]
struct Cached {
    output: String,
    latency_ms: f64,
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
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

fn backend(args: &RunArgs, models: &[String]) -> Result<OpenAiBackend> {
    let remote = |name: &String| RemoteModel {
        name: name.clone(),
        upstream: name.clone(),
        context_length: 1 << 20,
        card: ModelCard {
            name: name.clone(),
            context_length: 1 << 20,
            max_output_tokens: None,
            capabilities: Capabilities::OPENAI,
            weight: 1,
            aliases: Vec::new(),
        },
        price: None,
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
        models: models.iter().map(remote).collect(),
    };
    OpenAiBackend::new(config).map_err(|e| anyhow::anyhow!(e))
}

fn request(args: &RunArgs, case: &Case) -> ValidatedRequest {
    let sampling = SamplingParams { temperature: args.temperature, ..SamplingParams::default() };
    let max_tokens = case.max_tokens.unwrap_or(args.max_tokens);
    model_request(&args.model, prompt_of(case), sampling, max_tokens)
}

fn prompt_of(case: &Case) -> Prompt {
    match (&case.messages, &case.prompt) {
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
    }
}

fn model_request(model: &str, prompt: Prompt, sampling: SamplingParams, max_tokens: u32) -> ValidatedRequest {
    ValidatedRequest {
        request_id: "eval".into(),
        model: model.to_string(),
        prompt,
        sampling,
        stop: StopParams { max_tokens: Some(max_tokens), ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools: None,
        demands: Demands::default(),
    }
}

/// The cache key: everything that decides the answer, and the repeat.
fn cache_key(args: &RunArgs, case: &Case, repeat: u32) -> String {
    digest(&json!({"url": args.url, "model": args.model, "messages": case.messages, "prompt": case.prompt,
        "temperature": args.temperature, "max_tokens": case.max_tokens.unwrap_or(args.max_tokens), "repeat": repeat}))
}

/// A cache file's name: the SHA-256 of what decides a call's answer.
fn digest(what: &Value) -> String {
    format!("{:x}", Sha256::digest(what.to_string().as_bytes()))
}

/// One whole answer (a stream that ends without finishing is a failed call).
async fn answer(backend: &OpenAiBackend, req: ValidatedRequest) -> Result<Cached> {
    let started = Instant::now();
    let stream = backend.generate(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let done = collect(stream).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Cached {
        output: done.text,
        latency_ms: started.elapsed().as_secs_f64() * 1e3,
        prompt_tokens: done.usage.prompt_tokens,
        completion_tokens: done.usage.completion_tokens,
    })
}

/// Runs the calls of a suite: each model call once, from the cache after.
struct Runner<'a> {
    args: &'a RunArgs,
    backend: OpenAiBackend,
    calls: AtomicUsize,
    judge_tokens: (AtomicU64, AtomicU64),
}

impl Runner<'_> {
    /// One model call; `Ok((answer, from_cache))`. Failed calls are not cached.
    async fn call(&self, req: ValidatedRequest, key: String) -> Result<(Cached, bool)> {
        let file = self.args.cache.join(format!("{key}.json"));
        if !self.args.no_cache {
            if let Some(c) = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok()) {
                return Ok((c, true));
            }
        }
        let c = answer(&self.backend, req).await?;
        self.calls.fetch_add(1, Relaxed);
        // Written as soon as it came: an interrupted run resumes from here.
        std::fs::write(&file, serde_json::to_vec(&c)?)?;
        Ok((c, false))
    }

    /// One judge reply, counted in the judge's usage.
    async fn ask_judge(&self, model: &str, (system, user): (String, String), attempt: u32) -> Result<String> {
        let key = digest(&json!({"judge": model, "system": system, "user": user, "attempt": attempt}));
        // The first try greedy; retries sample, so they can differ.
        let sampling = SamplingParams {
            temperature: if attempt == 0 { 0.0 } else { 0.7 },
            seed: Some(u64::from(attempt)),
            ..SamplingParams::default()
        };
        let prompt = Prompt::Chat(vec![ChatTurn::new(Role::System, system), ChatTurn::new(Role::User, user)]);
        let (c, _) = self.call(model_request(model, prompt, sampling, 200), key).await?;
        self.judge_tokens.0.fetch_add(u64::from(c.prompt_tokens), Relaxed);
        self.judge_tokens.1.fetch_add(u64::from(c.completion_tokens), Relaxed);
        Ok(c.output)
    }

    /// The first parsable reply of up to `ATTEMPTS`, or the last reply.
    async fn verdict<T>(
        &self,
        model: &str,
        prompt: (String, String),
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, String> {
        let mut last = String::new();
        for attempt in 0..judge::ATTEMPTS {
            match self.ask_judge(model, prompt.clone(), attempt).await {
                Ok(reply) => match parse(&reply) {
                    Some(v) => return Ok(v),
                    None => last = reply,
                },
                Err(e) => last = format!("the judge's call failed: {e}"),
            }
        }
        Err(last)
    }

    async fn judge(&self, scorer: &Scorer, case: &Case, output: &str) -> Verdict {
        let Scorer::Judge { rubric, pairwise, threshold, .. } = scorer else { return Verdict::of(false, None) };
        let Some(model) = judge_model(scorer, self.args) else {
            return Verdict::of(false, Some("no judge model (set the scorer's 'model' or --judge-model)".into()));
        };
        let question = question_of(case);
        if *pairwise {
            let expected = case.expected.as_deref().unwrap_or_default();
            let first =
                self.verdict(model, judge::pair_prompt(rubric, &question, output, expected), judge::parse_winner);
            let second =
                self.verdict(model, judge::pair_prompt(rubric, &question, expected, output), judge::parse_winner);
            return match (first.await, second.await) {
                (Ok(a), Ok(b)) => {
                    let score = judge::pairwise_score(&a, &b);
                    let pass = score >= threshold.unwrap_or(0.5);
                    Verdict { pass, score, detail: Some(format!("as A: {a}, as B: {b}")) }
                }
                (Err(e), _) | (_, Err(e)) => judge::no_verdict(&e),
            };
        }
        match self
            .verdict(
                model,
                judge::grade_prompt(rubric, &question, output, case.expected.as_deref()),
                judge::parse_grade,
            )
            .await
        {
            Ok((score, reason)) => Verdict { pass: score >= threshold.unwrap_or(0.7), score, detail: Some(reason) },
            Err(e) => judge::no_verdict(&e),
        }
    }

    /// One answer of a case, scored.
    async fn case(&self, case: &Case, repeat: u32) -> Result<CaseResult> {
        let (answer, error, cached) =
            match self.call(request(self.args, case), cache_key(self.args, case, repeat)).await {
                Ok((c, cached)) => (c, None, cached),
                // A failed call fails the case's scorers.
                Err(e) => (Cached::default(), Some(e.to_string()), false),
            };
        let out = Output { text: &answer.output, expected: case.expected.as_deref(), latency_ms: answer.latency_ms };
        let mut scores = BTreeMap::new();
        for (i, s) in case.scorers.iter().enumerate() {
            let dup = case.scorers[..i].iter().any(|o| o.name() == s.name());
            let name = if dup { format!("{}#{i}", s.name()) } else { s.name().to_string() };
            let verdict = match (&error, s) {
                (Some(e), _) => Verdict::of(false, Some(format!("the model call failed: {e}"))),
                (None, Scorer::Judge { .. }) => self.judge(s, case, &answer.output).await,
                // A program may take its time: off the runtime's threads.
                (None, Scorer::Command { .. }) => {
                    let (s, text, expected) = (s.clone(), answer.output.clone(), case.expected.clone());
                    let latency_ms = answer.latency_ms;
                    tokio::task::spawn_blocking(move || {
                        s.score(&Output { text: &text, expected: expected.as_deref(), latency_ms })
                    })
                    .await
                    .unwrap_or_else(|e| Verdict::of(false, Some(format!("the scorer stopped: {e}"))))
                }
                (None, s) => s.score(&out),
            };
            scores.insert(name, verdict);
        }
        Ok(CaseResult {
            id: case.id.clone(),
            repeat,
            tags: case.tags.clone(),
            input: json!({"messages": case.messages, "prompt": case.prompt}),
            expected: case.expected.clone(),
            output: answer.output,
            latency_ms: answer.latency_ms,
            cached,
            error,
            scores,
        })
    }
}

/// A judge scorer's model: its own, else the run's `--judge-model`.
fn judge_model<'a>(scorer: &'a Scorer, args: &'a RunArgs) -> Option<&'a String> {
    match scorer {
        Scorer::Judge { model, .. } => model.as_ref().or(args.judge_model.as_ref()),
        _ => None,
    }
}

/// The case's question as a judge reads it.
fn question_of(case: &Case) -> String {
    match (&case.messages, &case.prompt) {
        (Some(m), _) => m.iter().map(|m| format!("{}: {}", m.role, m.content)).collect::<Vec<_>>().join("\n"),
        (None, p) => p.clone().unwrap_or_default(),
    }
}

async fn run_suite(args: &RunArgs) -> Result<()> {
    let cases = read_suite(&args.suite)?;
    // The backend serves the model under test and every judge.
    let mut models = vec![args.model.clone()];
    for m in cases.iter().flat_map(|c| &c.scorers).filter_map(|s| judge_model(s, args)) {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    std::fs::create_dir_all(&args.cache).with_context(|| format!("creating {}", args.cache.display()))?;
    let runner = Runner {
        args,
        backend: backend(args, &models)?,
        calls: AtomicUsize::new(0),
        judge_tokens: (AtomicU64::new(0), AtomicU64::new(0)),
    };
    let jobs: Vec<(&Case, u32)> =
        cases.iter().flat_map(|c| (0..c.repeats.unwrap_or(args.repeats).max(1)).map(move |r| (c, r))).collect();
    let total = jobs.len();
    let mut results = Vec::with_capacity(total);
    let runner = &runner;
    let mut stream = futures::stream::iter(jobs.into_iter().map(|(case, repeat)| runner.case(case, repeat)))
        .buffer_unordered(args.concurrency.max(1));
    while let Some(r) = stream.next().await {
        results.push(r?);
        let done = results.len();
        if done.is_multiple_of((total / 10).max(1)) || done == total {
            eprintln!("[{done}/{total}] {} model calls", runner.calls.load(Relaxed));
        }
    }
    results.sort_by(|a, b| (a.id.as_str(), a.repeat).cmp(&(b.id.as_str(), b.repeat)));
    let summary = summarise(&results);
    print!("{summary}");
    let calls = runner.calls.load(Relaxed);
    let (jp, jc) = (runner.judge_tokens.0.load(Relaxed), runner.judge_tokens.1.load(Relaxed));
    let judge = JudgeUsage {
        prompt_tokens: jp,
        completion_tokens: jc,
        cost_usd: (jp as f64 * args.judge_input_per_million + jc as f64 * args.judge_output_per_million) / 1e6,
    };
    if jp + jc > 0 {
        println!("judge: {jp} prompt + {jc} completion tokens, ${:.6}", judge.cost_usd);
    }
    let out = Results {
        suite: args.suite.display().to_string(),
        model: args.model.clone(),
        cases: results,
        model_calls: calls,
        judge,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&out)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&out)).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let rows: Vec<report::Row> = out
            .cases
            .iter()
            .map(|c| report::Row {
                id: &c.id,
                repeat: c.repeat,
                tags: &c.tags,
                input: c.input.to_string(),
                output: &c.output,
                expected: c.expected.as_deref(),
                verdicts: c.scores.iter().map(|(n, v)| (n.as_str(), v.pass, v.score, v.detail.as_deref())).collect(),
            })
            .collect();
        let title = format!("{} on {}", out.model, out.suite);
        std::fs::write(path, report::run_report(&title, &rows, &summary))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{} answers ({} model calls), results in {}", out.cases.len(), calls, args.out.display());
    Ok(())
}

/// Pass rate per scorer and per tag, and the flaky cases (verdicts that
/// disagree across repeats).
fn summarise(results: &[CaseResult]) -> String {
    let mut out = String::new();
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
        out.push_str(&format!("{k}: {pass}/{n} passed ({:.1}%)\n", 100.0 * *pass as f64 / *n as f64));
    }
    let mut verdicts: BTreeMap<(&str, &str), Vec<bool>> = BTreeMap::new();
    for r in results {
        for (name, v) in &r.scores {
            verdicts.entry((r.id.as_str(), name.as_str())).or_default().push(v.pass);
        }
    }
    for ((id, scorer), v) in verdicts.iter().filter(|(_, v)| v.iter().any(|p| *p) && v.iter().any(|p| !*p)) {
        let rate = v.iter().filter(|p| **p).count() as f64 / v.len() as f64;
        out.push_str(&format!("flaky: {id} ({scorer}) passed {:.0}% of {} repeats\n", 100.0 * rate, v.len()));
    }
    out
}

fn junit(results: &Results) -> String {
    let mut cases = String::new();
    let (mut tests, mut failures) = (0, 0);
    for r in &results.cases {
        for (name, v) in &r.scores {
            tests += 1;
            let id = report::escape(&format!("{} #{} [{name}]", r.id, r.repeat));
            let secs = r.latency_ms / 1e3;
            if v.pass {
                cases.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{id}\" time=\"{secs:.3}\"/>\n",
                    report::escape(&results.suite)
                ));
            } else {
                failures += 1;
                let msg = report::escape(&format!(
                    "expected {:?}, got {:?}{}",
                    r.expected,
                    r.output,
                    v.detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
                ));
                cases.push_str(&format!(
                    "    <testcase classname=\"{}\" name=\"{id}\" time=\"{secs:.3}\"><failure message=\"{msg}\"/></testcase>\n",
                    report::escape(&results.suite)
                ));
            }
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n{cases}  </testsuite>\n</testsuites>\n",
        report::escape(&results.suite)
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
    let mut text = String::new();
    let mut say = |line: String| {
        println!("{line}");
        text.push_str(&line);
        text.push('\n');
    };
    say(format!(
        "base {} ({}) vs new {} ({}); alpha {}, max drop {}",
        args.base.display(),
        base.model,
        args.new.display(),
        new.model,
        args.alpha,
        args.max_drop
    ));
    let mut failed = false;
    for c in &comparisons {
        let regressed = c.regressed(args.alpha, args.max_drop);
        failed |= regressed;
        say(format!(
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
        ));
    }
    for line in changes.iter().take(50) {
        say(line.clone());
    }
    if changes.len() > 50 {
        say(format!("  … {} more changed cases", changes.len() - 50));
    }
    say((if failed { "gate: FAIL (a significant drop at least max_drop)" } else { "gate: pass" }).to_string());
    if let Some(path) = &args.html {
        let title = format!("{} vs {}", args.base.display(), args.new.display());
        std::fs::write(path, report::compare_report(&title, &text))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(failed)
}
