//! HTTP behaviour through the router (no socket), on a tiny random-weight
//! model the harness writes itself: shapes, streaming, usage, errors.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_openai_error, post, send, tiny_app, Reply, TINY};
use serde_json::json;

fn chat_body(extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"model": TINY, "messages": [{"role": "user", "content": "hello world"}], "max_tokens": 8, "temperature": 0});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_health_and_ready() {
    let app = tiny_app(1 << 20);
    let r = send(&app, "GET", "/v1/models", None).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], TINY);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(send(&app, "GET", "/health", None).await.status, 200);
    assert_eq!(send(&app, "GET", "/ready", None).await.status, 200);
    assert_openai_error(&send(&app, "GET", "/v1/nothing", None).await, 404, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_engine_work() {
    let app = tiny_app(1 << 20);
    post(&app, "/v1/completions", json!({"model": TINY, "prompt": "hello", "max_tokens": 5, "ignore_eos": true})).await;
    let r = send(&app, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/plain")));
    let text = r.text();
    assert!(text.contains("# TYPE llm_engine_generated_tokens_total counter"), "{text}");
    assert!(text.contains(&format!("llm_engine_generated_tokens_total{{model=\"{TINY}\"}} 5")), "{text}");
    assert!(text.contains(&format!("llm_engine_running_sequences{{model=\"{TINY}\"}} ")), "{text}");
    // One first token and four gaps between the five generated tokens.
    assert!(text.contains("# TYPE llm_engine_time_to_first_token_seconds histogram"), "{text}");
    assert!(text.contains(&format!("llm_engine_time_to_first_token_seconds_count{{model=\"{TINY}\"}} 1")), "{text}");
    assert!(
        text.contains(&format!("llm_engine_time_to_first_token_seconds_bucket{{model=\"{TINY}\",le=\"+Inf\"}} 1")),
        "{text}"
    );
    assert!(text.contains(&format!("llm_engine_inter_token_latency_seconds_count{{model=\"{TINY}\"}} 4")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completion_shape_and_exact_usage() {
    let app = tiny_app(1 << 20);
    let r = post(&app, "/v1/chat/completions", chat_body(json!({"ignore_eos": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    assert!(id.is_some());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], TINY);
    assert!(v["id"].as_str().is_some_and(|s| s.starts_with("chatcmpl-")));
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    // Exact usage: the prompt as the template renders it, by the model's tokenizer.
    let turns = vec![backend_api::ChatTurn::new(backend_api::Role::User, "hello world")];
    let prompt_tokens = app.engine.prompt_tokens(&backend_api::Prompt::Chat(turns), None).map(|t| t.len()).unwrap_or(0);
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    assert_eq!(v["usage"]["total_tokens"], prompt_tokens + 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_id_is_kept() {
    let app = tiny_app(1 << 20);
    let req = axum::http::Request::builder()
        .method("GET")
        .uri("/v1/models")
        .header("x-request-id", "my-trace-123")
        .body(axum::body::Body::empty());
    let Ok(req) = req else { panic!("request") };
    let resp = tower::ServiceExt::oneshot(app.router.clone(), req).await;
    let Ok(resp) = resp;
    assert_eq!(resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("my-trace-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chat_sends_role_deltas_finish_usage_and_done() {
    let app = tiny_app(1 << 20);
    let body = chat_body(
        json!({"stream": true, "stream_options": {"include_usage": true}, "ignore_eos": true, "max_tokens": 6}),
    );
    let r = post(&app, "/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status, 200);
    assert!(r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream")));
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = r.sse_chunks();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let finish: Vec<_> = chunks.iter().filter(|c| !c["choices"][0]["finish_reason"].is_null()).collect();
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "length");
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["completion_tokens"], 6);
    // The streamed text equals the non-streamed answer (greedy).
    let streamed: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let mut plain = body;
    plain["stream"] = json!(false);
    plain.as_object_mut().map(|o| o.remove("stream_options"));
    let v = post(&app, "/v1/chat/completions", plain).await.json();
    assert_eq!(v["choices"][0]["message"]["content"].as_str(), Some(streamed.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_without_usage_has_no_usage_field() {
    let app = tiny_app(1 << 20);
    let r = post(&app, "/v1/chat/completions", chat_body(json!({"stream": true, "max_tokens": 3, "ignore_eos": true})))
        .await;
    let chunks = r.sse_chunks();
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{chunks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_with_prompt_array_give_one_choice_each() {
    let app = tiny_app(1 << 20);
    let r = post(&app, "/v1/completions", json!({"model": TINY, "prompt": ["hello", "world wide"], "max_tokens": 4, "temperature": 0, "ignore_eos": true})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["choices"][1]["index"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let prompt_tokens = ["hello", "world wide"]
        .iter()
        .map(|p| {
            app.engine.prompt_tokens(&backend_api::Prompt::Text(p.to_string()), None).map(|t| t.len()).unwrap_or(0)
        })
        .sum::<usize>();
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_completions_end_with_usage_and_done() {
    let app = tiny_app(1 << 20);
    let body = json!({"model": TINY, "prompt": ["a", "b"], "max_tokens": 3, "ignore_eos": true, "stream": true, "stream_options": {"include_usage": true}});
    let r = post(&app, "/v1/completions", body).await;
    assert_eq!(r.sse_data().last().map(String::as_str), Some("[DONE]"));
    let chunks = r.sse_chunks();
    let finished: Vec<_> = chunks.iter().filter(|c| c["choices"][0]["finish_reason"] == "length").collect();
    assert_eq!(finished.len(), 2);
    assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_sample() {
    let app = tiny_app(1 << 20);
    let body = chat_body(json!({"temperature": 1.0, "seed": 42, "max_tokens": 12, "ignore_eos": true}));
    let a = post(&app, "/v1/chat/completions", body.clone()).await.json();
    let b = post(&app, "/v1/chat/completions", body).await.json();
    assert_eq!(a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logprobs_are_returned_when_asked() {
    let app = tiny_app(1 << 20);
    let v = post(
        &app,
        "/v1/chat/completions",
        chat_body(json!({"logprobs": true, "top_logprobs": 3, "max_tokens": 4, "ignore_eos": true})),
    )
    .await
    .json();
    let content = v["choices"][0]["logprobs"]["content"].as_array().cloned().unwrap_or_default();
    assert_eq!(content.len(), 4, "{v}");
    for entry in &content {
        let lp = entry["logprob"].as_f64().unwrap_or(1.0);
        assert!(lp <= 0.0);
        let tops = entry["top_logprobs"].as_array().cloned().unwrap_or_default();
        assert_eq!(tops.len(), 3);
        // Greedy: the chosen token is the most likely one.
        assert!((tops[0]["logprob"].as_f64().unwrap_or(0.0) - lp).abs() < 1e-5);
    }
    let v = post(
        &app,
        "/v1/completions",
        json!({"model": TINY, "prompt": "hello", "max_tokens": 3, "logprobs": 2, "ignore_eos": true, "temperature": 0}),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["logprobs"]["tokens"].as_array().map(Vec::len), Some(3), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_tokens_and_max_tokens_bound_the_length() {
    let app = tiny_app(1 << 20);
    let v = post(&app, "/v1/chat/completions", chat_body(json!({"min_tokens": 5, "max_tokens": 5}))).await.json();
    assert_eq!(v["usage"]["completion_tokens"], 5, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_openai_errors() {
    let app = tiny_app(1 << 20);
    let cases: Vec<(serde_json::Value, u16, Option<&str>)> = vec![
        (chat_body(json!({"temperature": 2.1})), 400, Some("temperature")),
        (chat_body(json!({"top_p": 0})), 400, Some("top_p")),
        (chat_body(json!({"n": 3})), 400, Some("n")),
        (chat_body(json!({"max_tokens": -1})), 400, Some("max_tokens")),
        (chat_body(json!({"max_tokens": 100000})), 400, Some("max_tokens")),
        (chat_body(json!({"temperature": "warm"})), 400, None),
        (chat_body(json!({"model": "gpt-unknown"})), 404, Some("model")),
        (json!({"model": TINY}), 400, None),
        (json!({"model": TINY, "messages": [{"role": "user", "content": "x".repeat(3000)}]}), 400, Some("messages")),
        (json!({"model": TINY, "prompt": ""}), 400, Some("prompt")),
    ];
    for (body, status, param) in cases {
        let uri = if body.get("prompt").is_some() { "/v1/completions" } else { "/v1/chat/completions" };
        let r = post(&app, uri, body.clone()).await;
        assert_openai_error(&r, status, param);
        if status == 404 {
            assert_eq!(r.json()["error"]["code"], "model_not_found");
        }
    }
    let r = send(&app, "POST", "/v1/chat/completions", Some(b"{\"model\": ".to_vec())).await;
    assert_openai_error(&r, 400, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let app = tiny_app(1024);
    let r = post(
        &app,
        "/v1/chat/completions",
        chat_body(json!({"messages": [{"role": "user", "content": "y".repeat(5000)}]})),
    )
    .await;
    assert_openai_error(&r, 413, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_strings_end_generation_and_are_not_returned() {
    let app = tiny_app(1 << 20);
    // Find what the model says greedily, then stop on a piece of it.
    let body = json!({"model": TINY, "prompt": "hello world", "max_tokens": 24, "temperature": 0, "ignore_eos": true});
    let full = post(&app, "/v1/completions", body.clone()).await.json();
    let text = full["choices"][0]["text"].as_str().unwrap_or_default().to_string();
    let chars: Vec<char> = text.chars().collect();
    assert!(chars.len() >= 6, "{text:?}");
    let stop: String = chars[3..5].iter().collect();
    let mut with_stop = body;
    with_stop["stop"] = json!([stop.clone()]);
    let v = post(&app, "/v1/completions", with_stop).await.json();
    let cut = v["choices"][0]["text"].as_str().unwrap_or_default();
    let expected = &text[..text.find(&stop).unwrap_or(text.len())];
    assert_eq!(cut, expected);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prompt_reports_cached_tokens_and_salts_isolate() {
    let app = tiny_app(1 << 20);
    let prompt = "hello world ".repeat(20);
    let body = |salt: Option<&str>| {
        let mut b = json!({"model": TINY, "prompt": prompt, "max_tokens": 2, "temperature": 0});
        if let Some(s) = salt {
            b["cache_salt"] = json!(s);
        }
        b
    };
    let cached = |r: &Reply| r.json()["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64();
    let first = post(&app, "/v1/completions", body(None)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(cached(&first), Some(0));
    let second = post(&app, "/v1/completions", body(None)).await;
    let prompt_tokens = second.json()["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
    assert_eq!(cached(&second), Some((prompt_tokens - 1) / 16 * 16));
    assert_eq!(second.json()["choices"][0]["text"], first.json()["choices"][0]["text"]);
    let salted = post(&app, "/v1/completions", body(Some("team-a"))).await;
    assert_eq!(cached(&salted), Some(0));
    let empty_salt = post(&app, "/v1/completions", body(Some(""))).await;
    assert_eq!(empty_salt.status, 400);
    assert_eq!(empty_salt.json()["error"]["param"], "cache_salt");
    let metrics = send(&app, "GET", "/metrics", None).await.text();
    assert!(
        metrics.contains(&format!(
            "llm_engine_prefix_cache_hits_total{{model=\"{TINY}\"}} {}",
            cached(&second).unwrap_or(0)
        )),
        "{metrics}"
    );
    assert!(metrics.contains("llm_engine_kv_blocks_total{"), "{metrics}");
    assert!(metrics.contains("llm_engine_preemptions_total{"), "{metrics}");
}
