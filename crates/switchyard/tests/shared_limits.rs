//! Limits, spend and state-store faults across real `switchyard serve`
//! processes: three replicas sharing one `redis-server`, one process on the
//! embedded store, a SIGKILL in the middle, and Redis going away.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{away_from_minute_boundary, free_port, http, post_chat, redis_server, switchyard, tiny_model, Proc};
use std::time::{Duration, Instant};

const REQ_KEY: &str = "sy-replica-test-requests-key";
const TOK_KEY: &str = "sy-replica-test-tokens-key";
const PROBE_KEY: &str = "sy-replica-test-probe-key";
const ENV: [(&str, &str); 3] = [("SY_REQ_KEY", REQ_KEY), ("SY_TOK_KEY", TOK_KEY), ("SY_PROBE_KEY", PROBE_KEY)];

/// Tokens one `chat(1)` request reserves: its prompt (counted by the tiny
/// model's tokenizer) + 1 completion token. Read from a real response.
async fn tokens_per_request(port: u16) -> u64 {
    let r = post_chat(port, PROBE_KEY, 1).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["usage"]["total_tokens"].as_u64().unwrap()
}

/// Three keys: one limited to 10 requests per minute (and generous
/// tokens), one whose tokens per minute hold 7.5 requests, one unlimited
/// for measuring. `store` is the `[state]` table.
fn config(store: &str, tpm: u64) -> String {
    format!(
        "{store}\n[[keys]]\nid = \"req\"\nkey_env = \"SY_REQ_KEY\"\nrpm = 10\ntpm = 1000000\n\
         [[keys]]\nid = \"tok\"\nkey_env = \"SY_TOK_KEY\"\nrpm = 1000\ntpm = {tpm}\n\
         [[keys]]\nid = \"probe\"\nkey_env = \"SY_PROBE_KEY\"\n"
    )
}

/// 200 concurrent requests spread over `ports` with `key`; returns (admitted, admitted tokens).
async fn burst(ports: &[u16], key: &str) -> (usize, u64) {
    let mut tasks = Vec::new();
    for i in 0..200 {
        let port = ports[i % ports.len()];
        let key = key.to_string();
        tasks.push(tokio::spawn(async move { post_chat(port, &key, 1).await }));
    }
    let (mut ok, mut tokens) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                ok += 1;
                tokens += r.json()["usage"]["total_tokens"].as_u64().unwrap();
            }
            429 => assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded"),
            other => panic!("unexpected status {other}: {}", r.body),
        }
    }
    (ok, tokens)
}

