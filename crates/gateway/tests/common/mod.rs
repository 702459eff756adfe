//! Test harness: builds the app around a model (the tiny random GGUF or
//! the real default model) and sends requests through the router with no
//! socket.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use engine::{EngineConfig, EngineHandle, LocalModel, WeightFormat};
use http_body_util::BodyExt;
use std::path::Path;
use tower::ServiceExt;

pub const TINY: &str = "tiny";
pub const REAL: &str = "smollm2-135m-instruct";

pub struct TestApp {
    pub router: Router,
    pub engine: EngineHandle,
    _dir: Option<tempfile::TempDir>,
}

pub fn start(path: &Path, name: &str, body_limit: usize, dir: Option<tempfile::TempDir>) -> TestApp {
    start_with(path, name, gateway::AppState::new(body_limit), dir)
}

/// The app with the policies of a config file (`[[keys]]`, `[state]`, …).
pub fn start_with_config(path: &Path, name: &str, toml: &str, dir: Option<tempfile::TempDir>) -> TestApp {
    let cfg = match gateway::Config::from_toml(toml) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    };
    let policy = match gateway::server::build_policy(&cfg, false) {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    };
    start_with(path, name, gateway::AppState::with_policy(4 << 20, policy), dir)
}

fn start_with(path: &Path, name: &str, mut state: gateway::AppState, dir: Option<tempfile::TempDir>) -> TestApp {
    let local = match LocalModel::load(path, WeightFormat::Fast, None) {
        Ok(m) => m,
        Err(e) => panic!("loading {}: {e}", path.display()),
    };
    let engine = match local.spawn(name, EngineConfig::default()) {
        Ok(h) => h,
        Err(e) => panic!("spawning the engine: {e}"),
    };
    state.add_engine(engine.clone());
    TestApp { router: gateway::router(state), engine, _dir: dir }
}

/// The app around a freshly written tiny random-weight model.
pub fn tiny_app(body_limit: usize) -> TestApp {
    let (dir, path) = tiny_model();
    start(&path, TINY, body_limit, Some(dir))
}

/// A directory holding a freshly written tiny random-weight model.
pub fn tiny_model() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join("tiny.gguf");
    if let Err(e) = engine::testing::write_tiny_gguf(&path) {
        panic!("writing tiny gguf: {e}");
    }
    (dir, path)
}

pub fn real_app() -> TestApp {
    start(&engine::testing::default_model().unwrap(), REAL, 4 << 20, None)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.text().lines().filter_map(|l| l.strip_prefix("data: ").map(str::to_string)).collect()
    }

    /// The JSON chunks of an SSE body (everything but `[DONE]`).
    pub fn sse_chunks(&self) -> Vec<serde_json::Value> {
        self.sse_data().iter().filter(|d| *d != "[DONE]").filter_map(|d| serde_json::from_str(d).ok()).collect()
    }
}

pub async fn send(app: &TestApp, method: &str, uri: &str, body: Option<Vec<u8>>) -> Reply {
    send_with(app, method, uri, body, &[]).await
}

pub async fn send_with(
    app: &TestApp,
    method: &str,
    uri: &str,
    body: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body.map_or_else(Body::empty, Body::from));
    let req = match req {
        Ok(r) => r,
        Err(e) => panic!("building request: {e}"),
    };
    let resp = match app.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => panic!("reading body: {e}"),
    };
    Reply { status, headers, body }
}

pub async fn post(app: &TestApp, uri: &str, json: serde_json::Value) -> Reply {
    send(app, "POST", uri, Some(json.to_string().into_bytes())).await
}

pub fn assert_openai_error(reply: &Reply, status: u16, param: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    let v = reply.json();
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("param").is_some() && e.get("code").is_some(), "{v}");
    if let Some(p) = param {
        assert_eq!(e["param"], p, "{v}");
    }
    assert!(reply.headers.contains_key("x-request-id"));
}

/// Waits, if needed, until the current UTC minute has at least `margin`
/// left: per-minute limits use fixed windows, and a test whose requests
/// straddle a window boundary would see two windows' worth.
pub fn away_from_minute_boundary(margin: std::time::Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let left = std::time::Duration::from_millis(60_000 - (now.as_millis() % 60_000) as u64);
    if left < margin {
        std::thread::sleep(left + std::time::Duration::from_millis(100));
    }
}
