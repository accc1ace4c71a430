//! kill -9 at any point loses only unacknowledged writes, and never tears a batch.
//!
//! The test re-runs its own binary as the child (`crash_child` with `KV_CRASH_DIR` set): many
//! tasks submit batches of writes and print `ACK <batch>` once a batch is acknowledged. The
//! parent SIGKILLs it mid-stream, reopens the store, and checks every acknowledged batch is
//! there whole and that no batch is there in part.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use yun_kv::*;

const KEYS_PER_BATCH: usize = 5;

fn batch_ops(round: u64, id: u64) -> Vec<Op> {
    let mut ops: Vec<Op> = (0..KEYS_PER_BATCH)
        .map(|j| Op::Set {
            key: Bytes::from(format!("r{round}:{id}:{j}")),
            value: Bytes::from(format!("{id}").repeat(j + 1)),
            options: SetOptions::default(),
        })
        .collect();
    ops.push(Op::SAdd(Bytes::from(format!("r{round}:ids")), vec![Bytes::from(id.to_string())]));
    ops
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("KV_CRASH_DIR") else { return };
    let round: u64 = std::env::var("KV_CRASH_ROUND").unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        // Even rounds fold the log into the key table every few hundred keys, odd ones never.
        let checkpoint_keys = if round.is_multiple_of(2) { 300 } else { 1_000_000 };
        let config = Config { checkpoint_keys, ..Config::default() };
        let kv = Kv::open(std::path::Path::new(&dir), config).unwrap();
        if kv.store_info("crash").is_err() {
            kv.create_store("crash", false).await.unwrap();
        }
        let db = kv.db("crash", 0).unwrap();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for t in 0..16 {
            let (db, next) = (db.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::SeqCst);
                    if t % 2 == 0 {
                        for r in db.exec(batch_ops(round, id)).await.unwrap() {
                            r.unwrap();
                        }
                    } else {
                        // MSET is one op, all or nothing by itself.
                        let pairs = (0..KEYS_PER_BATCH)
                            .map(|j| {
                                (
                                    Bytes::from(format!("r{round}:{id}:{j}")),
                                    Bytes::from(format!("{id}").repeat(j + 1)),
                                )
                            })
                            .collect();
                        let ops = vec![
                            Op::MSet(pairs),
                            Op::SAdd(Bytes::from(format!("r{round}:ids")), vec![Bytes::from(id.to_string())]),
                        ];
                        for r in db.exec(ops).await.unwrap() {
                            r.unwrap();
                        }
                    }
                    println!("ACK {id}");
                }
            }));
        }
        // The tasks never end: the parent kills this process.
        let outcome = tasks.into_iter().next().expect("spawned").await;
        panic!("a writer task ended: {outcome:?}");
    });
}

#[test]
fn kill_9_loses_only_unacknowledged_writes() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..4u64 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("KV_CRASH_DIR", dir.path())
            .env("KV_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut acked = HashSet::new();
        let mut lines = stdout.lines();
        // Kill at a different point each round.
        let want = 200 + round as usize * 150;
        let started = Instant::now();
        while acked.len() < want {
            assert!(started.elapsed() < Duration::from_secs(60), "the child stalled at {} acks", acked.len());
            let Some(line) = lines.next() else { panic!("the child ended early") };
            if let Some(id) = line.unwrap().strip_prefix("ACK ") {
                acked.insert(id.parse::<u64>().unwrap());
            }
        }
        child.kill().unwrap();
        // Acknowledgements already printed count too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(id) = line.strip_prefix("ACK ") {
                acked.insert(id.parse::<u64>().unwrap());
            }
        }
        child.wait().unwrap();

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let kv = Kv::open(dir.path(), Config::default()).unwrap();
            let db = kv.db("crash", 0).unwrap();
            let mut found: BTreeMap<u64, usize> = BTreeMap::new();
            let mut after = None;
            loop {
                let page = db.list(format!("r{round}:"), after, 1000).await.unwrap();
                for k in &page.keys {
                    let k = std::str::from_utf8(k).unwrap();
                    let mut parts = k.split(':');
                    let (_, id) = (parts.next(), parts.next().unwrap());
                    if let (Ok(id), Some(j)) = (id.parse::<u64>(), parts.next()) {
                        let v = db.get(k.as_bytes()).await.unwrap().unwrap();
                        assert_eq!(v, format!("{id}").repeat(j.parse::<usize>().unwrap() + 1));
                        *found.entry(id).or_default() += 1;
                    }
                }
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            let ids: HashSet<u64> = db
                .smembers(format!("r{round}:ids"))
                .await
                .unwrap()
                .iter()
                .map(|m| std::str::from_utf8(m).unwrap().parse().unwrap())
                .collect();
            for id in &acked {
                assert_eq!(
                    found.get(id),
                    Some(&KEYS_PER_BATCH),
                    "round {round}: acknowledged batch {id} lost"
                );
            }
            for (id, n) in &found {
                assert_eq!(*n, KEYS_PER_BATCH, "round {round}: batch {id} torn");
                assert!(ids.contains(id), "round {round}: batch {id} torn (its set member is missing)");
            }
            assert_eq!(ids.len(), found.len());
            eprintln!("round {round}: {} acknowledged, {} on disk", acked.len(), found.len());
            kv.close().await.unwrap();
        });
    }
}

