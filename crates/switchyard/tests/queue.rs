//! Per-backend request queues over real sockets: a slot per concurrent
//! request, a bounded wait, 503 with Retry-After when full, 504 when a
//! request waited too long, and the counters in /metrics.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_provider, switchyard, tiny_model};
use serde_json::json;
use std::time::{Duration, Instant};

fn chat(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queues_refuse_and_long_waits_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // Every answer takes 600 ms.
    let mock = mock_provider(dir.path(), &["--latency-ms", "600"]);
    let backend = |name: &str, timeout_ms: u64| {
        format!(
            "[[backends]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n\
             max_concurrency = 1\nmax_queue = 1\nqueue_timeout_ms = {timeout_ms}\n[[backends.models]]\nname = \"{name}-model\"\n",
            mock.port
        )
    };
    let config = format!("{}{}", backend("short", 200), backend("long", 3000));
    let gateway = switchyard(dir.path(), &model, &config, &[]);
    let port = gateway.port;
    let send = |model: &'static str| {
        tokio::spawn(async move { http(port, "POST", "/v1/chat/completions", &[], Some(&chat(model))).await })
    };

    // One running, one waiting (and giving up after 200 ms), one refused.
    let running = send("short-model");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = send("short-model");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("short-model"))).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.json()["error"]["code"], "overloaded");
    let waiting = waiting.await.unwrap();
    assert_eq!(waiting.status, 504, "{}", waiting.body);
    assert_eq!(waiting.json()["error"]["code"], "timeout");
    assert_eq!(running.await.unwrap().status, 200);

    // With a longer queue timeout the second simply waits its turn.
    let start = Instant::now();
    let first = send("long-model");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = send("long-model");
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
    assert!(start.elapsed() >= Duration::from_millis(1200), "the two ran at once");

    let m = http(port, "GET", "/metrics", &[], None).await.body;
    for line in [
        "llm_queue_rejected_total{backend=\"short\",reason=\"full\"} 1",
        "llm_queue_rejected_total{backend=\"short\",reason=\"timeout\"} 1",
        "llm_queue_wait_seconds_count{backend=\"long\"} 1",
        "llm_queue_in_flight{backend=\"long\"} 0",
        "llm_queue_depth{backend=\"short\"} 0",
    ] {
        assert!(m.contains(line), "{line}\n{m}");
    }
}
