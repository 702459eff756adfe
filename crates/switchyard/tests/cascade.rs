//! Cascades over real sockets: the cheapest model answers first and is
//! escalated from when its score is below the threshold (log-probability
//! and LLM-judge scorers), `max_cost` on the route and on the request, the
//! model that answered named, and the cost of every attempt summed.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, mock_requests, setup_mocks, MockBackend, MockSetup};
use serde_json::{json, Value};

fn model(name: &str, input: f64, output: f64) -> String {
    format!(
        "[[backends.models]]\nname = \"{name}\"\nupstream = \"m\"\ninput_per_million = {input}\noutput_per_million = {output}\n"
    )
}

const ROUTES: &str = "\
[[routes]]\nname = \"by-logprob\"\nkind = \"cascade\"\nmodels = [\"top\", \"mid\", \"cheap\"]\nscorer = \"logprob\"\nthreshold = -1.0\n\
[[routes]]\nname = \"lenient\"\nkind = \"cascade\"\nmodels = [\"top\", \"cheap\"]\nscorer = \"logprob\"\nthreshold = -5.0\n\
[[routes]]\nname = \"capped\"\nkind = \"cascade\"\nmodels = [\"top\", \"cheap\"]\nscorer = \"logprob\"\nthreshold = -1.0\nmax_cost = 0.0001\n\
[[routes]]\nname = \"judged-strictly\"\nkind = \"cascade\"\nmodels = [\"top\", \"cheap\"]\nscorer = \"judge\"\njudge_model = \"judge-low\"\nthreshold = 7\ncriteria = \"correct and concise\"\n\
[[routes]]\nname = \"judged-kindly\"\nkind = \"cascade\"\nmodels = [\"top\", \"cheap\"]\nscorer = \"judge\"\njudge_model = \"kind-judge\"\nthreshold = 7\n\
[[routes]]\nname = \"local-kept\"\nkind = \"cascade\"\nmodels = [\"top\", \"tiny\"]\nscorer = \"logprob\"\nthreshold = -1000.0\n\
[[routes]]\nname = \"local-escalated\"\nkind = \"cascade\"\nmodels = [\"top\", \"tiny\"]\nscorer = \"logprob\"\nthreshold = 0.0\n\
[[routes]]\nname = \"judged-badly\"\nkind = \"cascade\"\nmodels = [\"top\", \"cheap\"]\nscorer = \"judge\"\njudge_model = \"judge-bad\"\nthreshold = 7\n";

