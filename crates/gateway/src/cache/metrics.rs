//! The cache's Prometheus series: hits per tier (`llm_cache_hits_total
//! {cache_level}`, the specification's name), misses, skips, lookup latency
//! per tier, the candidates the guard rejected, tier errors, the cost saved,
//! and entries and bytes per tier (read at scrape time).

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

const LOOKUP_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LevelLabels {
    cache_level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type Lookup = Family<TierLabels, Histogram, fn() -> Histogram>;

pub struct CacheMetrics {
    registry: Registry,
    hits: Family<LevelLabels, Counter>,
    misses: Counter,
    skips: Counter,
    stored: Counter,
    lookup: Lookup,
    rejected: Family<ReasonLabels, Counter>,
    errors: Family<TierLabels, Counter>,
    saved: Gauge<f64, AtomicU64>,
    entries: Family<TierLabels, Gauge>,
    bytes: Family<TierLabels, Gauge>,
}

/// Tier names, as labels.
pub const L1: &str = "memory";
pub const L2: &str = "redis";
pub const L3: &str = "semantic";
pub const EMBED: &str = "embedding";

impl Default for CacheMetrics {
    fn default() -> Self {
        let mut m = CacheMetrics {
            registry: Registry::default(),
            hits: Family::default(),
            misses: Counter::default(),
            skips: Counter::default(),
            stored: Counter::default(),
            lookup: Family::new_with_constructor(|| Histogram::new(LOOKUP_BUCKETS)),
            rejected: Family::default(),
            errors: Family::default(),
            saved: Gauge::default(),
            entries: Family::default(),
            bytes: Family::default(),
        };
        for cache_level in [L1, L2, L3] {
            drop(m.hits.get_or_create(&LevelLabels { cache_level }));
        }
        let r = &mut m.registry;
        r.register("llm_cache_hits", "Requests answered from the cache, by tier", m.hits.clone());
        r.register("llm_cache_misses", "Cacheable requests the cache could not answer", m.misses.clone());
        r.register(
            "llm_cache_skips",
            "Requests the cache did not look up (not cacheable, or asked not to)",
            m.skips.clone(),
        );
        r.register("llm_cache_stored", "Answers stored", m.stored.clone());
        r.register(
            "llm_cache_lookup_seconds",
            "Time of one lookup, by tier (embedding: the question's)",
            m.lookup.clone(),
        );
        r.register(
            "llm_cache_guard_rejections",
            "Semantic candidates above the threshold that the wrong-hit guard refused, by reason",
            m.rejected.clone(),
        );
        r.register("llm_cache_errors", "Tier failures (the request went on uncached)", m.errors.clone());
        r.register("llm_cache_saved_dollars", "Backend cost the hits did not spend, in US dollars", m.saved.clone());
        r.register("llm_cache_entries", "Entries held, by tier (this replica's view)", m.entries.clone());
        r.register("llm_cache_bytes", "Approximate bytes held, by tier (this replica's)", m.bytes.clone());
        m
    }
}

impl CacheMetrics {
    pub fn hit(&self, tier: &'static str) {
        self.hits.get_or_create(&LevelLabels { cache_level: tier }).inc();
    }
    pub fn miss(&self) {
        self.misses.inc();
    }
    pub fn skip(&self) {
        self.skips.inc();
    }
    pub fn stored(&self) {
        self.stored.inc();
    }
    pub fn lookup(&self, tier: &'static str, seconds: f64) {
        self.lookup.get_or_create(&TierLabels { tier }).observe(seconds);
    }
    pub fn rejected(&self, reason: &'static str) {
        self.rejected.get_or_create(&ReasonLabels { reason }).inc();
    }
    pub fn error(&self, tier: &'static str) {
        self.errors.get_or_create(&TierLabels { tier }).inc();
    }
    pub fn saved(&self, nanos: u64) {
        self.saved.inc_by(nanos as f64 / 1e9);
    }
    pub fn size(&self, tier: &'static str, entries: u64, bytes: u64) {
        self.entries.get_or_create(&TierLabels { tier }).set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.bytes.get_or_create(&TierLabels { tier }).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    pub fn render(&self, out: &mut String) -> std::fmt::Result {
        prometheus_text::encode(out, &self.registry)
    }
}
