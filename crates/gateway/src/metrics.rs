//! The gateway's own Prometheus series (requests, latency, tokens, cost,
//! rate limiting, budgets, overhead, store errors). The engines' series are
//! read from their handles at scrape time (`routes::metrics`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// `llm_request_latency_seconds` buckets, 0.1 … 60 s.
const LATENCY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];
/// `llm_gateway_overhead_seconds` buckets: the gateway's own time is micro- to milliseconds.
const OVERHEAD_BUCKETS: [f64; 12] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}\n{name}_count{braces} {}", self.sum, self.count);
    }
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    tokens: BTreeMap<(String, &'static str), u64>,
    cost_nanos: BTreeMap<String, u64>,
    rate_limited: BTreeMap<&'static str, u64>,
    budget_exceeded: u64,
    overhead: Option<Histogram>,
    store_errors: BTreeMap<&'static str, u64>,
}

#[derive(Default)]
pub struct GatewayMetrics {
    inner: Mutex<Inner>,
}

/// The model label of a request whose model is not known (rejected before validation).
pub const UNKNOWN_MODEL: &str = "unknown";

impl GatewayMetrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut inner) = self.inner.lock() {
            f(&mut inner);
        }
    }

    /// One finished request: its status, latency and the gateway's own share of it.
    pub fn request(&self, model: &str, status: u16, seconds: f64, overhead_seconds: f64) {
        self.with(|m| {
            *m.requests.entry((model.to_string(), status)).or_default() += 1;
            m.latency.entry(model.to_string()).or_insert_with(|| Histogram::new(&LATENCY_BUCKETS)).observe(seconds);
            m.overhead.get_or_insert_with(|| Histogram::new(&OVERHEAD_BUCKETS)).observe(overhead_seconds);
        });
    }

    pub fn usage(&self, model: &str, input: u64, output: u64, cost_nanos: u64) {
        self.with(|m| {
            *m.tokens.entry((model.to_string(), "input")).or_default() += input;
            *m.tokens.entry((model.to_string(), "output")).or_default() += output;
            *m.cost_nanos.entry(model.to_string()).or_default() += cost_nanos;
        });
    }

    /// `reason`: requests, tokens (per minute or day).
    pub fn rate_limited(&self, reason: &'static str) {
        self.with(|m| *m.rate_limited.entry(reason).or_default() += 1);
    }

    pub fn budget_exceeded(&self) {
        self.with(|m| m.budget_exceeded += 1);
    }

    /// The state store failed (`served`: fail-open let the request through).
    pub fn store_error(&self, served: bool) {
        self.with(|m| *m.store_errors.entry(if served { "fail_open" } else { "refused" }).or_default() += 1);
    }

    pub fn render(&self, out: &mut String) {
        let Ok(m) = self.inner.lock() else { return };
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(out, "llm_requests_total", "counter", "Requests answered, by model and HTTP status.");
        for ((model, status), n) in &m.requests {
            let _ = writeln!(out, "llm_requests_total{{model=\"{}\",status=\"{status}\"}} {n}", escape(model));
        }
        head(out, "llm_request_latency_seconds", "histogram", "From arrival to the last byte of the response.");
        for (model, h) in &m.latency {
            h.write(out, "llm_request_latency_seconds", &format!("model=\"{}\"", escape(model)));
        }
        head(out, "llm_tokens_total", "counter", "Tokens billed, by model and direction (input, output).");
        for ((model, dir), n) in &m.tokens {
            let _ = writeln!(out, "llm_tokens_total{{model=\"{}\",direction=\"{dir}\"}} {n}", escape(model));
        }
        head(out, "llm_cost_dollars", "counter", "Cost of the requests served, in US dollars, from the price table.");
        for (model, nanos) in &m.cost_nanos {
            let _ = writeln!(out, "llm_cost_dollars{{model=\"{}\"}} {}", escape(model), *nanos as f64 / 1e9);
        }
        head(out, "llm_rate_limited_total", "counter", "Requests refused by a rate limit, by what ran out.");
        for reason in ["requests", "tokens"] {
            let _ = writeln!(
                out,
                "llm_rate_limited_total{{reason=\"{reason}\"}} {}",
                m.rate_limited.get(reason).unwrap_or(&0)
            );
        }
        head(out, "llm_budget_exceeded_total", "counter", "Requests refused because a budget was spent.");
        let _ = writeln!(out, "llm_budget_exceeded_total {}", m.budget_exceeded);
        head(
            out,
            "llm_gateway_overhead_seconds",
            "histogram",
            "Time in the gateway itself: total minus the backend's time.",
        );
        m.overhead.clone().unwrap_or_else(|| Histogram::new(&OVERHEAD_BUCKETS)).write(
            out,
            "llm_gateway_overhead_seconds",
            "",
        );
        head(
            out,
            "llm_state_store_errors_total",
            "counter",
            "State store failures, by what the gateway did (fail_open, refused).",
        );
        for outcome in ["fail_open", "refused"] {
            let _ = writeln!(
                out,
                "llm_state_store_errors_total{{outcome=\"{outcome}\"}} {}",
                m.store_errors.get(outcome).unwrap_or(&0)
            );
        }
    }
}

/// Label values escape backslash, quote and newline.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
