//! The Redis state store against a real `redis-server`: all-or-nothing
//! reservations, settlement (batched, off the response path) giving unused
//! amounts back, spend windows, key records and their id index.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{free_port, redis_server};
use gateway::policy::keys::KeyRecord;
use gateway::store::redis::RedisStore;
use gateway::store::{CounterSpec, Period, Reservation, StateStore};
use std::time::{Duration, Instant};

fn spec(name: &str, period: Period, limit: u64, amount: u64) -> CounterSpec {
    CounterSpec { name: name.into(), period, limit, amount, durable: false }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_settlements_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis_server(dir.path(), port);
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}"), "t").unwrap();
    store.ping().await.unwrap();

    let specs = [spec("req", Period::Seconds(60), 2, 1), spec("tok", Period::Seconds(60), 100, 60)];
    let Reservation::Admitted { ticket, states } = store.reserve(&specs).await.unwrap() else { panic!("denied") };
    assert_eq!((states[0].used, states[1].used), (1, 60));
    assert!(states[0].reset_ms.is_some_and(|r| r <= 60_000));
    // Tokens would overflow: nothing is taken, requests included.
    let Reservation::Denied { index, states } = store.reserve(&specs).await.unwrap() else { panic!("admitted") };
    assert_eq!((index, states[1].used), (1, 60));
    assert_eq!(store.read("req", &Period::Seconds(60)).await.unwrap(), 1);
    // Used 20 of 60: the 40 come back once the batch is written.
    store.settle(&ticket, &[1, 20]).await.unwrap();
    let start = Instant::now();
    while store.read("tok", &Period::Seconds(60)).await.unwrap() != 20 {
        assert!(start.elapsed() < Duration::from_secs(5), "settlement never reached Redis");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(store.reserve(&specs).await.unwrap(), Reservation::Admitted { .. }));
    assert!(matches!(store.reserve(&specs).await.unwrap(), Reservation::Denied { index: 0, .. }));

    // Named and total windows (budgets) never expire.
    let month = spec("spend", Period::Named("2026-11".into()), 1000, 300);
    store.reserve(std::slice::from_ref(&month)).await.unwrap();
    assert_eq!(store.read("spend", &Period::Named("2026-11".into())).await.unwrap(), 300);
    assert_eq!(store.read("spend", &Period::Named("2026-12".into())).await.unwrap(), 0);
    let total = spec("spend", Period::Total, 1000, 999);
    store.reserve(std::slice::from_ref(&total)).await.unwrap();
    assert!(matches!(store.reserve(&[total]).await.unwrap(), Reservation::Denied { .. }));

    let key = KeyRecord {
        id: "a".into(),
        hash: "h1".into(),
        hint: "sy-…".into(),
        user: Some("u".into()),
        models: None,
        limits: Default::default(),
        metadata: Default::default(),
        cache_isolation: Default::default(),
        cache_scope: None,
        created: 1,
        revoked: false,
    };
    store.put_key(&key).await.unwrap();
    assert_eq!(store.key_by_hash("h1").await.unwrap(), Some(key.clone()));
    // Re-keyed under the same id: the old hash no longer authenticates.
    let rekeyed = KeyRecord { hash: "h2".into(), revoked: true, ..key };
    store.put_key(&rekeyed).await.unwrap();
    assert_eq!(store.key_by_hash("h1").await.unwrap(), None);
    assert_eq!(store.key_by_id("a").await.unwrap(), Some(rekeyed));
    assert_eq!(store.list_keys().await.unwrap().len(), 1);

    // Live-evaluation samples: newest first, the newest EVAL_SAMPLES_KEPT
    // stay, and a second replica (another connection) reads the same.
    for i in 0..gateway::store::EVAL_SAMPLES_KEPT + 3 {
        store.put_eval_sample("e", &serde_json::json!({"n": i})).await.unwrap();
    }
    let replica = RedisStore::new(&format!("redis://127.0.0.1:{port}"), "t").unwrap();
    let newest = replica.eval_samples("e", 2).await.unwrap();
    let last = gateway::store::EVAL_SAMPLES_KEPT + 2;
    assert_eq!(newest, vec![serde_json::json!({"n": last}), serde_json::json!({"n": last - 1})]);
    assert_eq!(replica.eval_samples("e", usize::MAX).await.unwrap().len(), gateway::store::EVAL_SAMPLES_KEPT);
    assert!(replica.eval_samples("none", 5).await.unwrap().is_empty());
}

/// Keeps Redis busy for `ms` with a script on a connection of its own (a
/// script blocks the whole server), over a raw socket.
async fn block_redis(port: u16, ms: u64) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let script = format!(
        "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] \
         while true do local t = redis.call('TIME') if t[1] * 1000000 + t[2] - t0 > {} then break end end return 1",
        ms * 1000
    );
    let cmd = format!("*3\r\n$4\r\nEVAL\r\n${}\r\n{script}\r\n$1\r\n0\r\n", script.len());
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    sock.write_all(cmd.as_bytes()).await.unwrap();
    let mut reply = [0u8; 16];
    let n = sock.read(&mut reply).await.unwrap();
    assert_eq!(&reply[..n], b":1\r\n", "{}", String::from_utf8_lossy(&reply[..n]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_dropped_mid_flight_leaves_no_reply_for_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _redis = redis_server(dir.path(), port);
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}"), "t").unwrap();
    store.reserve(&[spec("a", Period::Total, 100, 1)]).await.unwrap();
    store.reserve(&[spec("b", Period::Total, 100, 2)]).await.unwrap();
    for round in 0..3 {
        let busy = tokio::spawn(block_redis(port, 300));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Sent while Redis is busy, then dropped before its reply came (a
        // client that went away during admission).
        let dropped = tokio::time::timeout(Duration::from_millis(30), store.read("a", &Period::Total)).await;
        assert!(dropped.is_err(), "round {round}: the call was not cut mid-flight");
        busy.await.unwrap();
        // The next calls read their own answers, not the dropped call's.
        assert_eq!(store.read("b", &Period::Total).await.unwrap(), 2, "round {round}");
        assert_eq!(store.read("a", &Period::Total).await.unwrap(), 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_is_reported_not_hung() {
    let port = free_port();
    let store = RedisStore::new(&format!("redis://127.0.0.1:{port}"), "t").unwrap();
    let start = Instant::now();
    let err = store.reserve(&[spec("x", Period::Total, 1, 1)]).await.map(|_| ()).unwrap_err();
    assert!(matches!(err, gateway::store::StoreError::Unavailable(_)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}
