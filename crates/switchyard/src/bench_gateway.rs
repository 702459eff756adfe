//! `switchyard bench gateway`: what the policies cost per request.
//!
//! The same chat request is sent through the whole router (no socket) in
//! three setups, interleaved round by round so the machine's noise hits
//! all alike: policies off (loopback, no keys), on with the embedded
//! store, and on with Redis (when `--redis-url` is given). "On" means an
//! API key checked, request and token limits per minute and per day and a
//! budget reserved then settled, prices, and the metrics. The backend
//! answers at once with a fixed token, so the figures are the gateway's
//! own time: latency per request, p50 and p99, and what the policies add.
//! `--live-eval` adds a setup with every answer sampled for live
//! evaluation by a slow scorer (50 ms a sample) behind a one-sample
//! queue: what sampling adds to a request when nearly every sample is
//! dropped, and the drops counted.

use anyhow::{Context, Result};
use axum::body::Body;
use axum::http::Request;
use backend_api::{
    Backend, BackendError, FinishReason, GenerationEvent, GenerationStream, ModelInfo, ValidatedRequest,
};
use clap::Args;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt;

#[derive(Args)]
pub struct GatewayBench {
    /// Requests per setup per round.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Rounds; the setups take turns within each.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Also measure the Redis store (e.g. redis://127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Also measure live evaluation sampling every answer into a full queue.
    #[arg(long)]
    live_eval: bool,
}

/// Every answer sampled; a scorer that takes 50 ms; room for one waiting sample.
const LIVE_EVAL_TOML: &str = "[[live_eval]]\nname = \"slow\"\nsample_rate = 1.0\nqueue = 1\n\
    scorer = { type = \"command\", argv = [\"sh\", \"-c\", \"sleep 0.05; echo 1\"] }\n";

const MODEL: &str = "instant";
const KEY: &str = "sy-bench-gateway-key";

/// Answers every request at once: one token, exact usage.
pub struct InstantBackend;

#[async_trait::async_trait]
impl Backend for InstantBackend {
    fn name(&self) -> &str {
        "instant"
    }

    fn models(&self) -> Vec<ModelInfo> {
        vec![ModelInfo { id: MODEL.into(), context_length: 8192, owned_by: "bench".into(), details: None }]
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let prompt_tokens = self.count_prompt_tokens(&request)?;
        let events = vec![
            Ok(GenerationEvent::Started { prompt_tokens, cached_tokens: 0, model: None, verbatim: false }),
            Ok(GenerationEvent::Delta { text: "ok".into(), tokens: Vec::new() }),
            Ok(GenerationEvent::Finished {
                reason: FinishReason::Stop,
                prompt_tokens,
                completion_tokens: 1,
                cached_tokens: 0,
            }),
        ];
        Ok(Box::pin(futures::stream::iter(events)))
    }

    async fn ready(&self) -> bool {
        true
    }
}

fn policy_toml(store: &str) -> String {
    format!(
        "{store}\n[[keys]]\nid = \"bench\"\nkey_env = \"SY_BENCH_GATEWAY_KEY\"\nuser = \"bench-user\"\n\
         rpm = 100000000\nrpd = 1000000000\ntpm = 100000000000\ntpd = 1000000000000\nbudget_usd = 1000000\nbudget_period = \"monthly\"\n\
         [[users]]\nid = \"bench-user\"\nrpm = 100000000\n\
         [prices.{MODEL}]\ninput_per_million = 0.1\noutput_per_million = 0.2\n"
    )
}

fn app(toml: &str) -> Result<axum::Router> {
    let cfg = gateway::Config::from_toml(toml)?;
    let policy = gateway::server::build_policy(&cfg, false)?;
    let mut state = gateway::AppState::with_policy(cfg.body_limit_bytes, policy);
    state.add_backend(Arc::new(InstantBackend));
    if !cfg.live_eval.is_empty() {
        gateway::server::start_live_eval(&mut state, &cfg, None)?;
    }
    Ok(gateway::router(state))
}

