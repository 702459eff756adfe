//! Step 7, routing: a route is a name clients use for a set of models.
//! For each request it keeps the models that can serve it (capabilities,
//! answer length, context, `max_cost`; see `registry`), orders them by its
//! strategy, then tries the first, retries it with backoff when the failure
//! is worth retrying (the backend unreachable, timed out, failing with 5xx,
//! or rate limiting; a `Retry-After` up to `MAX_RETRY_AFTER` is waited for,
//! a longer one moves on to the next model), then falls back to the next,
//! all before the first byte reaches the client. Requests a backend
//! rejects as such (400, unknown model) are not retried. When every model
//! fails, the error lists each one's failure. Models whose circuit is
//! open (`health`) are skipped while another model of the route is not
//! open.
//!
//! Strategies: `fallback` (the order listed), `cost` (cheapest estimate
//! for this request first), `latency` (lowest moving-average time to first
//! token first; unmeasured models first, so they get measured),
//! `least_busy` (fewest requests in flight first), `weighted` (a random
//! order drawn by the models' weights). A route of kind `cascade` is
//! served by `cascade::CascadeRoute` on the same plan.

use crate::cascade::CascadeConfig;
use crate::health::{Circuit, Health};
use crate::policy::pricing::PriceTable;
use crate::registry::ModelCard;
use crate::tracked::retryable;
use backend_api::{Backend, BackendError, GenerationEvent, GenerationStream, ModelInfo, ValidatedRequest};
use futures::StreamExt;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Fallback,
    Cost,
    Latency,
    LeastBusy,
    Weighted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub models: Vec<String>,
    pub strategy: Strategy,
    /// Extra attempts per model on a retryable failure.
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one.
    pub backoff: Duration,
    /// How long an open circuit keeps a model out before a trial.
    pub breaker_cooldown: Duration,
    pub max_cost_usd: Option<f64>,
    /// Present for a route of kind cascade.
    pub cascade: Option<CascadeConfig>,
}

pub const MAX_RETRIES: u32 = 5;

/// The longest `Retry-After` a retry waits for; a model asking for more is
/// left for the route's next one.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The name of the route every model belongs to, picked by cost (unless
/// the config gives the name to a model or route of its own).
pub const AUTO_ROUTE: &str = "auto";

impl RouteConfig {
    /// `auto`: the cheapest healthy model that can serve the request.
    pub fn auto(models: Vec<String>) -> Self {
        RouteConfig {
            name: AUTO_ROUTE.into(),
            models,
            strategy: Strategy::Cost,
            retries: 1,
            backoff: Duration::from_millis(100),
            breaker_cooldown: Duration::from_millis(10_000),
            max_cost_usd: None,
            cascade: None,
        }
    }
}

/// One model of a route: its name, its registry card and the backend serving it.
pub struct Target {
    pub model: String,
    pub card: ModelCard,
    pub backend: Arc<dyn Backend>,
}

/// A route as a backend.
pub struct FallbackRoute {
    pub(crate) config: RouteConfig,
    pub(crate) targets: Vec<Target>,
    pub(crate) health: Arc<Health>,
    pub(crate) prices: PriceTable,
}

/// A model chosen for a request, with what it will cost.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub target: usize,
    pub estimate_nanos: u64,
}

impl FallbackRoute {
    pub fn new(config: RouteConfig, targets: Vec<Target>, health: Arc<Health>, prices: PriceTable) -> Self {
        FallbackRoute { config, targets, health, prices }
    }

