//! `switchyard bench …`: measurements of the embedded engine on this
//! machine, in the same terms as llama.cpp's `llama-bench` (pp = prompt
//! processing, tg = text generation), so the figures compare directly.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use engine::model::{BatchItem, Decoder};
use engine::{LocalModel, WeightFormat};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Prefill tokens/s on an N-token prompt and single-stream decode tokens/s.
    Engine(EngineBench),
    /// Latency the policies (keys, limits, budgets, metrics) add per request, embedded and Redis.
    Gateway(crate::bench_gateway::GatewayBench),
    /// The in-process embedding model: inputs/s and latency at several concurrencies, micro-batching on and off.
    Embeddings(crate::bench_embed::EmbeddingsBench),
    /// The response cache: the semantic tier's precision and recall on labelled pairs (with and
    /// without the wrong-hit guard), semantic lookup latency and memory, exact hits through the gateway.
    Cache(crate::bench_cache::CacheBench),
    /// The PII guardrail: recall and precision per type on labelled texts, scan time per KB.
    Guardrails(crate::bench_guard::GuardBench),
    /// Constrained decoding: schemas supported, answers valid, compile and mask time, decode rate with and without.
    Structured(crate::bench_structured::StructuredBench),
    /// Perplexity on a fixed text through each weight format and kernel.
    Perplexity(crate::bench_ppl::PerplexityBench),
    /// The evaluation gate's false-fail rate and power, by simulation.
    EvalGate(crate::bench_eval::EvalGateBench),
}

#[derive(Args)]
pub struct EngineBench {
    /// GGUF file to measure (default: the default model, where `scripts/setup-models.sh` put it).
    #[arg(long, value_name = "PATH", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_MODEL_FILE))]
    model: PathBuf,
    /// Prompt length for the prefill measurement (llama-bench's -p).
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens to generate for the decode measurement (llama-bench's -n).
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Weight format: fast or native.
    #[arg(long, default_value = "fast", value_parser = gateway::config::parse_weights)]
    weights: WeightFormat,
    /// Also measure decode-only throughput with this many sequences per
    /// step (comma-separated, like llama-batched-bench's -npl), each after
    /// a prompt of `--batch-prompt-tokens`.
    #[arg(long, value_delimiter = ',', value_name = "N,N,...")]
    batch: Vec<usize>,
    /// Prompt length of each sequence in the batched decode measurement.
    #[arg(long, default_value_t = 128)]
    batch_prompt_tokens: usize,
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Engine(args) => engine_bench(&args),
        BenchCommand::Gateway(args) => crate::bench_gateway::run(&args),
        BenchCommand::Embeddings(args) => crate::bench_embed::run(&args),
        BenchCommand::Cache(args) => crate::bench_cache::run(&args),
        BenchCommand::Guardrails(args) => crate::bench_guard::run(&args),
        BenchCommand::Structured(args) => crate::bench_structured::run(&args),
        BenchCommand::EvalGate(args) => crate::bench_eval::run(&args),
        BenchCommand::Perplexity(args) => crate::bench_ppl::run(&args),
    }
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Deterministic pseudo-random token ids (as llama-bench uses random tokens).
fn tokens(n: usize, vocab: usize, salt: u64) -> Vec<u32> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % vocab as u64) as u32
        })
        .collect()
}

