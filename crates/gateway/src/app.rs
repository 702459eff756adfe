//! The whole HTTP stack, composed in one place.

use crate::dialect::extract::BodyLimit;
use crate::dialect::{self, ErrorShape};
use crate::error::ApiError;
use crate::observe::observe;
use crate::policy::auth::authenticate;
use crate::routes;
use crate::state::AppState;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Router};
use std::any::Any;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application. Layers, outermost first:
///
/// 0. catch-panic: a panic anywhere below becomes a 500 in OpenAI's shape
///    (a bug, but never a dropped connection);
///    request-id: keeps the client's `x-request-id` or sets a UUID, and
///    copies it onto every response, errors included;
///    trace: one span per request, carrying the request id;
///    body limit: bodies over the configured size → 413.
///
/// Then the request path:
///
/// - observe (`/v1/…` only): status, model, latency and gateway overhead
///   into the metrics when the response body is done;
/// 1. auth: API key → `Principal` (or the admin token on `/admin/…`);
///    the public allowlist (`/health`, `/ready`, `/metrics` by default)
///    passes without one;
/// 2. the handler is a dialect (`dialect::…`): wire JSON in its format →
///    `ValidatedRequest`, then the `pipeline` (its steps listed there, in
///    order, from resolving the model to the backend and the meter), then
///    the answer rendered back in the same format. Errors take the
///    dialect's shape, including the ones raised here (auth, 404).
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit_bytes;
    let api = Router::new()
        .route("/v1/chat/completions", post(dialect::openai_chat::chat_completions))
        .route("/v1/completions", post(dialect::openai_completions::completions))
        .route("/v1/embeddings", post(dialect::embeddings::embeddings))
        .route("/v1/moderations", post(dialect::moderations::moderations))
        .route("/v1/messages", post(dialect::anthropic_messages::messages))
        .route("/v1/messages/count_tokens", post(dialect::anthropic_messages::count_tokens))
        .route("/v1/models", get(routes::models::list_models))
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/metrics", get(routes::metrics::metrics))
        .route("/admin/keys", get(routes::admin::list_keys).post(routes::admin::create_key))
        .route(
            "/admin/keys/{id}",
            get(routes::admin::show_key).patch(routes::admin::update_key).delete(routes::admin::revoke_key),
        )
        .route("/admin/users/{id}", get(routes::admin::user_spend))
        .route("/admin/backends", get(routes::admin::backends))
        .route("/admin/cache/entries/{id}", axum::routing::delete(routes::admin::delete_cache_entry))
        .route("/admin/cache/purge", axum::routing::post(routes::admin::purge_cache))
        .route("/admin/cache/stats", get(routes::admin::cache_stats))
        .route("/admin/evals", get(routes::admin::list_evals))
        .route("/admin/evals/{name}/samples", get(routes::admin::eval_samples))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    api.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }))
            .layer(DefaultBodyLimit::max(body_limit))
            .layer(Extension(BodyLimit(body_limit))),
    )
}

async fn not_found(uri: Uri) -> Response {
    ErrorShape::for_path(uri.path()).respond(ApiError::RouteNotFound(uri.path().to_string()))
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    tracing::error!(panic = %detail, "handler panicked");
    ApiError::Internal("internal error".into()).into_response()
}
