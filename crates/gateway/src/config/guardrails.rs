//! `[[guardrails]]`: checks on what comes in and what goes out, in order.
//!
//! ```toml
//! [[guardrails]]
//! name = "pii-in"
//! type = "pii"             # pii (more types to come)
//! stage = "input"          # input | output
//! mode = "redact"          # block | redact | warn | log
//! models = ["support-bot"] # routes or models it applies to (default: all)
//! keys = ["team-a"]        # key ids it applies to (default: all)
//! entities = ["email", "phone", "us_ssn", "credit_card", "iban", "ip_address", "secret"]
//! entity_modes = { credit_card = "block" }
//! reversible = true        # input, redact: the caller's own values come back in the answer
//! window = 96              # output on streams: bytes held back
//! ```

use super::{invalid, ConfigError};
use crate::guardrails::pii::{Entity, ALL, MAX_SPAN};
use crate::guardrails::{Detector, GuardKind, GuardrailConfig, Mode, Stage};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrail {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    stage: String,
    mode: String,
    models: Option<Vec<String>>,
    keys: Option<Vec<String>>,
    entities: Option<Vec<String>>,
    #[serde(default)]
    entity_modes: BTreeMap<String, String>,
    #[serde(default)]
    reversible: bool,
    window: Option<usize>,
    /// Injection: the learned detector's score that counts (0 to 1; default 0.5 for
    /// "ngrams", 0.7 for "embedding").
    threshold: Option<f32>,
    /// Injection: "ngrams" (default) or "embedding".
    detector: Option<String>,
    /// Moderation: a model with the `moderation` capability.
    model: Option<String>,
    /// Moderation: the categories that act (default: any flagged).
    categories: Option<Vec<String>>,
}

/// The embedding detector's default score (measured on held-out attacks,
/// BENCHMARKS.md: with the patterns, 90.5 % recall at 0.19 % false positives).
pub const DEFAULT_INJECTION_THRESHOLD: f32 = 0.7;
/// The n-gram detector's default score (with the patterns, 91.4 % recall
/// at 0.76 % false positives on the same split).
pub const DEFAULT_NGRAM_THRESHOLD: f32 = 0.5;

