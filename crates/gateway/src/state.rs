//! What every handler shares: the models and the backends serving them.

use backend_api::{Backend, ModelInfo};
use engine::EngineHandle;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct AppState {
    /// Model name (as clients send it) → the backend that serves it.
    backends: BTreeMap<String, Arc<dyn Backend>>,
    /// The embedded engines among them, for their live counters.
    engines: Vec<EngineHandle>,
    pub body_limit_bytes: usize,
}

impl AppState {
    pub fn new(body_limit_bytes: usize) -> Self {
        AppState { backends: BTreeMap::new(), engines: Vec::new(), body_limit_bytes }
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
