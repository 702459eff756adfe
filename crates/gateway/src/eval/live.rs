//! Sampled evaluation of live traffic (`[[live_eval]]`): per model or
//! route, a share of the answers is scored off the request path. The
//! pipeline's `evaluate` step copies a sampled answer's text as it streams
//! by and offers it to a bounded queue when the answer ends; when the
//! queue is full the sample is dropped and counted, never waited for, so
//! a request is never delayed. A worker per evaluation scores samples
//! (`scorers`; the judge asks its model through the gateway's own
//! backends, similarity embeds with the in-process model), exports them as
//! `llm_eval_score{model,eval_type}`, keeps them in the state store (the
//! newest `EVAL_SAMPLES_KEPT` per evaluation; shared on Redis; read with
//! `GET /admin/evals/{name}/samples`) and, with `log`, appends every one to
//! a JSON-lines file, and watches a rolling mean per model: when it falls below `threshold` it
//! logs a warning and posts to `webhook` (with retries) once per
//! crossing; it re-arms when the mean is back at or above it.

use super::judge;
use super::scorers::{self, Output, Scorer, Verdict};
use crate::policy::pricing::PriceTable;
use crate::store::StateStore;
use axum::body::Bytes;
use backend_api::{Backend, EmbeddingBackend};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rand::Rng;
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Webhook attempts per alert, with doubling waits from `WEBHOOK_BACKOFF`.
const WEBHOOK_TRIES: u32 = 3;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(200);

/// One `[[live_eval]]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvalConfig {
    /// The `eval_type` label.
    pub name: String,
    /// Models or routes it samples (empty: all).
    pub models: Vec<String>,
    pub sample_rate: f64,
    pub scorer: Scorer,
    /// The expected answer scorers compare with.
    pub reference: Option<String>,
    pub threshold: Option<f64>,
    pub window: usize,
    pub webhook: Option<String>,
    pub queue: usize,
    /// A JSON-lines file every scored sample is appended to.
    pub log: Option<PathBuf>,
}

/// A sampled answer.
#[derive(Debug, Clone)]
pub struct Sample {
    pub model: String,
    pub question: String,
    pub answer: String,
    pub latency_ms: f64,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EvalLabel {
    model: String,
    eval_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    eval_type: String,
}

pub struct EvalMetrics {
    registry: Registry,
    score: Family<EvalLabel, Histogram, fn() -> Histogram>,
    window_mean: Family<EvalLabel, Gauge<f64, AtomicU64>>,
    dropped: Family<TypeLabel, Counter>,
    alerts: Family<EvalLabel, Counter>,
}

impl Default for EvalMetrics {
    fn default() -> Self {
        let mut m = EvalMetrics {
            registry: Registry::default(),
            score: Family::new_with_constructor(|| Histogram::new([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])),
            window_mean: Family::default(),
            dropped: Family::default(),
            alerts: Family::default(),
        };
        let r = &mut m.registry;
        r.register("llm_eval_score", "Scores of sampled live answers (0 to 1)", m.score.clone());
        r.register("llm_eval_window_mean", "Rolling mean score of the last window of samples", m.window_mean.clone());
        r.register("llm_eval_dropped", "Samples dropped because the scoring queue was full", m.dropped.clone());
        r.register("llm_eval_alerts", "Times the rolling mean fell below its threshold", m.alerts.clone());
        m
    }
}

impl EvalMetrics {
    pub fn render(&self, out: &mut String) -> std::fmt::Result {
        prometheus_text::encode(out, &self.registry)
    }
}

/// A scored sample as stored.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Scored {
    pub eval: String,
    pub model: String,
    pub question: String,
    pub answer: String,
    pub score: f64,
    pub pass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Unix time in milliseconds.
    pub at_ms: u64,
}

struct Evaluation {
    config: LiveEvalConfig,
    queue: mpsc::Sender<Sample>,
}

/// What scorers that need a model use, and where samples go.
#[derive(Clone)]
pub struct Tools {
    pub store: Arc<dyn StateStore>,
    /// Judge model as configured → its own name and its backend.
    pub judges: BTreeMap<String, (String, Arc<dyn Backend>)>,
    /// The in-process embedding model (its name, and it), for `similarity`.
    pub embedder: Option<(String, Arc<dyn EmbeddingBackend>)>,
    /// For `cost`.
    pub prices: PriceTable,
}

/// The running evaluations.
pub struct LiveEval {
    evals: Vec<Evaluation>,
    pub metrics: Arc<EvalMetrics>,
    store: Arc<dyn StateStore>,
}

