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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_share_one_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let window = std::time::Duration::from_millis(100);
    let kv = Kv::open(dir.path(), Config { group_commit: window, ..Config::default() }).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    db.set("warm", "up").await.unwrap();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move { db.set(format!("k{i}"), "v").await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // One after another they would take 20 windows; in one group, about one.
    assert!(started.elapsed() < window * 6, "{:?}", started.elapsed());
    assert!(started.elapsed() >= window / 2, "the window was not waited: {:?}", started.elapsed());
    assert_eq!(db.dbsize().await.unwrap(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_limit_of_one_still_serializes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let kv = Kv::open(dir.path(), Config { max_batch: 1, ..Config::default() }).unwrap();
    kv.create_store("app", false).await.unwrap();
    let db = kv.db("app", 0).unwrap();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    db.incr("n").await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.get(b"n").await.unwrap().unwrap(), "100");
}
