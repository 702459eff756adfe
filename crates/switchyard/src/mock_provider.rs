//! `switchyard mock-provider`: a stand-in for the remote APIs the gateway
//! talks to (OpenAI-compatible servers and Anthropic's Messages API), so
//! routing, fallback, retries and streaming can be tested over real sockets
//! with no network. Deterministic answers; latency, errors, 429s and
//! streams cut in the middle on demand, per server (flags) or per request
//! (`x-mock-*` headers, which win).

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Clone)]
pub struct MockArgs {
    /// Address to listen on (loopback only in tests).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Model ids listed by `/v1/models` (any id is answered).
    #[arg(long, value_delimiter = ',', default_value = "mock-small,mock-large")]
    models: Vec<String>,
    /// Tokens per answer (fewer when the request's max_tokens is lower). Header: x-mock-tokens.
    #[arg(long, default_value_t = 8)]
    tokens: u32,
    /// Delay before the response starts. Header: x-mock-latency-ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Delay between streamed tokens. Header: x-mock-token-interval-ms.
    #[arg(long, default_value_t = 0)]
    token_interval_ms: u64,
    /// Every Nth request fails with 500 (0 = never). Header: x-mock-status (any status; 200 = no fault).
    #[arg(long, default_value_t = 0)]
    fail_every: u64,
    /// Every Nth request gets 429 with Retry-After (0 = never).
    #[arg(long, default_value_t = 0)]
    rate_limit_every: u64,
    /// The Retry-After of a 429, in seconds.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Streams stop after this many tokens, without finishing (0 = never). Header: x-mock-cut-after.
    #[arg(long, default_value_t = 0)]
    cut_after: u32,
    /// The log-probability given to every token when a request asks for logprobs. Header: x-mock-logprob.
    #[arg(long, default_value_t = -0.5, allow_hyphen_values = true)]
    logprob: f64,
    /// Answer with this text (one token per word) instead of "mock word1 word2 …"; `--tokens` is then ignored.
    #[arg(long)]
    reply: Option<String>,
    /// The chat answers' finish reason.
    #[arg(long, default_value = "length")]
    finish: String,
    /// Answer with the last user message's text, exactly. Header: x-mock-echo: 1.
    #[arg(long)]
    echo: bool,
    /// Stream the answer in chunks of this many bytes (whole characters) instead of one per word.
    /// Header: x-mock-chunk-bytes; or x-mock-chunk-at: 3,17,40 (cut at these byte offsets).
    #[arg(long)]
    chunk_bytes: Option<usize>,
    /// Request N is cut once, at byte N modulo the answer's length: N requests in a row try
    /// every boundary (for clients that cannot send x-mock headers, such as a gateway).
    #[arg(long)]
    chunk_sweep: bool,
    /// Cut each answer at random byte offsets (about one in four), from this seed and the
    /// request's number.
    #[arg(long)]
    chunk_random: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
}

struct Mock {
    args: MockArgs,
    requests: AtomicU64,
    /// The `data:` payloads of the last OpenAI-shaped stream sent.
    last_stream: std::sync::Mutex<Vec<String>>,
}

pub async fn run(args: MockArgs) -> Result<()> {
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    if let (Some(cert), Some(key)) = (args.tls_cert.clone(), args.tls_key.clone()) {
        tracing::info!(url = %format!("https://{addr}"), "mock provider listening");
        return serve_tls(listener, router(args), &cert, &key).await;
    }
    tracing::info!(url = %format!("http://{addr}"), "mock provider listening");
    // Like a real server: streamed chunks are not held back by Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(args)).await?;
    Ok(())
}

/// HTTPS: each accepted connection's TLS handshake, then the router over HTTP/1.1.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<()> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else { return };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

pub fn router(args: MockArgs) -> Router {
    let mock = Arc::new(Mock { args, requests: AtomicU64::new(0), last_stream: Default::default() });
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/messages", post(messages))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/moderations", post(moderations))
        .route("/mock/stats", get(stats))
        .route("/mock/last", get(last))
        .with_state(mock)
}

