//! What every handler shares: the models and the backends serving them,
//! the policies (keys, limits, budgets) and the gateway metrics.

use crate::metrics::GatewayMetrics;
use crate::policy::{Policy, PolicySettings};
use crate::store::embedded::EmbeddedStore;
use backend_api::{Backend, ModelInfo};
use engine::EngineHandle;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    /// Model name (as clients send it) → the backend that serves it.
    backends: BTreeMap<String, Arc<dyn Backend>>,
    /// The embedded engines among them, for their live counters.
    engines: Vec<EngineHandle>,
    policy: Arc<Policy>,
    /// Route name → its models, in order.
    routes: BTreeMap<String, Vec<String>>,
    /// Backends behind a request queue, for their counters.
    queues: Vec<Arc<crate::queue::Queued>>,
    /// Circuit breakers of the models routes use.
    health: Arc<crate::health::Health>,
    pub body_limit_bytes: usize,
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
        AppState {
            backends: BTreeMap::new(),
            engines: Vec::new(),
            policy: Arc::new(policy),
            routes: BTreeMap::new(),
            queues: Vec::new(),
            health: Arc::default(),
            body_limit_bytes,
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.policy.metrics
    }

    /// Registers an embedded engine: its model, and its counters for `/metrics`.
    pub fn add_engine(&mut self, engine: EngineHandle) {
        self.add_backend(Arc::new(engine.clone()));
        self.engines.push(engine);
    }

    pub fn engines(&self) -> &[EngineHandle] {
        &self.engines
    }

    /// Registers every model a backend serves under its own id.
    pub fn add_backend(&mut self, backend: Arc<dyn Backend>) {
        for m in backend.models() {
            self.backends.insert(m.id, backend.clone());
        }
    }

    /// Registers a backend behind a request queue.
    pub fn add_queued(&mut self, queued: Arc<crate::queue::Queued>) {
        self.queues.push(queued.clone());
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

    /// Registers a route (a name for an ordered list of models).
    pub fn add_route(&mut self, route: Arc<crate::routing::FallbackRoute>) {
        self.routes.insert(route.name().to_string(), route.models_in_order().map(str::to_string).collect());
        self.add_backend(route);
    }

    /// The models a request for `model` may be served by: the route's, or itself.
    pub fn candidates(&self, model: &str) -> Vec<String> {
        self.routes.get(model).cloned().unwrap_or_else(|| vec![model.to_string()])
    }

    pub fn backend_for(&self, model: &str) -> Option<&Arc<dyn Backend>> {
        self.backends.get(model)
    }

    pub fn models(&self) -> Vec<ModelInfo> {
        let mut seen = Vec::new();
        for b in self.backends.values() {
            for m in b.models() {
                if !seen.iter().any(|s: &ModelInfo| s.id == m.id) {
                    seen.push(m);
                }
            }
        }
        seen
    }

    pub async fn ready(&self) -> bool {
        if self.backends.is_empty() {
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
