//! Routing over real sockets: each strategy's choice (cost, latency,
//! least busy, weighted), `model: "auto"`, the registry's filters
//! (capabilities, answer length, context) and aliases.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_requests, setup_mocks, MockBackend, MockSetup};
use serde_json::{json, Value};
use std::time::Duration;

const PRICEY: &str = "[[backends.models]]\nname = \"pricey\"\nupstream = \"m\"\ninput_per_million = 10.0\noutput_per_million = 30.0\naliases = [\"gpt-4o\"]\n";
const CHEAP: &str = "[[backends.models]]\nname = \"cheap\"\nupstream = \"m\"\ninput_per_million = 0.1\noutput_per_million = 0.2\ncapabilities = [\"chat\", \"streaming\", \"json_mode\", \"vision\"]\nmax_output_tokens = 16\ncontext_length = 64\n";
const SLOW: &str = "[[backends.models]]\nname = \"slow\"\nupstream = \"m\"\nweight = 3\ninput_per_million = 1.0\noutput_per_million = 2.0\n";
const FAST: &str = "[[backends.models]]\nname = \"fast\"\nupstream = \"m\"\nweight = 1\ninput_per_million = 1.0\noutput_per_million = 2.0\n";

const ROUTES: &str = "\
[[routes]]\nname = \"by-cost\"\nmodels = [\"pricey\", \"cheap\"]\nstrategy = \"cost\"\n\
[[routes]]\nname = \"by-latency\"\nmodels = [\"slow\", \"fast\"]\nstrategy = \"latency\"\n\
[[routes]]\nname = \"by-load\"\nmodels = [\"slow\", \"fast\"]\nstrategy = \"least_busy\"\n\
[[routes]]\nname = \"by-weight\"\nmodels = [\"slow\", \"fast\"]\nstrategy = \"weighted\"\n\
[[routes]]\nname = \"capable-first\"\nmodels = [\"tiny\", \"cheap\"]\n";

/// pricey, cheap (chat only, JSON mode, images, 16 tokens out, 64 of context),
/// slow (150 ms to answer, weight 3), fast (weight 1); mocks in that order.
fn setup() -> MockSetup {
    setup_mocks(
        &[
            MockBackend { name: "pricey-b", args: &[], toml: PRICEY },
            MockBackend { name: "cheap-b", args: &[], toml: CHEAP },
            MockBackend { name: "slow-b", args: &["--latency-ms", "150", "--token-interval-ms", "40"], toml: SLOW },
            MockBackend { name: "fast-b", args: &["--token-interval-ms", "40"], toml: FAST },
        ],
        ROUTES,
    )
}

fn chat(model: &str, extra: Value) -> String {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string()
}

async fn post(port: u16, path: &str, body: &str) -> common::Response {
    http(port, "POST", path, &[], Some(body)).await
}

