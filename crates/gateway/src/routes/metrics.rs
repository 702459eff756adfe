//! `GET /metrics`: Prometheus text exposition (0.0.4), encoded by
//! `prometheus-client`: the engines', queues' and models' series read at
//! scrape time (collectors over snapshots), then the gateway's own
//! (`crate::metrics`).

use crate::health::{Circuit, ModelHealth};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use backend_api::Backend;
use engine::stats::{HistogramSnapshot, StatsSnapshot};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(Engines::read(&state)));
    scrape.register_collector(Box::new(Queues::read(&state)));
    scrape.register_collector(Box::new(Models(state.health().snapshot())));
    let mut out = String::new();
    if let Some(c) = state.cache() {
        c.sizes();
    }
    let cache = |out: &mut String| state.cache().map_or(Ok(()), |c| c.metrics.render(out));
    let guards = |out: &mut String| state.guardrails().map_or(Ok(()), |g| g.metrics.render(out));
    let evals = |out: &mut String| state.live_eval().map_or(Ok(()), |e| e.metrics.render(out));
    match prometheus_text::encode(&mut out, &scrape)
        .and_then(|()| state.metrics().render(&mut out))
        .and_then(|()| cache(&mut out))
        .and_then(|()| guards(&mut out))
        .and_then(|()| evals(&mut out))
    {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out).into_response(),
        Err(fmt::Error) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A family's name, type and help text. Counter names leave out `_total`:
/// the encoder adds it.
type Descriptor = (&'static str, MetricType, &'static str);

/// One family with one label (`model` or `backend`), one sample per element.
fn family<T>(
    encoder: &mut DescriptorEncoder,
    (name, kind, help): Descriptor,
    label: &str,
    items: &[T],
    sample: impl Fn(&T) -> (&str, Sample<'_>),
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for item in items {
        let (value, s) = sample(item);
        let labels = [(label, value)];
        let metric = family.encode_family(&labels)?;
        match s {
            Sample::Counter(v) => ConstCounter::new(v).encode(metric)?,
            Sample::Gauge(v) => ConstGauge::new(v).encode(metric)?,
            Sample::GaugeF64(v) => ConstGauge::new(v).encode(metric)?,
            Sample::Histogram(h) => histogram(metric, h)?,
        }
    }
    Ok(())
}

enum Sample<'a> {
    Counter(u64),
    Gauge(u64),
    GaugeF64(f64),
    /// Cumulative buckets, as the engine keeps them.
    Histogram(&'a HistogramSnapshot),
}

/// The encoder takes each bucket's own count (it sums them).
fn histogram(mut metric: MetricEncoder<'_>, h: &HistogramSnapshot) -> fmt::Result {
    let mut below = 0;
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(le, cumulative)| (le, cumulative.saturating_sub(std::mem::replace(&mut below, cumulative))))
        .collect();
    metric.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &buckets, None)
}

/// Each embedded engine's counters, read when scraped.
struct Engines(Vec<(String, StatsSnapshot, (HistogramSnapshot, HistogramSnapshot))>);

impl Engines {
    fn read(state: &AppState) -> Self {
        Engines(state.engines().iter().map(|e| (e.model_id().to_string(), e.stats(), e.latency())).collect())
    }
}

impl fmt::Debug for Engines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|e| &e.0)).finish()
    }
}

/// One of an engine's series and how to read it.
type EngineSeries = (Descriptor, fn(&StatsSnapshot) -> Sample<'static>);

const ENGINE_SERIES: [EngineSeries; 11] = {
    use MetricType::{Counter, Gauge};
    [
        (("llm_engine_running_sequences", Gauge, "Sequences in the running batch."), |s| Sample::Gauge(s.running)),
        (("llm_engine_waiting_sequences", Gauge, "Sequences waiting for admission."), |s| Sample::Gauge(s.waiting)),
        (("llm_engine_steps", Counter, "Forward passes run."), |s| Sample::Counter(s.steps)),
        (("llm_engine_prompt_tokens", Counter, "Prompt tokens processed (prefill)."), |s| {
            Sample::Counter(s.prompt_tokens)
        }),
        (("llm_engine_generated_tokens", Counter, "Tokens generated (decode)."), |s| {
            Sample::Counter(s.generated_tokens)
        }),
        (("llm_engine_cancelled", Counter, "Sequences cancelled because the client went away."), |s| {
            Sample::Counter(s.cancelled)
        }),
        (("llm_engine_preemptions", Counter, "Sequences preempted to free KV blocks (recomputed later)."), |s| {
            Sample::Counter(s.preemptions)
        }),
        (("llm_engine_kv_blocks_total", Gauge, "KV cache blocks in the pool."), |s| Sample::Gauge(s.kv_blocks_total)),
        (("llm_engine_kv_blocks_used", Gauge, "KV cache blocks held by sequences."), |s| {
            Sample::Gauge(s.kv_blocks_used)
        }),
        (("llm_engine_prefix_cache_queries", Counter, "Prompt tokens looked up in the prefix cache."), |s| {
            Sample::Counter(s.prefix_query_tokens)
        }),
        (("llm_engine_prefix_cache_hits", Counter, "Prompt tokens served from the prefix cache."), |s| {
            Sample::Counter(s.prefix_hit_tokens)
        }),
    ]
};

const TIME_TO_FIRST_TOKEN: Descriptor = (
    "llm_engine_time_to_first_token_seconds",
    MetricType::Histogram,
    "From arrival at the engine to the first generated token.",
);
const INTER_TOKEN_LATENCY: Descriptor = (
    "llm_engine_inter_token_latency_seconds",
    MetricType::Histogram,
    "Between consecutive generated tokens of one sequence.",
);

impl Collector for Engines {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        for (descriptor, get) in ENGINE_SERIES {
            family(&mut encoder, descriptor, "model", &self.0, |(model, stats, _)| (model, get(stats)))?;
        }
        family(&mut encoder, TIME_TO_FIRST_TOKEN, "model", &self.0, |(m, _, l)| (m, Sample::Histogram(&l.0)))?;
        family(&mut encoder, INTER_TOKEN_LATENCY, "model", &self.0, |(m, _, l)| (m, Sample::Histogram(&l.1)))
    }
}

