//! Remote OpenAI-compatible backends over real sockets: Switchyard in
//! front of mock providers, one per behaviour (healthy, failing, rate
//! limited, cutting streams, slow, absent), beside the embedded tiny model.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{away_from_minute_boundary, http, setup_remote as setup};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4,
        "stream": stream, "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null }})
    .to_string()
}

async fn post(port: u16, path: &str, body: &str, headers: &[(&str, &str)]) -> common::Response {
    http(port, "POST", path, headers, Some(body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_from_the_remote_model_streamed_and_not() {
    let s = setup("", &[]);
    let port = s.gateway.port;
    let models = http(port, "GET", "/v1/models", &[], None).await.json();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"tiny") && ids.contains(&"ok-model"), "{ids:?}");

    let r = post(port, "/v1/chat/completions", &chat("ok-model", false), &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "mock word1 word2 word3");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["model"], "ok-model");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let r = post(port, "/v1/chat/completions", &chat("ok-model", true), &[]).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    // Relayed as the upstream sent them (streaming_passthrough.rs): its model id.
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "mock-small"));
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "mock word1 word2 word3");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);

    let body = json!({"model": "ok-model", "prompt": "hi", "max_tokens": 2}).to_string();
    let v = post(port, "/v1/completions", &body, &[]).await.json();
    assert_eq!(v["choices"][0]["text"], "mock word1");
    // The embedded model still answers beside it.
    assert_eq!(post(port, "/v1/chat/completions", &chat("tiny", false), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_become_clear_errors() {
    let s = setup("", &[]);
    let port = s.gateway.port;
    for (model, needle) in
        [("failing-model", "HTTP 500"), ("limited-model", "rate limiting"), ("down-model", "request failed")]
    {
        let r = post(port, "/v1/chat/completions", &chat(model, false), &[]).await;
        assert_eq!(r.status, 503, "{model}: {}", r.body);
        let e = &r.json()["error"];
        assert_eq!(e["type"], "server_error", "{model}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{model}: {e}");
    }
    let start = Instant::now();
    let r = post(port, "/v1/chat/completions", &chat("slow-model", false), &[]).await;
    assert_eq!(r.status, 503);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("no response within 300 ms"));
    assert!(start.elapsed() < Duration::from_secs(2), "the first-byte timeout did not cut the wait");
    // A stream cut upstream ends with an error event and [DONE], never a silent 200.
    let r = post(port, "/v1/chat/completions", &chat("cut-model", true), &[]).await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert!(error["error"]["message"].as_str().unwrap().contains("ended before the generation finished"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_apply_to_remote_models_with_the_upstream_usage() {
    let cfg = "[[keys]]\nid = \"k\"\nkey_env = \"SY_REMOTE_KEY\"\nrpm = 2\nbudget_usd = 1\n\
               [prices.ok-model]\ninput_per_million = 1000\noutput_per_million = 2000\n";
    let s =
        setup(&format!("[state]\npath = \"STATE_DIR/state.jsonl\"\n{cfg}"), &[("SY_REMOTE_KEY", "sy-remote-test-key")]);
    let port = s.gateway.port;
    // rpm windows are fixed minutes: keep the three requests in one.
    away_from_minute_boundary(Duration::from_secs(10));
    assert_eq!(post(port, "/v1/chat/completions", &chat("ok-model", false), &[]).await.status, 401);
    let auth = [("authorization", "Bearer sy-remote-test-key")];
    let r = post(port, "/v1/chat/completions", &chat("ok-model", false), &auth).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.json()["usage"];
    let expected = u["prompt_tokens"].as_f64().unwrap() * 1e-3 + u["completion_tokens"].as_f64().unwrap() * 2e-3;
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("1"));
    assert_eq!(post(port, "/v1/chat/completions", &chat("ok-model", true), &auth).await.status, 200);
    assert_eq!(post(port, "/v1/chat/completions", &chat("ok-model", false), &auth).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_backends_are_translated_both_ways() {
    let s = setup("", &[]);
    let port = s.gateway.port;
    let body = json!({"model": "claude-model", "max_tokens": 4, "stop": ["never"],
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"},
                     {"role": "user", "content": "there"}]})
    .to_string();
    let r = post(port, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], "mock word1 word2 word3");
    assert_eq!(v["choices"][0]["finish_reason"], "length", "max_tokens stop reason");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "input_tokens from message_start");

    let mut streamed: Value = serde_json::from_str(&body).unwrap();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let r = post(port, "/v1/chat/completions", &streamed.to_string(), &[]).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "mock word1 word2 word3");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 4);

    let r = post(port, "/v1/chat/completions", &chat("claude-failing-model", false), &[]).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("injected 500"), "{}", r.body);
}
