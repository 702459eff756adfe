//! `switchyard eval`: run a suite against a model of a running Switchyard
//! (`run`), and gate a new run against a base run (`compare`).
//!
//! A suite is JSON lines, one case each: `{"id", "messages" | "prompt",
//! "expected"?, "tags"?, "scorers"?, "repeats"?, "max_tokens"?}` (scorers
//! as in `gateway::eval::scorers`; none means `exact` on `expected`), or
//! YAML (`.yaml`/`.yml`): a list of the same cases, or a mapping with
//! `cases` and suite-wide defaults (`repeats`, `scorers`, `max_tokens`).
//! Model calls are cached on disk by their exact request (and repeat
//! number), so an unchanged re-run, or a run resumed after an
//! interruption, calls the model only for what it has not answered yet.

use crate::eval_report as report;
use anyhow::{bail, Context, Result};
use backend_api::{
    Backend, ChatTurn, Demands, EmbeddingBackend, Prompt, Role, SamplingParams, StopParams, ValidatedRequest,
};
use clap::{Args, Subcommand};
use futures::StreamExt;
use gateway::backends::config::{BackendConfig, Dialect, RemoteModel, Timeouts};
use gateway::backends::openai::OpenAiBackend;
use gateway::dialect::collect::collect;
use gateway::eval::judge;
use gateway::eval::scorers::{self, Output, Scorer, Verdict};
use gateway::eval::stats::{adjust, compare_numeric, compare_pass_fail, Comparison};
use gateway::policy::pricing::{Price, PriceTable};
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
    /// Run a suite (JSON lines or YAML) against a model; write results JSON, JUnit XML, HTML.
    Run(Box<RunArgs>),
    /// Compare two results files: paired tests per scorer, Holm-corrected; exit 1 on a real regression.
    Compare(CompareArgs),
}

#[derive(Args)]
pub struct RunArgs {
    suite: PathBuf,
    /// Base URL of a Switchyard (or any OpenAI-compatible server), with /v1.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    url: String,
    /// Serve this Switchyard config in-process (on a loopback port) and run
    /// against it, instead of a server at --url.
    #[arg(long, conflicts_with = "url")]
    config: Option<PathBuf>,
    /// API key, if the server wants one.
    #[arg(long, env = "SWITCHYARD_EVAL_KEY")]
    key: Option<String>,
    #[arg(long)]
    model: String,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Repeats of every case: a case's own `repeats` wins, then this, then
    /// a YAML suite's default, then 1.
    #[arg(long)]
    repeats: Option<u32>,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Tokens per answer: the case's, then this, then the suite's, then 256.
    #[arg(long)]
    max_tokens: Option<u32>,
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
    /// The model's price in US dollars per million tokens, for `cost`
    /// scorers (with --config, the config's price of the model by default).
    #[arg(long)]
    input_per_million: Option<f64>,
    #[arg(long)]
    output_per_million: Option<f64>,
    /// The embedding model of `similarity` scorers (a MiniLM folder), run in-process.
    #[arg(long)]
    embedding_model: Option<PathBuf>,
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
    #[serde(default, deserialize_with = "scalar_text")]
    expected: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    scorers: Vec<Scorer>,
    repeats: Option<u32>,
    max_tokens: Option<u32>,
}

/// An expected answer written as a number or a boolean (`expected: 42`
/// in YAML) is its text.
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!("'expected' must be text, not {other}"))),
    }
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

/// A YAML suite's top level when it is a mapping: the cases, with defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    cases: Vec<Case>,
    repeats: Option<u32>,
    #[serde(default)]
    scorers: Vec<Scorer>,
    max_tokens: Option<u32>,
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

/// Tokens an answer may take when neither the case, the command line nor
/// the suite says.
const DEFAULT_MAX_TOKENS: u32 = 256;

