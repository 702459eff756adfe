//! `switchyard`: an OpenAI-compatible LLM server and gateway in one binary.

mod bench;
mod bench_cache;
mod bench_embed;
mod bench_eval;
mod bench_gateway;
mod bench_guard;
mod bench_ppl;
mod bench_structured;
mod eval_cmd;
mod eval_report;
mod mock_provider;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use gateway::config::{parse_listen, parse_weights, Config, LocalModelConfig};
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc instead of the system allocator: a proxied request allocates
/// and frees hundreds of small buffers (headers, JSON values, events), and
/// glibc's malloc was ~13% of the gateway's CPU under load (BENCHMARKS.md,
/// "Gateway overhead under load").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's own (in the library the allocator above links): frees
    /// what its threads hold and returns unused pages to the system.
    fn mi_collect(force: bool);
}

/// Returns to the system the pages freed while the models loaded (the
/// f32 buffers weights pass through on their way to bf16 and int8), which
/// the allocator would otherwise keep resident for reuse: ~300 MB here.
fn release_load_buffers() {
    // SAFETY: a plain call into the linked allocator, valid at any time.
    unsafe { mi_collect(true) };
}

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "An OpenAI-compatible LLM server and gateway: a real model in-process, one binary."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI-compatible API (with no options: the default model on 127.0.0.1:8080).
    Serve(ServeArgs),
    /// Measure the embedded engine on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// API keys for the config file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Evaluate a model on a suite, and gate a new run against a base run.
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// A stand-in OpenAI- and Anthropic-shaped provider for tests (latency, errors, 429s, cut streams on demand).
    MockProvider(mock_provider::MockArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random key and the `key_sha256` line that stores it in a config file.
    New,
    /// Print the SHA-256 of a key read from standard input (one line).
    Hash,
}

fn keys(cmd: KeysCommand) -> Result<()> {
    use gateway::policy::keys::{generate_key, hash_key};
    match cmd {
        KeysCommand::New => {
            let key = generate_key();
            println!("key:        {key}");
            println!("config:     key_sha256 = \"{}\"", hash_key(&key));
        }
        KeysCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("reading the key from standard input")?;
            let key = line.trim();
            anyhow::ensure!(!key.is_empty(), "no key on standard input");
            println!("{}", hash_key(key));
        }
    }
    Ok(())
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file (unknown keys are an error).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on; overrides the file's `listen`.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_listen)]
    listen: Option<SocketAddr>,
    /// Serve this GGUF file instead of the configured models.
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Name clients use for `--model` (default: the file name without extension).
    #[arg(long, value_name = "NAME", requires = "model")]
    model_name: Option<String>,
    /// Cap the context window of `--model` (default: the file's own).
    #[arg(long, value_name = "TOKENS", requires = "model")]
    context_length: Option<usize>,
    /// Sequences decoded together per engine step.
    #[arg(long, value_name = "N")]
    max_num_seqs: Option<usize>,
    /// Tokens (decode + prefill chunks) per engine step.
    #[arg(long, value_name = "N")]
    max_num_batched_tokens: Option<usize>,
    /// Memory for the KV cache block pool, per local model (MiB).
    #[arg(long, value_name = "MIB")]
    kv_cache_mib: Option<usize>,
    /// Never reuse the KV cache of earlier prompts' prefixes.
    #[arg(long)]
    no_prefix_cache: bool,
    /// Weights in memory: `fast` (bfloat16 for prompts, Q8_0 for generation; see BENCHMARKS.md) or `native` (the file's format).
    #[arg(long, value_name = "FORMAT", value_parser = parse_weights)]
    weights: Option<engine::WeightFormat>,
    /// Serve beyond loopback even with no API keys and no admin token (anyone who can reach it can use it).
    #[arg(long)]
    insecure: bool,
}

impl ServeArgs {
    fn into_config(self) -> Result<Config> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            cfg.listen = listen;
        }
        if let Some(path) = self.model {
            let name = self.model_name.unwrap_or_else(|| {
                path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
            });
            cfg.models = vec![LocalModelConfig { name, path, context_length: self.context_length }];
        }
        if let Some(n) = self.max_num_seqs {
            anyhow::ensure!(n >= 1, "--max-num-seqs must be at least 1");
            cfg.engine.max_num_seqs = n;
        }
        if let Some(n) = self.max_num_batched_tokens {
            anyhow::ensure!(n >= 16, "--max-num-batched-tokens must be at least 16");
            cfg.engine.max_num_batched_tokens = n;
        }
        if let Some(n) = self.kv_cache_mib {
            anyhow::ensure!(
                (1..=gateway::config::MAX_KV_CACHE_MIB).contains(&n),
                "--kv-cache-mib must be between 1 and {}",
                gateway::config::MAX_KV_CACHE_MIB
            );
            cfg.engine.kv_cache_mib = n;
        }
        if self.no_prefix_cache {
            cfg.engine.prefix_caching = false;
        }
        if let Some(w) = self.weights {
            cfg.engine.weights = w;
        }
        Ok(cfg)
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn serve(args: ServeArgs) -> Result<()> {
    let args_insecure = args.insecure;
    let cfg = args.into_config()?;
    for m in &cfg.models {
        if !m.path.exists() {
            anyhow::bail!(
                "model file {} not found (model '{}'); run scripts/setup-models.sh from the Switchyard repository to fetch the default models (into $SWITCHYARD_MODELS_DIR, else $XDG_DATA_HOME/switchyard/models, else ~/.local/share/switchyard/models)",
                m.path.display(),
                m.name
            );
        }
    }
    let insecure = args_insecure;
    if !cfg.listen.ip().is_loopback() && insecure {
        for _ in 0..3 {
            tracing::warn!(
                listen = %cfg.listen,
                "--insecure: LISTENING BEYOND LOOPBACK; unless keys are configured, anyone who can reach this address can use every model"
            );
        }
    }
    let state = tokio::task::block_in_place(|| gateway::server::build_state(&cfg, insecure))?;
    release_load_buffers();
    let listener = gateway::server::bind(cfg.listen).await?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(url = %format!("http://{addr}/v1"), models = ?cfg.models.iter().map(|m| &m.name).collect::<Vec<_>>(), "serving");
    gateway::server::serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    // candle sizes its thread pool from RAYON_NUM_THREADS, else asks the
    // system for the CPU count on every matmul (~0.8 ms per embedding pass,
    // measured with perf); set it once, before any thread exists.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run())
}

async fn run() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Bench(cmd) => tokio::task::block_in_place(|| bench::run(cmd)),
        Command::Keys(cmd) => keys(cmd),
        Command::Eval(cmd) => eval_cmd::run(cmd).await,
        Command::MockProvider(args) => mock_provider::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The message chain, not a backtrace: these are user-facing errors.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
