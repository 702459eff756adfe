//! Sampled evaluation of live traffic over real sockets: at sample rate
//! 1.0 every answer is scored and `llm_eval_score` moves; the rolling mean
//! falling below its threshold posts one webhook alert per crossing (and
//! re-arms when it recovers); the unsampled model is never scored.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, setup_mocks, MockBackend};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ECHO: &str =
    "[[backends.models]]\nname = \"echo\"\nupstream = \"m\"\n[[backends.models]]\nname = \"other\"\nupstream = \"m\"\n";

/// A webhook receiver on a free loopback port: counts POSTs, keeps bodies.
async fn webhook() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let (h, b) = (h.clone(), b.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                b.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits, bodies)
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(prefix).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_scored_and_a_crossing_alerts_once() {
    let (hook, hits, bodies) = webhook().await;
    let extra = format!(
        "[[live_eval]]\nname = \"has-digit\"\nmodels = [\"echo\"]\nsample_rate = 1.0\nscorer = {{ type = \"regex\", pattern = \"[0-9]\" }}\nthreshold = 0.5\nwindow = 4\nwebhook = \"http://127.0.0.1:{hook}/hook\"\n"
    );
    let s = setup_mocks(&[MockBackend { name: "echo-b", args: &["--echo", "--finish", "stop"], toml: ECHO }], &extra);
    let port = s.gateway.port;
    let ask = |model: &'static str, text: String| async move {
        let body = json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string();
        let r = http(port, "POST", "/v1/chat/completions", &[], Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    };
    let scored = || async move {
        let m = http(port, "GET", "/metrics", &[], None).await.body;
        (
            metric(&m, "llm_eval_score_count{model=\"echo\",eval_type=\"has-digit\"}"),
            metric(&m, "llm_eval_score_sum{model=\"echo\",eval_type=\"has-digit\"}"),
            m,
        )
    };
    // Scoring is off the request path: wait (bounded) for the worker.
    let settle = |want: f64| async move {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let (count, sum, m) = scored().await;
            if count >= want || Instant::now() > until {
                return (count, sum, m);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    for i in 0..4 {
        ask("echo", format!("answer {i}")).await;
    }
    ask("other", "not sampled 1".into()).await;
    let (count, sum, m) = settle(4.0).await;
    assert_eq!((count, sum), (4.0, 4.0), "{m}");
    assert!(!m.contains("model=\"other\",eval_type"), "the other model is not sampled: {m}");
    // Four answers without a digit: the mean falls through 0.5 once.
    for _ in 0..4 {
        ask("echo", "no digits here".into()).await;
    }
    let (count, sum, m) = settle(8.0).await;
    assert_eq!((count, sum), (8.0, 4.0), "{m}");
    assert_eq!(metric(&m, "llm_eval_window_mean{model=\"echo\",eval_type=\"has-digit\"}"), 0.0, "{m}");
    let until = Instant::now() + Duration::from_secs(10);
    while hits.load(Ordering::SeqCst) < 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let alert: serde_json::Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!((alert["eval"].as_str(), alert["model"].as_str()), (Some("has-digit"), Some("echo")), "{alert}");
    // Staying low is the same crossing: no second alert. Recovering re-arms;
    // the next fall alerts again.
    ask("echo", "still none".into()).await;
    for i in 0..4 {
        ask("echo", format!("back {i}")).await;
    }
    for _ in 0..4 {
        ask("echo", "down again".into()).await;
    }
    settle(17.0).await;
    let until = Instant::now() + Duration::from_secs(10);
    while hits.load(Ordering::SeqCst) < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let m = scored().await.2;
    assert_eq!(metric(&m, "llm_eval_alerts_total{model=\"echo\",eval_type=\"has-digit\"}"), 2.0, "{m}");
}