/// What one request gets, after flags and `x-mock-*` headers.
struct Plan {
    status: Option<StatusCode>,
    latency: Duration,
    interval: Duration,
    tokens: u32,
    cut_after: Option<u32>,
    logprob: f64,
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

impl Mock {
    fn plan(&self, headers: &HeaderMap, max_tokens: Option<u64>) -> Plan {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let a = &self.args;
        let every = |k: u64| k > 0 && n.is_multiple_of(k);
        let status = match header_u64(headers, "x-mock-status") {
            Some(code) => StatusCode::from_u16(code as u16).ok().filter(|s| *s != StatusCode::OK),
            None if every(a.rate_limit_every) => Some(StatusCode::TOO_MANY_REQUESTS),
            None if every(a.fail_every) => Some(StatusCode::INTERNAL_SERVER_ERROR),
            None => None,
        };
        let reply_tokens = a.reply.as_deref().map(|r| split_words(r).len() as u32);
        let tokens = header_u64(headers, "x-mock-tokens").map_or(reply_tokens.unwrap_or(a.tokens), |t| t as u32);
        let tokens = max_tokens.map_or(tokens, |m| tokens.min(m as u32)).max(1);
        let cut = header_u64(headers, "x-mock-cut-after").map_or(a.cut_after, |c| c as u32);
        Plan {
            status,
            latency: Duration::from_millis(header_u64(headers, "x-mock-latency-ms").unwrap_or(a.latency_ms)),
            interval: Duration::from_millis(
                header_u64(headers, "x-mock-token-interval-ms").unwrap_or(a.token_interval_ms),
            ),
            tokens,
            cut_after: (cut > 0).then_some(cut),
            logprob: headers
                .get("x-mock-logprob")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(a.logprob),
        }
    }
}

/// The deterministic answer: `tokens` words, or the first `tokens` words of the configured reply.
fn words(tokens: u32, reply: Option<&str>) -> Vec<String> {
    match reply {
        Some(r) => split_words(r).into_iter().take(tokens as usize).collect(),
        None => (0..tokens).map(|i| if i == 0 { "mock".to_string() } else { format!(" word{i}") }).collect(),
    }
}

/// The last user message's text (OpenAI chat, completions' prompt, or Anthropic messages).
fn last_user_text(body: &Value) -> String {
    if let Some(p) = body.get("prompt") {
        return p.as_str().map(str::to_string).unwrap_or_else(|| p.to_string());
    }
    let Some(last) = body
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")))
    else {
        return String::new();
    };
    match last.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect(),
        _ => String::new(),
    }
}

/// `text` cut at `offsets` (bytes, moved forward to character boundaries).
fn cut_at(text: &str, offsets: &[usize]) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    for &o in offsets {
        let mut o = o.min(text.len());
        while !text.is_char_boundary(o) {
            o += 1;
        }
        if o > at {
            out.push(text[at..o].to_string());
            at = o;
        }
    }
    if at < text.len() {
        out.push(text[at..].to_string());
    }
    out
}

/// The answer's streamed pieces: the echo or the words, then re-cut when
/// the request or the flags ask for chunks.
fn pieces(mock: &Mock, headers: &HeaderMap, body: &Value, tokens: u32) -> Vec<String> {
    let echo = mock.args.echo || headers.get("x-mock-echo").is_some_and(|v| v == "1");
    let base = if echo { split_words(&last_user_text(body)) } else { words(tokens, mock.args.reply.as_deref()) };
    let text: String = base.concat();
    if let Some(at) = headers.get("x-mock-chunk-at").and_then(|v| v.to_str().ok()) {
        let offsets: Vec<usize> = at.split(',').filter_map(|o| o.trim().parse().ok()).collect();
        return cut_at(&text, &offsets);
    }
    let n = mock.requests.load(Ordering::Relaxed);
    if mock.args.chunk_sweep && !text.is_empty() {
        return cut_at(&text, &[(n as usize) % text.len()]);
    }
    if let Some(seed) = mock.args.chunk_random {
        let mut x = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let offsets: Vec<usize> = (1..text.len())
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.is_multiple_of(4)
            })
            .collect();
        return cut_at(&text, &offsets);
    }
    let size = header_u64(headers, "x-mock-chunk-bytes").map(|n| n as usize).or(mock.args.chunk_bytes);
    match size {
        Some(n) if n > 0 => cut_at(&text, &(1..=text.len() / n).map(|k| k * n).collect::<Vec<_>>()),
        _ => base,
    }
}