fn engine_bench(args: &EngineBench) -> Result<()> {
    anyhow::ensure!(
        args.runs >= 1 && args.prompt_tokens >= 1 && args.gen_tokens >= 1,
        "runs, prompt and gen tokens must be >= 1"
    );
    let ctx = args.prompt_tokens.max(args.batch_prompt_tokens) + args.gen_tokens + 1;
    let started = Instant::now();
    let local = LocalModel::load(&args.model, args.weights, Some(ctx.max(args.prompt_tokens + 1)))
        .with_context(|| format!("loading {}", args.model.display()))?;
    println!(
        "model: {} ({:?} weights), loaded in {:.2}s, threads: {}",
        args.model.display(),
        args.weights,
        started.elapsed().as_secs_f64(),
        rayon_threads()
    );
    let model: &Decoder = &local.model;
    let vocab = model.config().vocab_size;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    // One warm-up run, then the measured ones.
    for run in 0..=args.runs {
        let prompt = tokens(args.prompt_tokens, vocab, run as u64);
        let (mut kv, blocks) = model.kv_for_one(prompt.len());
        let t = Instant::now();
        let item =
            BatchItem { tokens: &prompt, start: 0, blocks: &blocks, want_logits: true, prompt_end: prompt.len() };
        model.forward(&mut kv, &[item])?;
        let pp_s = t.elapsed().as_secs_f64();

        let gen = tokens(args.gen_tokens, vocab, 1000 + run as u64);
        let (mut kv, blocks) = model.kv_for_one(gen.len());
        let t = Instant::now();
        for (pos, tok) in gen.iter().enumerate() {
            let item = BatchItem {
                tokens: std::slice::from_ref(tok),
                start: pos,
                blocks: &blocks,
                want_logits: true,
                prompt_end: 0,
            };
            model.forward(&mut kv, &[item])?;
        }
        let tg_s = t.elapsed().as_secs_f64();
        if run > 0 {
            pp.push(args.prompt_tokens as f64 / pp_s);
            tg.push(args.gen_tokens as f64 / tg_s);
        }
    }
    println!(
        "pp{}: {:.1} tokens/s (median of {} runs: {:?})",
        args.prompt_tokens,
        median(pp.clone()),
        args.runs,
        rounded(&pp)
    );
    println!(
        "tg{}: {:.1} tokens/s (median of {} runs: {:?})",
        args.gen_tokens,
        median(tg.clone()),
        args.runs,
        rounded(&tg)
    );
    for &b in &args.batch {
        batched_decode(model, args, b)?;
    }
    Ok(())
}

/// `b` sequences prefilled with `batch_prompt_tokens` each, then
/// `gen_tokens` steps that decode one token for every sequence: the
/// decode-only throughput of a full continuous batch.
fn batched_decode(model: &Decoder, args: &EngineBench, b: usize) -> Result<()> {
    anyhow::ensure!(b >= 1, "--batch sizes must be >= 1");
    let (pp, vocab) = (args.batch_prompt_tokens.max(1), model.config().vocab_size);
    let per_seq = (pp + args.gen_tokens).div_ceil(engine::kv_cache::BLOCK_SIZE);
    let mut kv = model.new_kv_store(b * per_seq);
    let tables: Vec<Vec<u32>> = (0..b).map(|i| ((i * per_seq) as u32..((i + 1) * per_seq) as u32).collect()).collect();
    let mut rates = Vec::new();
    for run in 0..=args.runs {
        let prompts: Vec<Vec<u32>> = (0..b).map(|i| tokens(pp, vocab, (run * 1000 + i) as u64)).collect();
        for (p, t) in prompts.iter().zip(&tables) {
            let item = BatchItem { tokens: p, start: 0, blocks: t, want_logits: false, prompt_end: pp };
            model.forward(&mut kv, &[item])?;
        }
        // One token per sequence per step.
        let steps: Vec<Vec<u32>> =
            (0..args.gen_tokens).map(|s| tokens(b, vocab, (run * 1000 + s + 500) as u64)).collect();
        let t = Instant::now();
        for (step, toks) in steps.iter().enumerate() {
            let items: Vec<BatchItem<'_>> = toks
                .iter()
                .zip(&tables)
                .map(|(tok, table)| BatchItem {
                    tokens: std::slice::from_ref(tok),
                    start: pp + step,
                    blocks: table,
                    want_logits: true,
                    prompt_end: pp,
                })
                .collect();
            model.forward(&mut kv, &items)?;
        }
        if run > 0 {
            rates.push((b * args.gen_tokens) as f64 / t.elapsed().as_secs_f64());
        }
    }
    println!(
        "tg{} at batch {b} (after pp{pp} each): {:.1} tokens/s (median of {} runs: {:?})",
        args.gen_tokens,
        median(rates.clone()),
        args.runs,
        rounded(&rates)
    );
    Ok(())
}

fn rounded(xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