    /// The models of the route, in the order configured.
    pub fn models_in_order(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.model.as_str())
    }

    /// The request as `target` receives it.
    pub(crate) fn for_target(&self, request: &ValidatedRequest, target: usize) -> ValidatedRequest {
        ValidatedRequest { model: self.targets[target].model.clone(), ..request.clone() }
    }

    /// The models that can serve `request`, in the order to try them.
    /// None can: 400 naming each model's reason.
    pub fn plan(&self, request: &ValidatedRequest) -> Result<Vec<Candidate>, BackendError> {
        let max_cost = match (self.config.max_cost_usd, request.demands.max_cost_usd) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut fit = Vec::with_capacity(self.targets.len());
        let mut reasons = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            let prompt = match t.backend.count_prompt_tokens(&self.for_target(request, i)) {
                Ok(n) => n,
                Err(e) => {
                    reasons.push(format!("{}: {e}", t.model));
                    continue;
                }
            };
            if let Some(why) = t.card.unfit(request, Some(prompt)) {
                reasons.push(why);
                continue;
            }
            let output = t.card.expected_output(request, prompt);
            let estimate_nanos = self.prices.cost_nanos(&t.model, u64::from(prompt), u64::from(output));
            if let Some(max) = max_cost {
                let estimate = estimate_nanos as f64 / 1e9;
                if estimate > max {
                    reasons.push(format!("model '{}' would cost ${estimate:.6}, above max_cost ${max}", t.model));
                    continue;
                }
            }
            fit.push(Candidate { target: i, estimate_nanos });
        }
        if fit.is_empty() {
            return Err(BackendError::invalid(
                format!("no model of route '{}' can serve this request: {}", self.config.name, reasons.join("; ")),
                None,
            ));
        }
        let model = |c: &Candidate| self.targets[c.target].model.as_str();
        match self.config.strategy {
            Strategy::Fallback => {}
            Strategy::Cost => fit.sort_by_key(|c| c.estimate_nanos),
            Strategy::Latency => {
                fit.sort_by(|a, b| {
                    let (la, lb) = (self.health.load(model(a)).1, self.health.load(model(b)).1);
                    la.unwrap_or(0.0).total_cmp(&lb.unwrap_or(0.0))
                });
            }
            Strategy::LeastBusy => fit.sort_by_key(|c| self.health.load(model(c)).0),
            Strategy::Weighted => {
                // Efraimidis–Spirakis: key u^(1/w), largest first, is a draw in
                // proportion to the weights; weight 0 goes last.
                let mut rng = rand::rng();
                let mut keyed: Vec<(f64, Candidate)> = fit
                    .iter()
                    .map(|c| {
                        let w = f64::from(self.targets[c.target].card.weight);
                        let key = if w > 0.0 { rng.random::<f64>().powf(1.0 / w) } else { -1.0 };
                        (key, *c)
                    })
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
                fit = keyed.into_iter().map(|(_, c)| c).collect();
            }
        }
        Ok(fit)
    }

    /// Whether the model at `order[k]` should be skipped: its circuit is
    /// open while a later one is not (the last one left is tried anyway).
    /// Claims the half-open trial when it is not skipped.
    pub(crate) fn skip_open(&self, order: &[Candidate], k: usize) -> bool {
        let cooldown = self.config.breaker_cooldown;
        let others_left = order[k + 1..]
            .iter()
            .any(|c| self.health.circuit(&self.targets[c.target].model, cooldown, false) != Circuit::Open);
        others_left && self.health.circuit(&self.targets[order[k].target].model, cooldown, true) == Circuit::Open
    }

    /// Tries `target` with retries; `Err(None)` means every attempt failed
    /// in a retryable way (listed in `failures`).
    pub(crate) async fn attempt(
        &self,
        request: &ValidatedRequest,
        target: usize,
        failures: &mut Vec<String>,
    ) -> Result<GenerationStream, Option<BackendError>> {
        let model = &self.targets[target].model;
        let mut wait = self.config.backoff;
        for attempt in 0..=self.config.retries {
            match self.targets[target].backend.generate(self.for_target(request, target)).await {
                Ok(stream) => return Ok(stream),
                Err(e) if retryable(&e) => {
                    failures.push(format!("{model} (attempt {}): {e}", attempt + 1));
                    let asked = match &e {
                        BackendError::Overloaded { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    if attempt < self.config.retries {
                        match asked {
                            // Busy for long: the next model now beats waiting.
                            Some(a) if a > MAX_RETRY_AFTER => break,
                            Some(a) => tokio::time::sleep(wait.max(a)).await,
                            None => tokio::time::sleep(wait).await,
                        }
                        wait *= 2;
                    }
                }
                Err(e) => return Err(Some(e)),
            }
        }
        Err(None)
    }

    pub(crate) fn all_failed(&self, failures: &[String]) -> BackendError {
        BackendError::Unavailable(format!(
            "every model of route '{}' failed: {}",
            self.config.name,
            failures.join("; ")
        ))
    }
}

/// Names the model that serves in the stream's `Started` event.
pub(crate) fn served_by(stream: GenerationStream, model: String) -> GenerationStream {
    stream
        .map(move |event| match event {
            Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, verbatim, .. }) => {
                Ok(GenerationEvent::Started { prompt_tokens, cached_tokens, model: Some(model.clone()), verbatim })
            }
            other => other,
        })
        .boxed()
}

#[async_trait::async_trait]
impl Backend for FallbackRoute {
    fn name(&self) -> &str {
        &self.config.name
    }

    /// The route, with the largest context of its models (a request too
    /// large for some is served by the others).
    fn models(&self) -> Vec<ModelInfo> {
        let context = self.targets.iter().map(|t| t.card.context_length).max().unwrap_or(0);
        vec![ModelInfo { id: self.config.name.clone(), context_length: context, owned_by: "route".into(), details: None }]
    }

    /// Counted as the largest of its models' counts (admission reserves enough for any).
    fn count_prompt_tokens(&self, request: &ValidatedRequest) -> Result<u32, BackendError> {
        let mut most = None;
        for i in 0..self.targets.len() {
            if let Ok(n) = self.targets[i].backend.count_prompt_tokens(&self.for_target(request, i)) {
                most = Some(most.map_or(n, |m: u32| m.max(n)));
            }
        }
        Ok(most.unwrap_or_else(|| backend_api::estimate_prompt_tokens(&request.prompt)))
    }

    async fn generate(&self, request: ValidatedRequest) -> Result<GenerationStream, BackendError> {
        let order = self.plan(&request)?;
        let mut failures = Vec::new();
        for k in 0..order.len() {
            let target = order[k].target;
            let model = &self.targets[target].model;
            if self.skip_open(&order, k) {
                failures.push(format!("{model}: skipped, circuit open"));
                continue;
            }
            match self.attempt(&request, target, &mut failures).await {
                Ok(stream) => {
                    if !failures.is_empty() {
                        tracing::warn!(route = %self.config.name, model = %model, failures = ?failures, "served after failures");
                    }
                    return Ok(served_by(stream, model.clone()));
                }
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
        }
        Err(self.all_failed(&failures))
    }

    async fn ready(&self) -> bool {
        for t in &self.targets {
            if t.backend.ready().await {
                return true;
            }
        }
        false
    }
}
