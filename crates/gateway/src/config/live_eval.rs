//! `[[live_eval]]`: sampled evaluation of live answers (see `eval::live`).
//!
//! ```toml
//! [[live_eval]]
//! name = "json-valid"              # the eval_type label of llm_eval_score
//! models = ["support-bot"]         # models or routes it samples (default: all)
//! sample_rate = 0.05               # share of answers scored (0 to 1)
//! scorer = { type = "json_schema", schema = { type = "object" } }   # any `switchyard eval` scorer
//! # scorer = { type = "judge", model = "gpt-4o-mini", rubric = "Polite and on topic" }   # the judge names its model
//! # scorer = { type = "similarity", threshold = 0.8 }   # to `reference`, with the in-process embedding model
//! reference = "Paris"              # the expected answer, for scorers that compare
//! threshold = 0.9                  # alert when the rolling mean drops below
//! window = 100                     # samples in the rolling mean
//! webhook = "https://hooks.example/alerts"   # POSTed once per crossing (3 tries)
//! queue = 1000                     # samples waiting to be scored; beyond, dropped and counted
//! log = "eval-samples.jsonl"       # also append every scored sample here
//! ```
//!
//! Scored samples are kept in the state store (`[state]`: the embedded
//! file, or Redis shared by replicas), the newest 1,000 per evaluation,
//! and served by `GET /admin/evals/{name}/samples`.

use super::{invalid, ConfigError};
use crate::eval::live::LiveEvalConfig;
use crate::eval::scorers::Scorer;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLiveEval {
    name: String,
    models: Option<Vec<String>>,
    sample_rate: f64,
    scorer: toml::Value,
    reference: Option<String>,
    threshold: Option<f64>,
    window: Option<usize>,
    webhook: Option<String>,
    queue: Option<usize>,
    log: Option<std::path::PathBuf>,
}

pub fn validate(raw: Vec<RawLiveEval>) -> Result<Vec<LiveEvalConfig>, ConfigError> {
    let mut out: Vec<LiveEvalConfig> = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let path = |f: &str| format!("live_eval[{i}].{f}");
        if e.name.trim().is_empty() || out.iter().any(|o| o.name == e.name) {
            return Err(invalid(&path("name"), "must be set and unique"));
        }
        if !(0.0..=1.0).contains(&e.sample_rate) {
            return Err(invalid(&path("sample_rate"), "must be between 0 and 1"));
        }
        let json = serde_json::to_value(&e.scorer).map_err(|err| invalid(&path("scorer"), err.to_string()))?;
        let scorer: Scorer = serde_json::from_value(json).map_err(|err| invalid(&path("scorer"), err.to_string()))?;
        if matches!(scorer, Scorer::Judge { model: None, .. }) {
            return Err(invalid(&path("scorer"), "a live judge names its 'model'"));
        }
        scorer.check(e.reference.as_deref()).map_err(|err| invalid(&path("scorer"), err))?;
        if e.threshold.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
            return Err(invalid(&path("threshold"), "must be between 0 and 1"));
        }
        if let Some(w) = &e.webhook {
            if !(w.starts_with("http://") || w.starts_with("https://")) {
                return Err(invalid(&path("webhook"), "must be an http:// or https:// URL"));
            }
        }
        let window = e.window.unwrap_or(100);
        if window == 0 {
            return Err(invalid(&path("window"), "must be at least 1"));
        }
        out.push(LiveEvalConfig {
            name: e.name,
            models: e.models.unwrap_or_default(),
            sample_rate: e.sample_rate,
            scorer,
            reference: e.reference,
            threshold: e.threshold,
            window,
            webhook: e.webhook,
            queue: e.queue.unwrap_or(1000).max(1),
            log: e.log,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn live_evaluations_are_checked_when_loaded() {
        let ok = "[[live_eval]]\nname = \"j\"\nsample_rate = 0.1\nscorer = { type = \"json\" }\nthreshold = 0.9\n";
        let cfg = Config::from_toml(ok).map_err(|e| e.to_string());
        assert!(matches!(&cfg, Ok(c) if c.live_eval.len() == 1 && c.live_eval[0].window == 100), "{cfg:?}");
        for (bad, path) in [
            ("[[live_eval]]\nname = \"j\"\nsample_rate = 2.0\nscorer = { type = \"json\" }\n", "sample_rate"),
            (
                "[[live_eval]]\nname = \"j\"\nsample_rate = 1.0\nscorer = { type = \"regex\", pattern = \"(\" }\n",
                "scorer",
            ),
            (
                "[[live_eval]]\nname = \"j\"\nsample_rate = 1.0\nscorer = { type = \"judge\", rubric = \"x\" }\n",
                "scorer",
            ),
            ("[[live_eval]]\nname = \"j\"\nsample_rate = 1.0\nscorer = { type = \"similarity\" }\n", "scorer"),
            (
                "[[live_eval]]\nname = \"j\"\nsample_rate = 1.0\nscorer = { type = \"json\" }\nwebhook = \"ftp://x\"\n",
                "webhook",
            ),
        ] {
            let err = Config::from_toml(bad).map(|_| ()).map_err(|e| e.to_string());
            assert!(matches!(&err, Err(m) if m.contains(&format!("live_eval[0].{path}"))), "{bad}: {err:?}");
        }
    }
}
