//! Every request's wall-clock limit (`limits.request_timeout_ms`) over real
//! sockets: a slow upstream stream ends at the limit with finish reason
//! `length`, a final chunk and the stream's normal end, relayed byte for
//! byte or rendered, in OpenAI's dialect and Anthropic's; an answer that
//! has not started by then is a 504.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, setup_mocks, MockBackend};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const LIMIT_MS: u64 = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_end_with_length_at_the_time_limit() {
    let slow = ["--tokens", "200", "--token-interval-ms", "40"];
    let s = setup_mocks(
        &[
            MockBackend {
                name: "relayed",
                args: &slow,
                toml: "[[backends.models]]\nname = \"slow-relayed\"\nupstream = \"mock-small\"\n",
            },
            MockBackend {
                name: "rendered",
                args: &slow,
                toml: "passthrough = false\n[[backends.models]]\nname = \"slow-rendered\"\nupstream = \"mock-small\"\n",
            },
            MockBackend {
                name: "late",
                args: &["--latency-ms", "3000"],
                toml: "[[backends.models]]\nname = \"late-model\"\nupstream = \"mock-small\"\n",
            },
        ],
        &format!("[limits]\nrequest_timeout_ms = {LIMIT_MS}\n"),
    );
    let port = s.gateway.port;
    for model in ["slow-relayed", "slow-rendered"] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "go"}], "max_tokens": 200,
                          "stream": true, "stream_options": {"include_usage": true}});
        let started = Instant::now();
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body.to_string())).await;
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(took < Duration::from_millis(LIMIT_MS + 2000), "{model}: {took:?}");
        let data = r.sse_data();
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{model}: {data:?}");
        let chunks: Vec<Value> =
            data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
        let finish: Vec<&Value> =
            chunks.iter().filter_map(|c| c["choices"][0].get("finish_reason")).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&json!("length")], "{model}: one final chunk with 'length'");
        let usage = &chunks.last().unwrap()["usage"];
        let generated = usage["completion_tokens"].as_u64().unwrap();
        assert!(generated > 0 && generated < 200, "{model}: {usage}");
    }
    // Anthropic's dialect ends the same way, with its own events.
    let body = json!({"model": "slow-rendered", "max_tokens": 200, "stream": true, "messages": [{"role": "user", "content": "go"}]});
    let r = http(port, "POST", "/v1/messages", &[("anthropic-version", "2023-06-01")], Some(&body.to_string())).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let events = r.sse_events();
    assert_eq!(events.last().map(String::as_str), Some("message_stop"), "{events:?}");
    assert!(r.body.contains("\"stop_reason\":\"max_tokens\""), "{}", r.body);
    // An answer that would only start after 3 s: a timeout at the limit.
    let body = json!({"model": "late-model", "messages": [{"role": "user", "content": "go"}], "max_tokens": 5});
    let started = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body.to_string())).await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("time limit"), "{}", r.body);
}
