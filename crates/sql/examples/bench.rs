//! Rough throughput of the engine on this machine: durable one-row write batches (with and
//! without change capture), point reads, and writes spread over several apps.
//!
//! `cargo run -p yun-sql --example bench [N]` (N batches per measurement, default 2000); the
//! databases go to a temporary directory on the same file system as `TMPDIR`.

use std::time::Instant;

use yun_sql::{Batch, Config, Sql, Statement};

fn rate(label: &str, n: usize, start: Instant) {
    let s = start.elapsed().as_secs_f64();
    println!(
        "{label:<46} {n:>6} in {s:>6.2} s = {:>8.0}/s ({:>7.1} µs each)",
        n as f64 / s,
        s * 1e6 / n as f64
    );
}

async fn writes(sql: &Sql, app: &str, n: usize) {
    for i in 0..n {
        let st = Statement::with_params("INSERT INTO t (v) VALUES (?)", [format!("value {i}").into()]);
        sql.execute(app, Batch::new([st])).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args().nth(1).map_or(2000, |a| a.parse().expect("N"));
    let dir = tempfile::tempdir().unwrap();
    let sql = Sql::open(dir.path(), Config::default()).unwrap();
    for app in ["plain", "watched", "a0", "a1", "a2", "a3"] {
        sql.execute(app, Batch::new([Statement::new("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")]))
            .await
            .unwrap();
    }
    sql.watch("watched", "t").await.unwrap();

    let start = Instant::now();
    writes(&sql, "plain", n).await;
    rate("write batch (1 INSERT, fsynced commit)", n, start);

    let start = Instant::now();
    writes(&sql, "watched", n).await;
    rate("write batch, table watched (+ outbox row)", n, start);

    let start = Instant::now();
    for i in 0..n {
        let st = Statement::with_params("SELECT v FROM t WHERE id = ?", [((i % n) as i64 + 1).into()]);
        sql.execute("plain", Batch::query(st)).await.unwrap();
    }
    rate("read-only batch (point SELECT)", n, start);

    let start = Instant::now();
    let big = Batch::new(
        (0..n).map(|i| Statement::with_params("INSERT INTO t (v) VALUES (?)", [(i as i64).into()])),
    );
    sql.execute("plain", big).await.unwrap();
    rate("INSERTs inside one batch", n, start);

    let start = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|a| {
            let sql = sql.clone();
            tokio::spawn(async move { writes(&sql, &format!("a{a}"), n / 4).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    rate("write batches over 4 apps at once", n / 4 * 4, start);
}
