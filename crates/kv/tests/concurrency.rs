//! Writes are serialized through the writer: no lost update under contention.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use yun_kv::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_increments_lose_no_update() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path(), Config::default()).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    let successes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (db, successes) = (db.clone(), successes.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let cur = db.get(b"counter").await.unwrap();
                let n: u64 = cur.as_ref().map_or(0, |c| std::str::from_utf8(c).unwrap().parse().unwrap());
                if db.cas("counter", cur, (n + 1).to_string(), None).await.unwrap() {
                    successes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = successes.load(Ordering::Relaxed);
    assert!(total > 0);
    let got = db.get(b"counter").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&got).unwrap().parse::<u64>().unwrap(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incr_from_many_tasks_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path(), Config::default()).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    let mut tasks = Vec::new();
    for t in 0..40 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                db.incr("n").await.unwrap();
                db.hincrby("h", "f", 2).await.unwrap();
            }
            // A pipeline too.
            let ops = (0..10).map(|_| Op::IncrBy("n".into(), 1)).collect();
            for r in db.exec(ops).await.unwrap() {
                r.unwrap();
            }
            t
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.get(b"n").await.unwrap().unwrap(), "2400");
    assert_eq!(db.hget("h", "f").await.unwrap().unwrap(), "4000");
    kv.close().await.unwrap();
    let kv = Kv::open(dir.path(), Config::default()).unwrap();
    assert_eq!(kv.db("app", 0).unwrap().get(b"n").await.unwrap().unwrap(), "2400");
}
