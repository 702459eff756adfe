//! `GET /metrics`: Prometheus text exposition of the engines' counters
//! and the gateway's own series (`crate::metrics`).

use crate::metrics::escape;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use backend_api::Backend;
use engine::stats::{HistogramSnapshot, StatsSnapshot};
use std::fmt::Write;

/// One exposed series: name, type, help text and how to read it.
type Series = (&'static str, &'static str, &'static str, fn(&StatsSnapshot) -> u64);

/// Which of an engine's (time to first token, inter-token) histograms.
type PickHistogram = fn(&(HistogramSnapshot, HistogramSnapshot)) -> &HistogramSnapshot;

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let series: [Series; 11] = [
        ("llm_engine_running_sequences", "gauge", "Sequences in the running batch.", |s| s.running),
        ("llm_engine_waiting_sequences", "gauge", "Sequences waiting for admission.", |s| s.waiting),
        ("llm_engine_steps_total", "counter", "Forward passes run.", |s| s.steps),
        ("llm_engine_prompt_tokens_total", "counter", "Prompt tokens processed (prefill).", |s| s.prompt_tokens),
        ("llm_engine_generated_tokens_total", "counter", "Tokens generated (decode).", |s| s.generated_tokens),
        ("llm_engine_cancelled_total", "counter", "Sequences cancelled because the client went away.", |s| s.cancelled),
        ("llm_engine_preemptions_total", "counter", "Sequences preempted to free KV blocks (recomputed later).", |s| {
            s.preemptions
        }),
        ("llm_engine_kv_blocks_total", "gauge", "KV cache blocks in the pool.", |s| s.kv_blocks_total),
        ("llm_engine_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", |s| s.kv_blocks_used),
        ("llm_engine_prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", |s| {
            s.prefix_query_tokens
        }),
        ("llm_engine_prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.", |s| {
            s.prefix_hit_tokens
        }),
    ];
    let snapshots: Vec<_> = state.engines().iter().map(|e| (e.model_id().to_string(), e.stats())).collect();
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (model, snap) in &snapshots {
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {}", escape(model), get(snap));
        }
    }
    let latencies: Vec<_> = state.engines().iter().map(|e| (e.model_id().to_string(), e.latency())).collect();
    let histograms: [(&str, &str, PickHistogram); 2] = [
        ("llm_engine_time_to_first_token_seconds", "From arrival at the engine to the first generated token.", |l| {
            &l.0
        }),
        ("llm_engine_inter_token_latency_seconds", "Between consecutive generated tokens of one sequence.", |l| &l.1),
    ];
    for (name, help, get) in histograms {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (model, l) in &latencies {
            let (h, model) = (get(l), escape(model));
            for (le, n) in &h.buckets {
                let le = if le.is_infinite() { "+Inf".to_string() } else { le.to_string() };
                let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{le}\"}} {n}");
            }
            let _ = writeln!(
                out,
                "{name}_sum{{model=\"{model}\"}} {}\n{name}_count{{model=\"{model}\"}} {}",
                h.sum_seconds, h.count
            );
        }
    }
    state.metrics().render(&mut out);
    render_queues(&state, &mut out);
    render_health(&state, &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out)
}

/// One gauge of a queue: name, type, help text and how to read it.
type QueueSeries = (&'static str, &'static str, &'static str, fn(&crate::queue::QueueStats) -> u64);

/// Per-backend request queues: depth, in flight, refusals, time waited.
fn render_queues(state: &AppState, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let queues = state.queues();
    let gauges: [QueueSeries; 2] = [
        ("llm_queue_in_flight", "gauge", "Requests a queued backend is serving.", |s| s.in_flight.load(Relaxed)),
        ("llm_queue_depth", "gauge", "Requests waiting for a queued backend.", |s| s.waiting.load(Relaxed)),
    ];
    for (name, kind, help, get) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for q in queues {
            let _ = writeln!(out, "{name}{{backend=\"{}\"}} {}", escape(q.name()), get(&q.stats));
        }
    }
    let name = "llm_queue_rejected_total";
    let _ = writeln!(
        out,
        "# HELP {name} Requests refused by a queue: full (503) or waited too long (504).\n# TYPE {name} counter"
    );
    for q in queues {
        let b = escape(q.name());
        let _ = writeln!(out, "{name}{{backend=\"{b}\",reason=\"full\"}} {}", q.stats.rejected_full.load(Relaxed));
        let _ = writeln!(out, "{name}{{backend=\"{b}\",reason=\"timeout\"}} {}", q.stats.timed_out.load(Relaxed));
    }
    let name = "llm_queue_wait_seconds";
    let _ = writeln!(out, "# HELP {name} Time requests waited in a queue (those that waited).\n# TYPE {name} summary");
    for q in queues {
        let b = escape(q.name());
        let _ = writeln!(out, "{name}_sum{{backend=\"{b}\"}} {}", q.stats.wait_micros.load(Relaxed) as f64 * 1e-6);
        let _ = writeln!(out, "{name}_count{{backend=\"{b}\"}} {}", q.stats.waited.load(Relaxed));
    }
}

/// One gauge per model: name, help text and how to read it.
type HealthSeries = (&'static str, &'static str, fn(&crate::health::ModelHealth) -> Option<f64>);

/// Each model's circuit, requests in flight and latency average.
fn render_health(state: &AppState, out: &mut String) {
    let health = state.health().snapshot();
    let series: [HealthSeries; 3] = [
        ("llm_backend_circuit_open", "1 while the model's circuit is open or half-open, else 0.", |h| {
            Some(if h.circuit == crate::health::Circuit::Closed { 0.0 } else { 1.0 })
        }),
        ("llm_backend_in_flight", "Requests a model is serving now.", |h| Some(h.in_flight as f64)),
        ("llm_backend_latency_ewma_seconds", "Moving average of a model's time to first token.", |h| h.latency_ewma_s),
    ];
    for (name, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for h in &health {
            if let Some(v) = get(h) {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {v}", escape(&h.model));
            }
        }
    }
}