pub fn validate(raw: Vec<RawGuardrail>) -> Result<Vec<GuardrailConfig>, ConfigError> {
    let mut out: Vec<GuardrailConfig> = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let path = |f: &str| format!("guardrails[{i}].{f}");
        if g.name.trim().is_empty() || !g.name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
            return Err(invalid(&path("name"), "must be letters, digits, '-', '_' or '.'"));
        }
        if out.iter().any(|o| o.name == g.name) {
            return Err(invalid(&path("name"), format!("'{}' is used twice", g.name)));
        }
        let kind = match g.kind.as_str() {
            "pii" => GuardKind::Pii,
            "injection" => GuardKind::Injection,
            "moderation" => GuardKind::Moderation,
            other => {
                return Err(invalid(
                    &path("type"),
                    format!("'{other}' is not a guardrail type (known: pii, injection, moderation)"),
                ))
            }
        };
        let stage = match g.stage.as_str() {
            "input" => Stage::Input,
            "output" => Stage::Output,
            other => return Err(invalid(&path("stage"), format!("'{other}' is not one of 'input', 'output'"))),
        };
        let mode_of = |s: &str, f: &str| {
            Mode::parse(s)
                .ok_or_else(|| invalid(&path(f), format!("'{s}' is not one of 'block', 'redact', 'warn', 'log'")))
        };
        let mode = mode_of(&g.mode, "mode")?;
        if kind != GuardKind::Pii {
            if stage != Stage::Input {
                return Err(invalid(&path("stage"), format!("a {} guardrail reads the input", g.kind)));
            }
            if mode == Mode::Redact {
                return Err(invalid(
                    &path("mode"),
                    format!("a {} finding cannot be redacted: block, warn or log", g.kind),
                ));
            }
        }
        if kind == GuardKind::Moderation && g.model.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(&path("model"), "a moderation guardrail names the model that classifies"));
        }
        let detector = match g.detector.as_deref() {
            None | Some("ngrams") => Detector::Ngrams,
            Some("embedding") => Detector::Embedding,
            Some(other) => {
                return Err(invalid(&path("detector"), format!("'{other}' is not one of 'ngrams', 'embedding'")))
            }
        };
        let threshold = g.threshold.unwrap_or(match detector {
            Detector::Ngrams => DEFAULT_NGRAM_THRESHOLD,
            Detector::Embedding => DEFAULT_INJECTION_THRESHOLD,
        });
        if !(0.0..=1.0).contains(&threshold) {
            return Err(invalid(&path("threshold"), "must be between 0 and 1"));
        }
        let entity_of = |s: &str, f: &str| {
            Entity::parse(s).ok_or_else(|| {
                let known: Vec<&str> = ALL.iter().map(|e| e.name()).collect();
                invalid(&path(f), format!("'{s}' is not an entity type (known: {})", known.join(", ")))
            })
        };
        let entities = match g.entities {
            None => ALL.to_vec(),
            Some(list) => list.iter().map(|e| entity_of(e, "entities")).collect::<Result<_, _>>()?,
        };
        let mut entity_modes = BTreeMap::new();
        for (e, m) in &g.entity_modes {
            entity_modes.insert(entity_of(e, "entity_modes")?, mode_of(m, "entity_modes")?);
        }
        if g.reversible && stage != Stage::Input {
            return Err(invalid(&path("reversible"), "only an input guardrail restores values in the answer"));
        }
        let window = g.window.unwrap_or(MAX_SPAN);
        if window < MAX_SPAN {
            return Err(invalid(
                &path("window"),
                format!("must be at least {MAX_SPAN} (the longest value a pattern spans)"),
            ));
        }
        out.push(GuardrailConfig {
            name: g.name,
            kind,
            detector,
            threshold,
            model: g.model,
            categories: g.categories.unwrap_or_default(),
            stage,
            mode,
            models: g.models,
            keys: g.keys,
            entities,
            entity_modes,
            reversible: g.reversible,
            window,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<GuardrailConfig>, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            guardrails: Vec<RawGuardrail>,
        }
        let d: Doc = toml::from_str(text).map_err(|e| invalid("guardrails", e.to_string()))?;
        validate(d.guardrails)
    }

    #[test]
    fn a_table_validates_and_bad_values_name_their_field() -> Result<(), ConfigError> {
        let g = parse(
            "[[guardrails]]\nname = \"p\"\ntype = \"pii\"\nstage = \"output\"\nmode = \"redact\"\n\
             entity_modes = { credit_card = \"block\" }\n",
        )?;
        assert_eq!(g[0].entities.len(), ALL.len());
        assert_eq!(g[0].entity_modes.get(&Entity::CreditCard), Some(&Mode::Block));
        let e = parse("[[guardrails]]\nname = \"i\"\ntype = \"injection\"\nstage = \"input\"\nmode = \"block\"\ndetector = \"embedding\"\n")?;
        assert_eq!((e[0].detector, e[0].threshold), (Detector::Embedding, DEFAULT_INJECTION_THRESHOLD));
        let n = parse("[[guardrails]]\nname = \"i\"\ntype = \"injection\"\nstage = \"input\"\nmode = \"warn\"\n")?;
        assert_eq!((n[0].detector, n[0].threshold), (Detector::Ngrams, DEFAULT_NGRAM_THRESHOLD));
        for (text, field) in [
            ("name = \"p\"\ntype = \"x\"\nstage = \"input\"\nmode = \"block\"", "guardrails[0].type"),
            ("name = \"p\"\ntype = \"pii\"\nstage = \"middle\"\nmode = \"block\"", "guardrails[0].stage"),
            ("name = \"p\"\ntype = \"pii\"\nstage = \"input\"\nmode = \"shout\"", "guardrails[0].mode"),
            (
                "name = \"p\"\ntype = \"pii\"\nstage = \"input\"\nmode = \"block\"\nentities = [\"dna\"]",
                "guardrails[0].entities",
            ),
            (
                "name = \"p\"\ntype = \"pii\"\nstage = \"output\"\nmode = \"redact\"\nreversible = true",
                "guardrails[0].reversible",
            ),
            ("name = \"p\"\ntype = \"pii\"\nstage = \"output\"\nmode = \"redact\"\nwindow = 4", "guardrails[0].window"),
            (
                "name = \"i\"\ntype = \"injection\"\nstage = \"input\"\nmode = \"block\"\ndetector = \"magic\"",
                "guardrails[0].detector",
            ),
            ("name = \"i\"\ntype = \"injection\"\nstage = \"output\"\nmode = \"block\"", "guardrails[0].stage"),
            ("name = \"m\"\ntype = \"moderation\"\nstage = \"input\"\nmode = \"block\"", "guardrails[0].model"),
        ] {
            let r = parse(&format!("[[guardrails]]\n{text}\n"));
            assert!(matches!(&r, Err(ConfigError::Invalid { path, .. }) if path == field), "{text}: {r:?}");
        }
        Ok(())
    }
}
