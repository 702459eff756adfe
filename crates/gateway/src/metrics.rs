//! The gateway's own Prometheus series (requests, latency, tokens, cost,
//! rate limiting, budgets, overhead, store errors), kept by
//! `prometheus-client`: counters are atomics, each histogram has its own
//! short lock; a model's series are found with one map lookup (they are
//! held per model label), the requests counter through its family's shared
//! read lock. No lock is taken for every series. The engines', queues' and
//! models' series are read at scrape time (`routes::metrics`).
//!
//! Label values that come from clients are bounded (a model label is a
//! name the config knows, [`UNKNOWN_MODEL`] or [`OTHER`]): the one rule is
//! `GatewayMetrics::series`, its label [`GatewayMetrics::model_label`].

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

/// `llm_request_latency_seconds` buckets, 0.1 … 60 s.
const LATENCY_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0];
/// `llm_gateway_overhead_seconds` buckets: the gateway's own time is micro- to milliseconds.
const OVERHEAD_BUCKETS: [f64; 12] =
    [0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The model label of a request whose model was never resolved (refused
/// before the lookup, or a name no model, alias or route has).
pub const UNKNOWN_MODEL: &str = "unknown";
/// The model label of a name the config does not know.
pub const OTHER: &str = "other";

/// A model label value: one of the configured names, or a fixed value.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum ModelLabel {
    Known(Arc<str>),
    Unknown,
    Other,
}

impl ModelLabel {
    pub fn as_str(&self) -> &str {
        match self {
            ModelLabel::Known(name) => name,
            ModelLabel::Unknown => UNKNOWN_MODEL,
            ModelLabel::Other => OTHER,
        }
    }
}

impl EncodeLabelValue for ModelLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: ModelLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    model: ModelLabel,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: ModelLabel,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;
type DollarGauge = Gauge<f64, AtomicU64>;

/// One model label's series, found with one lookup per call; each taken
/// from its family (so exposed) the first time it is used.
struct ModelSeries {
    label: ModelLabel,
    latency: OnceLock<Histogram>,
    input_tokens: OnceLock<Counter>,
    output_tokens: OnceLock<Counter>,
    cost_dollars: OnceLock<DollarGauge>,
}

impl ModelSeries {
    fn new(label: ModelLabel) -> Self {
        ModelSeries {
            label,
            latency: OnceLock::new(),
            input_tokens: OnceLock::new(),
            output_tokens: OnceLock::new(),
            cost_dollars: OnceLock::new(),
        }
    }
}

pub struct GatewayMetrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    tokens: Family<TokenLabels, Counter>,
    cost_dollars: Family<ModelLabels, DollarGauge>,
    rate_limited: Family<ReasonLabels, Counter>,
    budget_exceeded: Counter,
    overhead: Histogram,
    store_errors: Family<OutcomeLabels, Counter>,
    /// Every name a client may send that the config knows (models,
    /// aliases, routes), learned once the state is built.
    known: OnceLock<HashMap<Arc<str>, ModelSeries>>,
    unknown: ModelSeries,
    other: ModelSeries,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let m = GatewayMetrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
            tokens: Family::default(),
            cost_dollars: Family::default(),
            rate_limited: Family::default(),
            budget_exceeded: Counter::default(),
            overhead: Histogram::new(OVERHEAD_BUCKETS),
            store_errors: Family::default(),
            known: OnceLock::new(),
            unknown: ModelSeries::new(ModelLabel::Unknown),
            other: ModelSeries::new(ModelLabel::Other),
        };
        // Always exposed, zero until they happen.
        for reason in ["requests", "tokens"] {
            drop(m.rate_limited.get_or_create(&ReasonLabels { reason }));
        }
        for outcome in ["fail_open", "refused"] {
            drop(m.store_errors.get_or_create(&OutcomeLabels { outcome }));
        }
        m.registered()
    }
}

impl GatewayMetrics {
    /// The families in the registry, in exposition order. `prometheus-client`
    /// appends `_total` to counters and a full stop to help texts.
    fn registered(mut self) -> Self {
        let r = &mut self.registry;
        r.register("llm_requests", "Requests answered, by model and HTTP status", self.requests.clone());
        r.register(
            "llm_request_latency_seconds",
            "From arrival to the last byte of the response",
            self.latency.clone(),
        );
        r.register("llm_tokens", "Tokens billed, by model and direction (input, output)", self.tokens.clone());
        // A gauge so that the name keeps no `_total` (the text encoder adds it to counters); it only grows.
        r.register(
            "llm_cost_dollars",
            "Cost of the requests served, in US dollars, from the price table",
            self.cost_dollars.clone(),
        );
        r.register("llm_rate_limited", "Requests refused by a rate limit, by what ran out", self.rate_limited.clone());
        r.register("llm_budget_exceeded", "Requests refused because a budget was spent", self.budget_exceeded.clone());
        r.register(
            "llm_gateway_overhead_seconds",
            "Time in the gateway itself: total minus the backend's time",
            self.overhead.clone(),
        );
        r.register(
            "llm_state_store_errors",
            "State store failures, by what the gateway did (fail_open, refused)",
            self.store_errors.clone(),
        );
        self
    }

    /// Learns, once, the names clients may send that the config knows;
    /// later calls do nothing (an atomic load). Until then every name is `other`.
    pub fn learn_names<I: IntoIterator<Item = String>>(&self, names: impl FnOnce() -> I) {
        self.known.get_or_init(|| {
            let names = names().into_iter().map(Arc::<str>::from);
            names.map(|n| (n.clone(), ModelSeries::new(ModelLabel::Known(n)))).collect()
        });
    }

