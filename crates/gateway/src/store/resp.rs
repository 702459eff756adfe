//! A minimal Redis client: RESP2 over TCP, a few pooled connections, each
//! reconnected on the next call after it fails. Only what the Redis store
//! needs (commands as argument lists, replies as `Value`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// The connection failed or timed out: Redis is unreachable for now.
    #[error("redis at {addr}: {message}")]
    Io { addr: String, message: String },
    /// Redis answered with an error reply.
    #[error("redis error: {0}")]
    Server(String),
}

/// Where and how to connect, from `redis://[:password@]host:port[/db]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisAddr {
    pub host_port: String,
    pub password: Option<String>,
    pub db: u32,
}

impl RedisAddr {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("redis://").ok_or_else(|| format!("'{url}' does not start with redis://"))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let password = auth.map(|a| a.split_once(':').map_or(a, |(_, p)| p).to_string()).filter(|p| !p.is_empty());
        let (host_port, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (hp, db.parse().map_err(|_| format!("'{db}' is not a database number"))?),
            None => (rest, 0),
        };
        if !host_port.contains(':') || host_port.starts_with(':') {
            return Err(format!("'{url}' needs host:port"));
        }
        Ok(RedisAddr { host_port: host_port.to_string(), password, db })
    }
}

struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    async fn send(&mut self, args: &[&[u8]]) -> std::io::Result<Value> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out).await?;
        loop {
            if let Some((value, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(value);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// One reply from the front of `buf`, and its length; `None` if incomplete.
fn parse(buf: &[u8]) -> std::io::Result<Option<(Value, usize)>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
    let line = std::str::from_utf8(&buf[1..end]).map_err(|_| bad("reply line is not UTF-8"))?;
    let after = end + 2;
    let Some(&tag) = buf.first() else { return Ok(None) };
    let int = || line.parse::<i64>().map_err(|_| bad("bad integer in reply"));
    Ok(match tag {
        b'+' => Some((Value::Simple(line.to_string()), after)),
        b'-' => Some((Value::Error(line.to_string()), after)),
        b':' => Some((Value::Int(int()?), after)),
        b'$' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            let n = n as usize;
            if buf.len() < after + n + 2 {
                return Ok(None);
            }
            Some((Value::Bulk(Some(buf[after..after + n].to_vec())), after + n + 2))
        }
        b'*' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Value::Array(None), after)));
            }
            let mut items = Vec::with_capacity(n as usize);
            let mut at = after;
            for _ in 0..n {
                match parse(&buf[at..])? {
                    Some((v, used)) => {
                        items.push(v);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Some((Value::Array(Some(items)), at))
        }
        _ => return Err(bad("unknown reply type")),
    })
}

/// A small pool of connections; calls pick one round-robin.
pub struct Client {
    addr: RedisAddr,
    pool: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl Client {
    pub fn new(addr: RedisAddr, connections: usize, timeout: Duration) -> Self {
        let pool = (0..connections.max(1)).map(|_| Mutex::new(None)).collect();
        Client { addr, pool, next: AtomicUsize::new(0), timeout }
    }

    fn io(&self, message: impl std::fmt::Display) -> RespError {
        RespError::Io { addr: self.addr.host_port.clone(), message: message.to_string() }
    }

    async fn connect(&self) -> Result<Connection, RespError> {
        let tcp = TcpStream::connect(&self.addr.host_port).await.map_err(|e| self.io(e))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection { stream: tcp, buf: Vec::new() };
        if let Some(pw) = &self.addr.password {
            check(conn.send(&[b"AUTH", pw.as_bytes()]).await.map_err(|e| self.io(e))?)?;
        }
        if self.addr.db != 0 {
            let db = self.addr.db.to_string();
            check(conn.send(&[b"SELECT", db.as_bytes()]).await.map_err(|e| self.io(e))?)?;
        }
        Ok(conn)
    }

    /// Runs one command. An I/O failure or timeout drops the connection (the
    /// next call reconnects) and reports `RespError::Io`.
    pub async fn call(&self, args: &[&[u8]]) -> Result<Value, RespError> {
        let slot = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let mut guard = slot.lock().await;
        let attempt = async {
            if guard.is_none() {
                *guard = Some(self.connect().await?);
            }
            match guard.as_mut() {
                Some(conn) => conn.send(args).await.map_err(|e| self.io(e)),
                None => Err(self.io("not connected")),
            }
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(self.io(format!("no reply within {:?}", self.timeout))),
        };
        match result {
            Ok(v) => check(v),
            Err(e) => {
                *guard = None;
                Err(e)
            }
        }
    }
}

fn check(v: Value) -> Result<Value, RespError> {
    match v {
        Value::Error(e) => Err(RespError::Server(e)),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replies_whole_or_not_at_all() -> std::io::Result<()> {
        let reply = b"*3\r\n:1\r\n$5\r\nhello\r\n*2\r\n+OK\r\n$-1\r\n";
        let (v, used) = parse(reply)?.ok_or_else(|| bad("incomplete"))?;
        assert_eq!(used, reply.len());
        let Value::Array(Some(items)) = v else { return Err(bad("not an array")) };
        assert_eq!(items[0], Value::Int(1));
        assert_eq!(items[1].as_bytes(), Some(&b"hello"[..]));
        assert_eq!(items[2], Value::Array(Some(vec![Value::Simple("OK".into()), Value::Bulk(None)])));
        for cut in 0..reply.len() {
            assert!(parse(&reply[..cut])?.is_none(), "cut at {cut}");
        }
        assert_eq!(parse(b"-NOSCRIPT x\r\n")?.map(|p| p.0), Some(Value::Error("NOSCRIPT x".into())));
        Ok(())
    }

    #[test]
    fn parses_addresses() {
        assert_eq!(
            RedisAddr::parse("redis://127.0.0.1:6390/2"),
            Ok(RedisAddr { host_port: "127.0.0.1:6390".into(), password: None, db: 2 })
        );
        assert_eq!(RedisAddr::parse("redis://:pw@h:1").map(|a| a.password), Ok(Some("pw".into())));
        assert!(RedisAddr::parse("127.0.0.1:6379").is_err());
        assert!(RedisAddr::parse("redis://localhost").is_err());
    }
}
