//! Content moderation: categories (OpenAI's names: `harassment`, `hate`,
//! `illicit`, `self-harm`, `sexual`, `violence`, their sub-categories) and
//! scores for each input, from a model that serves moderation: a remote
//! OpenAI-compatible `/v1/moderations` (a backend model with the
//! `moderation` capability). `POST /v1/moderations` serves the same in
//! OpenAI's shape, and `moderation` guardrails act on it.

use backend_api::BackendError;
use std::collections::BTreeMap;

/// One input's verdict.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub flagged: bool,
    pub categories: BTreeMap<String, bool>,
    pub category_scores: BTreeMap<String, f64>,
}

impl Verdict {
    /// The flagged categories among `wanted` (all when empty).
    pub fn hits(&self, wanted: &[String]) -> Vec<&str> {
        self.categories
            .iter()
            .filter(|(c, on)| **on && (wanted.is_empty() || wanted.iter().any(|w| w == *c)))
            .map(|(c, _)| c.as_str())
            .collect()
    }
}

/// A model that classifies text.
#[async_trait::async_trait]
pub trait Moderator: Send + Sync {
    async fn moderate(&self, model: &str, inputs: Vec<String>) -> Result<Vec<Verdict>, BackendError>;
}

/// An OpenAI-shaped `results` array, one verdict per input in order.
pub fn parse_results(v: &serde_json::Value, inputs: usize) -> Option<Vec<Verdict>> {
    let results = v.get("results")?.as_array()?;
    if results.len() != inputs {
        return None;
    }
    results
        .iter()
        .map(|r| {
            let categories = r
                .get("categories")?
                .as_object()?
                .iter()
                .filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b)))
                .collect();
            let category_scores = r
                .get("category_scores")
                .and_then(|s| s.as_object())
                .map(|s| s.iter().filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f))).collect())
                .unwrap_or_default();
            Some(Verdict { flagged: r.get("flagged")?.as_bool()?, categories, category_scores })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn results_parse_in_order_and_hits_filter_by_category() {
        let v = json!({"results": [
            {"flagged": true, "categories": {"violence": true, "hate": false}, "category_scores": {"violence": 0.9, "hate": 0.01}},
            {"flagged": false, "categories": {"violence": false}, "category_scores": {}}
        ]});
        let r = parse_results(&v, 2).unwrap_or_default();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].hits(&[]), vec!["violence"]);
        assert!(r[0].hits(&["hate".into()]).is_empty());
        assert!(!r[1].flagged);
        assert!(parse_results(&v, 3).is_none());
    }
}
