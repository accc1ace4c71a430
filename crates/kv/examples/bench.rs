//! Throughput of the engine itself (no network): `cargo run --release -p yun-kv --example bench
//! [seconds per case] [dir]`. Many tasks each issue GET or SET (3-byte values over 100k keys,
//! as `redis-benchmark -r 100000` does), one op at a time or 16 per call (a `-P 16` pipeline).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use yun_kv::{Config, Db, Durability, Kv, Op, SetOptions};

const KEYS: u64 = 100_000;
const TASKS: usize = 50;

#[derive(Clone, Copy)]
enum Case {
    Get,
    Set,
    GetP16,
    SetP16,
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key:{i:012}"))
}

/// Ops per second, and the p50 / p99 / max latency of one call in microseconds.
async fn run(db: &Db, case: Case, secs: f64) -> (f64, [u64; 3]) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(t as u64);
            let value = Bytes::from_static(b"xxx");
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                match case {
                    Case::Get => {
                        let k = key(rng.u64(0..KEYS));
                        std::hint::black_box(db.get(&k).await.unwrap());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Case::Set => {
                        db.set(key(rng.u64(0..KEYS)), value.clone()).await.unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Case::GetP16 | Case::SetP16 => {
                        let ops = (0..16)
                            .map(|_| {
                                let k = key(rng.u64(0..KEYS));
                                match case {
                                    Case::GetP16 => Op::Get(k),
                                    _ => Op::Set {
                                        key: k,
                                        value: value.clone(),
                                        options: SetOptions::default(),
                                    },
                                }
                            })
                            .collect();
                        for r in db.exec(ops).await.unwrap() {
                            std::hint::black_box(r.unwrap());
                        }
                        done.fetch_add(16, Ordering::Relaxed);
                    }
                }
                lat.push(t0.elapsed().as_micros() as u64);
                // Yield like a network round trip would, so tasks interleave fairly.
                tokio::task::yield_now().await;
            }
            lat
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort_unstable();
    let q = |f: f64| lat.get(((lat.len() as f64 - 1.0) * f) as usize).copied().unwrap_or(0);
    (n as f64 / elapsed, [q(0.5), q(0.99), q(1.0)])
}

fn show(label: &str, (rate, [p50, p99, max]): (f64, [u64; 3])) {
    println!("{label:<36} {rate:>10.0} ops/s   per call p50 {p50:>6} us  p99 {p99:>6} us  max {max:>7} us");
}

async fn engine(dir: &std::path::Path, name: &str, config: Config, changes: bool) -> (Kv, Db) {
    let kv = Kv::open(&dir.join(name), config).unwrap();
    kv.create_store("bench", changes).await.unwrap();
    let db = kv.db("bench", 0).unwrap();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(1000) {
        db.mset(chunk.iter().map(|i| (key(*i), Bytes::from_static(b"xxx"))).collect()).await.unwrap();
    }
    (kv, db)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args.get(2).map(std::path::PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let durable = Config::default();
        if let Ok(windows) = std::env::var("WINDOWS_US") {
            // Only SET, once per group-commit window given (microseconds, comma-separated).
            for (i, us) in windows.split(',').enumerate() {
                let us: u64 = us.parse().unwrap();
                let durability =
                    if std::env::var_os("NOFSYNC").is_some() { Durability::None } else { Durability::Fsync };
                let config =
                    Config { group_commit: Duration::from_micros(us), durability, ..durable.clone() };
                let (kv, db) = engine(&dir, &format!("w{i}"), config, false).await;
                show(&format!("SET, window {us} us"), run(&db, Case::Set, secs).await);
                show(&format!("SET x16, window {us} us"), run(&db, Case::SetP16, secs).await);
                kv.close().await.unwrap();
            }
            return;
        }
        let cases = [
            ("durable, 200 us window", durable.clone(), false),
            ("durable, 0 window", Config { group_commit: Duration::ZERO, ..durable.clone() }, false),
            ("durable, change stream on", durable.clone(), true),
            ("no fsync (cache)", Config { durability: Durability::None, ..durable.clone() }, false),
        ];
        println!("{TASKS} tasks, {KEYS} keys, 3-byte values, {secs}s per case");
        for (i, (label, config, changes)) in cases.into_iter().enumerate() {
            let (kv, db) = engine(&dir, &format!("e{i}"), config, changes).await;
            if i == 0 {
                show("GET", run(&db, Case::Get, secs).await);
                show("GET x16 (pipeline)", run(&db, Case::GetP16, secs).await);
            }
            show(&format!("SET, {label}"), run(&db, Case::Set, secs).await);
            show(&format!("SET x16, {label}"), run(&db, Case::SetP16, secs).await);
            kv.close().await.unwrap();
        }
    });
}
