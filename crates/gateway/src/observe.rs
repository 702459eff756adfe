//! Records every API request in the gateway metrics when its response body
//! is done (streams included): status, model, latency, gateway overhead.

use crate::state::AppState;
use crate::timing::RequestTiming;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    // The names a model label may take: every name a client may send that
    // the config knows (once; an atomic load after).
    state.metrics().learn_names(|| state.models().into_iter().map(|m| m.id));
    let timing = Arc::new(RequestTiming::default());
    req.extensions_mut().insert(timing.clone());
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let done = Recorder { state, timing, status };
    Response::from_parts(parts, Body::new(Observed { inner: body, _done: done }))
}

/// Records the request when dropped: after the body's last frame was
/// taken, or when the client went away.
struct Recorder {
    state: AppState,
    timing: Arc<RequestTiming>,
    status: u16,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let (total, overhead) = self.timing.split();
        let model = self.timing.model();
        self.state.metrics().request(model.as_deref(), self.status, total, overhead);
    }
}

struct Observed {
    inner: Body,
    _done: Recorder,
}

impl HttpBody for Observed {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