async fn exactness(ports: &[u16], per_request: u64, tpm: u64) {
    away_from_minute_boundary(Duration::from_secs(20));
    let (ok, _) = burst(ports, REQ_KEY).await;
    assert_eq!(ok, 10, "requests per minute");
    let (ok, tokens) = burst(ports, TOK_KEY).await;
    assert_eq!(ok as u64, tpm / per_request, "tokens per minute ({per_request} tokens per request, limit {tpm})");
    assert!(tokens <= tpm, "admitted {tokens} tokens over a limit of {tpm}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sharing_redis_enforce_one_exact_limit() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let redis_port = free_port();
    let _redis = redis_server(dir.path(), redis_port);
    let store = format!("[state]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{redis_port}\"\n");
    // Size the token limit from a first replica's real count.
    let probe = switchyard(dir.path(), &model, &config(&store, 1_000_000), &ENV);
    let per_request = tokens_per_request(probe.port).await;
    drop(probe);
    let tpm = per_request * 15 / 2;
    let replicas: Vec<Proc> = (0..3).map(|_| switchyard(dir.path(), &model, &config(&store, tpm), &ENV)).collect();
    let ports: Vec<u16> = replicas.iter().map(|p| p.port).collect();
    exactness(&ports, per_request, tpm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_on_the_embedded_store_is_exact_too() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let store = format!("[state]\npath = \"{}\"\n", dir.path().join("state.jsonl").display());
    let probe = switchyard(dir.path(), &model, &config(&store, 1_000_000), &ENV);
    let per_request = tokens_per_request(probe.port).await;
    drop(probe);
    let tpm = per_request * 15 / 2;
    let server = switchyard(dir.path(), &model, &config(&store, tpm), &ENV);
    assert_eq!(tokens_per_request(server.port).await, per_request);
    exactness(&[server.port], per_request, tpm).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_spend_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let cfg = format!(
        "[auth]\nadmin_token_env = \"SY_ADMIN\"\n[state]\npath = \"{}\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_KEY\"\nbudget_usd = 100\nbudget_period = \"monthly\"\n[prices.tiny]\ninput_per_million = 1000\noutput_per_million = 3000\n",
        dir.path().join("state.jsonl").display()
    );
    let env = [("SY_KEY", "sy-durability-test-key"), ("SY_ADMIN", "durability-admin")];
    let spend = |port: u16| async move {
        let r = http(port, "GET", "/admin/keys/k", &[("authorization", "Bearer durability-admin")], None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["spend"]["spent_usd"].as_f64().unwrap()
    };
    let mut server = switchyard(dir.path(), &model, &cfg, &env);
    let mut charged = 0.0;
    for n in 1..=12 {
        let r = post_chat(server.port, "sy-durability-test-key", n).await;
        assert_eq!(r.status, 200, "{}", r.body);
        charged += r.header("x-switchyard-cost-usd").unwrap().parse::<f64>().unwrap();
    }
    let before = spend(server.port).await;
    assert!((before - charged).abs() < 1e-9, "{before} vs {charged}");
    server.kill(); // SIGKILL: no shutdown hook runs.
    let server = switchyard(dir.path(), &model, &cfg, &env);
    let after = spend(server.port).await;
    assert_eq!(after, before, "spend after the restart");
}

async fn status_of(port: u16, key: &str) -> u16 {
    post_chat(port, key, 1).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_follows_fail_open_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let redis_port = free_port();
    let mut redis = redis_server(dir.path(), redis_port);
    let cfg = |fail_open: bool| {
        format!(
            "[state]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{redis_port}\"\nfail_open = {fail_open}\n[[keys]]\nid = \"k\"\nkey_env = \"SY_REQ_KEY\"\nrpm = 100000\n"
        )
    };
    let open = switchyard(dir.path(), &model, &cfg(true), &ENV);
    let closed = switchyard(dir.path(), &model, &cfg(false), &ENV);
    assert_eq!(status_of(open.port, REQ_KEY).await, 200);
    assert_eq!(status_of(closed.port, REQ_KEY).await, 200);

    redis.kill();
    assert_eq!(status_of(open.port, REQ_KEY).await, 200, "fail_open serves without limits");
    let r = post_chat(closed.port, REQ_KEY, 1).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "server_error");
    for (port, outcome) in [(open.port, "fail_open"), (closed.port, "refused")] {
        let m = http(port, "GET", "/metrics", &[], None).await.body;
        let series = format!("llm_state_store_errors_total{{outcome=\"{outcome}\"}} ");
        let count = m.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.parse::<u64>().ok());
        assert!(count.is_some_and(|n| n >= 1), "{series}: {count:?}\n{m}");
        assert_eq!(http(port, "GET", "/health", &[], None).await.status, 200);
    }

    // Redis comes back on the same port: both recover by themselves.
    let _redis = redis_server(dir.path(), redis_port);
    let start = Instant::now();
    while status_of(closed.port, REQ_KEY).await != 200 {
        assert!(start.elapsed() < Duration::from_secs(20), "no recovery after Redis returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_of(open.port, REQ_KEY).await, 200);
    let r = post_chat(open.port, REQ_KEY, 1).await;
    assert_eq!(r.header("x-ratelimit-limit-requests"), Some("100000"), "limits apply again");
}

#[test]
fn refuses_to_listen_beyond_loopback_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    // Fails before binding anything: no socket beyond loopback is opened.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--listen", &format!("0.0.0.0:{}", free_port())])
        .arg("--model")
        .arg(&model)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refusing to listen on 0.0.0.0") && stderr.contains("--insecure"), "{stderr}");
}