impl LiveEval {
    /// Starts a worker per evaluation (call inside a Tokio runtime). The
    /// caller has checked that every judge and similarity scorer has its model.
    pub fn start(configs: Vec<LiveEvalConfig>, tools: Tools) -> Arc<Self> {
        let metrics = Arc::new(EvalMetrics::default());
        let evals = configs
            .into_iter()
            .map(|config| {
                let (tx, rx) = mpsc::channel(config.queue.max(1));
                tokio::spawn(worker(config.clone(), rx, metrics.clone(), tools.clone()));
                Evaluation { config, queue: tx }
            })
            .collect();
        Arc::new(LiveEval { evals, metrics, store: tools.store })
    }

    /// The evaluations' names and settings, for the admin API.
    pub fn describe(&self) -> Vec<serde_json::Value> {
        self.evals
            .iter()
            .map(|e| {
                let c = &e.config;
                json!({"name": c.name, "models": c.models, "sample_rate": c.sample_rate, "scorer": c.scorer.name(),
                       "threshold": c.threshold, "window": c.window})
            })
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.evals.iter().any(|e| e.config.name == name)
    }

    /// The newest stored samples of evaluation `name`, newest first.
    pub async fn samples(&self, name: &str, limit: usize) -> Result<Vec<serde_json::Value>, crate::store::StoreError> {
        self.store.eval_samples(name, limit).await
    }

    /// The evaluations that sample this answer of `model` (a fresh draw each).
    pub fn pick(&self, model: &str) -> Vec<usize> {
        let mut rng = rand::rng();
        self.evals
            .iter()
            .enumerate()
            .filter(|(_, e)| e.config.models.is_empty() || e.config.models.iter().any(|m| m == model))
            .filter(|(_, e)| e.config.sample_rate >= 1.0 || rng.random::<f64>() < e.config.sample_rate)
            .map(|(i, _)| i)
            .collect()
    }

    /// Hands a finished answer to the picked evaluations; never waits.
    pub fn offer(&self, picked: &[usize], sample: Sample) {
        for &i in picked {
            let Some(e) = self.evals.get(i) else { continue };
            if e.queue.try_send(sample.clone()).is_err() {
                self.metrics.dropped.get_or_create(&TypeLabel { eval_type: e.config.name.clone() }).inc();
            }
        }
    }
}

/// Rolling scores of one model, and whether its alert is raised.
#[derive(Default)]
struct Window {
    scores: VecDeque<f64>,
    alerting: bool,
}

async fn worker(config: LiveEvalConfig, mut rx: mpsc::Receiver<Sample>, metrics: Arc<EvalMetrics>, tools: Tools) {
    let mut windows: HashMap<String, Window> = HashMap::new();
    let mut log = config.log.as_ref().and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(
                |e| tracing::error!(path = %p.display(), error = %e, "live evaluation: cannot open the sample log"),
            )
            .ok()
    });
    while let Some(s) = rx.recv().await {
        let verdict = grade(&config, &tools, &s).await;
        let label = EvalLabel { model: s.model.clone(), eval_type: config.name.clone() };
        metrics.score.get_or_create(&label).observe(verdict.score);
        let scored = Scored {
            eval: config.name.clone(),
            model: s.model.clone(),
            question: clip(s.question),
            answer: clip(s.answer),
            score: verdict.score,
            pass: verdict.pass,
            detail: verdict.detail,
            at_ms: crate::store::unix_ms(),
        };
        if let Ok(value) = serde_json::to_value(&scored) {
            if let Some(f) = log.as_mut() {
                if let Err(e) = writeln!(f, "{value}") {
                    tracing::warn!(error = %e, "live evaluation: writing a sample failed");
                }
            }
            if let Err(e) = tools.store.put_eval_sample(&config.name, &value).await {
                tracing::warn!(error = %e, "live evaluation: storing a sample failed");
            }
        }
        let w = windows.entry(s.model.clone()).or_default();
        if w.scores.len() >= config.window {
            w.scores.pop_front();
        }
        w.scores.push_back(verdict.score);
        let mean = w.scores.iter().sum::<f64>() / w.scores.len() as f64;
        metrics.window_mean.get_or_create(&label).set(mean);
        let Some(threshold) = config.threshold else { continue };
        // Judged on a full window only: a few early samples are no trend.
        if w.scores.len() < config.window {
            continue;
        }
        if mean < threshold && !w.alerting {
            w.alerting = true;
            metrics.alerts.get_or_create(&label).inc();
            tracing::warn!(eval = %config.name, model = %s.model, mean, threshold, "live evaluation: rolling mean fell below its threshold");
            if let Some(url) = &config.webhook {
                let body = json!({"eval": config.name, "model": s.model, "window_mean": mean, "threshold": threshold,
                                  "window": config.window});
                tokio::spawn(post_webhook(url.clone(), body.to_string()));
            }
        } else if mean >= threshold {
            w.alerting = false;
        }
    }
}

