//! `switchyard bench perplexity`: the model's perplexity on a fixed text
//! (`tests/data/perplexity.txt`), teacher-forced one token per step, with
//! every row through the prompt kernel and again through the decode
//! kernel: what a weight format or a kernel costs in accuracy, measured
//! the same way for each (`--weights native` is candle's reference).

use anyhow::{Context, Result};
use clap::Args;
use engine::model::{BatchItem, Decoder};
use engine::{LocalModel, WeightFormat};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct PerplexityBench {
    /// GGUF file (default: the default model, where `scripts/setup-models.sh` put it).
    #[arg(long, value_name = "PATH", default_value_os_t = gateway::config::default_model_path(gateway::config::DEFAULT_MODEL_FILE))]
    model: PathBuf,
    /// The text scored.
    #[arg(long, default_value = "tests/data/perplexity.txt")]
    text: PathBuf,
    /// Weight formats to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "native,fast", value_parser = gateway::config::parse_weights)]
    weights: Vec<WeightFormat>,
    /// Tokens scored (from the start of the text; 0: all).
    #[arg(long, default_value_t = 0)]
    tokens: usize,
}

/// Mean negative log-likelihood of each next token, every row through the
/// prompt kernel (`prompt`) or the decode kernel.
fn mean_nll(model: &Decoder, ids: &[u32], prompt: bool) -> Result<f64> {
    let (mut kv, blocks) = model.kv_for_one(ids.len());
    let mut total = 0.0f64;
    for (pos, pair) in ids.windows(2).enumerate() {
        let item = BatchItem {
            tokens: &pair[..1],
            start: pos,
            blocks: &blocks,
            want_logits: true,
            prompt_end: if prompt { usize::MAX } else { 0 },
        };
        let logits = model.forward(&mut kv, &[item])?;
        let row = logits.row(0).context("no logits")?;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = row.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln() + f64::from(max);
        let next = *row.get(pair[1] as usize).context("token beyond the logits")?;
        total += log_sum - f64::from(next);
    }
    Ok(total / (ids.len() - 1) as f64)
}

pub fn run(args: &PerplexityBench) -> Result<()> {
    let text = std::fs::read_to_string(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    for &format in &args.weights {
        let local =
            LocalModel::load(&args.model, format, None).with_context(|| format!("loading {}", args.model.display()))?;
        let mut ids = local.tokenizer.encode(&text);
        if args.tokens > 0 {
            ids.truncate(args.tokens);
        }
        anyhow::ensure!(ids.len() >= 2, "the text has fewer than two tokens");
        anyhow::ensure!(ids.len() <= local.context_length, "{} tokens exceed the context window", ids.len());
        // Native weights have one kernel for every row.
        let kernels: &[(&str, bool)] =
            if format == WeightFormat::Native { &[("all rows", true)] } else { &[("prompt", true), ("decode", false)] };
        for &(name, prompt) in kernels {
            let started = Instant::now();
            let nll = mean_nll(&local.model, &ids, prompt)?;
            println!(
                "{format:?} weights, {name} kernel: perplexity {:.4} (mean NLL {nll:.5} over {} tokens, {:.1}s)",
                nll.exp(),
                ids.len() - 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}
