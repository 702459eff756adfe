//! API keys, rate limits, budgets and the gateway metrics through the HTTP
//! API (router, no socket), on the tiny random-weight model with the
//! embedded state store.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{assert_openai_error, send, send_with, start_with_config, tiny_model, Reply, TestApp, TINY};
use serde_json::{json, Value};

/// A tiny-model request that generates exactly `max_tokens` tokens.
fn chat(max_tokens: u32) -> Vec<u8> {
    json!({"model": TINY, "messages": [{"role": "user", "content": "hello world"}], "max_tokens": max_tokens,
           "temperature": 0, "ignore_eos": true})
    .to_string()
    .into_bytes()
}

fn app(toml: &str) -> TestApp {
    let (dir, path) = tiny_model();
    let toml = toml.replace("STATE_PATH", &dir.path().join("state.jsonl").display().to_string());
    start_with_config(&path, TINY, &toml, Some(dir))
}

async fn call(app: &TestApp, key: &str, body: Vec<u8>) -> Reply {
    send_with(app, "POST", "/v1/chat/completions", Some(body), &[("authorization", &format!("Bearer {key}"))]).await
}

fn header(r: &Reply, name: &str) -> String {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn header_u64(r: &Reply, name: &str) -> u64 {
    header(r, name).parse().unwrap_or_else(|_| panic!("header {name} missing or not a number: {:?}", r.headers))
}

async fn metrics(app: &TestApp) -> String {
    send(app, "GET", "/metrics", None).await.text()
}

async fn admin(app: &TestApp, token: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
    let auth = format!("Bearer {token}");
    send_with(app, method, uri, body.map(|b| b.to_string().into_bytes()), &[("authorization", &auth)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_unknown_keys_are_401_and_public_routes_stay_open() {
    std::env::set_var("SY_T401_KEY", "sy-config-key-for-the-401-test");
    let app = app("[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"cfg\"\nkey_env = \"SY_T401_KEY\"\n");
    let r = send(&app, "POST", "/v1/chat/completions", Some(chat(2))).await;
    assert_openai_error(&r, 401, None);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    assert_eq!(header(&r, "www-authenticate"), "Bearer");
    assert_openai_error(&call(&app, "sy-not-a-key", chat(2)).await, 401, None);
    assert_openai_error(&send(&app, "GET", "/v1/models", None).await, 401, None);
    // The configured key works as a bearer token and as x-api-key.
    assert_eq!(call(&app, "sy-config-key-for-the-401-test", chat(2)).await.status, 200);
    let r = send_with(&app, "GET", "/v1/models", None, &[("x-api-key", "sy-config-key-for-the-401-test")]).await;
    assert_eq!(r.status, 200);
    for public in ["/health", "/ready", "/metrics"] {
        assert_eq!(send(&app, "GET", public, None).await.status, 200, "{public}");
    }
    // No admin token configured: there is no admin API.
    assert_openai_error(&admin(&app, "anything", "GET", "/admin/keys", None).await, 404, None);
    let m = metrics(&app).await;
    assert!(m.contains("llm_requests_total{model=\"unknown\",status=\"401\"} 3"), "{m}");
    assert!(m.contains(&format!("llm_requests_total{{model=\"{TINY}\",status=\"200\"}} 1")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_lifecycle_and_keys_hashed_at_rest() {
    std::env::set_var("SY_TADMIN_TOKEN", "admin-secret-1");
    let (dir, path) = tiny_model();
    let state = dir.path().join("state.jsonl");
    let toml = format!("[auth]\nadmin_token_env = \"SY_TADMIN_TOKEN\"\n[state]\npath = \"{}\"\n", state.display());
    let app = start_with_config(&path, TINY, &toml, Some(dir));
    let t = "admin-secret-1";

    assert_openai_error(&send(&app, "GET", "/admin/keys", None).await, 401, None);
    assert_openai_error(&admin(&app, "wrong", "GET", "/admin/keys", None).await, 401, None);
    let body = json!({"id": "team-a", "user": "alice", "limits": {"rpm": 100}, "metadata": {"team": "a"}});
    let r = admin(&app, t, "POST", "/admin/keys", Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sy-") && key.len() > 40, "{key}");
    assert_eq!((created["id"].as_str(), created["user"].as_str()), (Some("team-a"), Some("alice")));
    assert_openai_error(&admin(&app, t, "POST", "/admin/keys", Some(body)).await, 409, None);
    let bad = admin(&app, t, "POST", "/admin/keys", Some(json!({"limits": {"rpm": 0}}))).await;
    assert_openai_error(&bad, 400, Some("limits"));
    let bad = admin(&app, t, "POST", "/admin/keys", Some(json!({"rmp": 5}))).await;
    assert_openai_error(&bad, 400, None);

    // Shown once: neither the list nor the key's page nor the state file holds it.
    let list = admin(&app, t, "GET", "/admin/keys", None).await;
    assert_eq!(list.json()["data"].as_array().map(Vec::len), Some(1));
    let shown = admin(&app, t, "GET", "/admin/keys/team-a", None).await;
    assert_eq!(shown.status, 200);
    for text in [list.text(), shown.text()] {
        assert!(!text.contains(&key) && !text.contains(&key[3..]), "{text}");
    }
    let at_rest = std::fs::read_to_string(&state).unwrap();
    assert!(!at_rest.contains(&key[3..]), "{at_rest}");
    assert!(at_rest.contains(&gateway::policy::keys::hash_key(&key)), "{at_rest}");
    assert_openai_error(&admin(&app, t, "GET", "/admin/keys/nope", None).await, 404, None);

    assert_eq!(call(&app, &key, chat(2)).await.status, 200);
    let r = admin(&app, t, "PATCH", "/admin/keys/team-a", Some(json!({"models": ["another-model"]}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(&app, &key, chat(2)).await;
    assert_openai_error(&r, 403, Some("model"));
    assert_eq!(r.json()["error"]["code"], "model_not_allowed");
    admin(&app, t, "PATCH", "/admin/keys/team-a", Some(json!({"models": null}))).await;
    assert_eq!(call(&app, &key, chat(2)).await.status, 200);
    let r = admin(&app, t, "DELETE", "/admin/keys/team-a", None).await;
    assert_eq!(r.json()["revoked"], true);
    let r = call(&app, &key, chat(2)).await;
    assert_openai_error(&r, 401, None);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("revoked"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limit_gives_429_with_openai_headers() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(5));
    std::env::set_var("SY_T429_KEY", "sy-key-for-the-429-test");
    let app =
        app("[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_T429_KEY\"\nrpm = 2\ntpm = 100000\n");
    let key = "sy-key-for-the-429-test";
    let first = call(&app, key, chat(2)).await;
    assert_eq!(first.status, 200);
    assert_eq!(header_u64(&first, "x-ratelimit-limit-requests"), 2);
    assert_eq!(header_u64(&first, "x-ratelimit-remaining-requests"), 1);
    assert_eq!(header_u64(&first, "x-ratelimit-limit-tokens"), 100_000);
    let reset = header(&first, "x-ratelimit-reset-requests");
    assert!(reset.ends_with('s'), "{reset}");
    assert_eq!(header_u64(&call(&app, key, chat(2)).await, "x-ratelimit-remaining-requests"), 0);
    let r = call(&app, key, chat(2)).await;
    assert_openai_error(&r, 429, None);
    let e = &r.json()["error"];
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("requests"), Some("rate_limit_exceeded")));
    let retry = header_u64(&r, "retry-after");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(header_u64(&r, "x-ratelimit-remaining-requests"), 0);
    let m = metrics(&app).await;
    assert!(m.contains("llm_rate_limited_total{reason=\"requests\"} 1"), "{m}");
    assert!(m.contains(&format!("llm_requests_total{{model=\"{TINY}\",status=\"429\"}} 1")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_usage_is_settled_and_counted() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(5));
    std::env::set_var("SY_TSTREAM_KEY", "sy-key-for-the-stream-test");
    let app = app(
        "[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_TSTREAM_KEY\"\ntpm = 100000\n[prices.tiny]\ninput_per_million = 1000\noutput_per_million = 2000\n",
    );
    let key = "sy-key-for-the-stream-test";
    let mut body: Value = serde_json::from_slice(&chat(7)).unwrap();
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let streamed = call(&app, key, body.to_string().into_bytes()).await;
    assert_eq!(streamed.status, 200);
    let usage = streamed.sse_chunks().last().map(|c| c["usage"].clone()).unwrap();
    let (prompt, completion) = (usage["prompt_tokens"].as_u64().unwrap(), usage["completion_tokens"].as_u64().unwrap());
    assert_eq!(completion, 7);
    // The next request is admitted against what the stream really used
    // (prompt + 7), plus its own reservation (prompt + 5).
    let next = call(&app, key, chat(5)).await;
    assert_eq!(header_u64(&next, "x-ratelimit-remaining-tokens"), 100_000 - (prompt + 7) - (prompt + 5));
    // Cost header: prompt × $1000/M + 5 × $2000/M.
    let cost: f64 = header(&next, "x-switchyard-cost-usd").parse().unwrap();
    assert!((cost - (prompt as f64 * 1e-3 + 5.0 * 2e-3)).abs() < 1e-9, "{cost}");
    let m = metrics(&app).await;
    assert!(m.contains(&format!("llm_tokens_total{{model=\"{TINY}\",direction=\"output\"}} 12")), "{m}");
    assert!(m.contains(&format!("llm_tokens_total{{model=\"{TINY}\",direction=\"input\"}} {}", 2 * prompt)), "{m}");
    let dollars = 2.0 * prompt as f64 * 1e-3 + 12.0 * 2e-3;
    let line = m.lines().find(|l| l.starts_with("llm_cost_dollars{")).unwrap();
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - dollars).abs() < 1e-9, "{line} vs {dollars}");
    assert!(m.contains("llm_gateway_overhead_seconds_count 2"), "{m}");
    assert!(m.contains(&format!("llm_request_latency_seconds_count{{model=\"{TINY}\"}} 2")), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_budget_is_insufficient_quota_and_readable() {
    std::env::set_var("SY_TBUDGET_KEY", "sy-key-for-the-budget-test");
    std::env::set_var("SY_TBUDGET_ADMIN", "admin-secret-2");
    let app = app(
        "[auth]\nadmin_token_env = \"SY_TBUDGET_ADMIN\"\n[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_TBUDGET_KEY\"\nbudget_usd = 0.1\nbudget_period = \"total\"\n[prices.tiny]\ninput_per_million = 1000\noutput_per_million = 1000\n",
    );
    let key = "sy-key-for-the-budget-test";
    let mut spent = 0.0;
    let mut admitted = 0;
    let refusal = loop {
        let r = call(&app, key, chat(8)).await;
        if r.status != 200 {
            break r;
        }
        admitted += 1;
        spent += header(&r, "x-switchyard-cost-usd").parse::<f64>().unwrap();
        assert!(admitted < 100, "the budget never ran out");
    };
    assert!(admitted >= 1);
    assert_openai_error(&refusal, 429, None);
    let e = &refusal.json()["error"];
    assert_eq!((e["type"].as_str(), e["code"].as_str()), (Some("insufficient_quota"), Some("insufficient_quota")));
    assert!(spent <= 0.1 + 1e-12, "{spent}");
    let shown = admin(&app, "admin-secret-2", "GET", "/admin/keys/k", None).await.json();
    assert_eq!(shown["source"], "config");
    let s = &shown["spend"];
    assert!((s["spent_usd"].as_f64().unwrap() - spent).abs() < 1e-9, "{shown}");
    assert!((s["remaining_usd"].as_f64().unwrap() - (0.1 - spent)).abs() < 1e-9, "{shown}");
    assert_eq!(s["period"], "total");
    let m = metrics(&app).await;
    assert!(m.contains("llm_budget_exceeded_total 1"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_admitted_exactly() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(5));
    std::env::set_var("SY_TEXACT_KEY", "sy-key-for-the-exactness-test");
    // 10 requests per minute, and tokens for exactly 10 requests' reservations.
    let app = std::sync::Arc::new(app(
        "[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_TEXACT_KEY\"\nrpm = 10\ntpm = 100000\n",
    ));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(
            async move { call(&app, "sy-key-for-the-exactness-test", chat(1)).await.status.as_u16() },
        ));
    }
    let mut by_status = std::collections::BTreeMap::new();
    for t in tasks {
        *by_status.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(by_status, [(200, 10), (429, 190)].into_iter().collect(), "{by_status:?}");
}

/// A system prompt, `turns` alternating user/assistant turns of ~60 tokens, a last user turn.
fn long_chat(turns: usize, truncation: Option<&str>) -> Value {
    let mut messages = vec![json!({"role": "system", "content": "You answer briefly."})];
    for i in 0..turns {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages
            .push(json!({"role": role, "content": format!("turn {i}: {}", "lorem ipsum dolor sit amet ".repeat(12))}));
    }
    messages.push(json!({"role": "user", "content": "And the last question?"}));
    let mut body = json!({"model": TINY, "messages": messages, "max_tokens": 16, "temperature": 0, "ignore_eos": true});
    if let Some(t) = truncation {
        body["truncation"] = json!(t);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_chats_are_rejected_or_truncated_as_asked() {
    let app = common::tiny_app(1 << 20);
    let post = |body: Value| send(&app, "POST", "/v1/chat/completions", Some(body.to_string().into_bytes()));
    let r = post(long_chat(20, None)).await;
    assert_openai_error(&r, 400, Some("messages"));
    assert_eq!(r.json()["error"]["code"], "context_length_exceeded");
    assert_openai_error(&post(long_chat(20, Some("sometimes"))).await, 400, Some("truncation"));

    let r = post(long_chat(20, Some("auto"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let dropped: usize = header(&r, "x-switchyard-truncated-messages").parse().unwrap();
    assert!((1..20).contains(&dropped), "{dropped}");
    let prompt = r.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(prompt + 16 <= u64::from(engine::testing::TINY_CONTEXT), "{prompt}");
    // Exactly the oldest `dropped` turns went: the system prompt and the last user turn stayed.
    let mut expected = long_chat(20, None);
    let kept: Vec<Value> = expected["messages"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || *i > dropped)
        .map(|(_, m)| m.clone())
        .collect();
    expected["messages"] = json!(kept);
    let same = post(expected.clone()).await;
    assert_eq!(same.status, 200, "{}", same.text());
    assert_eq!(same.json()["usage"]["prompt_tokens"].as_u64(), Some(prompt));
    // One turn fewer dropped would not have fitted.
    let mut one_more = long_chat(20, None);
    let with_one_more: Vec<Value> = one_more["messages"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || *i >= dropped)
        .map(|(_, m)| m.clone())
        .collect();
    one_more["messages"] = json!(with_one_more);
    assert_eq!(post(one_more).await.status, 400);

    // A last user turn that alone overflows cannot be saved by truncation.
    let mut hopeless = long_chat(2, Some("auto"));
    hopeless["messages"][3]["content"] = json!("word ".repeat(600));
    let r = post(hopeless).await;
    assert_openai_error(&r, 400, Some("messages"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("even with every droppable turn removed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_can_be_the_server_default() {
    let app = app("[limits]\ntruncation = \"auto\"\n");
    let post = |body: Value| send(&app, "POST", "/v1/chat/completions", Some(body.to_string().into_bytes()));
    let r = post(long_chat(20, None)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers.contains_key("x-switchyard-truncated-messages"));
    assert_eq!(post(long_chat(20, Some("disabled"))).await.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_limits_span_all_of_a_users_keys() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(5));
    std::env::set_var("SY_TUSER_A", "sy-user-limit-key-a");
    std::env::set_var("SY_TUSER_B", "sy-user-limit-key-b");
    let app = app(
        "[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"a\"\nkey_env = \"SY_TUSER_A\"\nuser = \"alice\"\nrpm = 10\n\
         [[keys]]\nid = \"b\"\nkey_env = \"SY_TUSER_B\"\nuser = \"alice\"\nrpm = 10\n[[users]]\nid = \"alice\"\nrpm = 3\n",
    );
    let statuses = [
        call(&app, "sy-user-limit-key-a", chat(1)).await.status,
        call(&app, "sy-user-limit-key-b", chat(1)).await.status,
        call(&app, "sy-user-limit-key-a", chat(1)).await.status,
    ];
    assert_eq!(statuses.map(|s| s.as_u16()), [200, 200, 200]);
    let r = call(&app, "sy-user-limit-key-b", chat(1)).await;
    assert_openai_error(&r, 429, None);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("this user"), "{}", r.text());
    // The user's window binds hardest, so the headers report it.
    assert_eq!(header_u64(&r, "x-ratelimit-limit-requests"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_pays_for_what_was_generated() {
    common::away_from_minute_boundary(std::time::Duration::from_secs(5));
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    std::env::set_var("SY_TLEAVE_KEY", "sy-key-for-the-leaving-test");
    let app = app("[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"k\"\nkey_env = \"SY_TLEAVE_KEY\"\ntpm = 100000\n");
    let mut body: Value = serde_json::from_slice(&chat(400)).unwrap();
    body["stream"] = json!(true);
    let req = axum::http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", "Bearer sy-key-for-the-leaving-test")
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.into_body();
    let mut seen = 0;
    while seen < 3 {
        let frame = stream.frame().await.unwrap().unwrap();
        if frame.data_ref().is_some_and(|d| d.starts_with(b"data: {")) {
            seen += 1;
        }
    }
    drop(stream); // the client goes away
    let output = || async {
        let m = metrics(&app).await;
        let line = m
            .lines()
            .find(|l| l.starts_with(&format!("llm_tokens_total{{model=\"{TINY}\",direction=\"output\"}}")))
            .map(str::to_string);
        line.and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
    };
    let start = std::time::Instant::now();
    let charged = loop {
        if let Some(n) = output().await {
            break n;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "the interrupted request was never settled");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!((1..400).contains(&charged), "charged {charged} of 400 reserved tokens");
    // And the window got the unused reservation back.
    let next = call(&app, "sy-key-for-the-leaving-test", chat(1)).await;
    let prompt = next.json()["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(header_u64(&next, "x-ratelimit-remaining-tokens"), 100_000 - (prompt + charged) - (prompt + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_can_keep_their_prefix_cache_to_themselves() {
    for (var, key) in
        [("SY_TISO_A", "sy-isolation-key-a"), ("SY_TISO_B", "sy-isolation-key-b"), ("SY_TISO_C", "sy-isolation-key-c")]
    {
        std::env::set_var(var, key);
    }
    // a and b share nothing; c shares with every other shared key (none here).
    let app = app(
        "[state]\npath = \"STATE_PATH\"\n[[keys]]\nid = \"a\"\nkey_env = \"SY_TISO_A\"\ncache_isolation = \"key\"\n\
         [[keys]]\nid = \"b\"\nkey_env = \"SY_TISO_B\"\ncache_isolation = \"key\"\n[[keys]]\nid = \"c\"\nkey_env = \"SY_TISO_C\"\n",
    );
    let body = json!({"model": TINY, "max_tokens": 1, "temperature": 0,
        "messages": [{"role": "user", "content": "hello world ".repeat(20)}]})
    .to_string();
    let cached = |r: &Reply| r.json()["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert_eq!(cached(&call(&app, "sy-isolation-key-a", body.clone().into_bytes()).await), 0);
    assert!(
        cached(&call(&app, "sy-isolation-key-a", body.clone().into_bytes()).await) >= 16,
        "a reuses its own prefix"
    );
    assert_eq!(cached(&call(&app, "sy-isolation-key-b", body.clone().into_bytes()).await), 0, "b cannot see a's");
    assert_eq!(
        cached(&call(&app, "sy-isolation-key-c", body.clone().into_bytes()).await),
        0,
        "the shared pool has not seen it"
    );
}