/// Words with the spaces that follow them, so that they concatenate back to the text.
fn split_words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

/// OpenAI's chat `logprobs` of one streamed token.
fn chat_logprobs(word: &str, logprob: f64) -> Value {
    json!({"content": [{"token": word, "logprob": logprob, "bytes": word.as_bytes(), "top_logprobs": []}]})
}

/// Prompt size as the mock counts it: one token per 4 bytes of text.
fn prompt_tokens(body: &Value) -> u64 {
    let text = body.get("messages").or_else(|| body.get("prompt")).map(|v| v.to_string()).unwrap_or_default();
    (text.len() as u64).div_ceil(4).max(1)
}

fn error(status: StatusCode, anthropic: bool, retry_after_secs: u64) -> Response {
    let body = if anthropic {
        let kind = if status == StatusCode::TOO_MANY_REQUESTS { "rate_limit_error" } else { "api_error" };
        json!({"type": "error", "error": {"type": kind, "message": format!("mock provider: injected {status}")}})
    } else {
        let code = if status == StatusCode::TOO_MANY_REQUESTS { "rate_limit_exceeded" } else { "server_error" };
        json!({"error": {"message": format!("mock provider: injected {status}"), "type": code, "param": null, "code": code}})
    };
    let mut resp = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut().insert("retry-after", retry_after_secs.into());
    }
    resp
}

/// Sleeps for `wait` unless it is zero: a zero sleep still waits for the
/// timer's next millisecond tick, which would add ~1 ms to every answer (and
/// to every chunk) and line answers up on the ticks.
async fn pause(wait: Duration) {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Waits, then either the injected error or the answer's plan.
async fn begin(mock: &Mock, headers: &HeaderMap, body: &Value, anthropic: bool) -> Result<Plan, Response> {
    let max = body.get("max_tokens").or_else(|| body.get("max_completion_tokens")).and_then(Value::as_u64);
    let plan = mock.plan(headers, max);
    pause(plan.latency).await;
    match plan.status {
        Some(status) => Err(error(status, anthropic, mock.args.retry_after_secs)),
        None => Ok(plan),
    }
}

/// An OpenAI-shaped answer's parts.
struct Answer {
    plan: Plan,
    model: String,
    words: Vec<String>,
    usage: Value,
    id: String,
}

async fn answer(mock: &Mock, headers: &HeaderMap, body: &Value, id_prefix: &str) -> Result<Answer, Response> {
    let plan = begin(mock, headers, body, false).await?;
    let prompt = prompt_tokens(body);
    let words = pieces(mock, headers, body, plan.tokens);
    let n = words.len() as u64;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n});
    let id = format!("{id_prefix}-mock-{}", mock.requests.load(Ordering::Relaxed));
    Ok(Answer { model: model_of(body), words, usage, id, plan })
}

/// Deterministic unit vectors (8 dimensions unless `dimensions` asks
/// otherwise) from each input's bytes; one token per 4 bytes, as usage.
async fn embeddings(State(mock): State<Arc<Mock>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if let Err(e) = begin(&mock, &headers, &body, false).await {
        return e;
    }
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(|i| i.to_string()).collect(),
        _ => return error(StatusCode::BAD_REQUEST, false, 0),
    };
    let dims = body.get("dimensions").and_then(Value::as_u64).unwrap_or(8) as usize;
    let mut tokens = 0u64;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += text.len().div_ceil(4) as u64;
            let raw: Vec<f64> = (0..dims)
                .map(|d| (text.bytes().map(u64::from).sum::<u64>() + d as u64 * 7) as f64 % 13.0 + 1.0)
                .collect();
            let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
            json!({"object": "embedding", "index": i, "embedding": raw.iter().map(|x| x / norm).collect::<Vec<_>>()})
        })
        .collect();
    Json(json!({"object": "list", "data": data, "model": model_of(&body),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}))
    .into_response()
}

