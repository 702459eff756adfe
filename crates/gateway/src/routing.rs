//! Step 7, routing: a route is a name clients use for an ordered list of
//! models. Its backend tries the first model, retries it with backoff when
//! the failure is worth retrying (the backend unreachable, timed out,
//! failing with 5xx, or rate limiting), then falls back to the next, all
//! before the first byte reaches the client. Requests the backend rejects
//! as such (400, unknown model) are not retried. When every model fails,
//! the error lists each one's failure. Models whose circuit is open
//! (`health`) are skipped while another model of the route is not open.

use crate::config::{invalid, ConfigError};
use crate::health::{Circuit, Health};
use backend_api::{Backend, BackendError, GenerationEvent, GenerationStream, ModelInfo, ValidatedRequest};
use futures::StreamExt;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    name: String,
    models: Vec<String>,
    retries: Option<u32>,
    backoff_ms: Option<u64>,
    breaker_cooldown_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub models: Vec<String>,
    /// Extra attempts per model on a retryable failure.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// How long an open circuit keeps a model out before a trial.
    pub breaker_cooldown: Duration,
}

pub const MAX_RETRIES: u32 = 5;

/// Validates the routes' shape; that their models exist is checked when
/// the server is built (`--model` can rename the local model after the file is read).
pub fn validate(raw: Vec<RawRoute>) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out: Vec<RouteConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        if r.name.trim().is_empty() || out.iter().any(|o| o.name == r.name) {
            return Err(invalid(&format!("routes[{i}].name"), format!("'{}' must be non-empty and unique", r.name)));
        }
        if r.models.is_empty() {
            return Err(invalid(&format!("routes[{i}].models"), "list at least one model"));
        }
        let retries = r.retries.unwrap_or(1);
        if retries > MAX_RETRIES {
            return Err(invalid(&format!("routes[{i}].retries"), format!("at most {MAX_RETRIES}")));
        }
        out.push(RouteConfig {
            name: r.name,
            models: r.models,
            retries,
            backoff: Duration::from_millis(r.backoff_ms.unwrap_or(100)),
            breaker_cooldown: Duration::from_millis(r.breaker_cooldown_ms.unwrap_or(10_000)),
        });
    }
    Ok(out)
}

/// A route as a backend.
pub struct FallbackRoute {
    config: RouteConfig,
    /// Per model of the route: its name and the backend serving it.
    targets: Vec<(String, Arc<dyn Backend>)>,
    health: Arc<Health>,
}

impl FallbackRoute {
    pub fn new(config: RouteConfig, targets: Vec<(String, Arc<dyn Backend>)>, health: Arc<Health>) -> Self {
        FallbackRoute { config, targets, health }
    }

    /// The models of the route, in order.
    pub fn models_in_order(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|(m, _)| m.as_str())
    }
}

fn retryable(e: &BackendError) -> bool {
    matches!(e, BackendError::Unavailable(_) | BackendError::Overloaded(_) | BackendError::Timeout(_))
}

#[async_trait::async_trait]
impl Backend for FallbackRoute {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// The route, with the smallest context of its models (a request that
    /// fits it fits every fallback).
    fn models(&self) -> Vec<ModelInfo> {
        let context = self.targets.iter().filter_map(|(m, b)| b.context_length(m)).min().unwrap_or(0);
        vec![ModelInfo { id: self.config.name.clone(), context_length: context, owned_by: "route".into() }]
    }

    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        match self.targets.first() {
            Some((model, b)) => b.count_prompt_tokens(&ValidatedRequest { model: model.clone(), ..request.clone() }),
            None => Ok(backend_api::estimate_prompt_tokens(&request.prompt)),
        }
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let mut failures = Vec::new();
        let cooldown = self.config.breaker_cooldown;
        for (i, (model, backend)) in self.targets.iter().enumerate() {
            // An open circuit is skipped while a later model could still serve;
            // the last one left is tried anyway.
            let others_left =
                self.targets[i + 1..].iter().any(|(m, _)| self.health.circuit(m, cooldown, false) != Circuit::Open);
            if others_left && self.health.circuit(model, cooldown, true) == Circuit::Open {
                failures.push(format!("{model}: skipped, circuit open"));
                continue;
            }
            let mut wait = self.config.backoff;
            for attempt in 0..=self.config.retries {
                let r = ValidatedRequest { model: model.clone(), ..request.clone() };
                let outcome = backend.generate(r).await;
                self.health.record(model, !matches!(&outcome, Err(e) if retryable(e)), cooldown);
                match outcome {
                    Ok(stream) => {
                        if !failures.is_empty() {
                            tracing::warn!(route = %self.config.name, model = %model, failures = ?failures, "served after failures");
                        }
                        let served = model.clone();
                        return Ok(stream
                            .map(move |event| match event {
                                Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, .. }) => {
                                    Ok(GenerationEvent::Started {
                                        prompt_tokens,
                                        cached_tokens,
                                        model: Some(served.clone()),
                                    })
                                }
                                other => other,
                            })
                            .boxed());
                    }
                    Err(e) if retryable(&e) => {
                        failures.push(format!("{model} (attempt {}): {e}", attempt + 1));
                        if attempt < self.config.retries {
                            tokio::time::sleep(wait).await;
                            wait *= 2;
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(BackendError::Unavailable(format!(
            "every model of route '{}' failed: {}",
            self.config.name,
            failures.join("; ")
        )))
    }

    async fn ready(&self) -> bool {
        for (_, b) in &self.targets {
            if b.ready().await {
                return true;
            }
        }
        false
    }
}
