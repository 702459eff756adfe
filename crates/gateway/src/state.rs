//! What every handler shares: the models and the backends serving them,
//! the policies (keys, limits, budgets) and the gateway metrics.

use crate::error::ApiError;
use crate::metrics::GatewayMetrics;
use crate::policy::{Policy, PolicySettings};
use crate::registry::ModelCard;
use crate::store::embedded::EmbeddedStore;
use crate::tracked::Tracked;
use backend_api::{Backend, EmbeddingBackend, ModelInfo, ValidatedRequest};
use engine::EngineHandle;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Cloned for every request (axum's `State`): one shared `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Clone)]
pub struct Shared {
    /// Model name (as clients send it) → the backend that serves it.
    backends: BTreeMap<String, Arc<dyn Backend>>,
    /// The embedded engines among them, for their live counters.
    engines: Vec<EngineHandle>,
    policy: Arc<Policy>,
    /// Route name → its models, in order.
    routes: BTreeMap<String, Vec<String>>,
    /// Backends behind a request queue, for their counters.
    queues: Vec<Arc<crate::queue::Queued>>,
    /// Every model's circuit breaker, load and latency.
    health: Arc<crate::health::Health>,
    /// The registry: what each model can do, in the order registered
    /// (embedded models first, then backends as configured).
    cards: Vec<ModelCard>,
    /// Alias → the model's own name.
    aliases: BTreeMap<String, String>,
    /// Embedding model (or route over embedding models) → what serves it.
    embedders: BTreeMap<String, Arc<dyn EmbeddingBackend>>,
    /// The response cache, when configured.
    cache: Option<Arc<crate::cache::Cache>>,
    /// The guardrails, when any is configured.
    guardrails: Option<Arc<crate::guardrails::Guardrails>>,
    /// Sampled evaluation of live answers, when any is configured.
    live_eval: Option<Arc<crate::eval::live::LiveEval>>,
    /// Moderation model → what classifies with it.
    moderators: BTreeMap<String, Arc<dyn crate::guardrails::moderation::Moderator>>,
    pub body_limit_bytes: usize,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// No policies: auth off, nothing limited, state in memory.
    pub fn new(body_limit_bytes: usize) -> Self {
        let policy = Policy::new(
            PolicySettings::default(),
            Arc::new(EmbeddedStore::in_memory()),
            Arc::new(GatewayMetrics::default()),
        );
        Self::with_policy(body_limit_bytes, policy)
    }

    pub fn with_policy(body_limit_bytes: usize, policy: Policy) -> Self {
        AppState(Arc::new(Shared {
            backends: BTreeMap::new(),
            engines: Vec::new(),
            policy: Arc::new(policy),
            routes: BTreeMap::new(),
            queues: Vec::new(),
            health: Arc::default(),
            cards: Vec::new(),
            aliases: BTreeMap::new(),
            embedders: BTreeMap::new(),
            cache: None,
            guardrails: None,
            live_eval: None,
            moderators: BTreeMap::new(),
            body_limit_bytes,
        }))
    }

    /// For registering models while the server is built (before it is shared).
    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    pub fn set_cache(&mut self, cache: Arc<crate::cache::Cache>) {
        self.shared_mut().cache = Some(cache);
    }

    pub fn cache(&self) -> Option<&Arc<crate::cache::Cache>> {
        self.cache.as_ref()
    }

    pub fn add_moderator(&mut self, name: &str, m: Arc<dyn crate::guardrails::moderation::Moderator>) {
        self.shared_mut().moderators.insert(name.to_string(), m);
    }

    /// The moderation model `name` (aliases resolved), or the first one when `None`.
    pub fn moderator(&self, name: Option<&str>) -> Option<(String, Arc<dyn crate::guardrails::moderation::Moderator>)> {
        match name {
            Some(n) => {
                let n = self.resolve(n);
                self.moderators.get(n).map(|m| (n.to_string(), m.clone()))
            }
            None => self.moderators.iter().next().map(|(n, m)| (n.clone(), m.clone())),
        }
    }

    pub fn set_guardrails(&mut self, g: Arc<crate::guardrails::Guardrails>) {
        self.shared_mut().guardrails = Some(g);
    }

    pub fn guardrails(&self) -> Option<&Arc<crate::guardrails::Guardrails>> {
        self.guardrails.as_ref()
    }

    pub fn set_live_eval(&mut self, e: Arc<crate::eval::live::LiveEval>) {
        self.shared_mut().live_eval = Some(e);
    }

    pub fn live_eval(&self) -> Option<&Arc<crate::eval::live::LiveEval>> {
        self.live_eval.as_ref()
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.policy.metrics
    }

    /// Registers an embedded engine: its model, its card, and its counters for `/metrics`.
    pub fn add_engine(&mut self, engine: EngineHandle) {
        for m in engine.models() {
            let cards = &mut self.shared_mut().cards;
            cards.retain(|c| c.name != m.id);
            cards.push(ModelCard::local(&m.id, m.context_length));
        }
        self.add_backend(Arc::new(engine.clone()));
        self.shared_mut().engines.push(engine);
    }

    pub fn engines(&self) -> &[EngineHandle] {
        &self.engines
    }

    /// Registers every model a backend serves under its own id; each
    /// request to it feeds the model's health (`tracked`).
    pub fn add_backend(&mut self, backend: Arc<dyn Backend>) {
        let tracked: Arc<dyn Backend> = Arc::new(Tracked::new(backend, self.health.clone()));
        for m in tracked.models() {
            self.shared_mut().backends.insert(m.id, tracked.clone());
        }
    }

    /// Registers a model's card and its aliases (the model must be served already).
    pub fn add_card(&mut self, card: ModelCard) -> Result<(), String> {
        let shared = self.shared_mut();
        for a in &card.aliases {
            if shared.backends.contains_key(a) || shared.aliases.contains_key(a) {
                return Err(format!("alias '{a}' of model '{}' is already a name in use", card.name));
            }
            shared.aliases.insert(a.clone(), card.name.clone());
        }
        shared.cards.retain(|c| c.name != card.name);
        shared.cards.push(card);
        Ok(())
    }

    pub fn card(&self, model: &str) -> Option<&ModelCard> {
        self.cards.iter().find(|c| c.name == model)
    }

    /// Every model's card, in the order registered (routes are not models).
    pub fn cards(&self) -> impl Iterator<Item = &ModelCard> {
        self.cards.iter()
    }

    /// The model's own name for a name or an alias.
    pub fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, String::as_str)
    }

    /// Whether a model, alias or route has this name.
    pub fn name_in_use(&self, name: &str) -> bool {
        self.backends.contains_key(name) || self.aliases.contains_key(name) || self.embedders.contains_key(name)
    }

    /// Registers an embedding model (or a route over embedding models) under `name`.
    pub fn add_embedder(&mut self, name: &str, embedder: Arc<dyn EmbeddingBackend>) {
        self.shared_mut().embedders.insert(name.to_string(), embedder);
    }

    /// Registers a route over embedding models (its models, for pricing).
    pub fn add_embedding_route(&mut self, name: &str, models: Vec<String>, route: Arc<dyn EmbeddingBackend>) {
        self.shared_mut().routes.insert(name.to_string(), models);
        self.add_embedder(name, route);
    }

    /// The embedding model (or route) a request names, aliases resolved.
    pub fn embedder(&self, name: &str) -> Option<(String, Arc<dyn EmbeddingBackend>)> {
        let name = self.resolve(name);
        self.embedders.get(name).map(|e| (name.to_string(), e.clone()))
    }

    pub fn is_embedding_model(&self, name: &str) -> bool {
        self.embedders.contains_key(self.resolve(name))
    }

    /// Registers a backend behind a request queue.
    pub fn add_queued(&mut self, queued: Arc<crate::queue::Queued>) {
        self.shared_mut().queues.push(queued.clone());
        self.add_backend(queued);
    }

    pub fn queues(&self) -> &[Arc<crate::queue::Queued>] {
        &self.queues
    }

    pub fn health(&self) -> &Arc<crate::health::Health> {
        &self.health
    }

    /// Every backend once, with the models it serves.
    pub fn backends(&self) -> Vec<(String, Vec<ModelInfo>)> {
        let mut out: Vec<(String, Vec<ModelInfo>)> = Vec::new();
        for b in self.backends.values() {
            if !out.iter().any(|(n, _)| n == b.name()) {
                out.push((b.name().to_string(), b.models()));
            }
        }
        out
    }

    /// Registers a route (a name for a set of models); its models are
    /// tracked one by one, not the route.
    pub fn add_route(&mut self, name: &str, models: Vec<String>, route: Arc<dyn Backend>) {
        let shared = self.shared_mut();
        shared.routes.insert(name.to_string(), models);
        shared.backends.insert(name.to_string(), route);
    }

    /// A generation route (embedding routes are not backends).
    pub fn is_route(&self, name: &str) -> bool {
        self.routes.contains_key(name) && self.backends.contains_key(name)
    }

    /// The models a request for `model` may be served by: the route's, or itself.
    pub fn candidates(&self, model: &str) -> Vec<String> {
        self.routes.get(model).cloned().unwrap_or_else(|| vec![model.to_string()])
    }

    /// The model (or route) the requests name, aliases resolved: its own
    /// name, now on every request, and the backend that serves it.
    pub fn lookup(&self, requests: &mut [ValidatedRequest]) -> Result<(String, Arc<dyn Backend>), ApiError> {
        let asked = requests.first().map(|r| r.model.clone()).unwrap_or_default();
        let model = self.resolve(&asked).to_string();
        let Some(backend) = self.backends.get(&model).cloned() else {
            if self.embedders.contains_key(&model) {
                return Err(ApiError::invalid(
                    format!("The model '{model}' serves embeddings only (POST /v1/embeddings)."),
                    "model",
                ));
            }
            return Err(ApiError::ModelNotFound(asked));
        };
        for r in requests.iter_mut() {
            r.model.clone_from(&model);
        }
        Ok((model, backend))
    }

    pub fn backend_for(&self, model: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(model)
    }

    /// Every name a client may send: models, routes, and aliases (listed
    /// like the model they stand for, so clients that check the list find them).
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut seen = Vec::new();
        for b in self.backends.values() {
            for m in b.models() {
                if !seen.iter().any(|s: &ModelInfo| s.id == m.id) {
                    seen.push(m);
                }
            }
        }
        for (name, e) in &self.embedders {
            if !seen.iter().any(|s: &ModelInfo| &s.id == name) {
                let info = e.models().into_iter().find(|m| &m.id == name);
                seen.push(info.unwrap_or(ModelInfo {
                    id: name.clone(),
                    context_length: 0,
                    owned_by: e.name().to_string(),
                    details: None,
                }));
            }
        }
        for (alias, model) in &self.aliases {
            if let Some(m) = seen.iter().find(|m| &m.id == model) {
                let listed = ModelInfo { id: alias.clone(), ..m.clone() };
                seen.push(listed);
            }
        }
        seen
    }

    pub async fn ready(&self) -> bool {
        if self.backends.is_empty() && self.embedders.is_empty() {
            return false;
        }
        for b in self.backends.values() {
            if !b.ready().await {
                return false;
            }
        }
        true
    }
}