/// Per-backend request queues, read when scraped: (backend, [in flight,
/// waiting, refused full, timed out, waited], the time waited).
#[derive(Debug)]
struct Queues(Vec<(String, [u64; 5], HistogramSnapshot)>);

impl Queues {
    fn read(state: &AppState) -> Self {
        Queues(
            state
                .queues()
                .iter()
                .map(|q| {
                    let s = &q.stats;
                    let counts =
                        [&s.in_flight, &s.waiting, &s.rejected_full, &s.timed_out, &s.waited].map(|a| a.load(Relaxed));
                    // Only a sum and a count: a histogram with no bucket but +Inf.
                    let wait = HistogramSnapshot {
                        buckets: vec![(f64::INFINITY, counts[4])],
                        count: counts[4],
                        sum_seconds: s.wait_micros.load(Relaxed) as f64 * 1e-6,
                    };
                    (q.name().to_string(), counts, wait)
                })
                .collect(),
        )
    }
}

const QUEUE_IN_FLIGHT: Descriptor = ("llm_queue_in_flight", MetricType::Gauge, "Requests a queued backend is serving.");
const QUEUE_DEPTH: Descriptor = ("llm_queue_depth", MetricType::Gauge, "Requests waiting for a queued backend.");
const QUEUE_REJECTED: Descriptor =
    ("llm_queue_rejected", MetricType::Counter, "Requests refused by a queue: full (503) or waited too long (504).");
const QUEUE_WAIT: Descriptor =
    ("llm_queue_wait_seconds", MetricType::Histogram, "Time requests waited in a queue (those that waited).");

impl Collector for Queues {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        family(&mut encoder, QUEUE_IN_FLIGHT, "backend", &self.0, |(b, c, _)| (b, Sample::Gauge(c[0])))?;
        family(&mut encoder, QUEUE_DEPTH, "backend", &self.0, |(b, c, _)| (b, Sample::Gauge(c[1])))?;
        let (name, kind, help) = QUEUE_REJECTED;
        let mut rejected = encoder.encode_descriptor(name, help, None, kind)?;
        for (backend, counts, _) in &self.0 {
            for (reason, n) in [("full", counts[2]), ("timeout", counts[3])] {
                let labels = [("backend", backend.as_str()), ("reason", reason)];
                ConstCounter::new(n).encode(rejected.encode_family(&labels)?)?;
            }
        }
        family(&mut encoder, QUEUE_WAIT, "backend", &self.0, |(b, _, w)| (b, Sample::Histogram(w)))
    }
}

/// Each model's circuit, requests in flight and latency average.
#[derive(Debug)]
struct Models(Vec<ModelHealth>);

const CIRCUIT_OPEN: Descriptor =
    ("llm_backend_circuit_open", MetricType::Gauge, "1 while the model's circuit is open or half-open, else 0.");
const IN_FLIGHT: Descriptor = ("llm_backend_in_flight", MetricType::Gauge, "Requests a model is serving now.");
const LATENCY_EWMA: Descriptor =
    ("llm_backend_latency_ewma_seconds", MetricType::Gauge, "Moving average of a model's time to first token.");

impl Collector for Models {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        family(&mut encoder, CIRCUIT_OPEN, "model", &self.0, |h| {
            (&h.model, Sample::Gauge(u64::from(h.circuit != Circuit::Closed)))
        })?;
        family(&mut encoder, IN_FLIGHT, "model", &self.0, |h| (&h.model, Sample::Gauge(h.in_flight)))?;
        // Only the models that have an average yet.
        let averaged: Vec<_> = self.0.iter().filter_map(|h| Some((h.model.as_str(), h.latency_ewma_s?))).collect();
        family(&mut encoder, LATENCY_EWMA, "model", &averaged, |(model, s)| (model, Sample::GaugeF64(*s)))
    }
}
