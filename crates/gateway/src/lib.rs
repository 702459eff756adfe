//! The HTTP gateway: an OpenAI-compatible API (axum) in front of backends.
//!
//! - `app`: the one function that composes the middleware stack.
//! - `config`: TOML configuration, parsed then validated.
//! - `dialect`: one file per wire format (OpenAI chat and completions,
//!   Anthropic messages, embeddings): parse, render, error shape.
//! - `pipeline`: the request path every generation endpoint runs, its
//!   steps in one documented order (resolve, truncate, admit, deadline,
//!   cache; the seam for guards), then the backend.
//! - `guardrails`: input and output checks (PII and secrets with
//!   checksums, typed placeholders, the hold-back window for streams).
//! - `cache`: the response cache's tiers (exact in memory and Redis,
//!   semantic with its wrong-hit guard) and its journal between replicas.
//! - `validate`: OpenAI wire JSON → `ValidatedRequest`.
//! - `routes`: model list, health, metrics, admin API.
//! - `error`: the one mapping from failures to status + error body.
//! - `server`: loading the configured models and serving.
//! - `backends`: remote OpenAI-compatible servers as backends.
//! - `queue`: per-backend concurrency limits with a bounded wait queue.
//! - `registry`: what each model can do (capabilities, output limit, weight, aliases).
//! - `routing`, `cascade`: routes (strategies, retries, fallback) and cascades;
//!   `embed_route`: routes over embedding models.
//! - `health`, `tracked`: circuit breakers, active probes, in-flight counts and
//!   latency averages, fed by every request to a model.
//! - `policy`, `store`: API keys, rate limits, budgets; the state behind them.
//! - `metrics`, `observe`, `timing`: the gateway's Prometheus series.

pub mod app;
pub mod backends;
pub mod cache;
pub mod cascade;
pub mod config;
pub mod dialect;
pub mod embed_route;
pub mod error;
pub mod eval;
pub mod guardrails;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod pipeline;
pub mod policy;
pub mod queue;
pub mod registry;
pub mod routes;
pub mod routing;
pub mod server;
pub mod state;
pub mod store;
pub mod timing;
pub mod tracked;
pub mod validate;

pub use app::router;
pub use config::Config;
pub use state::AppState;
