//! Label values that come from clients are names the config knows (or a
//! fixed value): requests naming 10,000 models nobody configured, or paths
//! nobody routes, add no series to `/metrics`.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{post, send, send_with, tiny_app, TestApp, TINY};
use serde_json::json;

const UNKNOWN: usize = 10_000;

/// The samples of an exposition (one line per series).
fn series(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect()
}

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

async fn chat(app: &TestApp, model: &str) -> u16 {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1});
    post(app, "/v1/chat/completions", body).await.status.as_u16()
}

async fn messages(app: &TestApp, model: &str) -> u16 {
    let body = json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]});
    let headers = [("anthropic-version", "2023-06-01")];
    send_with(app, "POST", "/v1/messages", Some(body.to_string().into_bytes()), &headers).await.status.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_paths_add_no_series() {
    let app = tiny_app(1 << 20);
    // One of each kind first: a served request, an unknown model in both
    // dialects, an unknown path.
    assert_eq!(chat(&app, TINY).await, 200);
    assert_eq!(chat(&app, "junk-model-first").await, 404);
    assert_eq!(messages(&app, "junk-model-first-anthropic").await, 404);
    assert_eq!(send(&app, "POST", "/v1/junk-path-first", None).await.status.as_u16(), 404);
    let before = send(&app, "GET", "/metrics", None).await.text();
    let unknown_404 = "llm_requests_total{model=\"unknown\",status=\"404\"}";
    assert_eq!(value(&before, unknown_404), 3, "{before}");

    for i in 0..UNKNOWN {
        assert_eq!(chat(&app, &format!("junk-model-{i}")).await, 404);
    }
    for i in 0..20 {
        assert_eq!(messages(&app, &format!("junk-anthropic-{i}")).await, 404);
        assert_eq!(send(&app, "POST", &format!("/v1/junk-path-{i}"), None).await.status.as_u16(), 404);
    }
    let after = send(&app, "GET", "/metrics", None).await.text();

    assert_eq!(series(&after).len(), series(&before).len(), "before:\n{before}\nafter:\n{after}");
    assert!(!after.contains("junk"), "{after}");
    assert_eq!(value(&after, unknown_404), 3 + UNKNOWN as u64 + 40, "{after}");
    // The configured model keeps its own label.
    assert_eq!(value(&after, &format!("llm_requests_total{{model=\"{TINY}\",status=\"200\"}}")), 1, "{after}");
}
