//! Speed of the in-process embedder (models/all-MiniLM-L6-v2): p50 latency of
//! one 30-token input, inputs/s of one pass over 1, 8 and 32 such rows, the
//! cost of a pass by rows and length (for the planner's overhead constant),
//! and inputs/s through the handle at concurrency 1 and 32, batching on/off.
//! `cargo run --release -p engine --example embed_probe` (or without
//! --release: dependencies are optimised in dev builds too). Set
//! RAYON_NUM_THREADS=1 to compare candle's matmuls on one thread. Arguments
//! pick sections (`pass`, `ours` = pass without the comparison, `grid`,
//! `handle`, `spin=ROWS` for a profiler; all but the last by default). The load
//! average is printed before and after: other work on the cores skews it.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use engine::embedding::{BatchConfig, Embedder, EmbedderHandle};
use std::error::Error;
use std::path::Path;
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn Error>>;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Median seconds of one `embed_batch` over `rows` rows of `len` tokens.
fn pass_time(m: &Embedder, rows: usize, len: usize, iters: usize) -> Res<f64> {
    let row: Vec<u32> = (0..len).map(|i| if i == 0 { 101 } else { 1000 + i as u32 }).collect();
    let batch: Vec<&[u32]> = (0..rows).map(|_| row.as_slice()).collect();
    m.embed_batch(&batch)?;
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        m.embed_batch(&batch)?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// A text of exactly `n` tokens ([CLS] and [SEP] included).
fn text_of(m: &Embedder, n: usize) -> String {
    let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs", "away"];
    let mut text = String::new();
    let mut i = 0;
    while m.count_tokens(&text) < n {
        text = format!("{text} {}", words[i % words.len()]).trim().to_string();
        i += 1;
    }
    text
}

/// Inputs/s with `clients` tasks each sending one input at a time for `dur`.
async fn load(h: &EmbedderHandle, text: &str, clients: usize, dur: Duration) -> Res<(f64, f64)> {
    let start = Instant::now();
    let before = h.stats();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (h, text) = (h.clone(), text.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < dur {
                    let t = Instant::now();
                    h.embed(vec![text.clone()], false).await?;
                    lat.push(t.elapsed().as_secs_f64());
                }
                Ok::<_, engine::EmbeddingError>(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    let after = h.stats();
    let passes = after.forward_passes - before.forward_passes;
    let n = lat.len();
    println!(
        "    clients {clients:2}: {:7.1} inputs/s, p50 {:6.2} ms, {:.1} inputs/pass",
        n as f64 / secs,
        median(lat.clone()) * 1e3,
        n as f64 / passes.max(1) as f64
    );
    Ok((n as f64 / secs, median(lat)))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_string()
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = |section: &str| args.is_empty() || args.iter().any(|a| a == section);
    println!("load average: {}", loadavg());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    let m = Embedder::load(&dir)?;
    println!("candle threads: {}", candle_core::utils::get_num_threads());
    let text = text_of(&m, 30);
    println!("30-token input: {text:?} ({} tokens)", m.count_tokens(&text));

    if run("pass") || run("ours") {
        passes(&m, &dir, !run("ours"))?;
    }
    if run("grid") {
        grid(&m)?;
    }
    if let Some(rows) = args.iter().find_map(|a| a.strip_prefix("spin=")) {
        // For a profiler: one shape, over and over, for 10 s.
        let rows: usize = rows.parse()?;
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(10) {
            pass_time(&m, rows, 30, 10)?;
            n += 11;
        }
        println!(
            "spin: {n} passes of {rows} x 30 tokens, {:.2} ms each",
            start.elapsed().as_secs_f64() * 1e3 / n as f64
        );
    }
    if run("handle") {
        handle(&dir, &text)?;
    }
    println!("load average: {}", loadavg());
    Ok(())
}

/// candle-transformers' `BertModel` with the same padding and pooling, for
/// comparison: median seconds of one pass over `rows` rows of `len` tokens.
fn reference_pass_time(bert: &BertModel, rows: usize, len: usize, iters: usize) -> Res<f64> {
    let ids = Tensor::from_vec(
        (0..rows * len).map(|i| 1000 + (i % len) as u32).collect::<Vec<_>>(),
        (rows, len),
        &Device::Cpu,
    )?;
    let mask = ids.ones_like()?;
    let run = || -> Res<Vec<Vec<f32>>> {
        let hidden = bert.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
        Ok(hidden.broadcast_mul(&mask.to_dtype(DType::F32)?.unsqueeze(2)?)?.sum(1)?.to_vec2()?)
    };
    run()?;
    let mut times = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        run()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

fn passes(m: &Embedder, dir: &Path, compare: bool) -> Res<()> {
    let reference = if compare {
        let config: Config = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let weights = std::fs::read(dir.join("model.safetensors"))?;
        Some(BertModel::load(VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)?, &config)?)
    } else {
        None
    };
    println!("one pass, 30-token rows, no queue (ours | candle-transformers BertModel):");
    for rows in [1, 8, 32] {
        let iters = if rows == 1 { 100 } else { 800 / rows };
        let s = pass_time(m, rows, 30, iters)?;
        let mut line = format!("  batch {rows:2}: p50 {:7.2} ms, {:7.1} inputs/s", s * 1e3, rows as f64 / s);
        if let Some(reference) = &reference {
            let r = reference_pass_time(reference, rows, 30, iters)?;
            line += &format!(" | p50 {:7.2} ms, {:7.1} inputs/s", r * 1e3, rows as f64 / r);
        }
        println!("{line}");
    }
    Ok(())
}

fn grid(m: &Embedder) -> Res<()> {
    println!("pass cost by rows x length (ms):");
    for len in [8, 16, 32, 64, 128, 256] {
        let mut line = format!("  len {len:3}:");
        for rows in [1, 4, 16, 32] {
            let iters = (4096 / (rows * len)).clamp(5, 50);
            line += &format!("  {rows:2} rows {:7.2}", pass_time(m, rows, len, iters)? * 1e3);
        }
        println!("{line}");
    }
    Ok(())
}

/// `PASS_TOKENS=n` overrides `BatchConfig::max_pass_tokens`, to tune it.
fn pass_tokens() -> Res<usize> {
    Ok(match std::env::var("PASS_TOKENS") {
        Ok(v) => v.parse()?,
        Err(_) => BatchConfig::default().max_pass_tokens,
    })
}

fn handle(dir: &Path, text: &str) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let dur = Duration::from_secs(3);
    for (label, cfg) in [
        ("batching on (2 ms window)", BatchConfig { max_pass_tokens: pass_tokens()?, ..Default::default() }),
        ("batching off", BatchConfig { enabled: false, ..Default::default() }),
    ] {
        println!("through the handle, {label}:");
        let h = Embedder::load(dir)?.spawn(cfg)?;
        rt.block_on(async {
            let (one, _) = load(&h, text, 1, dur).await?;
            let (many, _) = load(&h, text, 32, dur).await?;
            println!("    concurrency 32 / 1: {:.2}x", many / one);
            Ok::<_, Box<dyn Error>>(())
        })?;
    }
    Ok(())
}