/// Reads a suite; a case's `repeats` and `max_tokens` are its own, else
/// the command line's (`cli`), else the YAML suite's defaults.
fn read_suite(path: &Path, cli: (Option<u32>, Option<u32>)) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    // Each case with where it came from, for error messages.
    let mut read: Vec<(String, Case)> = Vec::new();
    if yaml {
        let at = || path.display().to_string();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).with_context(at)?;
        // A list of cases, or a mapping with `cases` and defaults: the text
        // is parsed again as the one it is, so an error names the field at
        // fault and its line.
        let file = if doc.is_sequence() {
            let cases: Vec<Case> = serde_yaml_ng::from_str(&text).with_context(at)?;
            SuiteFile { cases, repeats: None, scorers: Vec::new(), max_tokens: None }
        } else {
            serde_yaml_ng::from_str(&text).with_context(at)?
        };
        for (i, mut case) in file.cases.into_iter().enumerate() {
            case.repeats = case.repeats.or(cli.0).or(file.repeats);
            case.max_tokens = case.max_tokens.or(cli.1).or(file.max_tokens);
            if case.scorers.is_empty() {
                case.scorers = file.scorers.clone();
            }
            read.push((format!("{} case {}", path.display(), i + 1), case));
        }
    } else {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let mut case: Case = serde_json::from_str(line).with_context(|| format!("{}:{}", path.display(), i + 1))?;
            case.repeats = case.repeats.or(cli.0);
            case.max_tokens = case.max_tokens.or(cli.1);
            read.push((format!("{}:{}", path.display(), i + 1), case));
        }
    }
    let mut cases: Vec<Case> = Vec::with_capacity(read.len());
    for (at, mut case) in read {
        if case.messages.is_some() == case.prompt.is_some() {
            bail!("{at}: a case has 'messages' or 'prompt', not both or neither");
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
            s.check(case.expected.as_deref()).map_err(|e| anyhow::anyhow!("{at} ({}): {e}", case.id))?;
        }
        if cases.iter().any(|c| c.id == case.id) {
            bail!("{at}: id '{}' is used twice", case.id);
        }
        cases.push(case);
    }
    if cases.is_empty() {
        bail!("{}: no cases", path.display());
    }
    Ok(cases)
}

