//! A route of kind `cascade`: the cheapest model that can serve the request
//! answers first; its answer is scored, and below the route's threshold the
//! next cheapest model is asked, up to the most expensive, whose answer is
//! taken as it comes (streamed through). Scorers:
//! - `logprob`: the answer's mean token log-probability (every model but
//!   the last must return log-probabilities; the embedded engine does);
//! - `judge`: a configured model grades the answer against the route's
//!   criteria and must reply with exactly `{"score": <1..10>, "reason": ...}`;
//!   anything else counts as a failing grade.
//!
//! Every attempt is billed: the answers not used and the judge's grading
//! reach the meter as `GenerationEvent::Spent`, so the request's cost and
//! token counts are the sum of all of them. If the more expensive models
//! fail, the best answer scored so far is returned rather than an error.

use crate::routing::{served_by, FallbackRoute};
use backend_api::{
    Backend, BackendError, ChatTurn, GenerationEvent, GenerationStream, ModelInfo, Prompt, Role, SamplingParams,
    StopParams, ValidatedRequest,
};
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub enum Scorer {
    Logprob,
    Judge { model: String, criteria: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CascadeConfig {
    pub scorer: Scorer,
    /// Lowest accepted score.
    pub threshold: f64,
}

/// Most tokens the judge may use for its verdict.
pub const JUDGE_MAX_TOKENS: u32 = 200;
pub const DEFAULT_CRITERIA: &str = "correct, complete and directly answers the request";

pub struct CascadeRoute {
    route: FallbackRoute,
    config: CascadeConfig,
    /// The judge's backend, for the judge scorer.
    judge: Option<Arc<dyn Backend>>,
}

/// One answer, read whole.
struct Answer {
    events: Vec<GenerationEvent>,
    text: String,
    logprobs: Vec<f32>,
    prompt_tokens: u32,
    completion_tokens: u32,
}

async fn read_whole(mut stream: GenerationStream) -> Result<Answer, BackendError> {
    let mut a = Answer {
        events: Vec::new(),
        text: String::new(),
        logprobs: Vec::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    while let Some(event) = stream.next().await {
        let event = match event? {
            // Scored answers are replayed from the parsed events (the upstream's
            // chunks carry the log-probs asked for scoring, not by the client).
            GenerationEvent::Upstream { .. } => continue,
            GenerationEvent::Started { prompt_tokens, cached_tokens, model, .. } => {
                GenerationEvent::Started { prompt_tokens, cached_tokens, model, verbatim: false }
            }
            other => other,
        };
        match &event {
            GenerationEvent::Delta { text, tokens } => {
                a.text.push_str(text);
                a.logprobs.extend(tokens.iter().filter_map(|t| t.logprob));
            }
            GenerationEvent::Finished { prompt_tokens, completion_tokens, .. } => {
                a.prompt_tokens = *prompt_tokens;
                a.completion_tokens = *completion_tokens;
                a.events.push(event);
                return Ok(a);
            }
            _ => {}
        }
        a.events.push(event);
    }
    Err(BackendError::Unavailable("the answer ended before it finished".into()))
}

/// The judge's reply, parsed strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Verdict {
    score: f64,
    #[allow(dead_code)]
    reason: Option<String>,
}

pub fn parse_verdict(text: &str) -> Result<f64, String> {
    let v: Verdict = serde_json::from_str(text.trim()).map_err(|e| format!("not the JSON asked for ({e})"))?;
    if !(1.0..=10.0).contains(&v.score) {
        return Err(format!("score {} is outside 1..10", v.score));
    }
    Ok(v.score)
}

fn prompt_text(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Text(t) => t.clone(),
        Prompt::Chat(turns) => {
            turns.iter().map(|t| format!("{}: {}", t.role.as_str(), t.text())).collect::<Vec<_>>().join("\n")
        }
    }
}

fn spent(model: &str, a: &Answer) -> GenerationEvent {
    GenerationEvent::Spent {
        model: model.to_string(),
        prompt_tokens: a.prompt_tokens,
        completion_tokens: a.completion_tokens,
    }
}

impl CascadeRoute {
    pub fn new(route: FallbackRoute, config: CascadeConfig, judge: Option<Arc<dyn Backend>>) -> Self {
        CascadeRoute { route, config, judge }
    }

    pub fn models_in_order(&self) -> impl Iterator<Item = &str> {
        self.route.models_in_order()
    }

    /// The answer's score, and the judge's usage when one graded it.
    async fn score(&self, request: &ValidatedRequest, answer: &Answer) -> (Option<f64>, Option<GenerationEvent>) {
        match &self.config.scorer {
            Scorer::Logprob => {
                let n = answer.logprobs.len();
                let mean = (n > 0).then(|| answer.logprobs.iter().map(|l| f64::from(*l)).sum::<f64>() / n as f64);
                (mean, None)
            }
            Scorer::Judge { model, criteria } => {
                let Some(judge) = &self.judge else { return (None, None) };
                let system = format!(
                    "You grade answers. Criteria: the answer is {criteria}. Reply with only a JSON object, \
                     no other text: {{\"score\": <integer from 1 (fails the criteria) to 10 (meets them fully)>, \
                     \"reason\": \"<one sentence>\"}}"
                );
                let user = format!("Request:\n{}\n\nAnswer:\n{}", prompt_text(&request.prompt), answer.text);
                let grading = ValidatedRequest {
                    request_id: format!("{}-judge", request.request_id),
                    model: model.clone(),
                    prompt: Prompt::Chat(vec![ChatTurn::new(Role::System, system), ChatTurn::new(Role::User, user)]),
                    sampling: SamplingParams::greedy(),
                    stop: StopParams { max_tokens: Some(JUDGE_MAX_TOKENS), ..Default::default() },
                    logprobs: None,
                    cache_salt: request.cache_salt.clone(),
                    tools: None,
                    demands: Default::default(),
                };
                let verdict = match judge.generate(grading).await {
                    Ok(s) => read_whole(s).await,
                    Err(e) => Err(e),
                };
                match verdict {
                    Ok(v) => {
                        let score = parse_verdict(&v.text)
                            .map_err(|e| tracing::warn!(route = %self.route.config.name, judge = %model, error = %e, "judge verdict refused"))
                            .ok();
                        (score, Some(spent(model, &v)))
                    }
                    Err(e) => {
                        tracing::warn!(route = %self.route.config.name, judge = %model, error = %e, "judge failed");
                        (None, None)
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Backend for CascadeRoute {
    fn name(&self) -> &str {
        self.route.name()
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.route.models()
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        self.route.count_prompt_tokens(request)
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let route = &self.route;
        let order = route.plan(&request)?;
        let mut failures = Vec::new();
        let mut billed: Vec<GenerationEvent> = Vec::new();
        // The best answer not taken: (score, model, its events, its usage).
        let mut best: Option<(f64, String, Answer)> = None;
        let last = order.len() - 1;
        for k in 0..order.len() {
            let target = order[k].target;
            let model = route.targets[target].model.clone();
            if route.skip_open(&order, k) {
                failures.push(format!("{model}: skipped, circuit open"));
                continue;
            }
            let mut asked = request.clone();
            if k < last && self.config.scorer == Scorer::Logprob && asked.logprobs.is_none() {
                asked.logprobs = Some(0);
            }
            let stream = match route.attempt(&asked, target, &mut failures).await {
                Ok(s) => s,
                Err(Some(e)) if k == last && best.is_none() => return Err(e),
                Err(Some(e)) => {
                    failures.push(format!("{model}: {e}"));
                    continue;
                }
                Err(None) => continue,
            };
            if k == last {
                // The most expensive answers as it comes; the earlier attempts are billed with it.
                if let Some((_, m, a)) = best.take() {
                    billed.push(spent(&m, &a));
                }
                let billed = futures::stream::iter(billed.into_iter().map(Ok));
                return Ok(billed.chain(served_by(stream, model)).boxed());
            }
            let answer = match read_whole(stream).await {
                Ok(a) => a,
                Err(e) => {
                    failures.push(format!("{model}: {e}"));
                    continue;
                }
            };
            let (score, judged) = self.score(&request, &answer).await;
            billed.extend(judged);
            if score.is_some_and(|s| s >= self.config.threshold) {
                tracing::debug!(route = %route.config.name, model = %model, score = ?score, "cascade accepted");
                if let Some((_, m, a)) = best.take() {
                    billed.push(spent(&m, &a));
                }
                return Ok(accepted(billed, model, answer));
            }
            tracing::info!(route = %route.config.name, model = %model, score = ?score, threshold = self.config.threshold, "cascade escalates");
            let score = score.unwrap_or(f64::NEG_INFINITY);
            match best.take() {
                Some((s, m, a)) if s >= score => {
                    billed.push(spent(&model, &answer));
                    best = Some((s, m, a));
                }
                previous => {
                    if let Some((_, m, a)) = previous {
                        billed.push(spent(&m, &a));
                    }
                    best = Some((score, model, answer));
                }
            }
        }
        match best {
            Some((_, model, answer)) => {
                tracing::warn!(route = %route.config.name, failures = ?failures, "cascade answered with its best lower-scored answer");
                Ok(accepted(billed, model, answer))
            }
            None => Err(route.all_failed(&failures)),
        }
    }

    async fn ready(&self) -> bool {
        self.route.ready().await
    }
}

/// The billed attempts, then the accepted answer as its model gave it.
fn accepted(billed: Vec<GenerationEvent>, model: String, answer: Answer) -> GenerationStream {
    let events = billed.into_iter().chain(answer.events).map(Ok).collect::<Vec<_>>();
    served_by(futures::stream::iter(events).boxed(), model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_are_parsed_strictly() {
        assert_eq!(parse_verdict(r#" {"score": 7, "reason": "fine"} "#), Ok(7.0));
        assert_eq!(parse_verdict(r#"{"score": 3}"#), Ok(3.0));
        for bad in [
            r#"Sure! {"score": 9}"#,
            r#"```json {"score": 9} ```"#,
            r#"{"score": "9"}"#,
            r#"{"score": 11}"#,
            r#"{"score": 9, "extra": 1}"#,
            "",
        ] {
            assert!(parse_verdict(bad).is_err(), "{bad}");
        }
    }
}