async fn one(app: &axum::Router, with_key: bool) -> Result<f64> {
    let body = serde_json::json!({"model": MODEL, "max_tokens": 16,
        "messages": [{"role": "user", "content": "How much does a gateway add to a request?"}]})
    .to_string();
    let mut req = Request::post("/v1/chat/completions").header("content-type", "application/json");
    if with_key {
        req = req.header("authorization", format!("Bearer {KEY}"));
    }
    let req = req.body(Body::from(body))?;
    let start = Instant::now();
    let resp = app.clone().oneshot(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let elapsed = start.elapsed().as_secs_f64();
    anyhow::ensure!(status.is_success(), "status {status}: {}", String::from_utf8_lossy(&bytes));
    Ok(elapsed)
}

/// p50 and p99 over all samples, and the median over rounds of each
/// round's p99 (robust to one round hit by a burst of noise from outside).
fn summarize(samples: &[f64], per_round: usize) -> [f64; 3] {
    let sorted = |xs: &[f64]| {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    let all = sorted(samples);
    let round_p99: Vec<f64> = samples.chunks(per_round.max(1)).map(|r| percentile(&sorted(r), 0.99)).collect();
    let round_p99 = sorted(&round_p99);
    [percentile(&all, 0.5) * 1e6, percentile(&all, 0.99) * 1e6, percentile(&round_p99, 0.5) * 1e6]
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn run(args: &GatewayBench) -> Result<()> {
    std::env::set_var("SY_BENCH_GATEWAY_KEY", KEY);
    let dir = tempfile_dir()?;
    let mut setups: Vec<(&'static str, axum::Router, bool)> = vec![
        ("off", app("")?, false),
        ("embedded", app(&policy_toml(&format!("[state]\npath = \"{}\"", dir.join("state.jsonl").display())))?, true),
    ];
    if let Some(url) = &args.redis_url {
        let prefix = format!("bench-{}", std::process::id());
        let toml = policy_toml(&format!("[state]\nstore = \"redis\"\nredis_url = \"{url}\"\nprefix = \"{prefix}\""));
        setups.push(("redis", app(&toml)?, true));
    }
    if args.live_eval {
        setups.push(("live-eval", app(LIVE_EVAL_TOML)?, false));
    }
    let (rounds, requests) = (args.rounds, args.requests);
    // Requests run on a runtime worker, as the server's handlers do.
    let (setups, samples, live_counts) = tokio::runtime::Handle::current().block_on(async move {
        tokio::spawn(async move {
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
            // Warm-up: connections, script loading, first allocations.
            for (_, app, key) in &setups {
                for _ in 0..200 {
                    one(app, *key).await?;
                }
            }
            for _ in 0..rounds {
                for (i, (_, app, key)) in setups.iter().enumerate() {
                    for _ in 0..requests {
                        samples[i].push(one(app, *key).await?);
                    }
                }
            }
            // What the live-eval setup scored and dropped, from its /metrics.
            let mut live_counts = None;
            if let Some((_, app, _)) = setups.iter().find(|(n, _, _)| *n == "live-eval") {
                let resp = app.clone().oneshot(Request::get("/metrics").body(Body::empty())?).await?;
                let text = String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned();
                let value = |prefix: &str| -> f64 {
                    text.lines().filter_map(|l| l.strip_prefix(prefix)?.trim().parse::<f64>().ok()).sum()
                };
                live_counts = Some((
                    value("llm_eval_score_count{model=\"instant\",eval_type=\"slow\"}"),
                    value("llm_eval_dropped_total{eval_type=\"slow\"}"),
                ));
            }
            anyhow::Ok((setups, samples, live_counts))
        })
        .await?
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    println!(
        "gateway overhead: {} rounds × {} sequential requests per setup, instant backend, {workers} async worker thread(s)",
        args.rounds, args.requests
    );
    println!("| setup | p50 µs | p99 µs | median of rounds' p99 µs | added p50 µs | added p99 µs | added median-of-rounds p99 µs |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let stats: Vec<[f64; 3]> = samples.iter().map(|s| summarize(s, requests)).collect();
    let base = stats.first().copied().context("no setups")?;
    for ((name, _, _), [p50, p99, round_p99]) in setups.iter().zip(&stats) {
        println!(
            "| {name} | {p50:.1} | {p99:.1} | {round_p99:.1} | {:.1} | {:.1} | {:.1} |",
            p50 - base[0],
            p99 - base[1],
            round_p99 - base[2]
        );
    }
    if let Some((scored, dropped)) = live_counts {
        let sent = (200 + rounds * requests) as f64;
        println!(
            "live-eval: {sent} answers sampled, {scored} scored, {dropped} dropped (queue full), {} still queued or being scored",
            sent - scored - dropped
        );
    }
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-gateway-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
