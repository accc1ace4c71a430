//! The change stream: records in the same commit as the change, ordered, waking consumers,
//! trimmed by acknowledgement and retention.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{b, bs};
use yun_kv::*;

async fn open_with(dir: &std::path::Path, retention: u64) -> (Kv, Db, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(5_000));
    let kv = Kv::open(dir, Config { change_retention: retention, ..common::config(&clock) }).unwrap();
    if kv.store_info("app").is_err() {
        kv.create_store("app", true).await.unwrap();
    }
    let db = kv.db("app", 2).unwrap();
    (kv, db, clock)
}

fn summary(c: &[Change]) -> Vec<(u64, ChangeKind, String, Option<String>)> {
    c.iter()
        .map(|c| {
            let s = |b: &bytes::Bytes| String::from_utf8_lossy(b).into_owned();
            (c.seq, c.kind, s(&c.key), c.value.as_ref().map(s))
        })
        .collect()
}

#[tokio::test]
async fn every_write_appends_an_ordered_record() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, db, _) = open_with(dir.path(), 1000).await;
    db.set_ttl("a", "1", Duration::from_secs(10)).await.unwrap();
    db.incr("a").await.unwrap();
    db.hset("h", vec![(b("f"), b("v"))]).await.unwrap();
    db.rename("a", "b").await.unwrap();
    db.delete("b").await.unwrap();
    db.delete("absent").await.unwrap();
    db.hdel("h", bs(&["f"])).await.unwrap();
    db.set("x", "y").await.unwrap();
    db.flushdb().await.unwrap();
    let s = |x: &str| x.to_string();
    let changes = kv.changes("app", 0, 100).unwrap();
    assert_eq!(
        summary(&changes),
        vec![
            (1, ChangeKind::Set, s("a"), Some(s("1"))),
            (2, ChangeKind::Set, s("a"), Some(s("2"))),
            (3, ChangeKind::Set, s("h"), None),
            (4, ChangeKind::Delete, s("a"), None),
            (5, ChangeKind::Set, s("b"), Some(s("2"))),
            (6, ChangeKind::Delete, s("b"), None),
            (7, ChangeKind::Delete, s("h"), None),
            (8, ChangeKind::Set, s("x"), Some(s("y"))),
            (9, ChangeKind::Flush, s(""), None),
        ]
    );
    assert!(changes.iter().all(|c| c.db == 2 && c.time_ms == 5_000));
    assert_eq!(changes[0].expires_at_ms, Some(15_000));
    assert_eq!(changes[7].expires_at_ms, None);
    assert_eq!(summary(&kv.changes("app", 7, 1).unwrap()), vec![(8, ChangeKind::Set, s("x"), Some(s("y")))]);
    assert!(kv.changes("app", 9, 10).unwrap().is_empty());
    assert_eq!(kv.store_info("app").unwrap().last_seq, 9);
    kv.close().await.unwrap();

    // The sequence continues after a restart.
    let (kv, db, _) = open_with(dir.path(), 1000).await;
    db.set("z", "1").await.unwrap();
    assert_eq!(kv.changes("app", 9, 10).unwrap()[0].seq, 10);
}

#[tokio::test]
async fn consumers_are_woken_and_acks_trim() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, db, _) = open_with(dir.path(), 1000).await;
    let mut watch = kv.watch_changes("app").unwrap();
    let writer = db.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.set("k", "v").await.unwrap();
    });
    tokio::time::timeout(Duration::from_secs(5), watch.changed()).await.unwrap().unwrap();
    assert_eq!(*watch.borrow(), 1);
    assert_eq!(kv.changes("app", 0, 10).unwrap().len(), 1);

    for i in 0..9 {
        db.set(format!("k{i}"), "v").await.unwrap();
    }
    kv.ack("app", "c1", 4).await.unwrap();
    kv.ack("app", "c2", 6).await.unwrap();
    // Trimmed up to what every consumer acknowledged.
    assert_eq!(kv.changes("app", 0, 100).unwrap()[0].seq, 5);
    kv.ack("app", "c1", 8).await.unwrap();
    kv.ack("app", "c1", 2).await.unwrap();
    assert_eq!(kv.consumer_position("app", "c1").unwrap(), Some(8), "positions never move back");
    assert_eq!(kv.changes("app", 0, 100).unwrap()[0].seq, 7);
    kv.remove_consumer("app", "c2").await.unwrap();
    assert_eq!(kv.consumer_position("app", "c2").unwrap(), None);
    db.set("more", "v").await.unwrap();
    assert_eq!(kv.changes("app", 0, 100).unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), vec![9, 10, 11]);
    kv.close().await.unwrap();
    let (kv, _, _) = open_with(dir.path(), 1000).await;
    assert_eq!(kv.consumer_position("app", "c1").unwrap(), Some(8));
    assert_eq!(kv.changes("app", 0, 100).unwrap()[0].seq, 9);
}

#[tokio::test]
async fn retention_bounds_unacknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, db, _) = open_with(dir.path(), 5).await;
    for i in 0..20 {
        db.set(format!("k{i}"), "v").await.unwrap();
    }
    let seqs: Vec<u64> = kv.changes("app", 0, 100).unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, vec![16, 17, 18, 19, 20]);
}

#[tokio::test]
async fn the_stream_is_per_store_and_optional() {
    let dir = tempfile::tempdir().unwrap();
    let (kv, _, _) = open_with(dir.path(), 1000).await;
    kv.create_store("quiet", false).await.unwrap();
    let quiet = kv.db("quiet", 0).unwrap();
    quiet.set("a", "1").await.unwrap();
    assert!(kv.changes("quiet", 0, 10).unwrap().is_empty());
    assert!(!kv.store_info("quiet").unwrap().changes);
    kv.set_changes("quiet", true).await.unwrap();
    quiet.set("b", "2").await.unwrap();
    assert_eq!(kv.changes("quiet", 0, 10).unwrap().len(), 1);
    assert!(kv.changes("app", 0, 10).unwrap().is_empty(), "stores have separate streams");
    kv.delete_store("quiet").await.unwrap();
    assert!(matches!(kv.changes("quiet", 0, 10), Err(KvError::NoSuchStore(_))));
    kv.create_store("quiet", true).await.unwrap();
    assert!(kv.changes("quiet", 0, 10).unwrap().is_empty(), "deleting a store deletes its changes");
    kv.db("quiet", 0).unwrap().set("c", "3").await.unwrap();
    assert_eq!(kv.changes("quiet", 0, 10).unwrap()[0].seq, 1);
}
