//! Active health probes over real sockets: a backend whose server stops
//! answering has its circuit opened by the probe before any request fails
//! on it, and closed again when the server is back.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_port, http, mock_provider_on, mock_requests, setup_mocks, MockBackend};
use serde_json::json;
use std::time::{Duration, Instant};

async fn circuit_open(port: u16, model: &str) -> Option<bool> {
    let m = http(port, "GET", "/metrics", &[], None).await.body;
    let series = format!("llm_backend_circuit_open{{model=\"{model}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(&series)).map(|v| v.trim() == "1")
}

/// Polls until the probed model's circuit is `open` (bounded).
async fn wait_circuit(port: u16, open: bool) {
    let start = Instant::now();
    while circuit_open(port, "probed-model").await != Some(open) {
        assert!(start.elapsed() < Duration::from_secs(10), "the circuit never became open = {open}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_open_and_close_a_backend_s_circuit() {
    let probed_port = free_port();
    let extra = format!(
        "[[backends]]\nname = \"probed\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{probed_port}/v1\"\n\
         health_check_interval_ms = 100\nconnect_timeout_ms = 200\nfirst_byte_timeout_ms = 300\n\
         [[backends.models]]\nname = \"probed-model\"\nupstream = \"m\"\n\
         [[routes]]\nname = \"primary\"\nmodels = [\"probed-model\", \"ok-model\"]\nretries = 2\nbackoff_ms = 1000\nbreaker_cooldown_ms = 60000\n"
    );
    let s = setup_mocks(
        &[MockBackend { name: "ok", args: &[], toml: "[[backends.models]]\nname = \"ok-model\"\nupstream = \"m\"\n" }],
        &extra,
    );
    let port = s.gateway.port;
    let chat =
        json!({"model": "primary", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).to_string();
    let served = |r: &common::Response| r.header("x-switchyard-model").map(str::to_string);

    // Nothing listens: the probe opens the circuit with no request having
    // failed on it, and requests go straight to the healthy model (trying
    // the dead one would cost 3 attempts and 1 + 2 s of backoff).
    wait_circuit(port, true).await;
    let start = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat)).await;
    assert_eq!((r.status, served(&r).as_deref()), (200, Some("ok-model")), "{}", r.body);
    assert!(start.elapsed() < Duration::from_millis(900), "took {:?}: the dead model was tried", start.elapsed());

    // The server comes up: the probe closes the circuit (long before the 60 s cooldown).
    let mut mock = mock_provider_on(s.dir.path(), probed_port, &[]);
    wait_circuit(port, false).await;
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat)).await;
    assert_eq!((r.status, served(&r).as_deref()), (200, Some("probed-model")), "{}", r.body);
    assert_eq!(mock_requests(probed_port).await, 1);

    // And goes away again.
    mock.kill();
    wait_circuit(port, true).await;
    let start = Instant::now();
    let r = http(port, "POST", "/v1/chat/completions", &[], Some(&chat)).await;
    assert!(start.elapsed() < Duration::from_millis(900), "took {:?}", start.elapsed());
    assert_eq!((r.status, served(&r).as_deref()), (200, Some("ok-model")), "{}", r.body);
    assert_eq!(mock_requests(s.mocks[0].port).await, 2);
}
