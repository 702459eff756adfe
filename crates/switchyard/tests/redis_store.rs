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
