//! L2: entries in Redis, shared by every replica (compressed values with a
//! TTL; an id → key index for deletion), and the journal stream that
//! carries semantic entries, deletions and purges to every replica.
//!
//! Every call is bounded (`REDIS_TIMEOUT`): a Redis that is down costs a
//! request at most that long once, then the tier is skipped for
//! `BACKOFF` (counted as errors, logged once per backoff), and requests
//! are served uncached.

use super::entry::Entry;
use super::journal::Record;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, the tier is not tried again for this long.
const BACKOFF: Duration = Duration::from_secs(2);
/// The stream keeps about this many records (older ones are trimmed).
const STREAM_MAXLEN: usize = 1_000_000;

pub struct RedisTier {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    /// Unix ms before which the tier is skipped.
    down_until: AtomicU64,
}

/// The tier failed or is backing off: the caller goes on without it.
#[derive(Debug)]
pub struct Unavailable;

impl RedisTier {
    /// Checks the URL only: nothing is contacted until the first call.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("cache.redis_url: {e}"))?;
        Ok(RedisTier { client, connection: OnceCell::new(), prefix: prefix.to_string(), down_until: AtomicU64::new(0) })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}:cache:{kind}:{name}", self.prefix)
    }

    fn stream(&self) -> String {
        format!("{}:cache:journal", self.prefix)
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if crate::store::unix_ms() < self.down_until.load(Ordering::Relaxed) {
            return Err(Unavailable);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(0);
        let made = tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            self.connection.get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config)),
        )
        .await;
        match made {
            Ok(Ok(c)) => Ok(c.clone()),
            Ok(Err(e)) => Err(self.failed(&e.to_string())),
            Err(_) => Err(self.failed("connection timed out")),
        }
    }

    /// Starts a backoff; logs once per backoff.
    fn failed(&self, why: &str) -> Unavailable {
        let now = crate::store::unix_ms();
        let prev = self.down_until.swap(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        if prev < now {
            tracing::warn!(
                error = why,
                backoff_ms = BACKOFF.as_millis() as u64,
                "cache: Redis unavailable, serving uncached"
            );
        }
        Unavailable
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Unavailable> {
        let mut c = self.connection().await?;
        match tokio::time::timeout(REDIS_TIMEOUT * 2, cmd.query_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.failed(&e.to_string())),
            Err(_) => Err(self.failed("reply timed out")),
        }
    }

    pub async fn get(&self, exact: &str) -> Result<Option<Entry>, Unavailable> {
        let bytes: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(self.key("x", exact))).await?;
        Ok(bytes.and_then(|b| Entry::decode(&b)).filter(|e| !e.expired(crate::store::unix_ms())))
    }

    pub async fn put(&self, exact: &str, entry: &Entry) -> Result<(), Unavailable> {
        let ttl_ms = entry.expires_ms.saturating_sub(crate::store::unix_ms()).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(self.key("x", exact)).arg(entry.encode()).arg("PX").arg(ttl_ms).ignore();
        // An entry served by meaning is also stored under the new request's
        // key: the id names every key that holds it.
        pipe.cmd("SADD").arg(self.key("id", &entry.id)).arg(exact).ignore();
        pipe.cmd("PEXPIRE").arg(self.key("id", &entry.id)).arg(ttl_ms).ignore();
        let mut c = self.connection().await?;
        match tokio::time::timeout(REDIS_TIMEOUT * 2, pipe.query_async::<()>(&mut c)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.failed(&e.to_string())),
            Err(_) => Err(self.failed("reply timed out")),
        }
    }

    /// Deletes an entry by id; whether it was there.
    pub async fn delete(&self, id: &str) -> Result<bool, Unavailable> {
        let keys: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(self.key("id", id))).await?;
        if keys.is_empty() {
            return Ok(false);
        }
        let mut del = redis::cmd("DEL");
        del.arg(self.key("id", id));
        for k in &keys {
            del.arg(self.key("x", k));
        }
        let n: i64 = self.run(&del).await?;
        Ok(n > 0)
    }

    /// Deletes every entry `matches` selects (scans the tier: an admin operation).
    pub async fn purge(&self, matches: impl Fn(&Entry) -> bool) -> Result<u64, Unavailable> {
        let mut c = self.connection().await?;
        let pattern = self.key("x", "*");
        let mut cursor = 0u64;
        let mut removed = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut c)
                .await
                .map_err(|e| self.failed(&e.to_string()))?;
            for k in keys {
                let bytes: Option<Vec<u8>> = c.get(&k).await.map_err(|e| self.failed(&e.to_string()))?;
                let Some(e) = bytes.and_then(|b| Entry::decode(&b)) else { continue };
                if matches(&e) {
                    let _: i64 = c.del(&[k, self.key("id", &e.id)]).await.map_err(|e| self.failed(&e.to_string()))?;
                    removed += 1;
                }
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// Appends a journal record for every replica.
    pub async fn append(&self, record: &Record) -> Result<(), Unavailable> {
        let cmd = redis::cmd("XADD")
            .arg(self.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg("r")
            .arg(record.encode())
            .to_owned();
        let _: Value = self.run(&cmd).await?;
        Ok(())
    }

    /// Journal records after `last` ("0" for all), at most `count`, with the
    /// id of the last one read.
    pub async fn read(&self, last: &str, count: usize) -> Result<(Vec<Record>, Option<String>), Unavailable> {
        let mut c = self.connection().await?;
        let stream = self.stream();
        let opts = StreamReadOptions::default().count(count);
        let result: Result<StreamReadReply, _> =
            tokio::time::timeout(REDIS_TIMEOUT * 4, c.xread_options(&[&stream], &[last], &opts))
                .await
                .map_err(|_| self.failed("reply timed out"))?;
        let result = result.map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect::<Vec<_>>());
        let ids = result.map_err(|e| self.failed(&e.to_string()))?;
        let last = ids.last().map(|i| i.id.clone());
        let records = ids
            .iter()
            .filter_map(|i| match i.map.get("r") {
                Some(Value::BulkString(b)) => Record::decode(b),
                _ => None,
            })
            .collect();
        Ok((records, last))
    }
}
