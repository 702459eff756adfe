//! `switchyard bench structured`: constrained decoding on the embedded
//! model over a schema set (tests/data/structured_schemas.jsonl). Reports
//! the share of schemas the engine can enforce, compile time (p50 / p95,
//! uncached), the share of answers valid against their schema (checked
//! by the `jsonschema` crate, not by the engine that made them), the time
//! to compute one token's mask (p50 / p99, replayed on a cold grammar over
//! every token of every answer), and decode tokens/s with and without a
//! constraint at each concurrency (the two take turns, round by round).

use crate::bench_gateway::percentile;
use anyhow::{Context, Result};
use backend_api::{
    Backend, ChatTurn, Demands, OutputConstraint, Prompt, Role, SamplingParams, StopParams, ValidatedRequest,
};
use clap::Args;
use engine::constraint::grammar;
use engine::{EngineConfig, EngineHandle, LocalModel, WeightFormat};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct StructuredBench {
    /// GGUF file (default: the default model).
    #[arg(long, value_name = "PATH", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_MODEL_FILE))]
    model: PathBuf,
    /// JSON lines of {id, category, prompt, schema}.
    #[arg(long, default_value = "tests/data/structured_schemas.jsonl")]
    schemas: PathBuf,
    /// Most tokens of one answer.
    #[arg(long, default_value_t = 400)]
    max_tokens: u32,
    /// Answers generated at once for the validity run.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
    /// Concurrencies of the decode-rate comparison (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    concurrency: Vec<usize>,
    /// Tokens each sequence decodes in the rate comparison.
    #[arg(long, default_value_t = 96)]
    decode_tokens: u32,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print every schema's outcome.
    #[arg(long)]
    show: bool,
    /// Only the decode-rate comparison.
    #[arg(long)]
    rate_only: bool,
}

struct Case {
    id: String,
    prompt: String,
    schema: Value,
}

fn read_cases(path: &PathBuf) -> Result<Vec<Case>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok(Case {
                id: v["id"].as_str().unwrap_or_default().to_string(),
                prompt: v["prompt"].as_str().unwrap_or_default().to_string(),
                schema: v["schema"].clone(),
            })
        })
        .collect()
}

fn request(prompt: &str, output: Option<OutputConstraint>, max_tokens: u32, ignore_eos: bool) -> ValidatedRequest {
    ValidatedRequest {
        request_id: "bench".into(),
        model: "m".into(),
        prompt: Prompt::Chat(vec![ChatTurn::new(Role::User, prompt)]),
        sampling: SamplingParams::greedy(),
        stop: StopParams { max_tokens: Some(max_tokens), ignore_eos, ..Default::default() },
        logprobs: None,
        cache_salt: None,
        tools: None,
        demands: Demands { output, ..Default::default() },
    }
}

fn constraint(schema: &Value) -> OutputConstraint {
    OutputConstraint::JsonSchema { name: "s".into(), schema: schema.clone(), strict: true }
}

