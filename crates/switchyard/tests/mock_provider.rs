//! The mock provider over real sockets: OpenAI- and Anthropic-shaped
//! answers, streamed and not, and every fault it can inject.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_provider};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat(stream: bool, max_tokens: u32) -> String {
    json!({"model": "mock-small", "messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens,
        "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null }})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_shapes_streamed_and_not() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_provider(dir.path(), &["--tokens", "5"]);
    let models = http(mock.port, "GET", "/v1/models", &[], None).await.json();
    assert_eq!(models["data"][1]["id"], "mock-large");

    let r = http(mock.port, "POST", "/v1/chat/completions", &[], Some(&chat(false, 100))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "mock word1 word2 word3 word4");
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["model"], "mock-small");

    let r = http(mock.port, "POST", "/v1/chat/completions", &[], Some(&chat(true, 3))).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "mock word1 word2", "max_tokens caps the answer");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);

    let body = json!({"model": "m", "prompt": "hi", "max_tokens": 2, "stream": true}).to_string();
    let r = http(mock.port, "POST", "/v1/completions", &[], Some(&body)).await;
    let text: String = r
        .sse_data()
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok()?["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "mock word1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_messages_streamed_and_not() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_provider(dir.path(), &[]);
    let body = |stream: bool| {
        json!({"model": "claude-mock", "system": "be brief", "max_tokens": 4, "stream": stream,
            "messages": [{"role": "user", "content": "hello"}]})
        .to_string()
    };
    let version = [("anthropic-version", "2023-06-01")];
    let v = http(mock.port, "POST", "/v1/messages", &version, Some(&body(false))).await.json();
    assert_eq!((v["type"].as_str(), v["stop_reason"].as_str()), (Some("message"), Some("max_tokens")));
    assert_eq!(v["content"][0]["text"], "mock word1 word2 word3");
    assert_eq!(v["usage"]["output_tokens"], 4);
    let r = http(mock.port, "POST", "/v1/messages", &version, Some(&body(true))).await;
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(["content_block_delta"; 4]);
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(r.sse_events(), expected);
    // What the real API refuses, the mock refuses: a missing version header,
    // a system turn among the messages, two user turns in a row.
    assert_eq!(http(mock.port, "POST", "/v1/messages", &[], Some(&body(false))).await.status, 400);
    for messages in [
        json!([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}]),
        json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
    ] {
        let bad = json!({"model": "m", "max_tokens": 4, "messages": messages}).to_string();
        let r = http(mock.port, "POST", "/v1/messages", &version, Some(&bad)).await;
        assert_eq!((r.status, r.json()["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_provider(dir.path(), &["--rate-limit-every", "3"]);
    let post = |headers: Vec<(&'static str, &'static str)>, stream: bool| {
        let port = mock.port;
        async move { http(port, "POST", "/v1/chat/completions", &headers, Some(&chat(stream, 100))).await }
    };
    assert_eq!(post(vec![], false).await.status, 200);
    assert_eq!(post(vec![], false).await.status, 200);
    let limited = post(vec![], false).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");

    let r = post(vec![("x-mock-status", "503")], false).await;
    assert_eq!(r.status, 503);
    let r = http(mock.port, "POST", "/v1/messages", &[("x-mock-status", "500")], Some("{}")).await;
    assert_eq!((r.status, r.json()["type"].as_str()), (500, Some("error")));

    let start = Instant::now();
    assert_eq!(post(vec![("x-mock-latency-ms", "300"), ("x-mock-status", "200")], false).await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));

    // Cut after two tokens: the stream ends with no finish and no [DONE].
    // (`x-mock-status: 200` keeps the every-third 429 away from these two.)
    let r = post(vec![("x-mock-cut-after", "2"), ("x-mock-status", "200")], true).await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    assert_eq!(data.len(), 3, "the role chunk and two tokens: {data:?}");
    let stats = http(mock.port, "GET", "/mock/stats", &[], None).await.json();
    assert_eq!(stats["requests"], 7);
}