/// Mocks, in order: cheap (unsure: log-prob -3 per token), mid (sure:
/// -0.2), top, and three judges (score 3, score 9, not JSON).
fn setup() -> MockSetup {
    let (cheap, mid, top) = (model("cheap", 0.1, 0.2), model("mid", 1.0, 2.0), model("top", 10.0, 30.0));
    let judges = [
        model("judge-low", 0.5, 1.0),
        model("judge-high", 0.5, 1.0) + "aliases = [\"kind-judge\"]\n",
        model("judge-bad", 0.5, 1.0),
    ];
    setup_mocks(
        &[
            MockBackend { name: "cheap-b", args: &["--logprob", "-3.0"], toml: &cheap },
            MockBackend { name: "mid-b", args: &["--logprob", "-0.2"], toml: &mid },
            MockBackend { name: "top-b", args: &[], toml: &top },
            MockBackend {
                name: "judge-low-b",
                args: &["--reply", r#"{"score": 3, "reason": "vague"}"#],
                toml: &judges[0],
            },
            MockBackend {
                name: "judge-high-b",
                args: &["--reply", r#"{"score": 9, "reason": "right"}"#],
                toml: &judges[1],
            },
            MockBackend { name: "judge-bad-b", args: &["--reply", "Sure! I would give it 9/10."], toml: &judges[2] },
        ],
        ROUTES,
    )
}

const CHEAP: usize = 0;
const MID: usize = 1;
const TOP: usize = 2;

fn chat(model: &str, extra: Value) -> String {
    let mut body =
        json!({"model": model, "messages": [{"role": "user", "content": "What is 2 + 2?"}], "max_tokens": 4});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string()
}

/// Each model's `llm_cost_dollars`.
async fn costs(port: u16) -> Vec<(String, f64)> {
    let m = http(port, "GET", "/metrics", &[], None).await.body;
    m.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("llm_cost_dollars{model=\"")?;
            let (model, value) = rest.split_once("\"} ")?;
            Some((model.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn asked(s: &MockSetup) -> [u64; 3] {
    [
        mock_requests(s.mocks[CHEAP].port).await,
        mock_requests(s.mocks[MID].port).await,
        mock_requests(s.mocks[TOP].port).await,
    ]
}

fn cost_header(r: &common::Response) -> f64 {
    r.header("x-switchyard-cost-usd")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cost header: {:?} {}", r.headers, r.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_confidence_escalates_and_every_attempt_is_billed() {
    let s = setup();
    let port = s.gateway.port;
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("by-logprob", json!({})))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // cheap scored -3 < -1: escalated; mid scored -0.2: accepted; top never asked.
    assert_eq!(r.header("x-switchyard-model"), Some("mid"));
    assert_eq!(r.json()["model"], "mid");
    assert_eq!(asked(&s).await, [1, 1, 0]);
    // The cost is both attempts'; the metrics price each on its own model.
    let costs = costs(port).await;
    let of = |m: &str| costs.iter().find(|(n, _)| n == m).map_or(0.0, |(_, c)| *c);
    assert!(of("cheap") > 0.0 && of("mid") > of("cheap"), "{costs:?}");
    let total: f64 = costs.iter().map(|(_, c)| c).sum();
    assert!((cost_header(&r) - total).abs() < 1e-9, "header {} vs metrics {costs:?}", cost_header(&r));
    // The client asked for no log-probs and gets none.
    assert!(r.json()["choices"][0]["logprobs"].is_null(), "{}", r.body);

    // Streamed: same choice, the chunks name mid, the stream ends properly.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("by-logprob", json!({"stream": true})))).await;
    let data = r.sse_data();
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{}", r.body);
    let chunks: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["model"] == "mid"), "{chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "mock word1 word2 word3");
    assert_eq!(asked(&s).await, [2, 2, 0]);

    // A lower threshold accepts the cheap answer: one attempt, its cost only.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("lenient", json!({})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("cheap")), "{}", r.body);
    assert_eq!(asked(&s).await, [3, 2, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_cost_skips_models_above_it() {
    let s = setup();
    let port = s.gateway.port;
    // The route's cap leaves only cheap: it answers, low score or not.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("capped", json!({})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("cheap")), "{}", r.body);
    assert_eq!(asked(&s).await, [1, 0, 0]);
    // A request's cap on an uncapped route (estimates: cheap $0.0000016, mid $0.000016, top $0.0002).
    let r =
        http(port, "POST", "/v1/chat/completions", &[], Some(&chat("by-logprob", json!({"max_cost": 0.00005})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("mid")), "{}", r.body);
    let r =
        http(port, "POST", "/v1/chat/completions", &[], Some(&chat("by-logprob", json!({"max_cost": 0.000005})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("cheap")), "{}", r.body);
    assert_eq!(asked(&s).await, [3, 1, 0], "top was never asked");
    // Nothing affordable: 400 with each model's reason.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("by-logprob", json!({"max_cost": 0})))).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("model 'cheap' would cost") && message.contains("above max_cost"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_judge_grades_and_its_cost_is_summed() {
    let s = setup();
    let port = s.gateway.port;
    // Graded 3 of 10 against a threshold of 7: escalated to top.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("judged-strictly", json!({})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("top")), "{}", r.body);
    assert_eq!(asked(&s).await, [1, 0, 1]);
    assert_eq!(mock_requests(s.mocks[3].port).await, 1, "the judge graded once");
    let costs = costs(port).await;
    let of = |m: &str| costs.iter().find(|(n, _)| n == m).map_or(0.0, |(_, c)| *c);
    assert!(of("cheap") > 0.0 && of("judge-low") > 0.0 && of("top") > 0.0, "{costs:?}");
    let total = of("cheap") + of("judge-low") + of("top");
    assert!((cost_header(&r) - total).abs() < 1e-9, "header {} vs {costs:?}", cost_header(&r));

    // Graded 9: the cheap answer stands.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("judged-kindly", json!({})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("cheap")), "{}", r.body);
    assert_eq!(asked(&s).await, [2, 0, 1]);
    // A verdict that is not the JSON asked for is a failing grade.
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat("judged-badly", json!({})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("top")), "{}", r.body);
    assert_eq!(asked(&s).await, [3, 0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_model_is_scored_by_its_own_logprobs() {
    let s = setup();
    let port = s.gateway.port;
    // The embedded model has no price: it goes first, and its log-probabilities score it.
    let r =
        http(port, "POST", "/v1/chat/completions", &[], Some(&chat("local-kept", json!({"ignore_eos": true})))).await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("tiny")), "{}", r.body);
    assert_eq!(asked(&s).await, [0, 0, 0]);
    // No answer scores 0 (every token certain): escalated to top.
    let r =
        http(port, "POST", "/v1/chat/completions", &[], Some(&chat("local-escalated", json!({"ignore_eos": true}))))
            .await;
    assert_eq!((r.status, r.header("x-switchyard-model")), (200, Some("top")), "{}", r.body);
    assert_eq!(asked(&s).await, [0, 0, 1]);
    // The embedded attempt's tokens (4 kept, 4 escalated from) are counted.
    let m = http(port, "GET", "/metrics", &[], None).await.body;
    assert!(m.contains("llm_tokens_total{model=\"tiny\",direction=\"output\"} 8"), "{m}");
}
