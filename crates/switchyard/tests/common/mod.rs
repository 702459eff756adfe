//! Harness for tests that run real `switchyard serve` processes (and a
//! real `redis-server`) on free loopback ports, and talk HTTP to them.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub fn redis_server(dir: &Path, port: u16) -> Proc {
    let log = dir.join(format!("redis-{port}.log"));
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting redis-server (scripts/setup-redis.sh installs it): {e}"));
    let mut proc = Proc { child, port, log };
    wait_for_port(port, Duration::from_secs(10), &mut proc);
    proc
}

fn wait_for_port(port: u16, limit: Duration, p: &mut Proc) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("the process exited ({status}) before listening on {port}:\n{}", p.log_text());
        }
        assert!(start.elapsed() < limit, "nothing listens on port {port} after {limit:?}:\n{}", p.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `switchyard serve` on the tiny model with `config`, `env` set.
pub fn switchyard(dir: &Path, model: &Path, config: &str, env: &[(&str, &str)]) -> Proc {
    let port = free_port();
    let cfg = dir.join(format!("config-{port}.toml"));
    std::fs::write(&cfg, config).unwrap_or_else(|e| panic!("writing config: {e}"));
    let mut args: Vec<std::ffi::OsString> = ["serve", "--model-name", "tiny", "--model"].map(Into::into).into();
    args.extend([model.as_os_str().to_owned(), "--config".into(), cfg.into_os_string()]);
    spawn_switchyard(dir, port, "switchyard", &args, env)
}

/// `switchyard mock-provider` with `args`.
pub fn mock_provider(dir: &Path, args: &[&str]) -> Proc {
    mock_provider_on(dir, free_port(), args)
}

/// `switchyard mock-provider` with `args` on a chosen port.
pub fn mock_provider_on(dir: &Path, port: u16, args: &[&str]) -> Proc {
    let mut all: Vec<std::ffi::OsString> = vec!["mock-provider".into()];
    all.extend(args.iter().map(Into::into));
    spawn_switchyard(dir, port, "mock", &all, &[])
}

/// The binary with `args` and `--listen 127.0.0.1:port`, logging to the
/// directory; returns once the port accepts connections.
fn spawn_switchyard(dir: &Path, port: u16, name: &str, args: &[std::ffi::OsString], env: &[(&str, &str)]) -> Proc {
    let log = dir.join(format!("{name}-{port}.log"));
    let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("starting switchyard {name}: {e}"));
    let mut proc = Proc { child, port, log };
    wait_for_port(port, Duration::from_secs(60), &mut proc);
    proc
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// `data:` payloads of an SSE body, in order.
    pub fn sse_data(&self) -> Vec<String> {
        self.sse_field("data")
    }

    /// `event:` names of an SSE body, in order.
    pub fn sse_events(&self) -> Vec<String> {
        self.sse_field("event")
    }

    fn sse_field(&self, field: &str) -> Vec<String> {
        let prefix = format!("{field}:");
        self.body.lines().filter_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim_start().to_string()).collect()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (`Connection: close`), the whole response read.
pub async fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Response {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
        let body = body.unwrap_or("");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(Duration::from_secs(60), attempt).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => panic!("{method} {path} on port {port}: {e}"),
        Err(_) => panic!("{method} {path} on port {port}: no response within 60 s"),
    };
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_string() };
    Response { status, headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `POST /v1/chat/completions` of `chat(max_tokens)` with `key`.
pub async fn post_chat(port: u16, key: &str, max_tokens: u32) -> Response {
    http(port, "POST", "/v1/chat/completions", &[("authorization", &format!("Bearer {key}"))], Some(&chat(max_tokens)))
        .await
}

/// A tiny-model chat request that generates exactly `max_tokens` tokens.
pub fn chat(max_tokens: u32) -> String {
    serde_json::json!({"model": "tiny", "messages": [{"role": "user", "content": "hello world"}],
        "max_tokens": max_tokens, "temperature": 0, "ignore_eos": true})
    .to_string()
}

pub fn tiny_model(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    engine::testing::write_tiny_gguf(&path).unwrap_or_else(|e| panic!("writing the tiny model: {e}"));
    path
}

/// Waits, if needed, until the current UTC minute has at least `margin`
/// left: per-minute limits use fixed windows, and a burst that straddles a
/// window boundary legitimately gets two windows' worth.
pub fn away_from_minute_boundary(margin: Duration) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let into = Duration::from_millis((now.as_millis() % 60_000) as u64);
    let left = Duration::from_secs(60) - into;
    if left < margin {
        std::thread::sleep(left + Duration::from_millis(200));
    }
}

