//! Routes over real sockets: retries with backoff, then fallback along the
//! route's models, before the first byte; every failure listed when all
//! fail; the model that answered named and priced.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_provider_on, mock_requests, setup_remote};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ROUTES: &str = "\
[[routes]]\nname = \"resilient\"\nmodels = [\"failing-model\", \"limited-model\", \"down-model\", \"ok-model\"]\nretries = 2\nbackoff_ms = 20\n\
[[routes]]\nname = \"doomed\"\nmodels = [\"failing-model\", \"down-model\"]\nretries = 0\n\
[[routes]]\nname = \"slow-first\"\nmodels = [\"slow-model\", \"tiny\"]\nretries = 0\n\
[[routes]]\nname = \"cut-first\"\nmodels = [\"cut-model\", \"ok-model\"]\n\
[[routes]]\nname = \"breaker\"\nmodels = [\"failing-model\", \"ok-model\"]\nretries = 0\nbreaker_cooldown_ms = 60000\n\
[[routes]]\nname = \"recovering\"\nmodels = [\"down-model\", \"ok-model\"]\nretries = 0\nbreaker_cooldown_ms = 300\n";

fn chat(model: &str, stream: bool) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4,
        "stream": stream, "ignore_eos": true})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_falls_back_and_names_who_answered() {
    let s = setup_remote(ROUTES, &[]);
    let port = s.gateway.port;
    let start = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("resilient", false))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-switchyard-model"), Some("ok-model"));
    let v = r.json();
    assert_eq!(v["model"], "ok-model");
    assert_eq!(v["choices"][0]["message"]["content"], "mock word1 word2 word3");
    // Each failing model got 1 + 2 retries; the backoff (20 + 40 ms) ran for each.
    assert_eq!(mock_requests(s.mocks[1].port).await, 3, "failing");
    assert_eq!(mock_requests(s.mocks[2].port).await, 3, "limited");
    assert_eq!(mock_requests(s.mocks[0].port).await, 1, "ok");
    assert!(start.elapsed() >= Duration::from_millis(3 * 60));

    // Streamed: the header names the model that answered (the chunks are the upstream's own).
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("resilient", true))).await;
    assert_eq!(r.header("x-switchyard-model"), Some("ok-model"));
    let chunks: Vec<Value> =
        r.sse_data().iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(!chunks.is_empty() && chunks.iter().all(|c| c["model"] == "mock-small"), "{chunks:?}");
    let models = http(port, "GET", "/v1/models", &[], None).await.json();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "resilient" && m["owned_by"] == "route"));
    // Text completions name it the same way.
    let body = json!({"model": "resilient", "prompt": "hi", "max_tokens": 2}).to_string();
    let r = http(port, "POST", "/v1/completions", &[], Some(&body)).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("ok-model")), "{}", r.body);
    assert_eq!(r.json()["model"], "ok-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_everything_fails_each_failure_is_listed() {
    let s = setup_remote(ROUTES, &[]);
    let r = http(s.gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("doomed", false))).await;
    assert_eq!(r.status, 503, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("every model of route 'doomed' failed"), "{message}");
    assert!(message.contains("failing-model (attempt 1)") && message.contains("HTTP 500"), "{message}");
    assert!(message.contains("down-model (attempt 1)") && message.contains("request failed"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_falls_back_to_the_embedded_model() {
    let s = setup_remote(ROUTES, &[]);
    let r = http(s.gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("slow-first", false))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-switchyard-model"), Some("tiny"));
    assert_eq!(r.json()["usage"]["completion_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_after_it_started_is_an_error_event_not_a_fallback() {
    let s = setup_remote(ROUTES, &[]);
    let r = http(s.gateway.port, "POST", "/v1/chat/completions", &[], Some(&chat("cut-first", true))).await;
    assert_eq!(r.status, 200);
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert!(error["error"]["message"].is_string(), "{error}");
    assert_eq!(mock_requests(s.mocks[0].port).await, 0, "bytes had reached the client: no fallback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_that_answered_is_the_one_charged() {
    let extra = format!(
        "{ROUTES}[state]\npath = \"STATE_DIR/state.jsonl\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_ROUTE_KEY\"\nbudget_usd = 1\n\
         [prices.ok-model]\ninput_per_million = 1000\noutput_per_million = 2000\n"
    );
    let s = setup_remote(&extra, &[("SY_ROUTE_KEY", "sy-route-test-key")]);
    let auth = [("authorization", "Bearer sy-route-test-key")];
    let r = http(s.gateway.port, "POST", "/v1/chat/completions", &auth, Some(&chat("resilient", false))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.json()["usage"];
    let expected = u["prompt_tokens"].as_f64().unwrap() * 1e-3 + u["completion_tokens"].as_f64().unwrap() * 2e-3;
    let cost: f64 = r.header("x-switchyard-cost-usd").unwrap().parse().unwrap();
    assert!((cost - expected).abs() < 1e-9, "{cost} vs {expected}");
    let m = http(s.gateway.port, "GET", "/metrics", &[], None).await.body;
    assert!(m.contains("llm_tokens_total{model=\"ok-model\",direction=\"output\"} 4"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_is_skipped_once_its_circuit_opens() {
    let s = setup_remote(ROUTES, &[]);
    let port = s.gateway.port;
    for _ in 0..8 {
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("breaker", false))).await;
        assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("ok-model")), "{}", r.body);
    }
    // Five failures in five attempts opened it; the next three went straight to ok-model.
    assert_eq!(mock_requests(s.mocks[1].port).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_circuit_lets_a_trial_through_after_the_cooldown() {
    let s = setup_remote(ROUTES, &[]);
    let port = s.gateway.port;
    let served = |r: &common::Response| r.header("x-switchyard-model").map(str::to_string);
    for _ in 0..5 {
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("recovering", false))).await;
        assert_eq!(served(&r).as_deref(), Some("ok-model"));
    }
    // The model comes back where it was missing.
    let _back = mock_provider_on(s.dir.path(), s.down_port, &[]);
    let start = Instant::now();
    loop {
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("recovering", false))).await;
        if served(&r).as_deref() == Some("down-model") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the circuit never let a trial through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(start.elapsed() >= Duration::from_millis(250), "a trial came before the cooldown");
    // Closed again: it serves from now on.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("recovering", false))).await;
    assert_eq!(served(&r).as_deref(), Some("down-model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_backends_shows_models_and_circuits() {
    let extra = format!(
        "{ROUTES}[auth]\nadmin_token_env = \"SY_BACKENDS_ADMIN\"\n[state]\npath = \"STATE_DIR/state.jsonl\"\n\
         [[keys]]\nid = \"k\"\nkey_env = \"SY_BACKENDS_KEY\"\n"
    );
    let s = setup_remote(&extra, &[("SY_BACKENDS_ADMIN", "backends-admin"), ("SY_BACKENDS_KEY", "sy-backends-key")]);
    let port = s.gateway.port;
    for _ in 0..5 {
        let r = http(
            port,
            "POST",
            "/v1/chat/completions",
            &[("x-api-key", "sy-backends-key")],
            Some(&chat("breaker", false)),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(http(port, "GET", "/admin/backends", &[("x-api-key", "sy-backends-key")], None).await.status, 401);
    let v = http(port, "GET", "/admin/backends", &[("authorization", "Bearer backends-admin")], None).await.json();
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|b| b["name"].as_str()).collect();
    for expected in ["ok", "failing", "down", "local", "breaker"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let circuits = v["circuits"].as_array().unwrap();
    let failing = circuits.iter().find(|c| c["model"] == "failing-model").unwrap();
    assert_eq!((failing["circuit"].as_str(), failing["recent_failures"].as_u64()), (Some("open"), Some(5)), "{v}");
    let ok = circuits.iter().find(|c| c["model"] == "ok-model").unwrap();
    assert_eq!(ok["circuit"], "closed");
    // Each model with its registry card and live health.
    let models: Vec<&Value> =
        v["data"].as_array().unwrap().iter().flat_map(|b| b["models"].as_array().unwrap()).collect();
    let ok = models.iter().find(|m| m["id"] == "ok-model").unwrap();
    assert_eq!(
        ok["capabilities"],
        json!(["chat", "completions", "streaming", "json_mode", "logprobs", "tools"]),
        "{ok}"
    );
    assert_eq!((ok["health"]["circuit"].as_str(), ok["health"]["in_flight"].as_u64()), (Some("closed"), Some(0)));
    assert!(ok["health"]["latency_ms"].as_f64().is_some(), "{ok}");
    let claude = models.iter().find(|m| m["id"] == "claude-model").unwrap();
    assert_eq!(claude["capabilities"], json!(["chat", "completions", "streaming", "tools"]), "{claude}");
    let failing = models.iter().find(|m| m["id"] == "failing-model").unwrap();
    assert_eq!(failing["health"]["circuit"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_retry_after_is_waited_for_up_to_a_limit() {
    let model = |name: &str| format!("[[backends.models]]\nname = \"{name}\"\nupstream = \"m\"\n");
    let (soon, later, ok) = (model("soon-model"), model("later-model"), model("fine-model"));
    let s = common::setup_mocks(
        &[
            common::MockBackend { name: "soon", args: &["--rate-limit-every", "2"], toml: &soon },
            common::MockBackend { name: "later", args: &["--rate-limit-every", "1", "--retry-after-secs", "30"], toml: &later },
            common::MockBackend { name: "fine", args: &[], toml: &ok },
        ],
        "[[routes]]\nname = \"soon-first\"\nmodels = [\"soon-model\", \"fine-model\"]\nretries = 1\nbackoff_ms = 10\n\
         [[routes]]\nname = \"later-first\"\nmodels = [\"later-model\", \"fine-model\"]\nretries = 3\nbackoff_ms = 10\n",
    );
    let port = s.gateway.port;
    let body =
        |m: &str| json!({"model": m, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).to_string();
    // The first request passes; the second is told "Retry-After: 1": the retry waits 1 s, not 10 ms, and succeeds.
    assert_eq!(http(port, "POST", "/v1/chat/completions", &[], Some(&body("soon-first"))).await.status, 200);
    let start = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body("soon-first"))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("soon-model")), "{}", r.body);
    assert!(start.elapsed() >= Duration::from_secs(1), "retried after {:?}", start.elapsed());
    assert_eq!(mock_requests(s.mocks[0].port).await, 3);
    // "Retry-After: 30" is beyond what a retry waits for: the next model answers at once.
    let start = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body("later-first"))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("fine-model")), "{}", r.body);
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    assert_eq!(mock_requests(s.mocks[1].port).await, 1, "no retry of a model busy for 30 s");
    // Asked for directly, the model's own Retry-After reaches the client.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body("later-model"))).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("30")), "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "overloaded", "{}", r.body);
}
