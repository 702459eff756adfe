//! The dialects through the router (no socket), on the tiny random model:
//! Anthropic's Messages API whole and streamed, its error shape, token
//! counting; OpenAI requests the embedded model cannot honour (tools,
//! images) refused instead of answered as plain text; completions capped
//! at OpenAI's default length.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_openai_error, post, send_with, tiny_app, Reply, TestApp, TINY};
use serde_json::{json, Value};

async fn anthropic(app: &TestApp, uri: &str, body: Value, version: Option<&str>) -> Reply {
    let mut headers = vec![];
    if let Some(v) = version {
        headers.push(("anthropic-version", v));
    }
    send_with(app, "POST", uri, Some(body.to_string().into_bytes()), &headers).await
}

fn anthropic_error(r: &Reply, status: u16, kind: &str) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    v["error"]["message"].as_str().unwrap().to_string()
}

fn message(extra: Value) -> Value {
    let mut body = json!({"model": TINY, "max_tokens": 6, "temperature": 0,
                          "system": "Be brief.", "messages": [{"role": "user", "content": "hello world"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_message_has_anthropic_s_shape_and_exact_usage() {
    let app = tiny_app(1 << 20);
    let r = anthropic(&app, "/v1/messages", message(json!({})), Some("2023-06-01")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str(), v["model"].as_str()),
        (Some("message"), Some("assistant"), Some(TINY))
    );
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["content"][0]["type"], "text");
    assert!(["end_turn", "max_tokens"].contains(&v["stop_reason"].as_str().unwrap()), "{v}");
    let counted = anthropic(&app, "/v1/messages/count_tokens", message(json!({})), Some("2023-06-01")).await;
    assert_eq!(counted.status, 200, "{}", counted.text());
    assert_eq!(counted.json()["input_tokens"], v["usage"]["input_tokens"]);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() <= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_message_uses_named_events_in_order() {
    let app = tiny_app(1 << 20);
    let body = message(
        json!({"stream": true, "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    );
    let r = anthropic(&app, "/v1/messages", body, Some("2023-06-01")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names[..2], ["message_start", "ping"], "{text}");
    assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"], "{text}");
    assert!(names.contains(&"content_block_start") && names.contains(&"content_block_delta"), "{text}");
    assert!(!text.contains("[DONE]"), "Anthropic streams have no [DONE]");
    let data: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    for (name, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *name, "each event is named after its payload's type");
    }
    let delta = data.iter().find(|d| d["type"] == "message_delta").unwrap();
    assert_eq!(delta["usage"]["output_tokens"], 5);
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_errors_come_in_anthropic_s_shape() {
    let app = tiny_app(1 << 20);
    let m =
        anthropic_error(&anthropic(&app, "/v1/messages", message(json!({})), None).await, 400, "invalid_request_error");
    assert!(m.contains("anthropic-version"), "{m}");
    for bad in ["2022-12-31", "latest"] {
        let r = anthropic(&app, "/v1/messages", message(json!({})), Some(bad)).await;
        assert!(anthropic_error(&r, 400, "invalid_request_error").contains("anthropic-version"));
    }
    assert_eq!(anthropic(&app, "/v1/messages", message(json!({})), Some("2026-10-21")).await.status, 200);
    let mut no_max = message(json!({}));
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let m = anthropic_error(
        &anthropic(&app, "/v1/messages", no_max, Some("2023-06-01")).await,
        400,
        "invalid_request_error",
    );
    assert!(m.contains("max_tokens"), "{m}");
    let r = anthropic(&app, "/v1/messages", message(json!({"model": "nope"})), Some("2023-06-01")).await;
    anthropic_error(&r, 404, "not_found_error");
    let r = anthropic(&app, "/v1/messages", message(json!({"temperature": 1.5})), Some("2023-06-01")).await;
    assert!(anthropic_error(&r, 400, "invalid_request_error").contains("temperature"));
    let r =
        send_with(&app, "POST", "/v1/messages", Some(b"{not json".to_vec()), &[("anthropic-version", "2023-06-01")])
            .await;
    anthropic_error(&r, 400, "invalid_request_error");
    let r = anthropic(
        &app,
        "/v1/messages",
        message(json!({"messages": [{"role": "system", "content": "x"}]})),
        Some("2023-06-01"),
    )
    .await;
    anthropic_error(&r, 400, "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_embedded_model_cannot_do_is_refused_not_ignored() {
    let app = tiny_app(1 << 20);
    let image = json!({"model": TINY, "max_tokens": 4, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    let r = post(&app, "/v1/chat/completions", image).await;
    assert_openai_error(&r, 400, None);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("messages[0].content[1]"), "{}", r.text());
    // A schema it cannot enforce is refused before anything runs, naming the keyword.
    let schema = json!({"type": "object", "not": {"required": ["a"]}});
    let unenforceable = json!({"model": TINY, "max_tokens": 4, "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}});
    let r = post(&app, "/v1/chat/completions", unenforceable).await;
    assert_openai_error(&r, 400, None);
    assert_eq!(r.json()["error"]["param"], "response_format", "{}", r.text());
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("not"), "{}", r.text());
    // Tools and JSON mode it serves (constrained decoding), in every tool_choice.
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    for choice in [
        json!("required"),
        json!("auto"),
        json!("none"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let body = json!({"model": TINY, "max_tokens": 4, "messages": [{"role": "user", "content": "weather?"}],
                          "tools": tools, "tool_choice": choice});
        assert_eq!(post(&app, "/v1/chat/completions", body).await.status, 200, "{choice}");
    }
    let json_mode = json!({"model": TINY, "max_tokens": 4, "messages": [{"role": "user", "content": "x"}],
                           "response_format": {"type": "json_object"}});
    let r = post(&app, "/v1/chat/completions", json_mode).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["choices"][0]["message"]["content"].as_str().unwrap().starts_with('{'), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_without_max_tokens_gets_openai_s_sixteen() {
    let app = tiny_app(1 << 20);
    let r = post(&app, "/v1/completions", json!({"model": TINY, "prompt": "hello", "ignore_eos": true})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["usage"]["completion_tokens"], 16, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}