/// One answer: its text, token ids, whether it ended by itself.
async fn answer(engine: &EngineHandle, req: ValidatedRequest) -> Result<(String, Vec<u32>, bool)> {
    let stream = engine.generate(req).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let done = gateway::dialect::collect::collect(stream).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let ids = done.tokens.iter().map(|t| t.id).collect();
    Ok((done.text, ids, done.finish_reason == Some(backend_api::FinishReason::Stop)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run(args: &StructuredBench) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run_async(args))
}

async fn run_async(args: &StructuredBench) -> Result<()> {
    let cases = read_cases(&args.schemas)?;
    let local = LocalModel::load(&args.model, WeightFormat::Fast, Some(2048))
        .with_context(|| format!("loading {}", args.model.display()))?;
    let vocab = local.tokenizer.vocab_size();
    let config = EngineConfig { max_num_seqs: 32, ..Default::default() };
    let engine = local.spawn("m", config)?;
    let grammars = engine.grammars().context("the model's vocabulary could not be read for grammars")?;
    println!("schemas: {} from {}; vocabulary: {vocab} tokens", cases.len(), args.schemas.display());
    if !args.rate_only {
        quality(args, &cases, &engine, &grammars, vocab).await?;
    }
    rates(args, &engine).await
}

/// Support, compile time, validity, mask time.
async fn quality(
    args: &StructuredBench,
    cases: &[Case],
    engine: &EngineHandle,
    grammars: &engine::constraint::Grammars,
    vocab: usize,
) -> Result<()> {
    // 1. Which schemas compile, and how long compiling takes (uncached).
    let mut compile_ms = Vec::new();
    let mut supported = Vec::new();
    for c in cases {
        let Some(spec) = grammar::for_request(Some(&constraint(&c.schema)), None) else { continue };
        let t = Instant::now();
        match grammars.compile_fresh(&spec.lark) {
            Ok(_) => {
                compile_ms.push(ms(t.elapsed()));
                supported.push(c);
            }
            Err(e) => println!("  unsupported {}: {}", c.id, e.lines().next().unwrap_or_default()),
        }
    }
    compile_ms.sort_by(f64::total_cmp);
    println!(
        "supported: {}/{} ({:.1}%); compile p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        supported.len(),
        cases.len(),
        100.0 * supported.len() as f64 / cases.len().max(1) as f64,
        percentile(&compile_ms, 0.5),
        percentile(&compile_ms, 0.95),
        compile_ms.last().copied().unwrap_or(f64::NAN)
    );

    // 2. Answers under each supported schema, validated independently.
    let mut results = Vec::new();
    for chunk in supported.chunks(args.parallel.max(1)) {
        let runs = chunk.iter().map(|c| {
            let req = request(&c.prompt, Some(constraint(&c.schema)), args.max_tokens, false);
            answer(engine, req)
        });
        for (c, r) in chunk.iter().zip(futures::future::join_all(runs).await) {
            results.push((*c, r?));
        }
    }
    let (mut valid, mut complete, mut valid_ended, mut invalid) = (0, 0, 0, Vec::new());
    for (c, (text, _, stopped)) in &results {
        let ok = is_valid(&c.schema, text);
        complete += usize::from(*stopped);
        valid += usize::from(ok);
        valid_ended += usize::from(ok && *stopped);
        if !ok {
            invalid.push(format!("{} ({}): {}", c.id, if *stopped { "ended" } else { "cut at max_tokens" }, text));
        }
        if args.show {
            println!("  {} {}: {}", if ok { "valid  " } else { "INVALID" }, c.id, text);
        }
    }
    println!(
        "answers: {} ended by themselves, {} cut at {} tokens; valid: {}/{} ({:.1}%), valid among ended: {}/{}",
        complete,
        results.len() - complete,
        args.max_tokens,
        valid,
        results.len(),
        100.0 * valid as f64 / results.len().max(1) as f64,
        valid_ended,
        complete
    );
    for i in &invalid {
        println!("  invalid: {}", i.chars().take(300).collect::<String>());
    }

    // 3. Mask time per token: every answer's tokens replayed on a fresh grammar.
    let mut mask_us = Vec::new();
    let mut logits = vec![0f32; vocab];
    for (c, (_, ids, _)) in &results {
        let Some(spec) = grammar::for_request(Some(&constraint(&c.schema)), None) else { continue };
        let Ok(mut g) = grammars.compile_fresh(&spec.lark) else { continue };
        for &id in ids {
            logits.iter_mut().for_each(|l| *l = 0.0);
            let t = Instant::now();
            if g.mask(&mut logits).is_err() {
                break;
            }
            mask_us.push(t.elapsed().as_secs_f64() * 1e6);
            if g.accept(id).is_err() {
                break;
            }
        }
    }
    mask_us.sort_by(f64::total_cmp);
    println!(
        "mask per token ({} tokens, cold grammars): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        mask_us.len(),
        percentile(&mask_us, 0.5),
        percentile(&mask_us, 0.99),
        mask_us.last().copied().unwrap_or(f64::NAN)
    );

    Ok(())
}

/// Decode tokens/s with and without a constraint, at each concurrency.
async fn rates(args: &StructuredBench, engine: &EngineHandle) -> Result<()> {
    // 4. Decode rate with and without a constraint.
    // A list too long to close within the budget: both sides decode
    // exactly `decode_tokens` tokens after the same prompt.
    let list = json!({"type": "object", "properties": {"items": {"type": "array", "minItems": 1000,
                      "items": {"type": "string", "maxLength": 16}}}, "required": ["items"], "additionalProperties": false});
    for &n in &args.concurrency {
        let (mut free, mut bound) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            for constrained in [false, true] {
                let reqs: Vec<ValidatedRequest> = (0..n)
                    .map(|i| {
                        let prompt = format!("List fruits and vegetables, as many as you know ({i}).");
                        let output = constrained.then(|| constraint(&list));
                        request(&prompt, output, args.decode_tokens, true)
                    })
                    .collect();
                let t = Instant::now();
                let outs = futures::future::join_all(reqs.into_iter().map(|r| answer(engine, r))).await;
                let secs = t.elapsed().as_secs_f64();
                let mut tokens = 0;
                for o in outs {
                    tokens += o?.1.len();
                }
                anyhow::ensure!(
                    tokens == n * args.decode_tokens as usize,
                    "{tokens} tokens decoded, not {n} x {}",
                    args.decode_tokens
                );
                let rate = tokens as f64 / secs;
                if constrained {
                    bound.push(rate)
                } else {
                    free.push(rate)
                }
            }
        }
        let (f, b) = (crate::bench::median(free.clone()), crate::bench::median(bound.clone()));
        println!(
            "concurrency {n}: {f:.1} tokens/s free, {b:.1} constrained ({:.1}% of free); rounds free {:?} constrained {:?}",
            100.0 * b / f,
            free.iter().map(|x| x.round()).collect::<Vec<_>>(),
            bound.iter().map(|x| x.round()).collect::<Vec<_>>()
        );
    }
    Ok(())
}

fn is_valid(schema: &Value, text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .zip(jsonschema::validator_for(schema).ok())
        .is_some_and(|(v, validator)| validator.is_valid(&v))
}
