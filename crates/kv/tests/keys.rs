//! SCAN, listing by prefix, FLUSHDB, and the isolation of stores and databases.

mod common;

use std::collections::{BTreeSet, HashSet};

use bytes::Bytes;
use common::{b, bs, open};
use yun_kv::*;

async fn scan_all(db: &Db, options: ScanOptions) -> (Vec<Bytes>, usize) {
    let (mut cursor, mut out, mut calls) = (0, Vec::new(), 0);
    loop {
        let (next, keys) = db.scan(cursor, options.clone()).await.unwrap();
        out.extend(keys);
        calls += 1;
        if next == 0 {
            return (out, calls);
        }
        cursor = next;
    }
}

#[tokio::test]
async fn scan_visits_every_key_once_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    let pairs: Vec<(Bytes, Bytes)> = (0..500).map(|i| (b(&format!("user:{i}")), b("v"))).collect();
    db.mset(pairs).await.unwrap();
    db.sadd("set:1", bs(&["m"])).await.unwrap();
    db.hset("hash:1", vec![(b("f"), b("v"))]).await.unwrap();

    let (all, calls) = scan_all(&db, ScanOptions { count: Some(50), ..Default::default() }).await;
    assert_eq!(all.len(), 502);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 502, "no duplicates without concurrent writes");
    assert!(calls >= 10, "COUNT bounds the work per call: {calls}");

    let (users, _) =
        scan_all(&db, ScanOptions { pattern: Some(b("user:1?")), count: Some(7), ..Default::default() })
            .await;
    let users: BTreeSet<_> = users.into_iter().collect();
    assert_eq!(users, (10..20).map(|i| b(&format!("user:{i}"))).collect());
    let (sets, _) = scan_all(&db, ScanOptions { kind: Some(KeyType::Set), ..Default::default() }).await;
    assert_eq!(sets, bs(&["set:1"]));
    let (none, _) = scan_all(&db, ScanOptions { pattern: Some(b("nomatch*")), ..Default::default() }).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn scan_returns_keys_present_throughout_despite_churn() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, _) = open(dir.path()).await;
    let stable: Vec<Bytes> = (0..300).map(|i| b(&format!("stable:{i}"))).collect();
    db.mset(stable.iter().map(|k| (k.clone(), b("v"))).collect()).await.unwrap();
    let (mut cursor, mut seen) = (0u64, HashSet::new());
    let mut round = 0;
    loop {
        // Between calls, keys come and go.
        db.mset((0..20).map(|i| (b(&format!("churn:{round}:{i}")), b("v"))).collect()).await.unwrap();
        if round > 0 {
            db.del((0..20).map(|i| b(&format!("churn:{}:{i}", round - 1))).collect()).await.unwrap();
        }
        round += 1;
        let (next, keys) =
            db.scan(cursor, ScanOptions { count: Some(25), ..Default::default() }).await.unwrap();
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    for k in &stable {
        assert!(seen.contains(k), "{k:?} was present throughout but not returned");
    }
}

#[tokio::test]
async fn list_by_prefix_pages_in_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_kv, db, clock) = open(dir.path()).await;
    for i in 0..25 {
        db.set(format!("p/{i:02}"), "v").await.unwrap();
    }
    db.set("p", "not under p/").await.unwrap();
    db.set("q/1", "v").await.unwrap();
    db.set_ttl("p/05", "v", std::time::Duration::from_secs(1)).await.unwrap();
    clock.advance(std::time::Duration::from_secs(2));

    let mut keys = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = db.list("p/", after.clone(), 10).await.unwrap();
        assert!(page.keys.len() <= 10);
        pages += 1;
        keys.extend(page.keys);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let want: Vec<Bytes> = (0..25).filter(|i| *i != 5).map(|i| b(&format!("p/{i:02}"))).collect();
    assert_eq!(keys, want, "expired keys are skipped");
    assert_eq!(pages, 3);
    assert_eq!(
        db.list("p/", Some(b("p/23")), 10).await.unwrap(),
        ListPage { keys: bs(&["p/24"]), next: None }
    );
    assert_eq!(db.list("zzz", None, 10).await.unwrap(), ListPage::default());
    assert_eq!(db.list("", None, 100).await.unwrap().keys.len(), 26);
}

#[tokio::test]
async fn stores_and_databases_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, db0, _) = open(dir.path()).await;
    kv.create_store("other", false).await.unwrap();
    let db1 = kv.db("app", 1).unwrap();
    let other = kv.db("other", 0).unwrap();
    db0.set("k", "app0").await.unwrap();
    db1.set("k", "app1").await.unwrap();
    other.set("k", "other").await.unwrap();
    assert_eq!(db0.get(b"k").await.unwrap(), Some(b("app0")));
    assert_eq!(db1.get(b"k").await.unwrap(), Some(b("app1")));
    assert_eq!(other.get(b"k").await.unwrap(), Some(b("other")));
    db1.flushdb().await.unwrap();
    assert_eq!(db1.dbsize().await.unwrap(), 0);
    assert_eq!(db0.get(b"k").await.unwrap(), Some(b("app0")));
    assert_eq!(other.get(b"k").await.unwrap(), Some(b("other")));
    assert!(matches!(kv.db("app", 16), Err(KvError::InvalidDb(16))));
    assert_eq!(KvError::InvalidDb(16).redis_message(), "ERR DB index is out of range");
    assert!(kv.db("app", 15).is_ok());
}

#[tokio::test]
async fn flushdb_is_durable_and_keys_after_it_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (kv, db, _) = open(dir.path()).await;
        db.mset((0..50).map(|i| (b(&format!("k{i}")), b("v"))).collect()).await.unwrap();
        let r = db
            .exec(vec![
                Op::Set { key: b("before"), value: b("x"), options: SetOptions::default() },
                Op::FlushDb,
                Op::Set { key: b("after"), value: b("y"), options: SetOptions::default() },
            ])
            .await
            .unwrap();
        assert!(r.iter().all(Result::is_ok));
        assert_eq!(kv.store_info("app").unwrap().keys, 1);
        kv.close().await.unwrap();
    }
    let kv = Kv::open(dir.path(), Config::default()).unwrap();
    let db = kv.db("app", 0).unwrap();
    assert_eq!(db.dbsize().await.unwrap(), 1);
    assert_eq!(db.get(b"after").await.unwrap(), Some(b("y")));
    let info = kv.store_info("app").unwrap();
    assert_eq!(info.bytes, "after".len() as u64 + 9 + 1, "key + header + value");
}