/// The tiny model plus one mock-provider backend per behaviour (`ok`,
/// `failing`, `limited`, `cut`, `slow`; `down` has nothing listening), each
/// serving `<behaviour>-model`; `extra` is prepended to the config.
pub struct RemoteSetup {
    pub dir: tempfile::TempDir,
    pub mocks: Vec<Proc>,
    pub gateway: Proc,
    /// The port `down` points at, where nothing listens (yet).
    pub down_port: u16,
}

pub fn setup_remote(extra: &str, env: &[(&str, &str)]) -> RemoteSetup {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let behaviours: [(&str, &[&str]); 5] = [
        ("ok", &["--tokens", "8"]),
        ("failing", &["--fail-every", "1"]),
        ("limited", &["--rate-limit-every", "1"]),
        ("cut", &["--cut-after", "2"]),
        ("slow", &["--latency-ms", "3000"]),
    ];
    let mut mocks = Vec::new();
    // `STATE_DIR` in the extra config is this test's own directory.
    let mut config = extra.replace("STATE_DIR", &dir.path().display().to_string());
    for (name, args) in behaviours {
        let mock = mock_provider(dir.path(), args);
        config.push_str(&format!(
            "\n[[backends]]\nname = \"{name}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\nfirst_byte_timeout_ms = 300\n[[backends.models]]\nname = \"{name}-model\"\nupstream = \"mock-small\"\ncontext_length = 4096\n",
            mock.port
        ));
        mocks.push(mock);
    }
    // Anthropic's Messages API, served by the healthy and the failing mocks.
    for (name, mock) in [("claude", &mocks[0]), ("claude-failing", &mocks[1])] {
        config.push_str(&format!(
            "\n[[backends]]\nname = \"{name}\"\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{}/v1\"\napi_key_env = \"SY_ANTHROPIC_TEST_KEY\"\n[[backends.models]]\nname = \"{name}-model\"\nupstream = \"claude-mock\"\n",
            mock.port
        ));
    }
    let down_port = free_port();
    config.push_str(&format!(
        "\n[[backends]]\nname = \"down\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n[[backends.models]]\nname = \"down-model\"\n",
        down_port
    ));
    let mut env = env.to_vec();
    env.push(("SY_ANTHROPIC_TEST_KEY", "sk-ant-test"));
    let gateway = switchyard(dir.path(), &model, &config, &env);
    RemoteSetup { dir, mocks, gateway, down_port }
}

/// One mock-provider backend: its name, the mock's flags, and the TOML
/// that follows its `[[backends]]` header lines (models, options).
pub struct MockBackend<'a> {
    pub name: &'a str,
    pub args: &'a [&'a str],
    pub toml: &'a str,
}

/// The tiny model plus one OpenAI-shaped mock per `MockBackend` (in order
/// in `mocks`), with `extra` (routes, prices) appended to the config.
pub struct MockSetup {
    pub dir: tempfile::TempDir,
    pub mocks: Vec<Proc>,
    pub gateway: Proc,
}

pub fn setup_mocks(backends: &[MockBackend], extra: &str) -> MockSetup {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let mut mocks = Vec::new();
    let mut config = String::new();
    for b in backends {
        let mock = mock_provider(dir.path(), b.args);
        config.push_str(&format!(
            "[[backends]]\nname = \"{}\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\n{}\n",
            b.name, mock.port, b.toml
        ));
        mocks.push(mock);
    }
    config.push_str(extra);
    let gateway = switchyard(dir.path(), &model, &config, &[]);
    MockSetup { dir, mocks, gateway }
}

/// Requests a mock provider has answered (faults included).
pub async fn mock_requests(port: u16) -> u64 {
    http(port, "GET", "/mock/stats", &[], None).await.json()["requests"].as_u64().unwrap_or_default()
}