fn backend(args: &RunArgs, url: &str, models: &[String]) -> Result<OpenAiBackend> {
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
        base_url: url.trim_end_matches('/').to_string(),
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
    let max_tokens = case.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
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
fn cache_key(args: &RunArgs, target: &str, case: &Case, repeat: u32) -> String {
    digest(&json!({"url": target, "model": args.model, "messages": case.messages, "prompt": case.prompt,
        "temperature": args.temperature, "max_tokens": case.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS), "repeat": repeat}))
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
    /// What answers: the server's URL, or the config served in-process
    /// (by its content: the port changes from run to run, the answers don't).
    target: String,
    backend: OpenAiBackend,
    /// For `similarity` scorers.
    embedder: Option<engine::embedding::EmbedderHandle>,
    /// The model's price, for `cost`.
    price: Option<Price>,
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
        let (c, _) = self.call(judge::request(model, (system, user), attempt), key).await?;
        self.judge_tokens.0.fetch_add(u64::from(c.prompt_tokens), Relaxed);
        self.judge_tokens.1.fetch_add(u64::from(c.completion_tokens), Relaxed);
        Ok(c.output)
    }

    async fn judge(&self, scorer: &Scorer, case: &Case, output: &str) -> Verdict {
        let Some(model) = judge_model(scorer, self.args) else {
            return Verdict::of(false, Some("no judge model (set the scorer's 'model' or --judge-model)".into()));
        };
        let question = question_of(case);
        let asked = judge::Asked { question: &question, answer: output, expected: case.expected.as_deref() };
        let ask =
            |prompt, attempt| async move { self.ask_judge(model, prompt, attempt).await.map_err(|e| e.to_string()) };
        judge::grade(scorer, &asked, ask).await
    }

    /// One answer of a case, scored.
    async fn case(&self, case: &Case, repeat: u32) -> Result<CaseResult> {
        let (answer, error, cached) =
            match self.call(request(self.args, case), cache_key(self.args, &self.target, case, repeat)).await {
                Ok((c, cached)) => (c, None, cached),
                // A failed call fails the case's scorers.
                Err(e) => (Cached::default(), Some(e.to_string()), false),
            };
        let cost_usd =
            self.price.as_ref().and_then(|p| scorers::cost_usd(answer.prompt_tokens, answer.completion_tokens, p));
        let out = Output {
            text: &answer.output,
            expected: case.expected.as_deref(),
            latency_ms: answer.latency_ms,
            cost_usd,
        };
        let mut scores = BTreeMap::new();
        for (i, s) in case.scorers.iter().enumerate() {
            let dup = case.scorers[..i].iter().any(|o| o.name() == s.name());
            let name = if dup { format!("{}#{i}", s.name()) } else { s.name().to_string() };
            let verdict = match (&error, s) {
                (Some(e), _) => Verdict::of(false, Some(format!("the model call failed: {e}"))),
                (None, Scorer::Judge { .. }) => self.judge(s, case, &answer.output).await,
                (None, s) => {
                    let embedder = self.embedder.as_ref().map(|e| (e.model_name(), e as &dyn EmbeddingBackend));
                    scorers::grade(s, &out, embedder).await
                }
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
    let cases = read_suite(&args.suite, (args.repeats, args.max_tokens))?;
    // The backend serves the model under test and every judge.
    let mut models = vec![args.model.clone()];
    for m in cases.iter().flat_map(|c| &c.scorers).filter_map(|s| judge_model(s, args)) {
        if !models.contains(m) {
            models.push(m.clone());
        }
    }
    std::fs::create_dir_all(&args.cache).with_context(|| format!("creating {}", args.cache.display()))?;
    let mut price = None;
    // Held to the end of the run: dropping it stops the in-process server.
    let mut _server = None;
    let (url, target) = match &args.config {
        None => (args.url.clone(), args.url.clone()),
        Some(path) => {
            let (url, prices, stop) = local_server(path).await?;
            price = prices.models.get(&args.model).copied();
            _server = Some(stop);
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            (url, format!("config:{:x}", Sha256::digest(&text)))
        }
    };
    if args.input_per_million.is_some() || args.output_per_million.is_some() {
        price = Some(Price {
            input_per_million: args.input_per_million.unwrap_or(0.0),
            output_per_million: args.output_per_million.unwrap_or(0.0),
        });
    }
    let similar = cases.iter().flat_map(|c| &c.scorers).any(|s| matches!(s, Scorer::Similarity { .. }));
    let embedder = if similar { Some(load_embedder(args.embedding_model.as_deref())?) } else { None };
    let runner = Runner {
        args,
        target,
        backend: backend(args, &url, &models)?,
        embedder,
        price,
        calls: AtomicUsize::new(0),
        judge_tokens: (AtomicU64::new(0), AtomicU64::new(0)),
    };
    let jobs: Vec<(&Case, u32)> =
        cases.iter().flat_map(|c| (0..c.repeats.unwrap_or(1).max(1)).map(move |r| (c, r))).collect();
    let total = jobs.len();
    let mut results = Vec::with_capacity(total);
    let runner = &runner;
    let mut stream = futures::stream::iter(jobs.into_iter().map(|(case, repeat)| runner.case(case, repeat)))
        .buffer_unordered(args.concurrency.max(1));
    let progress = Progress::new(total);
    let mut failed = 0;
    while let Some(r) = stream.next().await {
        let r = r?;
        failed += usize::from(r.scores.values().any(|v| !v.pass));
        results.push(r);
        progress.step(results.len(), failed, runner.calls.load(Relaxed));
    }
    progress.finish();
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

/// The in-process server of `--config`: stops, and its scratch state goes,
/// when dropped.
struct LocalServer {
    _stop: tokio::sync::oneshot::Sender<()>,
    scratch: PathBuf,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Serves `path`'s config on a loopback port: its URL, the config's
/// prices, and the server. It must not share files with a gateway that
/// may be running on the same config: an embedded state file goes to a
/// scratch folder (keys still come from the config; Redis state is
/// shared, as replicas share it), and the response cache and live
/// evaluation are off (the run measures the model, not the cache).
async fn local_server(path: &Path) -> Result<(String, PriceTable, LocalServer)> {
    let mut cfg = gateway::config::Config::from_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    cfg.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let scratch = std::env::temp_dir().join(format!("switchyard-eval-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    if let gateway::config::StoreConfig::Embedded { path } = &mut cfg.policy.store {
        *path = scratch.join("state.jsonl");
    }
    cfg.cache = None;
    cfg.live_eval.clear();
    let state = tokio::task::block_in_place(|| gateway::server::build_state(&cfg, false))?;
    let listener = gateway::server::bind(cfg.listen).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(e) = gateway::server::serve(listener, state, shutdown).await {
            tracing::error!(error = %e, "the in-process server stopped");
        }
    });
    eprintln!("serving {} in-process at http://{addr}/v1", path.display());
    Ok((format!("http://{addr}/v1"), cfg.policy.prices.clone(), LocalServer { _stop: stop, scratch }))
}

/// The in-process embedding model of `similarity` scorers, loaded as the
/// server loads it, cut to the model's window rather than refused (a long
/// answer is still graded, on its opening).
fn load_embedder(path: Option<&Path>) -> Result<engine::embedding::EmbedderHandle> {
    let mut settings = gateway::config::EmbeddingSettings { truncate: true, required: true, ..Default::default() };
    if let Some(path) = path {
        settings.path = path.to_path_buf();
    }
    gateway::server::start_embedder(&settings)
        .with_context(|| format!("loading the embedding model at {} (for 'similarity')", settings.path.display()))?
        .with_context(|| format!("no embedding model at {}", settings.path.display()))
}

/// Progress on standard error: a bar on a terminal, a line per tenth of
/// the run otherwise (CI logs).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: usize,
}

impl Progress {
    fn new(total: usize) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let style = indicatif::ProgressStyle::with_template(
                "{bar:30.cyan/blue} {pos}/{len} answers · {msg} · {elapsed} (eta {eta})",
            );
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        Progress { bar, total }
    }

    fn step(&self, done: usize, failed: usize, calls: usize) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(done as u64);
                bar.set_message(format!("{failed} failing · {calls} model calls"));
            }
            None if done.is_multiple_of((self.total / 10).max(1)) || done == self.total => {
                eprintln!("[{done}/{}] {failed} failing, {calls} model calls", self.total);
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
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
