//! Steps 1, 3 and 4 for one API call, between validation and the backend:
//! the key may use the model, the prompt is counted with the backend's own
//! tokenizer, and the estimate is reserved against the caller's limits.

use crate::error::ApiError;
use crate::policy::admission::Estimate;
use crate::policy::meter::Meter;
use crate::policy::Principal;
use crate::state::AppState;
use crate::timing::RequestTiming;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Extension;
use backend_api::{Backend, GenerationEvent, GenerationStream, ValidatedRequest};
use futures::StreamExt;
use std::sync::Arc;

/// The caller and the request's timing, as the middlewares left them.
pub struct Caller {
    pub principal: Principal,
    pub timing: Option<Arc<RequestTiming>>,
}

impl Caller {
    pub fn new(principal: Option<Extension<Principal>>, timing: Option<Extension<Arc<RequestTiming>>>) -> Self {
        Caller { principal: principal.map_or(Principal::Anonymous, |p| p.0), timing: timing.map(|t| t.0) }
    }
}

/// An admitted call: its meter and the rate-limit headers for the response.
pub struct Admitted {
    pub meter: Arc<Meter>,
    pub headers: HeaderMap,
}

pub async fn admit(
    state: &AppState,
    caller: &Caller,
    backend: &Arc<dyn Backend>,
    model: &str,
    requests: &mut [ValidatedRequest],
) -> Result<Admitted, ApiError> {
    if let Some(t) = &caller.timing {
        t.set_model(model);
    }
    if !caller.principal.allows_model(model) {
        return Err(ApiError::ModelNotAllowed(model.to_string()));
    }
    let policy = state.policy();
    let context = backend.context_length(model).unwrap_or(u32::MAX);
    let cap = policy.needs_completion_cap(&caller.principal);
    let mut estimate = Estimate { prompt_tokens: 0, max_completion_tokens: 0 };
    for r in requests.iter_mut() {
        // A model asked for directly refuses what it cannot do (a route filters its models itself).
        if let Some(why) = state.card(model).and_then(|c| c.unfit(r, None)) {
            return Err(ApiError::invalid(why, None));
        }
        if let Principal::Key(k) = &caller.principal {
            r.cache_salt = k.cache_salt(r.cache_salt.take());
        }
        let prompt = backend.count_prompt_tokens(r)?;
        let room = context.saturating_sub(prompt);
        if cap && r.stop.max_tokens.is_none() {
            r.stop.max_tokens = Some(policy.settings.default_max_tokens.min(room).max(1));
        }
        estimate.prompt_tokens += u64::from(prompt);
        estimate.max_completion_tokens += u64::from(r.stop.max_tokens.unwrap_or(room));
    }
    let mut admission = policy.admit(&caller.principal, model, &state.candidates(model), estimate).await?;
    let headers = std::mem::take(&mut admission.headers);
    let meter = Meter::new(admission, requests.len(), caller.timing.clone());
    if let Some(t) = &caller.timing {
        t.backend_started();
    }
    Ok(Admitted { meter, headers })
}

impl Admitted {
    /// Starts every request on the backend (all before reading any, so the
    /// engine batches them), each stream metered. With `until_started`,
    /// waits for each stream's `Started` event first: a route's choice is
    /// then known to the response headers (streams included), and a
    /// failure before it is an HTTP error, not an error event.
    pub async fn start(
        &self,
        backend: &Arc<dyn Backend>,
        requests: Vec<ValidatedRequest>,
        until_started: bool,
    ) -> Result<Vec<GenerationStream>, ApiError> {
        let total = requests.len();
        let mut streams = Vec::with_capacity(total);
        for r in requests {
            match backend.generate(r).await {
                Ok(s) => streams.push(self.meter.wrap(s)),
                Err(e) => {
                    self.meter.abandon(total - streams.len());
                    return Err(e.into());
                }
            }
        }
        if !until_started {
            return Ok(streams);
        }
        let mut started = Vec::with_capacity(total);
        for mut s in streams {
            // `Started` may follow a cascade's `Spent` events.
            let mut head = Vec::new();
            loop {
                match s.next().await {
                    Some(Ok(e)) => {
                        let is_start = matches!(e, GenerationEvent::Started { .. });
                        head.push(Ok(e));
                        if is_start {
                            break;
                        }
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => return Err(ApiError::Internal("the backend ended the stream before starting".into())),
                }
            }
            started.push(futures::stream::iter(head).chain(s).boxed());
        }
        Ok(started)
    }

    /// Adds the rate-limit headers, the cost once it is known (non-streaming
    /// responses) and the model a route chose.
    pub fn decorate(&self, resp: &mut Response) {
        resp.headers_mut().extend(self.headers.clone());
        if let Some(v) = self.meter.cost_nanos().and_then(|n| HeaderValue::try_from(format_usd(n)).ok()) {
            resp.headers_mut().insert(COST_HEADER, v);
        }
        if let Some(v) = self.meter.served_by_model().and_then(|m| HeaderValue::try_from(m).ok()) {
            resp.headers_mut().insert(SERVED_BY_HEADER, v);
        }
    }

    /// The model to name in a finished response: the one a route chose, or the one asked for.
    pub fn answering_model(&self, requested: String) -> String {
        self.meter.served_by_model().unwrap_or(requested)
    }
}

/// Which model answered a request that named a route (streams included:
/// `start` waits for a route's choice before the headers go out).
pub const SERVED_BY_HEADER: &str = "x-switchyard-model";

/// The request's cost in US dollars (non-streaming responses; a stream's
/// cost is known only after its headers went out, so it is in the metrics
/// and the spend, not in a header).
pub const COST_HEADER: &str = "x-switchyard-cost-usd";

fn format_usd(nanos: u64) -> String {
    format!("{:.9}", nanos as f64 / 1e9)
}
