//! `[[routes]]`: raw entries, validated into `routing::RouteConfig` (and a
//! cascade's `cascade::CascadeConfig`).

use super::{invalid, ConfigError};
use crate::cascade::{CascadeConfig, Scorer, DEFAULT_CRITERIA};
use crate::routing::{RouteConfig, Strategy, MAX_RETRIES};
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    name: String,
    models: Vec<String>,
    /// "fallback" (default) or "cascade".
    kind: Option<String>,
    /// How models are ordered for each request (default "fallback": as listed).
    strategy: Option<String>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
    /// Models whose estimated cost for a request is above this (US dollars) are skipped.
    max_cost: Option<f64>,
    /// Cascade: "logprob" (mean token log-probability) or "judge".
    scorer: Option<String>,
    /// Cascade: the lowest score accepted (logprob: e.g. -1.0; judge: 1 to 10).
    threshold: Option<f64>,
    /// Cascade with the judge scorer: the model that grades.
    judge_model: Option<String>,
    /// Cascade with the judge scorer: what the grade is about.
    criteria: Option<String>,
}

fn strategy(s: &str) -> Option<Strategy> {
    Some(match s {
        "fallback" => Strategy::Fallback,
        "cost" => Strategy::Cost,
        "latency" => Strategy::Latency,
        "least_busy" => Strategy::LeastBusy,
        "weighted" => Strategy::Weighted,
        _ => return None,
    })
}

/// Validates the routes' shape; that their models exist is checked when
/// the server is built (`--model` can rename the local model after the file is read).
pub fn validate(raw: Vec<RawRoute>) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        if r.name.trim().is_empty() || out.iter().any(|o| o.name == r.name) {
            return Err(invalid(&format!("{path}.name"), format!("'{}' must be non-empty and unique", r.name)));
        }
        if r.models.is_empty() {
            return Err(invalid(&format!("{path}.models"), "list at least one model"));
        }
        let retries = r.retries.unwrap_or(1);
        if retries > MAX_RETRIES {
            return Err(invalid(&format!("{path}.retries"), format!("at most {MAX_RETRIES}")));
        }
        let strategy = match r.strategy.as_deref() {
            None => Strategy::Fallback,
            Some(s) => strategy(s).ok_or_else(|| {
                invalid(
                    &format!("{path}.strategy"),
                    format!("'{s}' is not one of fallback, cost, latency, least_busy, weighted"),
                )
            })?,
        };
        if r.max_cost.is_some_and(|c| !(c.is_finite() && c >= 0.0)) {
            return Err(invalid(&format!("{path}.max_cost"), "must be a number of dollars, 0 or more"));
        }
        let cascade_fields = [
            ("scorer", r.scorer.is_some()),
            ("threshold", r.threshold.is_some()),
            ("judge_model", r.judge_model.is_some()),
            ("criteria", r.criteria.is_some()),
        ];
        let cascade = match r.kind.as_deref() {
            None | Some("fallback") => {
                if let Some((field, _)) = cascade_fields.iter().find(|(_, set)| *set) {
                    return Err(invalid(&format!("{path}.{field}"), "only a route of kind \"cascade\" takes it"));
                }
                None
            }
            Some("cascade") => {
                if r.strategy.is_some() {
                    return Err(invalid(&format!("{path}.strategy"), "a cascade always tries the cheapest first"));
                }
                Some(cascade(&path, r.scorer, r.threshold, r.judge_model, r.criteria)?)
            }
            Some(other) => {
                return Err(invalid(&format!("{path}.kind"), format!("'{other}' is not one of fallback, cascade")))
            }
        };
        out.push(RouteConfig {
            name: r.name,
            models: r.models,
            strategy: if cascade.is_some() { Strategy::Cost } else { strategy },
            retries,
            backoff: Duration::from_millis(r.backoff_ms.unwrap_or(100)),
            breaker_cooldown: Duration::from_millis(r.breaker_cooldown_ms.unwrap_or(10_000)),
            max_cost_usd: r.max_cost,
            cascade,
        });
    }
    Ok(out)
}

/// A cascade route's scorer and threshold.
fn cascade(
    path: &str,
    scorer: Option<String>,
    threshold: Option<f64>,
    judge_model: Option<String>,
    criteria: Option<String>,
) -> Result<CascadeConfig, ConfigError> {
    let threshold = threshold.ok_or_else(|| invalid(&format!("{path}.threshold"), "a cascade needs a threshold"))?;
    if !threshold.is_finite() {
        return Err(invalid(&format!("{path}.threshold"), "must be a finite number"));
    }
    let scorer = match scorer.as_deref() {
        Some("logprob") => {
            if judge_model.is_some() || criteria.is_some() {
                return Err(invalid(&format!("{path}.judge_model"), "only the judge scorer takes a judge"));
            }
            if threshold > 0.0 {
                return Err(invalid(&format!("{path}.threshold"), "log-probabilities are 0 or less"));
            }
            Scorer::Logprob
        }
        Some("judge") => {
            let model = judge_model
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| invalid(&format!("{path}.judge_model"), "the judge scorer needs a model"))?;
            if !(1.0..=10.0).contains(&threshold) {
                return Err(invalid(&format!("{path}.threshold"), "the judge grades from 1 to 10"));
            }
            Scorer::Judge { model, criteria: criteria.unwrap_or_else(|| DEFAULT_CRITERIA.into()) }
        }
        other => {
            return Err(invalid(&format!("{path}.scorer"), format!("{other:?} is not one of \"logprob\", \"judge\"")))
        }
    };
    Ok(CascadeConfig { scorer, threshold })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_config_is_checked() {
        let v = |s: Option<&str>, t: Option<f64>, j: Option<&str>| {
            cascade("routes[0]", s.map(str::to_string), t, j.map(str::to_string), None)
        };
        assert!(matches!(v(Some("logprob"), Some(-1.0), None), Ok(c) if c.scorer == Scorer::Logprob));
        assert!(v(Some("logprob"), Some(0.5), None).is_err());
        assert!(v(Some("logprob"), None, None).is_err());
        assert!(v(Some("judge"), Some(7.0), None).is_err(), "no judge model");
        assert!(v(Some("judge"), Some(70.0), Some("j")).is_err());
        assert!(matches!(v(Some("judge"), Some(7.0), Some("j")), Ok(c) if matches!(c.scorer, Scorer::Judge { .. })));
        assert!(v(None, Some(1.0), None).is_err());
    }
}
