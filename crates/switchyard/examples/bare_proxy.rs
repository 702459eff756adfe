//! The floor for an HTTP proxy on this machine: a request's body forwarded
//! to one upstream with the same HTTP stack as the gateway (axum server,
//! hyper client, pooled keep-alive connections, `TCP_NODELAY`) and the
//! answer returned, with no policies, no JSON and no routing.
//! `cargo run --release -p switchyard --example bare_proxy -- 127.0.0.1:PORT http://127.0.0.1:UPSTREAM`
//! (`scripts/bench-overhead.sh` runs it beside the gateway).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use axum::serve::ListenerExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;

/// The gateway's allocator, so that the two differ only in the work done per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

async fn forward(State(up): State<Arc<Upstream>>, req: Request<Body>) -> Result<Response<Body>, StatusCode> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| StatusCode::BAD_REQUEST)?.to_bytes();
    let mut out = Request::builder().method(parts.method).uri(format!("{}{}", up.base, parts.uri.path()));
    for name in ["content-type", "authorization"] {
        if let Some(v) = parts.headers.get(name) {
            out = out.header(name, v);
        }
    }
    let out = out.body(Full::new(body)).map_err(|_| StatusCode::BAD_REQUEST)?;
    let answer = up.client.request(out).await.map_err(|_| StatusCode::BAD_GATEWAY)?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(|_| StatusCode::BAD_GATEWAY)?.to_bytes();
    Ok(Response::from_parts(parts, Body::from(body)))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(base)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: bare_proxy LISTEN_ADDR UPSTREAM_BASE_URL");
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let up = Arc::new(Upstream { client, base: base.trim_end_matches('/').to_string() });
    let app = axum::Router::new().fallback(forward).with_state(up);
    let listener = tokio::net::TcpListener::bind(&listen).await?.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