    /// The one rule for a model label: a name the config knows is itself;
    /// no name (never resolved) is [`UNKNOWN_MODEL`]; any other is [`OTHER`].
    fn series(&self, model: Option<&str>) -> &ModelSeries {
        let Some(name) = model else { return &self.unknown };
        self.known.get().and_then(|k| k.get(name)).unwrap_or(&self.other)
    }

    /// The label [`GatewayMetrics::series`] gives a model.
    pub fn model_label(&self, model: Option<&str>) -> &ModelLabel {
        &self.series(model).label
    }

    /// One finished request: its status, latency and the gateway's own share
    /// of it. `model`: the model it resolved to, if any.
    pub fn request(&self, model: Option<&str>, status: u16, seconds: f64, overhead_seconds: f64) {
        let s = self.series(model);
        let labels = || ModelLabels { model: s.label.clone() };
        s.latency.get_or_init(|| self.latency.get_or_create_owned(&labels())).observe(seconds);
        self.requests.get_or_create(&RequestLabels { model: s.label.clone(), status }).inc();
        self.overhead.observe(overhead_seconds);
    }

    pub fn usage(&self, model: &str, input: u64, output: u64, cost_nanos: u64) {
        let s = self.series(Some(model));
        let tokens = |direction| self.tokens.get_or_create_owned(&TokenLabels { model: s.label.clone(), direction });
        s.input_tokens.get_or_init(|| tokens("input")).inc_by(input);
        s.output_tokens.get_or_init(|| tokens("output")).inc_by(output);
        let cost = || self.cost_dollars.get_or_create_owned(&ModelLabels { model: s.label.clone() });
        s.cost_dollars.get_or_init(cost).inc_by(cost_nanos as f64 / 1e9);
    }

    /// `reason`: requests, tokens (per minute or day).
    pub fn rate_limited(&self, reason: &'static str) {
        self.rate_limited.get_or_create(&ReasonLabels { reason }).inc();
    }

    pub fn budget_exceeded(&self) {
        self.budget_exceeded.inc();
    }

    /// The state store failed (`served`: fail-open let the request through).
    pub fn store_error(&self, served: bool) {
        let outcome = if served { "fail_open" } else { "refused" };
        self.store_errors.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Appends the series in the Prometheus text format (0.0.4).
    pub fn render(&self, out: &mut String) -> std::fmt::Result {
        prometheus_text::encode(out, &self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(m: &GatewayMetrics) -> String {
        let mut out = String::new();
        assert!(m.render(&mut out).is_ok());
        out
    }

    #[test]
    fn labels_are_known_names_or_fixed_values() {
        let m = GatewayMetrics::default();
        assert_eq!(m.model_label(Some("tiny")).as_str(), OTHER, "no names learned yet");
        m.learn_names(|| ["tiny".to_string(), "fast-route".to_string()]);
        m.learn_names(|| ["late".to_string()]);
        assert_eq!(m.model_label(Some("tiny")).as_str(), "tiny");
        assert_eq!(m.model_label(Some("fast-route")).as_str(), "fast-route");
        assert_eq!(m.model_label(Some("late")).as_str(), OTHER, "names are learned once");
        assert_eq!(m.model_label(Some("gpt-junk-1")).as_str(), OTHER);
        assert_eq!(m.model_label(None).as_str(), UNKNOWN_MODEL);
    }

    #[test]
    fn exposition_keeps_names_and_sample_lines() {
        let m = GatewayMetrics::default();
        m.learn_names(|| ["tiny".to_string()]);
        m.request(Some("tiny"), 200, 0.3, 0.000_03);
        m.request(None, 401, 0.01, 0.01);
        for i in 0..100 {
            m.usage(&format!("junk-{i}"), 1, 1, 0);
        }
        m.usage("tiny", 3, 4, 1_500_000_000);
        m.rate_limited("tokens");
        m.budget_exceeded();
        m.store_error(true);
        let text = rendered(&m);
        for line in [
            "# TYPE llm_requests_total counter",
            "llm_requests_total{model=\"tiny\",status=\"200\"} 1",
            "llm_requests_total{model=\"unknown\",status=\"401\"} 1",
            "# TYPE llm_request_latency_seconds histogram",
            "llm_request_latency_seconds_bucket{model=\"tiny\",le=\"0.25\"} 0",
            "llm_request_latency_seconds_bucket{model=\"tiny\",le=\"0.5\"} 1",
            "llm_request_latency_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 1",
            "llm_request_latency_seconds_count{model=\"tiny\"} 1",
            "llm_tokens_total{model=\"tiny\",direction=\"input\"} 3",
            "llm_tokens_total{model=\"tiny\",direction=\"output\"} 4",
            "llm_tokens_total{model=\"other\",direction=\"output\"} 100",
            "llm_cost_dollars{model=\"tiny\"} 1.5",
            "llm_rate_limited_total{reason=\"requests\"} 0",
            "llm_rate_limited_total{reason=\"tokens\"} 1",
            "llm_budget_exceeded_total 1",
            "llm_gateway_overhead_seconds_bucket{le=\"2.5e-05\"} 0",
            "llm_gateway_overhead_seconds_bucket{le=\"5e-05\"} 1",
            "llm_gateway_overhead_seconds_count 2",
            "llm_state_store_errors_total{outcome=\"fail_open\"} 1",
            "llm_state_store_errors_total{outcome=\"refused\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("junk"), "{text}");
    }
}