/// OpenAI's moderation shape from keywords: "kill", "attack", "bomb" are
/// violence; "hate" is hate; "idiot" is harassment; "hurt myself" is
/// self-harm. Scores 0.9 when flagged, 0.01 otherwise.
async fn moderations(State(mock): State<Arc<Mock>>, Json(body): Json<Value>) -> Response {
    mock.requests.fetch_add(1, Ordering::Relaxed);
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
        _ => return error(StatusCode::BAD_REQUEST, false, 0),
    };
    const RULES: [(&str, &[&str]); 4] = [
        ("violence", &["kill", "attack", "bomb"]),
        ("hate", &["hate"]),
        ("harassment", &["idiot"]),
        ("self-harm", &["hurt myself"]),
    ];
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let t = text.to_lowercase();
            let mut categories = serde_json::Map::new();
            let mut scores = serde_json::Map::new();
            for (cat, words) in RULES {
                let hit = words.iter().any(|w| t.contains(w));
                categories.insert(cat.into(), json!(hit));
                scores.insert(cat.into(), json!(if hit { 0.9 } else { 0.01 }));
            }
            let flagged = categories.values().any(|v| v == &json!(true));
            json!({"flagged": flagged, "categories": categories, "category_scores": scores})
        })
        .collect();
    Json(json!({"id": "modr-mock", "model": model_of(&body), "results": results})).into_response()
}

fn model_of(body: &Value) -> String {
    body.get("model").and_then(Value::as_str).unwrap_or("mock").to_string()
}

/// Streams `chunks` as SSE, one per token interval, then `tail` unless the plan cuts it.
fn sse(plan: &Plan, chunks: Vec<Event>, tail: Vec<Event>) -> Response {
    let interval = plan.interval;
    let (body, tail) = match plan.cut_after {
        Some(k) => (chunks.into_iter().take(k as usize + 1).collect::<Vec<_>>(), Vec::new()),
        None => (chunks, tail),
    };
    let events = stream::iter(body)
        .then(move |e| async move {
            pause(interval).await;
            e
        })
        .chain(stream::iter(tail))
        .map(Ok::<_, std::convert::Infallible>);
    Sse::new(events).into_response()
}

fn data(v: Value) -> String {
    v.to_string()
}

/// Payloads as `data:` events, remembered as the last stream sent (`/mock/last`).
fn events(mock: &Mock, chunks: Vec<String>, tail: Vec<String>) -> (Vec<Event>, Vec<Event>) {
    if let Ok(mut last) = mock.last_stream.lock() {
        *last = chunks.iter().chain(&tail).cloned().collect();
    }
    let to_events = |v: Vec<String>| v.into_iter().map(|p| Event::default().data(p)).collect();
    (to_events(chunks), to_events(tail))
}

async fn chat(State(mock): State<Arc<Mock>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Answer { plan, model, words, usage, id } = match answer(&mock, &headers, &body, "chatcmpl").await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let logprobs = body.get("logprobs").and_then(Value::as_bool) == Some(true);
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut v = json!({"id": id, "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": words.concat()}, "finish_reason": mock.args.finish}],
            "usage": usage});
        if logprobs {
            let content: Vec<Value> =
                words.iter().map(|w| chat_logprobs(w, plan.logprob)["content"][0].clone()).collect();
            v["choices"][0]["logprobs"] = json!({"content": content});
        }
        return Json(v).into_response();
    }
    // With a field the gateway does not model, so a relay that re-renders shows.
    let chunk = |delta: Value, finish: Value| {
        data(json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))
    };
    let mut chunks = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    chunks.extend(words.iter().map(|w| {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
            "system_fingerprint": "fp_mock", "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}]});
        if logprobs {
            c["choices"][0]["logprobs"] = chat_logprobs(w, plan.logprob);
        }
        data(c)
    }));
    let mut tail = vec![chunk(json!({}), json!(mock.args.finish))];
    if body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
        tail.push(data(json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [], "usage": usage})));
    }
    tail.push("[DONE]".into());
    let (chunks, tail) = events(&mock, chunks, tail);
    sse(&plan, chunks, tail)
}

