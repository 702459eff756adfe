//! End to end through the router with the real default model.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{post, real_app, REAL};
use http_body_util::BodyExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answers_name_paris() {
    let app = real_app();
    let v = post(
        &app,
        "/v1/completions",
        json!({"model": REAL, "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
    )
    .await
    .json();
    let text = v["choices"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("Paris"), "{v}");

    let q = "What is the capital city of France? Answer in one word.";
    let v = post(
        &app,
        "/v1/chat/completions",
        json!({"model": REAL, "messages": [{"role": "user", "content": q}], "max_tokens": 16, "temperature": 0}),
    )
    .await
    .json();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    assert!(text.contains("Paris"), "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_all_complete_with_their_own_answers() {
    let app = real_app();
    let prompts = ["The capital of France is", "One, two, three,", "The color of the sky is", "Water boils at"];
    let alone: Vec<serde_json::Value> = {
        let mut out = Vec::new();
        for p in prompts {
            out.push(
                post(&app, "/v1/completions", json!({"model": REAL, "prompt": p, "max_tokens": 12, "temperature": 0}))
                    .await
                    .json(),
            );
        }
        out
    };
    let together = futures::future::join_all(prompts.iter().map(|p| {
        post(&app, "/v1/completions", json!({"model": REAL, "prompt": p, "max_tokens": 12, "temperature": 0}))
    }))
    .await;
    for (a, t) in alone.iter().zip(together) {
        assert_eq!(t.status, 200);
        assert_eq!(a["choices"][0]["text"], t.json()["choices"][0]["text"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_generation() {
    let app = real_app();
    let body = json!({"model": REAL, "prompt": "Tell me a long story.", "max_tokens": 4000, "ignore_eos": true, "stream": true});
    let req = Request::builder().method("POST").uri("/v1/completions").body(Body::from(body.to_string()));
    let Ok(req) = req else { panic!("request") };
    let Ok(resp) = app.router.clone().oneshot(req).await;
    let mut body = resp.into_body();
    // Read until some text has streamed, then hang up.
    let mut frames = 0;
    while frames < 3 {
        match tokio::time::timeout(Duration::from_secs(30), body.frame()).await {
            Ok(Some(Ok(_))) => frames += 1,
            other => panic!("stream ended early: {other:?}"),
        }
    }
    assert_eq!(app.engine.stats().running, 1);
    assert!(app.engine.stats().kv_blocks_used > 0);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.engine.stats().running != 0 || app.engine.stats().kv_blocks_used != 0 {
        assert!(
            Instant::now() < deadline,
            "sequence or its blocks still held after disconnect: {:?}",
            app.engine.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = app.engine.stats();
    assert_eq!(stats.cancelled, 1);
    assert!(stats.generated_tokens < 4000, "{stats:?}");
}

/// Reserve, then reconcile: a request that may use 500 completion tokens
/// but stops after a few gives the rest back to the tokens-per-minute window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_reserved_tokens_are_given_back() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(20));
    std::env::set_var("SY_TRECONCILE_KEY", "sy-key-for-the-reconcile-test");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[state]\npath = \"{}\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_TRECONCILE_KEY\"\ntpm = 1000\n",
        dir.path().join("state.jsonl").display()
    );
    let app = common::start_with_config(&engine::testing::default_model().unwrap(), REAL, &toml, Some(dir));
    let body = json!({"model": REAL, "max_tokens": 500, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital city of France? Answer in one word."}]})
    .to_string();
    let ask = || {
        common::send_with(
            &app,
            "POST",
            "/v1/chat/completions",
            Some(body.clone().into_bytes()),
            &[("authorization", "Bearer sy-key-for-the-reconcile-test")],
        )
    };
    let first = ask().await;
    assert_eq!(first.status, 200, "{}", first.text());
    let usage = first.json()["usage"].clone();
    let (prompt, used) = (usage["prompt_tokens"].as_u64().unwrap(), usage["total_tokens"].as_u64().unwrap());
    assert!(used < prompt + 50, "{usage}");
    let remaining =
        |r: &common::Reply| r.headers["x-ratelimit-remaining-tokens"].to_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(remaining(&first), 1000 - (prompt + 500), "the whole estimate is reserved at admission");
    // Two reservations of prompt + 500 would not fit in 1000; after the
    // first settled to what it used, the second does.
    let second = ask().await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(remaining(&second), 1000 - used - (prompt + 500));
}
