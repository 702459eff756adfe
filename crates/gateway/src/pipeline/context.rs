//! The values the steps share: who calls (`Ctx`), what is asked (`Call`),
//! and what comes back (`Answer`).

use crate::error::ApiError;
use crate::policy::meter::Meter;
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Extension;
use backend_api::{Backend, GenerationStream, ValidatedRequest};
use std::sync::Arc;

/// The caller and the request's bookkeeping.
pub struct Ctx {
    pub state: AppState,
    pub principal: Principal,
    pub timing: Option<Arc<RequestTiming>>,
    pub request_id: String,
    /// The end user the request names (Anthropic's `metadata.user_id`):
    /// the user whose limits apply when the key has none of its own.
    pub end_user: Option<String>,
    /// Headers every response of this call carries (rate limits, truncation).
    pub headers: HeaderMap,
    /// A step must see (or change) the answer's text, so an upstream's
    /// stream may not be relayed byte for byte.
    pub needs_text: bool,
    /// When the request's time is up (set by the `deadline` step).
    pub deadline: Option<tokio::time::Instant>,
}

impl Ctx {
    /// The principal comes from the auth middleware; a request without one
    /// is refused, never served as anonymous (a route mounted outside the
    /// auth layer must fail closed).
    pub fn new(
        state: AppState,
        principal: Option<Extension<Principal>>,
        timing: Option<Extension<Arc<RequestTiming>>>,
        request_id: String,
    ) -> Result<Self, ApiError> {
        let Some(Extension(principal)) = principal else {
            tracing::error!("a request reached the pipeline without an authenticated principal");
            return Err(ApiError::Unauthorized("This request was not authenticated.".into()));
        };
        Ok(Ctx {
            state,
            principal,
            timing: timing.map(|t| t.0),
            request_id,
            end_user: None,
            headers: HeaderMap::new(),
            needs_text: false,
            deadline: None,
        })
    }
}

/// The requests of one API call (one per choice; completions with a prompt
/// array have several) and what the steps learned about them.
pub struct Call {
    /// Every request names the same model.
    pub requests: Vec<ValidatedRequest>,
    /// `truncation`: Some(true) = "auto", Some(false) = "disabled", None = the server's default.
    pub truncation: Option<bool>,
    /// The model's own name (aliases resolved) or the route's, once resolved.
    pub model: String,
    pub(super) backend: Option<Arc<dyn Backend>>,
    pub(super) is_route: bool,
    pub(super) meter: Option<Arc<Meter>>,
    /// The client's cache controls.
    pub cache: crate::cache::Directives,
    /// A miss the cache stores when its answer ends.
    pub(super) pending: Option<Arc<super::cache::Pending>>,
    /// Placeholders of a reversible input guardrail and the caller's values.
    pub(super) restore: Option<Arc<Vec<(String, String)>>>,
    /// The output guardrails that apply.
    pub(super) output_guards: Option<Arc<Vec<crate::guardrails::GuardrailConfig>>>,
}

impl Call {
    pub fn new(requests: Vec<ValidatedRequest>) -> Self {
        let model = requests.first().map(|r| r.model.clone()).unwrap_or_default();
        Call {
            requests,
            truncation: None,
            model,
            backend: None,
            is_route: false,
            meter: None,
            cache: Default::default(),
            pending: None,
            restore: None,
            output_guards: None,
        }
    }

    pub fn backend(&self) -> Result<&Arc<dyn Backend>, ApiError> {
        self.backend.as_ref().ok_or_else(|| ApiError::Internal("the call reached its backend unresolved".into()))
    }

    /// The call failed before its answer: a reservation made for it is
    /// settled with no usage.
    pub(super) fn abandon(&mut self, e: ApiError) -> ApiError {
        if let Some(m) = self.meter.take() {
            m.abandon(self.requests.len());
        }
        e
    }
}

/// The answer streams (one per request, in order) and what the response needs.
pub struct Answer {
    pub streams: Vec<GenerationStream>,
    /// The model (or route) asked for, aliases resolved.
    pub model: String,
    /// An upstream's stream may be relayed byte for byte (no step needs the text).
    pub relay: bool,
    headers: HeaderMap,
    meter: Option<Arc<Meter>>,
}

impl Answer {
    pub(super) fn new(ctx: Ctx, call: Call, streams: Vec<GenerationStream>) -> Self {
        Answer { streams, model: call.model, relay: !ctx.needs_text, headers: ctx.headers, meter: call.meter }
    }

    /// Adds the steps' headers, the cost once it is known (answers returned
    /// whole) and the model a route chose.
    pub fn decorate(&self, resp: &mut Response) {
        resp.headers_mut().extend(self.headers.clone());
        let Some(meter) = &self.meter else { return };
        if let Some(v) = meter.cost_nanos().and_then(|n| HeaderValue::try_from(format_usd(n)).ok()) {
            resp.headers_mut().insert(super::COST_HEADER, v);
        }
        if let Some(v) = meter.served_by_model().and_then(|m| HeaderValue::try_from(m).ok()) {
            resp.headers_mut().insert(super::SERVED_BY_HEADER, v);
        }
    }

    /// The model to name in a finished response: the one a route chose, or the one asked for.
    pub fn answering_model(&self) -> String {
        self.meter.as_ref().and_then(|m| m.served_by_model()).unwrap_or_else(|| self.model.clone())
    }
}

/// A cost in nano-dollars as the cost header writes it.
pub(super) fn format_usd(nanos: u64) -> String {
    format!("{:.9}", nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_principal_is_refused() {
        let state = AppState::new(1024);
        assert!(matches!(Ctx::new(state.clone(), None, None, "r".into()), Err(ApiError::Unauthorized(_))));
        assert!(Ctx::new(state, Some(Extension(Principal::Anonymous)), None, "r".into()).is_ok());
    }
}