/// A sample's value in Prometheus text (0 when absent).
fn gauge(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn served(r: &common::Response) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-switchyard-model").unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_picks_the_cheapest_model_that_can_serve() {
    let s = setup();
    let port = s.gateway.port;
    assert_eq!(served(&post(port, "/v1/chat/completions", &chat("by-cost", json!({}))).await), "cheap");
    // cheap answers at most 16 tokens, serves no text completions and has 64 tokens of context.
    let r = post(port, "/v1/chat/completions", &chat("by-cost", json!({"max_tokens": 17}))).await;
    assert_eq!(served(&r), "pricey");
    let r =
        post(port, "/v1/completions", &json!({"model": "by-cost", "prompt": "hi", "max_tokens": 4}).to_string()).await;
    assert_eq!(served(&r), "pricey");
    let long = "word ".repeat(300);
    let r = post(
        port,
        "/v1/chat/completions",
        &json!({"model": "by-cost", "max_tokens": 4,
        "messages": [{"role": "user", "content": long}]})
        .to_string(),
    )
    .await;
    assert_eq!(served(&r), "pricey");
    // A request's max_cost leaves only what it can afford; nothing → 400 with each reason.
    let r = post(port, "/v1/chat/completions", &chat("by-cost", json!({"max_tokens": 17, "max_cost": 0.000001}))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("above max_cost") && message.contains("at most 16 tokens"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_is_the_cheapest_healthy_capable_model() {
    let s = setup();
    let port = s.gateway.port;
    let models = http(port, "GET", "/v1/models", &[], None).await.json();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "auto"), "{models}");
    let alias = models["data"].as_array().unwrap().iter().find(|m| m["id"] == "gpt-4o").cloned();
    assert_eq!(alias.map(|a| a["owned_by"].clone()), Some(json!("pricey-b")), "{models}");
    // The embedded model has no price: it is the cheapest.
    assert_eq!(served(&post(port, "/v1/chat/completions", &chat("auto", json!({}))).await), "tiny");
    // It reads no images: the cheapest model that does answers.
    let image = json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
    assert_eq!(served(&post(port, "/v1/chat/completions", &chat("auto", image.clone())).await), "cheap");
    // Asked directly, the embedded model refuses images; the route's first capable model serves.
    let r = post(port, "/v1/chat/completions", &chat("tiny", image.clone())).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("image"), "{}", r.body);
    assert_eq!(served(&post(port, "/v1/chat/completions", &chat("capable-first", image)).await), "cheap");
    // JSON mode it has (constrained decoding): the cheapest, it answers.
    let json_mode = json!({"response_format": {"type": "json_object"}});
    assert_eq!(served(&post(port, "/v1/chat/completions", &chat("auto", json_mode)).await), "tiny");
    // An alias is its model.
    let r = post(port, "/v1/chat/completions", &chat("gpt-4o", json!({}))).await;
    assert_eq!((r.status, r.json()["model"].as_str()), (200, Some("pricey")), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_prefers_the_model_that_answered_faster() {
    let s = setup();
    let port = s.gateway.port;
    // Unmeasured models go first (listed order), so both get measured...
    let first: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            v.push(served(&post(port, "/v1/chat/completions", &chat("by-latency", json!({}))).await));
        }
        v
    };
    assert_eq!(first, ["slow", "fast"]);
    // ...then the faster one serves.
    for _ in 0..5 {
        assert_eq!(served(&post(port, "/v1/chat/completions", &chat("by-latency", json!({}))).await), "fast");
    }
    assert_eq!(mock_requests(s.mocks[2].port).await, 1, "slow was asked once");
    let metrics = http(port, "GET", "/metrics", &[], None).await.body;
    let latency = |model: &str| gauge(&metrics, &format!("llm_backend_latency_ewma_seconds{{model=\"{model}\"}}"));
    let (slow, fast) = (latency("slow"), latency("fast"));
    assert!(slow >= 0.15 && fast < slow, "slow {slow} s, fast {fast} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_busy_sends_work_where_fewest_requests_are_in_flight() {
    let s = setup();
    let port = s.gateway.port;
    // Long streams (40 tokens × 40 ms), started one after the other.
    let long = chat("by-load", json!({"max_tokens": 40, "stream": true}));
    let a = tokio::spawn({
        let long = long.clone();
        async move { post(port, "/v1/chat/completions", &long).await }
    });
    // Wait until the first is in flight on `slow` (the first listed when loads tie).
    let mut in_flight = 0;
    for _ in 0..100 {
        let m = http(port, "GET", "/metrics", &[], None).await.body;
        in_flight = m
            .lines()
            .find(|l| l.starts_with("llm_backend_in_flight{model=\"slow\"}"))
            .map_or(0, |l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) as u64);
        if in_flight == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(in_flight, 1, "the first stream never showed in flight on slow");
    let b = post(port, "/v1/chat/completions", &long).await;
    let a = a.await.unwrap();
    let model_of = |r: &common::Response| r.header("x-switchyard-model").unwrap_or_default().to_string();
    assert_eq!((model_of(&a), model_of(&b)), ("slow".to_string(), "fast".to_string()));
    // Done: nothing left in flight.
    let m = http(port, "GET", "/metrics", &[], None).await.body;
    assert!(
        m.contains("llm_backend_in_flight{model=\"slow\"} 0") && m.contains("llm_backend_in_flight{model=\"fast\"} 0"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_splits_traffic_by_weight() {
    let s = setup_mocks(
        &[MockBackend { name: "slow-b", args: &[], toml: SLOW }, MockBackend { name: "fast-b", args: &[], toml: FAST }],
        "[[routes]]\nname = \"by-weight\"\nmodels = [\"slow\", \"fast\"]\nstrategy = \"weighted\"\n",
    );
    let port = s.gateway.port;
    let n: u32 = 300;
    let mut heavy: u32 = 0;
    for _ in 0..n {
        if served(&post(port, "/v1/chat/completions", &chat("by-weight", json!({"max_tokens": 1}))).await) == "slow" {
            heavy += 1;
        }
    }
    // Weight 3 : 1 → 75 %; ± 4 standard deviations (2.5 % each at n = 300).
    let share = f64::from(heavy) / f64::from(n);
    assert!((0.65..=0.85).contains(&share), "weight-3 model took {share:.3} of the traffic");
    assert_eq!(mock_requests(s.mocks[0].port).await, u64::from(heavy));
}
