//! Step 1: every request presents an API key (`Authorization: Bearer …` or
//! `x-api-key`) unless its path is on the public allowlist or auth is off.
//! `/admin/…` takes the admin token instead. The caller's `Principal` is
//! handed to the handlers as a typed request extension.

use super::keys::{hash_key, same_hash};
use super::{KeyRejection, Principal};
use crate::dialect::ErrorShape;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let policy = state.policy().clone();
    // Errors in the shape the endpoint's clients read.
    let shape = ErrorShape::for_path(req.uri().path());
    let path = req.uri().path();
    if policy.settings.public_routes.iter().any(|p| p == path) {
        return next.run(req).await;
    }
    if path == "/admin" || path.starts_with("/admin/") {
        let Some(admin_hash) = &policy.settings.admin_token_hash else {
            return ApiError::RouteNotFound(path.to_string()).into_response();
        };
        return match presented_key(req.headers()) {
            Some(t) if same_hash(&hash_key(t), admin_hash) => next.run(req).await,
            Some(_) => ApiError::Unauthorized("Incorrect admin token provided.".into()).into_response(),
            None => {
                ApiError::Unauthorized("The admin API needs the admin token (Authorization: Bearer <token>).".into())
                    .into_response()
            }
        };
    }
    if !policy.settings.auth_required {
        req.extensions_mut().insert(Principal::Anonymous);
        return next.run(req).await;
    }
    let Some(key) = presented_key(req.headers()) else {
        let e = ApiError::Unauthorized(
            "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' (or 'x-api-key: YOUR_KEY')."
                .into(),
        );
        return shape.respond(e);
    };
    match policy.authenticate(key).await {
        Ok(record) => {
            req.extensions_mut().insert(Principal::Key(record));
            next.run(req).await
        }
        Err(KeyRejection::Unknown) => shape.respond(ApiError::Unauthorized("Incorrect API key provided.".into())),
        Err(KeyRejection::Revoked) => shape.respond(ApiError::Unauthorized("This API key has been revoked.".into())),
        Err(KeyRejection::Store(e)) => {
            tracing::error!(error = %e, "cannot check an API key");
            shape.respond(ApiError::Unavailable("API keys cannot be checked right now; try again shortly.".into()))
        }
    }
}

/// The key from `Authorization: Bearer …`, else from `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim)).filter(|k| !k.is_empty())
}
