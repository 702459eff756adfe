//! `switchyard bench embeddings`: the in-process embedding model under
//! concurrent load, with its micro-batching on and off. Each of C clients
//! sends one 30-token input at a time (a new one as soon as its answer
//! came) for a fixed time; reported per setup: inputs per second and the
//! p50 / p99 latency of one request. The two setups take turns, round by
//! round, so the machine's noise hits both alike.

use anyhow::{Context, Result};
use clap::Args;
use engine::embedding::{BatchConfig, Embedder, EmbedderHandle};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Args)]
pub struct EmbeddingsBench {
    /// The sentence-transformers folder (default: the installed all-MiniLM-L6-v2).
    #[arg(long, value_name = "DIR", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR))]
    model: PathBuf,
    /// Concurrent clients (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Seconds per setup, concurrency and round.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Tokens per input, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 30)]
    tokens: usize,
}

/// An input of exactly `tokens` tokens (as the model counts them).
fn input_of(handle: &EmbedderHandle, tokens: usize, salt: usize) -> String {
    let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "river", "bank"];
    let mut text = format!("request {salt}");
    let mut i = 0;
    while handle.count_tokens(&text) < tokens {
        text.push(' ');
        text.push_str(words[i % words.len()]);
        i += 1;
    }
    text
}

struct Outcome {
    inputs: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn load(handle: &EmbedderHandle, clients: usize, seconds: f64, tokens: usize) -> Result<Outcome> {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let h = handle.clone();
        // Distinct texts, so nothing could be answered from a cache.
        let text = input_of(&h, tokens, c);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                h.embed(vec![text.clone()], false).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, engine::embedding::EmbeddingError>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.context("a client task")??);
    }
    Ok(Outcome { inputs: latencies.len(), elapsed: started.elapsed(), latencies })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub fn run(args: &EmbeddingsBench) -> Result<()> {
    let load_model = || Embedder::load(&args.model).with_context(|| format!("loading {}", args.model.display()));
    let on = load_model()?.spawn(BatchConfig::default())?;
    let off = load_model()?.spawn(BatchConfig { enabled: false, ..BatchConfig::default() })?;
    println!(
        "model: {} ({} dimensions), inputs of {} tokens, {} s per run, {} rounds, threads: {}",
        args.model.display(),
        on.dimensions(),
        args.tokens,
        args.seconds,
        args.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let rt = tokio::runtime::Handle::current();
    println!("| batching | clients | inputs/s (median of rounds) | p50 ms | p99 ms | forward passes per input |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for &c in &args.concurrency {
        let mut results: Vec<(&str, Vec<f64>, Vec<Duration>, f64)> =
            vec![("on", vec![], vec![], 0.0), ("off", vec![], vec![], 0.0)];
        for _ in 0..args.rounds {
            for (setup, handle) in [(0, &on), (1, &off)] {
                let before = handle.stats();
                let o = rt.block_on(load(handle, c, args.seconds, args.tokens))?;
                let after = handle.stats();
                let r = &mut results[setup];
                r.1.push(o.inputs as f64 / o.elapsed.as_secs_f64());
                r.2.extend(o.latencies);
                r.3 = (after.forward_passes - before.forward_passes) as f64
                    / (after.inputs - before.inputs).max(1) as f64;
            }
        }
        for (name, mut rates, mut lat, passes) in results {
            rates.sort_by(f64::total_cmp);
            lat.sort();
            let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
            println!(
                "| {name} | {c} | {median:.1} | {:.2} | {:.2} | {passes:.2} |",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99)
            );
        }
    }
    Ok(())
}
