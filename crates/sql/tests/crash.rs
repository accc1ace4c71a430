//! Crash safety: a child process (this test binary, re-executed) commits batches and prints
//! the id of each one `execute` acknowledged; it is SIGKILLed mid-way, and the database,
//! reopened, must hold every acknowledged batch and no part of any other.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use yun_sql::{Batch, Config, Sql, Statement, Value};

const CHILD_DIR: &str = "YUN_SQL_CRASH_CHILD_DIR";
const CHILD_START: &str = "YUN_SQL_CRASH_CHILD_START";

/// The child's side; a no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let start: i64 = std::env::var(CHILD_START).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sql = Sql::open(&dir, Config::default()).unwrap();
        for id in start.. {
            // Three writes to three tables plus the outbox entries of `a`: all or none.
            let batch = Batch::new([
                Statement::with_params("INSERT INTO a (id, v) VALUES (?1, randomblob(3000))", [id.into()]),
                Statement::with_params("INSERT INTO b (id) VALUES (?1)", [id.into()]),
                Statement::new("UPDATE counter SET n = n + 1"),
            ]);
            sql.execute("crash", batch).await.unwrap();
            // Only after execute returned: the commit is acknowledged.
            println!("ack {id}");
        }
    });
}

fn count(rows: &[Vec<Value>]) -> i64 {
    match rows[0][0] {
        Value::Integer(n) => n,
        ref v => panic!("not a count: {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    {
        let sql = Sql::open(dir.path(), Config::default()).unwrap();
        sql.execute(
            "crash",
            Batch::from_script(
                "CREATE TABLE a (id INTEGER PRIMARY KEY, v BLOB NOT NULL);
                 CREATE TABLE b (id INTEGER PRIMARY KEY REFERENCES a (id));
                 CREATE TABLE counter (n INTEGER NOT NULL); INSERT INTO counter VALUES (0);",
            )
            .unwrap(),
        )
        .await
        .unwrap();
        sql.watch("crash", "a").await.unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut next = 0i64;
    for round in 0..5u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_START, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                // libtest's "test crash_child ... " may start the first line.
                .filter_map(|l| l.rsplit_once("ack ").map(|(_, n)| n.parse::<i64>().unwrap()))
                .collect::<Vec<_>>()
        });
        tokio::time::sleep(Duration::from_millis(250 + 120 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acked = reader.join().unwrap();
        assert!(!acked.is_empty(), "round {round}: the child acknowledged nothing");
        assert_eq!(acked.first(), Some(&next));

        let sql = Sql::open(dir.path(), Config::default()).unwrap();
        let q = |s: &str| Batch::query(Statement::new(s));
        let r = sql
            .execute(
                "crash",
                Batch {
                    statements: vec![
                        Statement::new("SELECT count(*) FROM a"),
                        Statement::new("SELECT count(*) FROM b"),
                        Statement::new("SELECT n FROM counter"),
                        Statement::new("SELECT count(*) FROM a JOIN b USING (id)"),
                        Statement::new("SELECT coalesce(max(id), -1) FROM a"),
                        Statement::new("PRAGMA integrity_check"),
                    ],
                    read_only: true,
                },
            )
            .await
            .unwrap();
        let n = count(&r.results[0].rows);
        assert_eq!(count(&r.results[1].rows), n, "round {round}: a and b differ: a batch was half applied");
        assert_eq!(count(&r.results[2].rows), n, "round {round}: the counter differs");
        assert_eq!(count(&r.results[3].rows), n);
        assert_eq!(count(&r.results[4].rows), n - 1, "ids are contiguous");
        assert_eq!(r.results[5].rows, [[Value::from("ok")]]);
        let last_acked = *acked.last().unwrap();
        eprintln!("round {round}: {} batches acknowledged, {n} in the database", acked.len());
        // Every acknowledged batch is there; at most the one in flight at the kill is extra.
        assert!(n > last_acked && n <= last_acked + 2, "round {round}: {n} rows, last ack {last_acked}");
        // The outbox committed with the rows.
        let changes = sql.changes("crash", 0, usize::MAX).await.unwrap();
        assert_eq!(changes.len() as i64, n, "round {round}");
        assert!(changes.iter().enumerate().all(|(i, c)| c.seq == i as u64 + 1 && c.rowid == i as i64));
        sql.execute("crash", q("SELECT 1")).await.unwrap();
        next = n;
    }
    assert!(next > 5, "too few commits to mean anything: {next}");
}
