//! kill -9 of the process serving writes loses none that were acknowledged.
//!
//! The test re-runs its own binary as the child (`crash_child` with `REDIS_CRASH_DIR` set): it
//! serves the endpoint over the engine in that directory and prints its port. The parent's
//! clients send pipelines of SETs and an INCR and note what was answered; the parent SIGKILLs the
//! child mid-stream, reopens the engine itself and looks for every acknowledged write.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use yun_kv::Kv;
use yun_redis::RedisEndpoint;

const CLIENTS: usize = 8;
const PIPELINE: usize = 8;

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("REDIS_CRASH_DIR") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let kv = Kv::open(std::path::Path::new(&dir), yun_kv::Config::default()).unwrap();
        let endpoint = Arc::new(RedisEndpoint::new(kv, Arc::new(common::TestCredentials)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        // Serves until the parent kills this process.
        yun_redis::serve(listener, endpoint, yun_resp::Config::default(), std::future::pending())
            .await
            .unwrap();
    });
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads `n` complete replies of the simple kinds this test gets (`+OK`, `:n`).
async fn replies(stream: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Option<Vec<String>> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(buf.drain(..end + 2).take(end).collect()).unwrap();
            out.push(line);
            if out.len() == n {
                return Some(out);
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

#[derive(Default)]
struct Acked {
    sets: HashMap<String, String>,
    max_counter: i64,
}

#[test]
fn kill_9_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acked = Arc::new(Mutex::new(Acked::default()));
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("REDIS_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port: u16 = loop {
            let line = lines.next().expect("the child printed its port").unwrap();
            // The test harness prints "test crash_child ... " on the same line first.
            if let Some((_, p)) = line.split_once("PORT ") {
                break p.trim().parse().unwrap();
            }
        };
        // Kill at a different point each round.
        let want = 300 + round * 400;
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..CLIENTS {
                let acked = acked.clone();
                tasks.push(tokio::spawn(async move {
                    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else { return };
                    let mut buf = Vec::new();
                    stream.write_all(&command(&["AUTH", "crash", common::ADMIN])).await.unwrap();
                    replies(&mut stream, &mut buf, 1).await.unwrap();
                    for seq in 0.. {
                        let mut batch = Vec::new();
                        let mut keys = Vec::new();
                        for j in 0..PIPELINE {
                            let (key, value) = (format!("r{round}:c{c}:{seq}:{j}"), format!("v{seq}-{j}"));
                            batch.extend(command(&["SET", &key, &value]));
                            keys.push((key, value));
                        }
                        batch.extend(command(&["INCR", "counter"]));
                        if stream.write_all(&batch).await.is_err() {
                            return;
                        }
                        let Some(got) = replies(&mut stream, &mut buf, PIPELINE + 1).await else { return };
                        assert!(got[..PIPELINE].iter().all(|r| r == "+OK"), "{got:?}");
                        let counter: i64 = got[PIPELINE].strip_prefix(':').unwrap().parse().unwrap();
                        let mut acked = acked.lock().await;
                        acked.sets.extend(keys);
                        acked.max_counter = acked.max_counter.max(counter);
                    }
                }));
            }
            let started = Instant::now();
            let base = acked.lock().await.sets.len();
            while acked.lock().await.sets.len() < base + want * PIPELINE {
                assert!(started.elapsed() < Duration::from_secs(60), "the child stalled");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            child.kill().unwrap();
            for t in tasks {
                t.await.unwrap();
            }
        });
        child.wait().unwrap();

        rt.block_on(async {
            let kv = Kv::open(dir.path(), yun_kv::Config::default()).unwrap();
            let db = kv.db("crash", 0).unwrap();
            let acked = acked.lock().await;
            for (key, value) in &acked.sets {
                let got = db.get(key.as_bytes()).await.unwrap();
                assert_eq!(got.as_deref(), Some(value.as_bytes()), "round {round}: acknowledged {key} lost");
            }
            let counter: i64 = std::str::from_utf8(&db.get(&b"counter"[..]).await.unwrap().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                counter >= acked.max_counter,
                "round {round}: INCR {} acknowledged, {counter} on disk",
                acked.max_counter
            );
            eprintln!("round {round}: {} SETs acknowledged in all, counter {counter}", acked.sets.len());
            kv.close().await.unwrap();
        });
    }
}
