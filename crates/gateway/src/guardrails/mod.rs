//! Guardrails: checks on the text that comes in (user turns, tool results,
//! prompts) and on the text that goes out (answers and tool-call
//! arguments, streams included), as two steps of the request pipeline
//! (`pipeline::guard_in`, `pipeline::guard_out`). Each guardrail has a
//! stage, a mode (`block`, `redact`, `warn`, `log`; per entity type too)
//! and the routes and keys it applies to, in the order configured.
//!
//! - `pii`: personal data and secrets, with checksums where the type has
//!   one;
//! - `redact`: typed placeholders, and restoring the caller's own values;
//! - `stream`: the hold-back window that checks text arriving in pieces.

pub mod injection;
pub mod moderation;
pub mod pii;
pub mod redact;
pub mod stream;

use pii::Entity;
use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// `NAME=block`, `NAME=warn`, … (comma-separated when several).
pub const GUARDRAIL_HEADER: &str = "x-switchyard-guardrail";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Input,
    Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    Log,
    Warn,
    Redact,
    Block,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "block" => Mode::Block,
            "redact" => Mode::Redact,
            "warn" => Mode::Warn,
            "log" => Mode::Log,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Redact => "redact",
            Mode::Warn => "warn",
            Mode::Log => "log",
        }
    }
}

/// The learned injection detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// Hashed word n-grams, logistic regression: well under a millisecond.
    Ngrams,
    /// The in-process MiniLM embedding of the first 256 tokens, logistic
    /// regression: tens of milliseconds on this machine.
    Embedding,
}

/// What a guardrail looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardKind {
    Pii,
    Injection,
    Moderation,
}

impl GuardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardKind::Pii => "pii",
            GuardKind::Injection => "injection",
            GuardKind::Moderation => "moderation",
        }
    }
}

/// One validated guardrail.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardrailConfig {
    pub name: String,
    pub kind: GuardKind,
    /// Injection: which learned detector reads the text, and its score
    /// that counts as an attack.
    pub detector: Detector,
    pub threshold: f32,
    /// Moderation: the model that classifies, and the categories that act
    /// (empty: any flagged one).
    pub model: Option<String>,
    pub categories: Vec<String>,
    pub stage: Stage,
    pub mode: Mode,
    /// Routes or models it applies to; `None`: all.
    pub models: Option<Vec<String>>,
    /// Key ids it applies to; `None`: all.
    pub keys: Option<Vec<String>>,
    pub entities: Vec<Entity>,
    pub entity_modes: BTreeMap<Entity, Mode>,
    pub reversible: bool,
    pub window: usize,
}

impl GuardrailConfig {
    /// The mode for one entity type (its own, or the guardrail's).
    pub fn mode_of(&self, e: Entity) -> Mode {
        self.entity_modes.get(&e).copied().unwrap_or(self.mode)
    }

    fn applies(&self, stage: Stage, model: &str, key: Option<&str>) -> bool {
        self.stage == stage
            && self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model || x == "*"))
            && self.keys.as_ref().is_none_or(|k| key.is_some_and(|key| k.iter().any(|x| x == key || x == "*")))
    }
}

/// The key a request came with, for `keys = [...]`.
pub fn key_id(p: &crate::policy::Principal) -> Option<&str> {
    match p {
        crate::policy::Principal::Key(k) => Some(&k.id),
        _ => None,
    }
}

/// The configured guardrails, the embedding model the learned injection
/// detector reads with, and their metrics.
pub struct Guardrails {
    list: Vec<GuardrailConfig>,
    pub embedder: Option<(String, std::sync::Arc<dyn backend_api::EmbeddingBackend>)>,
    pub metrics: GuardMetrics,
}

impl Guardrails {
    pub fn new(
        list: Vec<GuardrailConfig>,
        embedder: Option<(String, std::sync::Arc<dyn backend_api::EmbeddingBackend>)>,
    ) -> Self {
        Guardrails { list, embedder, metrics: GuardMetrics::default() }
    }

    /// The guardrails of `stage` for a request to `model` by key `key`, in order.
    pub fn applicable(&self, stage: Stage, model: &str, key: Option<&str>) -> Vec<GuardrailConfig> {
        self.list.iter().filter(|g| g.applies(stage, model, key)).cloned().collect()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeStage {
    guard_type: &'static str,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GuardLabel {
    guard: String,
}

/// `llm_guardrail_blocks_total{guard_type,stage}` (the specification's
/// name), redactions and warnings the same way, and each guardrail's time.
pub struct GuardMetrics {
    registry: Registry,
    blocks: Family<TypeStage, Counter>,
    redactions: Family<TypeStage, Counter>,
    warnings: Family<TypeStage, Counter>,
    seconds: Family<GuardLabel, Histogram, fn() -> Histogram>,
}

impl Default for GuardMetrics {
    fn default() -> Self {
        let mut m = GuardMetrics {
            registry: Registry::default(),
            blocks: Family::default(),
            redactions: Family::default(),
            warnings: Family::default(),
            seconds: Family::new_with_constructor(|| {
                Histogram::new([0.000_01, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.05])
            }),
        };
        let r = &mut m.registry;
        r.register("llm_guardrail_blocks", "Requests or answers a guardrail blocked", m.blocks.clone());
        r.register("llm_guardrail_redactions", "Values a guardrail replaced by a placeholder", m.redactions.clone());
        r.register("llm_guardrail_warnings", "Findings a guardrail only warned or logged about", m.warnings.clone());
        r.register("llm_guardrail_seconds", "Time a guardrail spent on one text", m.seconds.clone());
        m
    }
}

fn stage_label(s: Stage) -> &'static str {
    match s {
        Stage::Input => "input",
        Stage::Output => "output",
    }
}

impl GuardMetrics {
    pub fn found(&self, kind: GuardKind, stage: Stage, mode: Mode, n: u64) {
        let l = TypeStage { guard_type: kind.as_str(), stage: stage_label(stage) };
        match mode {
            Mode::Block => self.blocks.get_or_create(&l).inc_by(n.min(1)),
            Mode::Redact => self.redactions.get_or_create(&l).inc_by(n),
            Mode::Warn | Mode::Log => self.warnings.get_or_create(&l).inc_by(n),
        };
    }

    pub fn timed(&self, guard: &str, seconds: f64) {
        self.seconds.get_or_create(&GuardLabel { guard: guard.to_string() }).observe(seconds);
    }

    pub fn render(&self, out: &mut String) -> std::fmt::Result {
        prometheus_text::encode(out, &self.registry)
    }
}