/// A scripted history with deletes, a FLUSHDB, collections and expiry across checkpoints
/// (every 3 keys), then kill -9: the reopened engine holds exactly the final state.
#[test]
fn replay_child() {
    let Ok(dir) = std::env::var("KV_REPLAY_DIR") else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let config = Config { checkpoint_keys: 3, ..Config::default() };
        let kv = Kv::open(std::path::Path::new(&dir), config).unwrap();
        kv.create_store("s", true).await.unwrap();
        let db = kv.db("s", 0).unwrap();
        let db1 = kv.db("s", 1).unwrap();
        for i in 0..10 {
            db.set(format!("k{i}"), format!("v{i}")).await.unwrap();
        }
        db1.set("other", "x").await.unwrap();
        db.del((0..5).map(|i| Bytes::from(format!("k{i}"))).collect()).await.unwrap();
        db.hset("h", vec![(Bytes::from("f"), Bytes::from("1"))]).await.unwrap();
        db.hincrby("h", "f", 41).await.unwrap();
        db.rpush("l", vec![Bytes::from("a"), Bytes::from("b")]).await.unwrap();
        db.lpop("l").await.unwrap();
        db1.flushdb().await.unwrap();
        db1.set("after-flush", "y").await.unwrap();
        db.set_ttl("ttl", "t", Duration::from_secs(3600)).await.unwrap();
        db.rename("k9", "renamed").await.unwrap();
        db.sadd("set", vec![Bytes::from("m")]).await.unwrap();
        db.srem("set", vec![Bytes::from("m")]).await.unwrap();
        db.incr("n").await.unwrap();
        println!("DONE");
        std::thread::sleep(Duration::from_secs(600));
    });
}

#[test]
fn kill_9_after_a_history_replays_to_its_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["replay_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("KV_REPLAY_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    assert!(stdout.lines().map_while(Result::ok).any(|l| l.ends_with("DONE")), "the child ended early");
    child.kill().unwrap();
    child.wait().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kv = Kv::open(dir.path(), Config::default()).unwrap();
        let db = kv.db("s", 0).unwrap();
        let mut keys = db.list("", None, 100).await.unwrap().keys;
        keys.sort();
        let want: Vec<Bytes> = ["h", "k5", "k6", "k7", "k8", "l", "n", "renamed", "ttl"]
            .iter()
            .map(|k| Bytes::from(*k))
            .collect();
        assert_eq!(keys, want);
        assert_eq!(db.get(b"k5").await.unwrap(), Some(Bytes::from("v5")));
        assert_eq!(db.get(b"renamed").await.unwrap(), Some(Bytes::from("v9")));
        assert_eq!(db.hget("h", "f").await.unwrap(), Some(Bytes::from("42")));
        assert_eq!(db.lrange("l", 0, -1).await.unwrap(), vec![Bytes::from("b")]);
        assert!(db.ttl("ttl").await.unwrap() > 3500);
        assert_eq!(db.get(b"n").await.unwrap(), Some(Bytes::from("1")));
        let db1 = kv.db("s", 1).unwrap();
        assert_eq!(db1.list("", None, 10).await.unwrap().keys, vec![Bytes::from("after-flush")]);
        assert_eq!(db.dbsize().await.unwrap() + db1.dbsize().await.unwrap(), 10);
        // The byte total is rebuilt from what was replayed.
        let bytes: u64 =
            [("h", 9 + 4 + 1 + 4 + 2), ("l", 9 + 4 + 1), ("n", 9 + 1), ("renamed", 9 + 2), ("ttl", 9 + 1)]
                .iter()
                .map(|(k, v)| (k.len() + v) as u64)
                .sum::<u64>()
                + (5..9).map(|_| 2 + 9 + 2).sum::<u64>()
                + ("after-flush".len() + 9 + 1) as u64;
        assert_eq!(kv.store_info("s").unwrap().bytes, bytes);
        // 10 + 1 sets, 5 deletes, 2 hash writes, 2 list writes, a flush and a set, a set, a
        // rename (delete + set), a set add and its delete, an incr.
        let changes = kv.changes("s", 0, 100).unwrap();
        assert_eq!(changes.len(), 11 + 5 + 2 + 2 + 2 + 1 + 2 + 2 + 1);
        assert!(changes.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    });
}
