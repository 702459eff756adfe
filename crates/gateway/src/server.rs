//! Loading the configured local models and serving the app on a socket.

use crate::config::{Config, LocalModelConfig};
use crate::state::AppState;
use engine::{EngineError, EngineHandle, LocalModel};
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

/// Loads every configured model into a fresh app state.
pub fn build_state(cfg: &Config) -> Result<AppState, ServeError> {
    let mut state = AppState::new(cfg.body_limit_bytes);
    for m in &cfg.models {
        state.add_engine(start_local_model(m, cfg)?);
    }
    Ok(state)
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, crate::router(state)).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr: addr.to_string(), source })
}