/// Characters of a question or answer kept with a stored sample: enough to
/// read it, bounded so 1,000 samples per evaluation stay small in memory,
/// in the state file and in Redis.
pub const STORED_CHARS: usize = 4000;

fn clip(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(STORED_CHARS) {
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// One sample's verdict: the judge through the gateway's backend of its
/// model, every other scorer as `scorers::grade` does.
async fn grade(config: &LiveEvalConfig, tools: &Tools, s: &Sample) -> Verdict {
    if let Scorer::Judge { model, .. } = &config.scorer {
        let Some((name, backend)) = model.as_ref().and_then(|m| tools.judges.get(m)) else {
            return Verdict::of(false, Some("no judge model".into()));
        };
        let asked = judge::Asked { question: &s.question, answer: &s.answer, expected: config.reference.as_deref() };
        return judge::grade(&config.scorer, &asked, |prompt, attempt| ask_judge(name, backend, prompt, attempt)).await;
    }
    let price = tools.prices.models.get(&s.model);
    let cost_usd = price.and_then(|p| scorers::cost_usd(s.prompt_tokens, s.completion_tokens, p));
    let out = Output { text: &s.answer, expected: config.reference.as_deref(), latency_ms: s.latency_ms, cost_usd };
    let embedder = tools.embedder.as_ref().map(|(name, e)| (name.as_str(), e.as_ref()));
    scorers::grade(&config.scorer, &out, embedder).await
}

/// One judge call through the gateway's backend of the judge model.
async fn ask_judge(
    model: &str,
    backend: &Arc<dyn Backend>,
    prompt: (String, String),
    attempt: u32,
) -> Result<String, String> {
    let request = judge::request(model, prompt, attempt);
    let stream = backend.generate(request).await.map_err(|e| e.to_string())?;
    let done = crate::dialect::collect::collect(stream).await.map_err(|e| e.to_string())?;
    Ok(done.text)
}

/// Posts an alert, retrying failures; gives up with a log line.
async fn post_webhook(url: String, body: String) {
    let tls = match crate::backends::openai::client_tls("webhook", &[], url.starts_with("https://")) {
        Ok(t) => t,
        Err(e) => return tracing::error!(error = %e, "live evaluation: webhook TLS"),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let mut wait = WEBHOOK_BACKOFF;
    for attempt in 1..=WEBHOOK_TRIES {
        let request = hyper::Request::post(&url)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.clone())));
        let outcome = match request {
            Ok(r) => match tokio::time::timeout(Duration::from_secs(10), client.request(r)).await {
                Ok(Ok(resp)) if resp.status().is_success() => return,
                Ok(Ok(resp)) => format!("status {}", resp.status()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".into(),
            },
            Err(e) => return tracing::error!(error = %e, url = %url, "live evaluation: bad webhook URL"),
        };
        tracing::warn!(attempt, error = %outcome, url = %url, "live evaluation: webhook failed");
        if attempt < WEBHOOK_TRIES {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(queue: usize) -> LiveEvalConfig {
        LiveEvalConfig {
            name: "e".into(),
            models: vec!["m".into()],
            sample_rate: 1.0,
            scorer: Scorer::Json,
            reference: None,
            threshold: None,
            window: 10,
            webhook: None,
            queue,
            log: None,
        }
    }

    fn tools() -> Tools {
        Tools {
            store: Arc::new(crate::store::embedded::EmbeddedStore::in_memory()),
            judges: BTreeMap::new(),
            embedder: None,
            prices: PriceTable::default(),
        }
    }

    #[test]
    fn stored_text_is_clipped_on_a_character_boundary() {
        let long = "é".repeat(STORED_CHARS + 10);
        let clipped = clip(long);
        assert_eq!(clipped.chars().count(), STORED_CHARS + 1);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        let live = LiveEval::start(vec![config(1)], tools());
        assert!(live.pick("not-sampled").is_empty());
        let picked = live.pick("m");
        let sample = Sample {
            model: "m".into(),
            question: "q".into(),
            answer: "{}".into(),
            latency_ms: 1.0,
            prompt_tokens: 1,
            completion_tokens: 1,
        };
        // The worker cannot run between these (one thread, no await): one
        // fits the queue, nine are dropped, and none of the calls waits.
        let started = std::time::Instant::now();
        for _ in 0..10 {
            live.offer(&picked, sample.clone());
        }
        assert!(started.elapsed() < Duration::from_millis(50));
        let mut out = String::new();
        assert!(live.metrics.render(&mut out).is_ok());
        assert!(out.contains("llm_eval_dropped_total{eval_type=\"e\"} 9"), "{out}");
        // Once the worker runs, the queued one is scored and stored.
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = live.samples("e", 10).await.unwrap_or_default();
            if !stored.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0]["pass"], json!(true), "{stored:?}");
    }
}