async fn completions(State(mock): State<Arc<Mock>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Answer { plan, model, words, usage, id } = match answer(&mock, &headers, &body, "cmpl").await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let choice =
        |text: String, finish: Value| json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish});
    let logprobs = body.get("logprobs").and_then(Value::as_u64).is_some();
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        let mut c = choice(words.concat(), json!("length"));
        if logprobs {
            c["logprobs"] = json!({"tokens": words, "token_logprobs": vec![plan.logprob; words.len()],
                "top_logprobs": vec![json!({}); words.len()]});
        }
        return Json(json!({"id": id, "object": "text_completion", "created": 0, "model": model,
            "choices": [c], "usage": usage}))
        .into_response();
    }
    let chunk =
        |c: Value| data(json!({"id": id, "object": "text_completion", "created": 0, "model": model, "choices": [c]}));
    let chunks = words
        .iter()
        .map(|w| {
            let mut c = choice(w.clone(), Value::Null);
            if logprobs {
                c["logprobs"] = json!({"tokens": [w], "token_logprobs": [plan.logprob], "top_logprobs": [{}]});
            }
            chunk(c)
        })
        .collect();
    let mut tail = vec![chunk(choice(String::new(), json!("length")))];
    if body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
        tail.push(data(
            json!({"id": id, "object": "text_completion", "created": 0, "model": model, "choices": [], "usage": usage}),
        ));
    }
    tail.push("[DONE]".into());
    let (chunks, tail) = events(&mock, chunks, tail);
    sse(&plan, chunks, tail)
}

/// What the real Messages API refuses with 400, so clients that translate
/// to it are checked: the version header, `max_tokens`, roles that take
/// turns starting with the user, no system turns among the messages.
fn anthropic_shape_error(headers: &HeaderMap, body: &Value) -> Option<String> {
    if !headers.contains_key("anthropic-version") {
        return Some("anthropic-version: header is required".into());
    }
    if body.get("max_tokens").and_then(Value::as_u64).is_none() {
        return Some("max_tokens: Field required".into());
    }
    let roles: Vec<&str> = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|m| m.iter().filter_map(|m| m.get("role").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    let alternate = roles.iter().enumerate().all(|(i, r)| *r == if i % 2 == 0 { "user" } else { "assistant" });
    if roles.is_empty() || !alternate {
        return Some(format!(
            "messages: roles must alternate between user and assistant, starting with user: {roles:?}"
        ));
    }
    None
}

/// Anthropic's Messages API: `system`, `messages`, `max_tokens`, `stream`.
async fn messages(State(mock): State<Arc<Mock>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("x-mock-status").is_none() {
        if let Some(message) = anthropic_shape_error(&headers, &body) {
            mock.requests.fetch_add(1, Ordering::Relaxed);
            let e = json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}});
            return (StatusCode::BAD_REQUEST, Json(e)).into_response();
        }
    }
    let plan = match begin(&mock, &headers, &body, true).await {
        Ok(p) => p,
        Err(e) => return e,
    };
    let (model, prompt, words) = (model_of(&body), prompt_tokens(&body), pieces(&mock, &headers, &body, plan.tokens));
    let plan = Plan { tokens: words.len() as u32, ..plan };
    let id = format!("msg_mock_{}", mock.requests.load(Ordering::Relaxed));
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return Json(json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": words.concat()}], "stop_reason": "max_tokens", "stop_sequence": null,
            "usage": {"input_tokens": prompt, "output_tokens": plan.tokens}}))
        .into_response();
    }
    let event = |name: &str, v: Value| Event::default().event(name).data(v.to_string());
    let mut chunks = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": prompt, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    chunks.extend(words.iter().map(|w| {
        event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}),
        )
    }));
    let tail = vec![
        event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": null},
            "usage": {"output_tokens": plan.tokens}}),
        ),
        event("message_stop", json!({"type": "message_stop"})),
    ];
    // The two opening events are not tokens: a cut after k tokens keeps them.
    let plan = Plan { cut_after: plan.cut_after.map(|k| k + 1), ..plan };
    sse(&plan, chunks, tail)
}

async fn models(State(mock): State<Arc<Mock>>) -> Json<Value> {
    let data: Vec<Value> = mock
        .args
        .models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "mock"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// The payloads of the last OpenAI-shaped stream, in order (`[DONE]` included).
async fn last(State(mock): State<Arc<Mock>>) -> Json<Value> {
    Json(json!(mock.last_stream.lock().map(|l| l.clone()).unwrap_or_default()))
}

async fn stats(State(mock): State<Arc<Mock>>) -> Json<Value> {
    Json(json!({"requests": mock.requests.load(Ordering::Relaxed)}))
}
