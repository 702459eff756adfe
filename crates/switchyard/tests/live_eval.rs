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

/// The judge (a remote model: the mock replies with a verdict) and
/// embedding similarity (the in-process MiniLM) grade live answers; the
/// scored samples land in the state store, survive a restart, and are
/// served by the admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_and_similarity_grade_live_answers_and_samples_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path());
    let echo = common::mock_provider(dir.path(), &["--echo", "--finish", "stop"]);
    let judge =
        common::mock_provider(dir.path(), &["--reply", r#"{"score": 8, "reason": "fine"}"#, "--finish", "stop"]);
    let minilm = gateway::config::default_model_path(gateway::config::DEFAULT_EMBEDDING_DIR);
    assert!(minilm.exists(), "{} missing: run scripts/setup-models.sh", minilm.display());
    let config = format!(
        r#"
[auth]
admin_token_env = "SY_EVAL_ADMIN"
[[keys]]
id = "k"
key_env = "SY_EVAL_KEY"
[state]
path = "{state}/state.jsonl"
[embeddings]
name = "minilm"
path = "{minilm}"
[prices.echo]
input_per_million = 1000
output_per_million = 1000
[[backends]]
name = "echo-b"
kind = "openai"
base_url = "http://127.0.0.1:{echo}/v1"
[[backends.models]]
name = "echo"
upstream = "m"
[[backends]]
name = "judge-b"
kind = "openai"
base_url = "http://127.0.0.1:{judge}/v1"
[[backends.models]]
name = "judge"
upstream = "j"
aliases = ["grader"]
[[live_eval]]
name = "graded"
models = ["echo"]
sample_rate = 1.0
scorer = {{ type = "judge", model = "grader", rubric = "Is it right?" }}
[[live_eval]]
name = "close"
models = ["echo"]
sample_rate = 1.0
scorer = {{ type = "similarity", threshold = 0.8 }}
reference = "The capital of France is Paris."
[[live_eval]]
name = "cheap"
models = ["echo"]
sample_rate = 1.0
scorer = {{ type = "cost", max_usd = 0.5 }}
"#,
        state = dir.path().display(),
        minilm = minilm.display(),
        echo = echo.port,
        judge = judge.port,
    );
    let env = [("SY_EVAL_ADMIN", "admin-secret"), ("SY_EVAL_KEY", "sk-eval-user")];
    let admin = [("authorization", "Bearer admin-secret")];
    let user = [("authorization", "Bearer sk-eval-user")];
    let mut gw = common::switchyard(dir.path(), &model, &config, &env);
    for text in ["The capital of France is Paris.", "Bananas are rich in potassium and grow in bunches."] {
        let body = json!({"model": "echo", "messages": [{"role": "user", "content": text}]}).to_string();
        let r = http(gw.port, "POST", "/v1/chat/completions", &user, Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Scored off the request path: wait (bounded) for all three evaluations.
    let samples = |port: u16, name: &'static str| async move {
        let r = http(port, "GET", &format!("/admin/evals/{name}/samples?limit=10"), &admin, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"].as_array().cloned().unwrap_or_default()
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b, c) =
            (samples(gw.port, "graded").await, samples(gw.port, "close").await, samples(gw.port, "cheap").await);
        if (a.len(), b.len(), c.len()) == (2, 2, 2) {
            break;
        }
        assert!(Instant::now() < until, "not all scored: {a:?} {b:?} {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let graded = samples(gw.port, "graded").await;
    assert!(graded.iter().all(|s| s["score"] == json!(0.8) && s["pass"] == json!(true)), "{graded:?}");
    // Newest first: the unrelated answer, then the one that matches the reference.
    let close = samples(gw.port, "close").await;
    assert!(close[0]["answer"].as_str().unwrap().contains("Bananas"), "{close:?}");
    assert_eq!((close[0]["pass"].clone(), close[1]["pass"].clone()), (json!(false), json!(true)), "{close:?}");
    assert!(close[1]["score"].as_f64().unwrap() > 0.9, "{close:?}");
    assert!(close[0]["score"].as_f64().unwrap() < 0.5, "{close:?}");
    let cheap = samples(gw.port, "cheap").await;
    assert!(
        cheap.iter().all(|s| s["pass"] == json!(true) && s["detail"].as_str().unwrap().starts_with('$')),
        "{cheap:?}"
    );
    let m = http(gw.port, "GET", "/metrics", &user, None).await.body;
    assert_eq!(metric(&m, "llm_eval_score_count{model=\"echo\",eval_type=\"close\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "llm_eval_score_count{model=\"echo\",eval_type=\"graded\"}"), 2.0, "{m}");
    // The admin API: the list, and clear errors.
    let list = http(gw.port, "GET", "/admin/evals", &admin, None).await;
    assert_eq!(list.json()["data"].as_array().map(Vec::len), Some(3), "{}", list.body);
    let r = http(gw.port, "GET", "/admin/evals/nope/samples", &admin, None).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = http(gw.port, "GET", "/admin/evals/close/samples?limit=0", &admin, None).await;
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("limit")), "{}", r.body);
    let r = http(gw.port, "GET", "/admin/evals/close/samples", &user, None).await;
    assert_eq!(r.status, 401, "a user's key is not the admin token: {}", r.body);
    // Kept in the embedded store: a restart serves them again.
    gw.kill();
    let gw = common::switchyard(dir.path(), &model, &config, &env);
    assert_eq!(samples(gw.port, "close").await.len(), 2);
}

/// Under load with a one-sample queue and a slow scorer, every request is
/// answered and every sample is accounted for: scored or dropped (and
/// counted), none waited for. (What sampling adds to a request's latency
/// is measured by `switchyard bench gateway --live-eval`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_samples_not_requests() {
    let extra = "[[live_eval]]\nname = \"slow\"\nmodels = [\"echo\"]\nsample_rate = 1.0\nqueue = 1\n\
                 scorer = { type = \"command\", argv = [\"sh\", \"-c\", \"sleep 0.2; echo 1\"] }\n";
    let s = setup_mocks(&[MockBackend { name: "echo-b", args: &["--echo", "--finish", "stop"], toml: ECHO }], extra);
    let port = s.gateway.port;
    let sent = 40;
    let asks = (0..sent).map(|i| async move {
        let body = json!({"model": "echo", "messages": [{"role": "user", "content": format!("q {i}")}]}).to_string();
        http(port, "POST", "/v1/chat/completions", &[], Some(&body)).await.status
    });
    let statuses = futures::future::join_all(asks).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let until = Instant::now() + Duration::from_secs(10);
    let (scored, dropped) = loop {
        let m = http(port, "GET", "/metrics", &[], None).await.body;
        let scored = metric(&m, "llm_eval_score_count{model=\"echo\",eval_type=\"slow\"}");
        let dropped = metric(&m, "llm_eval_dropped_total{eval_type=\"slow\"}");
        if scored + dropped >= f64::from(sent) || Instant::now() > until {
            break (scored, dropped);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(scored + dropped, f64::from(sent), "scored {scored}, dropped {dropped}");
    assert!(dropped >= 1.0 && scored >= 1.0, "scored {scored}, dropped {dropped}");
}
