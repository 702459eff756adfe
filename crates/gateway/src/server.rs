//! Loading the configured local models and serving the app on a socket.

use crate::cascade::{CascadeRoute, Scorer};
use crate::config::{Config, LocalModelConfig, StoreConfig};
use crate::metrics::GatewayMetrics;
use crate::policy::keys::hash_key;
use crate::policy::{Policy, PolicySettings};
use crate::routing::{FallbackRoute, RouteConfig, Target, AUTO_ROUTE};
use crate::state::AppState;
use crate::store::embedded::EmbeddedStore;
use crate::store::redis::RedisStore;
use crate::store::StateStore;
use axum::serve::ListenerExt;
use engine::{EngineError, EngineHandle, LocalModel};
use std::sync::Arc;
use std::time::Instant;
use thiserror::Error;
use tokio::net::TcpListener;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("model '{name}' ({path}): {source}")]
    Model { name: String, path: String, source: EngineError },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Policy(String),
    #[error("embedding model ({path}): {message}")]
    Embedding { path: String, message: String },
}

/// Loads one local model and starts its engine.
pub fn start_local_model(m: &LocalModelConfig, cfg: &Config) -> Result<EngineHandle, ServeError> {
    let err = |source| ServeError::Model { name: m.name.clone(), path: m.path.display().to_string(), source };
    let started = Instant::now();
    let local = LocalModel::load(&m.path, cfg.engine.weights, m.context_length).map_err(err)?;
    let (ctx, general_name) = (local.context_length, local.display_name.clone().unwrap_or_default());
    let handle = local.spawn(&m.name, cfg.engine.engine_config()).map_err(err)?;
    tracing::info!(
        model = %m.name,
        file = %m.path.display(),
        general_name = %general_name,
        context_length = ctx,
        weights = ?cfg.engine.weights,
        kv_cache_mib = cfg.engine.kv_cache_mib,
        prefix_caching = cfg.engine.prefix_caching,
        load_ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    Ok(handle)
}

/// Loads every configured model into a fresh app state, behind the
/// configured policies. `insecure`: allow serving beyond loopback with no
/// way to authenticate (no keys, no admin token).
pub fn build_state(cfg: &Config, insecure: bool) -> Result<AppState, ServeError> {
    if cfg.models.is_empty() && cfg.backends.is_empty() {
        return Err(ServeError::Policy("nothing to serve: `models = []` and no [[backends]]".into()));
    }
    let mut state = AppState::with_policy(cfg.body_limit_bytes, build_policy(cfg, insecure)?);
    for m in &cfg.models {
        state.add_engine(start_local_model(m, cfg)?);
    }
    // The cache embeds questions with the in-process model, cut to its
    // length rather than refused (a long question still gets an exact tier).
    let mut cache_embedder: Option<(String, Arc<dyn backend_api::EmbeddingBackend>)> = None;
    if let Some(e) = &cfg.embedding {
        if let Some(handle) = start_embedder(e)? {
            cache_embedder = Some((e.name.clone(), Arc::new(handle.clone().truncating(true))));
            state.add_embedder(&e.name, Arc::new(handle));
        }
    }
    if let Some(c) = &cfg.cache {
        let redis = match (&c.redis_url, &cfg.policy.store) {
            (Some(url), StoreConfig::Redis { prefix, .. }) => Some((url.clone(), prefix.clone())),
            (Some(url), _) => Some((url.clone(), "switchyard".to_string())),
            (None, StoreConfig::Redis { url, prefix }) => Some((url.clone(), prefix.clone())),
            (None, _) => None,
        };
        let cache = crate::cache::Cache::new(c.clone(), cache_embedder.clone(), redis).map_err(ServeError::Policy)?;
        tracing::info!(tiers = ?cache.tiers(), scope = ?c.policy.scope, threshold = c.policy.threshold, guard = c.guard, "response cache");
        state.set_cache(cache);
    }
    for b in &cfg.backends {
        if let Some(m) = b.models.iter().find(|m| state.name_in_use(&m.name)) {
            return Err(ServeError::Policy(format!("backend '{}': model '{}' is served twice", b.name, m.name)));
        }
        tracing::info!(backend = %b.name, url = %b.base_url, models = ?b.models.iter().map(|m| &m.name).collect::<Vec<_>>(), "remote backend");
        let remote = Arc::new(crate::backends::openai::OpenAiBackend::new(b.clone()).map_err(ServeError::Policy)?);
        if let Some(every) = b.health_check_interval {
            crate::backends::probe::spawn(remote.clone(), every, state.health().clone());
        }
        let embeds: Arc<dyn backend_api::EmbeddingBackend> = remote.clone();
        for m in b.models.iter().filter(|m| m.card.capabilities.embeddings) {
            state.add_embedder(&m.name, embeds.clone());
        }
        let moderates: Arc<dyn crate::guardrails::moderation::Moderator> = remote.clone();
        for m in b.models.iter().filter(|m| m.card.capabilities.moderation) {
            state.add_moderator(&m.name, moderates.clone());
        }
        let remote: Arc<dyn backend_api::Backend> = remote;
        match b.queue {
            Some(q) => state.add_queued(Arc::new(crate::queue::Queued::new(remote, q))),
            None => state.add_backend(remote),
        }
        for m in &b.models {
            state.add_card(m.card.clone()).map_err(ServeError::Policy)?;
        }
    }
    let mut routes = cfg.routes.clone();
    if !state.name_in_use(AUTO_ROUTE) && !routes.iter().any(|r| r.name == AUTO_ROUTE) {
        let generates = |c: &&crate::registry::ModelCard| c.capabilities.chat || c.capabilities.completions;
        routes.push(RouteConfig::auto(state.cards().filter(generates).map(|c| c.name.clone()).collect()));
    }
    for r in &routes {
        if state.name_in_use(&r.name) {
            return Err(ServeError::Policy(format!("route '{}' has the name of a model", r.name)));
        }
        if let Some(route) = embedding_route(&state, r)? {
            tracing::info!(route = %r.name, models = ?r.models, "embedding route");
            let models = r.models.iter().map(|m| state.resolve(m).to_string()).collect();
            state.add_embedding_route(&r.name, models, Arc::new(route));
            continue;
        }
        let route = build_route(&state, r, &cfg.policy.prices)?;
        tracing::info!(route = %r.name, models = ?r.models, strategy = ?r.strategy, cascade = r.cascade.is_some(), "route");
        let models = r.models.iter().map(|m| state.resolve(m).to_string()).collect();
        state.add_route(&r.name, models, route);
    }
    for g in cfg.guardrails.iter().filter(|g| g.kind == crate::guardrails::GuardKind::Moderation) {
        let model = g.model.as_deref().unwrap_or_default();
        if state.moderator(Some(model)).is_none() {
            return Err(ServeError::Policy(format!(
                "guardrail '{}': no model '{model}' with the moderation capability",
                g.name
            )));
        }
    }
    if !cfg.guardrails.is_empty() {
        let names: Vec<&str> = cfg.guardrails.iter().map(|g| g.name.as_str()).collect();
        tracing::info!(guardrails = ?names, "guardrails");
        let rails = crate::guardrails::Guardrails::new(cfg.guardrails.clone(), cache_embedder.clone());
        state.set_guardrails(Arc::new(rails));
    }
    if !cfg.live_eval.is_empty() {
        let names: Vec<&str> = cfg.live_eval.iter().map(|e| e.name.as_str()).collect();
        tracing::info!(evaluations = ?names, "live evaluation");
        start_live_eval(&mut state, cfg, cache_embedder.clone())?;
    }
    Ok(state)
}

/// Starts `cfg`'s live evaluations on `state`, with what they grade with:
/// the state store, the judges' backends and the embedding model, each
/// checked to exist.
pub fn start_live_eval(
    state: &mut AppState,
    cfg: &Config,
    embedder: Option<(String, Arc<dyn backend_api::EmbeddingBackend>)>,
) -> Result<(), ServeError> {
    use crate::eval::scorers::Scorer;
    let mut judges = std::collections::BTreeMap::new();
    for e in &cfg.live_eval {
        match &e.scorer {
            Scorer::Judge { model: Some(m), .. } => {
                let backend = state
                    .backend_for(state.resolve(m))
                    .ok_or_else(|| ServeError::Policy(format!("live_eval '{}': no judge model '{m}'", e.name)))?;
                // Asked by its own name: its backend knows no alias.
                judges.insert(m.clone(), (state.resolve(m).to_string(), backend.clone()));
            }
            Scorer::Similarity { .. } if embedder.is_none() => {
                return Err(ServeError::Policy(format!(
                    "live_eval '{}': 'similarity' needs the in-process embedding model ([embeddings], scripts/setup-models.sh)",
                    e.name
                )));
            }
            _ => {}
        }
    }
    let tools = crate::eval::live::Tools {
        store: state.policy().store.clone(),
        judges,
        embedder,
        prices: cfg.policy.prices.clone(),
    };
    state.set_live_eval(crate::eval::live::LiveEval::start(cfg.live_eval.clone(), tools));
    Ok(())
}

/// Loads the in-process embedding model and starts its batching actor.
/// The default model, when not installed, is skipped with a warning; one
/// the config names must load.
pub fn start_embedder(
    e: &crate::config::EmbeddingSettings,
) -> Result<Option<engine::embedding::EmbedderHandle>, ServeError> {
    if !e.path.exists() && !e.required {
        tracing::warn!(path = %e.path.display(), "no embedding model installed: /v1/embeddings serves remote models only (run scripts/setup-models.sh)");
        return Ok(None);
    }
    let err = |source: engine::embedding::EmbeddingError| ServeError::Embedding {
        path: e.path.display().to_string(),
        message: source.to_string(),
    };
    let started = Instant::now();
    let model = engine::embedding::Embedder::load(&e.path).map_err(err)?;
    let batch = engine::embedding::BatchConfig {
        enabled: e.batching,
        max_wait: e.max_wait,
        max_batch_inputs: e.max_batch_inputs,
        ..Default::default()
    };
    let handle = model.spawn(batch).map_err(err)?;
    tracing::info!(model = %e.name, path = %e.path.display(), dimensions = handle.dimensions(), batching = e.batching, load_ms = started.elapsed().as_millis() as u64, "embedding model loaded");
    Ok(Some(handle.named(&e.name).truncating(e.truncate)))
}

/// A route whose models all serve embeddings only: tried in order.
fn embedding_route(
    state: &AppState,
    r: &RouteConfig,
) -> Result<Option<crate::embed_route::EmbeddingRoute>, ServeError> {
    let embeds_only = |m: &str| {
        state.is_embedding_model(m)
            && state.card(state.resolve(m)).is_none_or(|c| !c.capabilities.chat && !c.capabilities.completions)
    };
    if !r.models.iter().all(|m| embeds_only(m)) {
        if r.models.iter().any(|m| embeds_only(m)) {
            return Err(ServeError::Policy(format!("route '{}' mixes embedding models with chat models", r.name)));
        }
        return Ok(None);
    }
    if r.cascade.is_some() {
        return Err(ServeError::Policy(format!("route '{}': embedding models cannot cascade", r.name)));
    }
    let targets = r.models.iter().filter_map(|m| state.embedder(m)).collect();
    Ok(Some(crate::embed_route::EmbeddingRoute::new(&r.name, targets)))
}

/// A route over models already registered: a fallback route, or a cascade on top of one.
fn build_route(
    state: &AppState,
    r: &RouteConfig,
    prices: &crate::policy::pricing::PriceTable,
) -> Result<Arc<dyn backend_api::Backend>, ServeError> {
    let fail = |m: String| ServeError::Policy(format!("route '{}': {m}", r.name));
    let mut targets = Vec::with_capacity(r.models.len());
    for m in &r.models {
        let m = state.resolve(m);
        let backend = state.backend_for(m).ok_or_else(|| fail(format!("no model '{m}'")))?;
        let card = state.card(m).ok_or_else(|| fail(format!("'{m}' is a route, not a model")))?;
        targets.push(Target { model: m.to_string(), card: card.clone(), backend: backend.clone() });
    }
    let cascade = r.cascade.clone();
    let route = FallbackRoute::new(r.clone(), targets, state.health().clone(), prices.clone());
    let Some(mut cascade) = cascade else { return Ok(Arc::new(route)) };
    let judge = match &mut cascade.scorer {
        Scorer::Logprob => {
            // Every model but the most expensive must be scored from its log-probabilities.
            if let Some(t) = route.targets.iter().find(|t| !t.card.capabilities.logprobs) {
                if route.targets.len() > 1 {
                    return Err(fail(format!("model '{}' returns no log-probabilities to score", t.model)));
                }
            }
            None
        }
        Scorer::Judge { model, .. } => {
            // The judge is asked by its own name: its backend knows no alias.
            *model = state.resolve(model).to_string();
            Some(state.backend_for(model).ok_or_else(|| fail(format!("no judge model '{model}'")))?.clone())
        }
    };
    Ok(Arc::new(CascadeRoute::new(route, cascade, judge)))
}

/// Auth is on when keys are configured, an admin token is set (keys are
/// managed through the admin API), `auth.required` is set, or the server
/// listens beyond loopback. Beyond loopback with no way to have a key, the
/// server refuses to start unless `insecure`.
pub fn build_policy(cfg: &Config, insecure: bool) -> Result<Policy, ServeError> {
    let p = &cfg.policy;
    let admin_token = std::env::var(&p.admin_token_env).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let exposed = !cfg.listen.ip().is_loopback();
    let can_authenticate = !p.keys.is_empty() || admin_token.is_some();
    if exposed && !can_authenticate && !insecure {
        return Err(ServeError::Policy(format!(
            "refusing to listen on {} without API keys: configure [[keys]] or set {} (admin API), or pass --insecure",
            cfg.listen, p.admin_token_env
        )));
    }
    let auth_required = p.auth_required || can_authenticate || (exposed && !insecure);
    let metrics = Arc::new(GatewayMetrics::default());
    let store: Arc<dyn StateStore> = if !auth_required {
        Arc::new(EmbeddedStore::in_memory())
    } else {
        match &p.store {
            StoreConfig::Embedded { path } => Arc::new(
                EmbeddedStore::open(path)
                    .map_err(|e| ServeError::Policy(format!("state file {}: {e}", path.display())))?,
            ),
            StoreConfig::Redis { url, prefix } => Arc::new(RedisStore::new(url, prefix).map_err(ServeError::Policy)?),
        }
    };
    tracing::info!(
        auth = auth_required,
        admin_api = admin_token.is_some(),
        config_keys = p.keys.len(),
        store = match (&p.store, auth_required) {
            (_, false) => "none",
            (StoreConfig::Embedded { .. }, true) => "embedded",
            (StoreConfig::Redis { .. }, true) => "redis",
        },
        fail_open = p.fail_open,
        "policies"
    );
    let settings = PolicySettings {
        auth_required,
        public_routes: p.public_routes.clone(),
        admin_token_hash: admin_token.as_deref().map(hash_key),
        config_keys: p.keys.clone(),
        users: p.users.clone(),
        prices: p.prices.clone(),
        default_max_tokens: p.default_max_tokens,
        request_timeout: p.request_timeout,
        fail_open: p.fail_open,
        truncate_by_default: p.truncate_by_default,
    };
    Ok(Policy::new(settings, store, metrics))
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Streamed tokens are small writes: without TCP_NODELAY each one after
    // the first waits for the client's delayed ACK (up to 40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    if let Some(c) = state.cache() {
        c.start();
    }
    axum::serve(listener, crate::router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: addr.to_string(), source })
}
