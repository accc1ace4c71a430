//! The engine as its callers (the HTTP API, the CLI, the wasm host) see it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use yun_sql::{Batch, Clock, Config, Op, Sql, SqlError, Statement, StatementError, StatementResult, Value};

/// Wall time set by the test; monotonic time real unless the test moves it on.
struct TestClock {
    wall_ms: AtomicU64,
    skew_ms: AtomicU64,
    start: Instant,
}

impl TestClock {
    fn new(wall_ms: u64) -> Arc<TestClock> {
        Arc::new(TestClock {
            wall_ms: AtomicU64::new(wall_ms),
            skew_ms: AtomicU64::new(0),
            start: Instant::now(),
        })
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::Relaxed)
    }
    fn monotonic(&self) -> Duration {
        self.start.elapsed() + Duration::from_millis(self.skew_ms.load(Ordering::Relaxed))
    }
}

fn open(config: Config) -> (tempfile::TempDir, Sql) {
    let dir = tempfile::tempdir().unwrap();
    let sql = Sql::open(dir.path(), config).unwrap();
    (dir, sql)
}

fn st(sql: &str) -> Statement {
    Statement::new(sql)
}

async fn run(sql: &Sql, app: &str, statements: &[&str]) -> Result<Vec<StatementResult>, SqlError> {
    sql.execute(app, Batch::new(statements.iter().map(|s| st(s)))).await.map(|r| r.results)
}

async fn query(sql: &Sql, app: &str, q: &str) -> Vec<Vec<Value>> {
    sql.execute(app, Batch::query(st(q))).await.unwrap().results.remove(0).rows
}

fn statement_error(e: SqlError) -> (usize, StatementError) {
    match e {
        SqlError::Statement { index, error } => (index, error),
        other => panic!("expected a statement error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"]).await.unwrap();
    let e = run(
        &sql,
        "app",
        &[
            "INSERT INTO t VALUES (1, 'a')",
            "INSERT INTO t VALUES (2, 'b')",
            "INSERT INTO t VALUES (1, 'dup')",
        ],
    )
    .await
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("statement 2 failed: UNIQUE constraint failed: t.id"), "{msg}");
    assert_eq!(e.status(), 400);
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM t").await, [[Value::Integer(0)]]);

    // A syntax error in the last statement undoes DDL before it too.
    let e =
        run(&sql, "app", &["CREATE TABLE u (x)", "INSERT INTO u VALUES (1)", "SELEC 1"]).await.unwrap_err();
    let (index, error) = statement_error(e);
    assert_eq!(index, 2);
    assert!(matches!(&error, StatementError::Sqlite(m) if m.contains("syntax error")), "{error}");
    let e = run(&sql, "app", &["SELECT * FROM u"]).await.unwrap_err();
    assert!(e.to_string().contains("no such table: u"), "{e}");

    let r = run(
        &sql,
        "app",
        &["INSERT INTO t (v) VALUES ('x')", "INSERT INTO t (v) VALUES ('y')", "SELECT v FROM t"],
    )
    .await
    .unwrap();
    assert_eq!(r[0].rows_affected, 1);
    assert_eq!(r[0].last_insert_rowid, 1);
    assert_eq!(r[1].last_insert_rowid, 2);
    assert_eq!(r[2].columns, ["v"]);
    assert_eq!(r[2].rows, [[Value::from("x")], [Value::from("y")]]);
    assert_eq!(r[2].rows_affected, 0);
}

#[tokio::test]
async fn values_keep_their_types() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE v (a, b, c, d, e)"]).await.unwrap();
    let vals = vec![
        Value::Null,
        Value::Integer(-9),
        Value::Real(1.0),
        Value::from("tëxt"),
        Value::Blob(vec![0, 1, 255]),
    ];
    sql.execute(
        "app",
        Batch::new([Statement::with_params("INSERT INTO v VALUES (?, ?, ?, ?, ?)", vals.clone())]),
    )
    .await
    .unwrap();
    let rows = query(&sql, "app", "SELECT a, b, c, d, e, typeof(c) FROM v").await;
    let mut want = vals;
    want.push(Value::from("real"));
    assert_eq!(rows, [want]);
    let json = serde_json::to_string(&rows).unwrap();
    assert_eq!(json, r#"[[null,-9,1.0,"tëxt",{"base64":"AAH/"},"real"]]"#);
}

#[tokio::test]
async fn parameters_are_inert_and_checked() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"]).await.unwrap();
    let payloads =
        ["'; DROP TABLE users; --", "x' OR '1'='1", "\"); DELETE FROM users; --", "1; ATTACH 'x' AS y"];
    for p in payloads {
        sql.execute(
            "app",
            Batch::new([Statement::with_params("INSERT INTO users (name) VALUES (?)", [p.into()])]),
        )
        .await
        .unwrap();
    }
    sql.execute(
        "app",
        Batch::new([Statement::with_named(
            "INSERT INTO users (name) VALUES (:n)",
            [("n", payloads[0].into())],
        )]),
    )
    .await
    .unwrap();
    let rows = query(&sql, "app", "SELECT name FROM users ORDER BY id").await;
    let mut want: Vec<Vec<Value>> = payloads.iter().map(|p| vec![Value::from(*p)]).collect();
    want.push(vec![payloads[0].into()]);
    assert_eq!(rows, want);
    let found = sql
        .execute(
            "app",
            Batch::query(Statement::with_params(
                "SELECT count(*) FROM users WHERE name = ?",
                ["x' OR '1'='1".into()],
            )),
        )
        .await
        .unwrap();
    assert_eq!(found.results[0].rows, [[Value::Integer(1)]]);

    // Positional with numbers, named with each prefix.
    let r = sql
        .execute(
            "app",
            Batch::query(Statement::with_params("SELECT ?2, ?1, ?2", [Value::Integer(1), Value::Integer(2)])),
        )
        .await
        .unwrap();
    assert_eq!(r.results[0].rows, [[Value::Integer(2), Value::Integer(1), Value::Integer(2)]]);
    let r = sql
        .execute(
            "app",
            Batch::query(Statement::with_named(
                "SELECT :a, @b, $c, :a",
                [("a", 1.into()), ("@b", 2.into()), ("c", 3.into())],
            )),
        )
        .await
        .unwrap();
    assert_eq!(
        r.results[0].rows,
        [[Value::Integer(1), Value::Integer(2), Value::Integer(3), Value::Integer(1)]]
    );

    for (s, want) in [
        (Statement::with_params("SELECT ?", []), "takes 1 parameters, 0 were given"),
        (Statement::with_params("SELECT ?", [1.into(), 2.into()]), "takes 1 parameters, 2 were given"),
        (Statement::with_named("SELECT :a", [("b", 1.into())]), "no value given for :a"),
        (Statement::with_named("SELECT :a", [("a", 1.into()), ("zz", 1.into())]), "no parameter named zz"),
        (Statement::with_named("SELECT ?", [("a", 1.into())]), "positional"),
    ] {
        let e = sql.execute("app", Batch::query(s)).await.unwrap_err();
        let (_, error) = statement_error(e);
        assert!(matches!(&error, StatementError::Params(m) if m.contains(want)), "{error} / {want}");
    }
}

/// Each attack fails with a message that says what is not allowed, and touches no file.
#[tokio::test]
async fn confinement_denies_what_reaches_outside() {
    let (dir, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE t (x)"]).await.unwrap();
    // The outbox exists, so reaching it is a matter of permission, not of existence.
    sql.watch("app", "t").await.unwrap();
    run(&sql, "other", &["CREATE TABLE secret (x)", "INSERT INTO secret VALUES ('s3cret')"]).await.unwrap();
    let other = dir.path().join("other.sqlite3");
    let outside = dir.path().join("stolen.db");
    let attacks: Vec<(String, &str)> = vec![
        (format!("ATTACH '{}' AS o", other.display()), "ATTACH"),
        (format!("ATTACH DATABASE '{}' AS o", outside.display()), "ATTACH"),
        ("ATTACH ':memory:' AS m".into(), "ATTACH"),
        ("DETACH o".into(), "DETACH"),
        (format!("VACUUM INTO '{}'", outside.display()), "VACUUM"),
        ("VACUUM".into(), "VACUUM"),
        (format!("/* hi */ vacuum main into '{}'", outside.display()), "VACUUM"),
        ("SELECT load_extension('/usr/lib/x86_64-linux-gnu/libm.so.6')".into(), "load_extension"),
        ("PRAGMA journal_mode = DELETE".into(), "journal_mode"),
        ("PRAGMA journal_mode = OFF".into(), "journal_mode"),
        ("PRAGMA synchronous = OFF".into(), "synchronous"),
        ("PRAGMA max_page_count = 1000000000".into(), "max_page_count"),
        ("PRAGMA page_size = 512".into(), "page_size"),
        ("PRAGMA writable_schema = ON".into(), "writable_schema"),
        ("PRAGMA temp_store_directory = '/tmp'".into(), "temp_store_directory"),
        ("PRAGMA locking_mode = EXCLUSIVE".into(), "locking_mode"),
        ("PRAGMA mmap_size = 1000000000".into(), "mmap_size"),
        ("PRAGMA cache_size = -1000000".into(), "cache_size"),
        ("PRAGMA foreign_keys = OFF".into(), "foreign_keys"),
        ("PRAGMA wal_checkpoint(TRUNCATE)".into(), "wal_checkpoint"),
        ("SELECT * FROM pragma_database_list".into(), "database_list"),
        ("CREATE TEMP TABLE tt (x)".into(), "TEMP"),
        ("CREATE TABLE temp.tt (x)".into(), "TEMP"),
        ("SELECT * FROM _yun_changes".into(), "_yun_"),
        ("CREATE TABLE _YUN_changes (x)".into(), "_yun_"),
        ("ALTER TABLE t RENAME TO _yun_watch".into(), "_yun_"),
        ("DELETE FROM sqlite_sequence".into(), "sqlite_sequence"),
        ("UPDATE sqlite_sequence SET seq = 0".into(), "sqlite_sequence"),
        ("BEGIN".into(), "BEGIN/COMMIT/ROLLBACK"),
        ("COMMIT".into(), "BEGIN/COMMIT/ROLLBACK"),
        ("ROLLBACK".into(), "BEGIN/COMMIT/ROLLBACK"),
    ];
    for (attack, word) in &attacks {
        let e = sql.execute("app", Batch::new([st("INSERT INTO t VALUES (1)"), st(attack)])).await;
        let e = e.map(|_| ()).expect_err(attack);
        assert_eq!(e.status(), 403, "{attack}: {e}");
        let msg = e.to_string();
        assert!(msg.starts_with("statement 1 failed: not allowed: "), "{attack}: {msg}");
        assert!(msg.contains(word), "{attack}: {msg}");
    }
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM t").await, [[Value::Integer(0)]]);
    assert!(!outside.exists());
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        files.iter().all(|f| f.starts_with("app.sqlite3") || f.starts_with("other.sqlite3")),
        "{files:?}"
    );

    // A trigger or a view cannot smuggle in what a statement may not do: their bodies are
    // authorized where they are used.
    run(&sql, "app", &["CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM _yun_changes; END"])
        .await
        .unwrap();
    let e = run(&sql, "app", &["INSERT INTO t VALUES (2)"]).await.unwrap_err();
    assert!(e.to_string().contains("not allowed: names starting with _yun_"), "{e}");
    run(&sql, "app", &["DROP TRIGGER tr", "CREATE VIEW v AS SELECT * FROM _yun_changes"]).await.unwrap();
    let e = run(&sql, "app", &["SELECT * FROM v"]).await.unwrap_err();
    assert!(e.to_string().contains("not allowed: names starting with _yun_"), "{e}");

    // The settings are as the engine set them, and reading them is allowed.
    let r = run(&sql, "app", &["PRAGMA journal_mode", "PRAGMA synchronous", "PRAGMA foreign_keys"])
        .await
        .unwrap();
    assert_eq!(r[0].rows, [[Value::from("wal")]]);
    assert_eq!(r[1].rows, [[Value::Integer(2)]], "synchronous=FULL");
    assert_eq!(r[2].rows, [[Value::Integer(1)]]);
}

#[tokio::test]
async fn harmless_pragmas_and_savepoints_work() {
    let (_d, sql) = open(Config::default());
    let r = run(
        &sql,
        "app",
        &[
            "CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
            "CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))",
            "CREATE INDEX c_p ON c (p)",
            "PRAGMA table_info(p)",
            "PRAGMA index_list(c)",
            "PRAGMA foreign_key_list(c)",
            "PRAGMA user_version = 7",
            "PRAGMA user_version",
            "SELECT name FROM pragma_table_info('c') ORDER BY cid",
            "SAVEPOINT s1",
            "INSERT INTO p (name) VALUES ('gone')",
            "ROLLBACK TO s1",
            "RELEASE s1",
            "SELECT count(*) FROM p",
            "PRAGMA integrity_check",
        ],
    )
    .await
    .unwrap();
    assert_eq!(r[3].rows.len(), 2);
    assert_eq!(r[4].rows.len(), 1);
    assert_eq!(r[5].rows.len(), 1);
    assert_eq!(r[7].rows, [[Value::Integer(7)]]);
    assert_eq!(r[8].rows, [[Value::from("id")], [Value::from("p")]]);
    assert_eq!(r[13].rows, [[Value::Integer(0)]]);
    assert_eq!(r[14].rows, [[Value::from("ok")]]);

    // Foreign keys are enforced.
    let e = run(&sql, "app", &["INSERT INTO c (p) VALUES (42)"]).await.unwrap_err();
    assert!(e.to_string().contains("FOREIGN KEY constraint failed"), "{e}");
}

#[tokio::test]
async fn the_size_limit_is_a_clear_error_and_the_database_still_works() {
    let limit = 256 * 1024;
    let (_d, sql) = open(Config { max_db_bytes: limit, ..Config::default() });
    run(&sql, "app", &["CREATE TABLE b (id INTEGER PRIMARY KEY, data BLOB)"]).await.unwrap();
    let blob = Value::Blob(vec![7; 10_000]);
    let mut stored = 0;
    let err = loop {
        let r = sql
            .execute(
                "app",
                Batch::new([Statement::with_params("INSERT INTO b (data) VALUES (?)", [blob.clone()])]),
            )
            .await;
        match r {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 100, "the limit never applied");
    };
    assert!(stored > 10, "{stored}");
    assert_eq!(err.to_string(), format!("statement 0 failed: database is full (limit {limit} bytes)"));
    assert_eq!(err.status(), 507);
    let size = sql.size("app").await.unwrap();
    assert!(size.used_bytes <= limit, "{size:?}");
    assert_eq!(size.limit_bytes, limit);

    // Reads, deletes, and then writes again.
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM b").await, [[Value::Integer(stored)]]);
    run(&sql, "app", &["DELETE FROM b WHERE id % 2 = 0"]).await.unwrap();
    sql.execute(
        "app",
        Batch::new([Statement::with_params("INSERT INTO b (data) VALUES (?)", [blob.clone()])]),
    )
    .await
    .unwrap();
    assert_eq!(
        query(&sql, "app", "SELECT count(*) FROM b").await,
        [[Value::Integer(stored - stored / 2 + 1)]]
    );

    // A new connection (another process, a restart) sees the same limit.
    drop(sql);
    let sql = Sql::open(_d.path(), Config { max_db_bytes: limit, ..Config::default() }).unwrap();
    let r = run(&sql, "app", &["PRAGMA max_page_count", "PRAGMA page_size"]).await.unwrap();
    let (Value::Integer(pages), Value::Integer(page)) = (&r[0].rows[0][0], &r[1].rows[0][0]) else {
        panic!()
    };
    assert_eq!((pages * page) as u64, limit);

    // Space deletes free comes back to the file system on vacuum.
    run(&sql, "app", &["DELETE FROM b"]).await.unwrap();
    sql.vacuum("app").await.unwrap();
    assert!(sql.size("app").await.unwrap().used_bytes < 32 * 1024);
}

#[tokio::test]
async fn a_runaway_query_is_interrupted_and_the_database_keeps_working() {
    let (_d, sql) = open(Config { timeout: Duration::from_millis(300), ..Config::default() });
    run(&sql, "app", &["CREATE TABLE t (x)"]).await.unwrap();
    let start = Instant::now();
    let e = run(
        &sql,
        "app",
        &[
            "INSERT INTO t VALUES (1)",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r",
        ],
    )
    .await
    .unwrap_err();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "{took:?}");
    assert_eq!(e.to_string(), "statement 1 failed: interrupted: the batch ran longer than its 300 ms limit");
    assert_eq!(e.status(), 408);
    let r = run(&sql, "app", &["INSERT INTO t VALUES (2)", "SELECT x FROM t"]).await.unwrap();
    assert_eq!(r[1].rows, [[Value::Integer(2)]]);
}

/// The deadline follows the engine's monotonic clock: a runaway query is interrupted the
/// moment the clock passes it, however long that took in real time.
#[tokio::test]
async fn the_deadline_follows_the_clock() {
    let clock = TestClock::new(0);
    let (_d, sql) =
        open(Config { timeout: Duration::from_secs(3600), clock: clock.clone(), ..Config::default() });
    let runaway = {
        let sql = sql.clone();
        tokio::spawn(async move {
            run(
                &sql,
                "app",
                &["WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT max(n) FROM r"],
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!runaway.is_finished(), "an hour has not passed yet");
    clock.skew_ms.store(3_600_000, Ordering::Relaxed);
    let e = tokio::time::timeout(Duration::from_secs(10), runaway).await.unwrap().unwrap().unwrap_err();
    assert_eq!(
        e.to_string(),
        "statement 0 failed: interrupted: the batch ran longer than its 3600000 ms limit"
    );
    // The next batch gets a deadline of its own.
    assert_eq!(run(&sql, "app", &["SELECT 1"]).await.unwrap()[0].rows, [[Value::Integer(1)]]);
}

#[tokio::test]
async fn results_are_bounded() {
    let (_d, sql) = open(Config { max_result_rows: 10, max_result_bytes: 1000, ..Config::default() });
    let e = run(
        &sql,
        "app",
        &["WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r"],
    )
    .await
    .unwrap_err();
    assert_eq!(e.to_string(), "statement 0 failed: result too large: more than 10 rows");
    assert_eq!(e.status(), 413);
    let e = run(&sql, "app", &["SELECT 1", "SELECT zeroblob(2000)"]).await.unwrap_err();
    assert_eq!(e.to_string(), "statement 1 failed: result too large: more than 1000 bytes");
    assert_eq!(run(&sql, "app", &["SELECT 1"]).await.unwrap()[0].rows, [[Value::Integer(1)]]);
}

#[tokio::test]
async fn read_only_batches_write_nothing() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]).await.unwrap();
    let r = sql.execute("app", Batch::query(st("SELECT x FROM t"))).await.unwrap();
    assert_eq!(r.results[0].rows, [[Value::Integer(1)]]);
    let batch = Batch { statements: vec![st("SELECT 1"), st("DELETE FROM t")], read_only: true };
    let e = sql.execute("app", batch).await.unwrap_err();
    assert_eq!(e.to_string(), "statement 1 failed: not read-only, but the batch is read_only");
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM t").await, [[Value::Integer(1)]]);
    let e = sql.execute("app", Batch::query(st("PRAGMA user_version = 3"))).await.unwrap_err();
    assert!(matches!(statement_error(e).1, StatementError::NotReadOnly));
    assert!(matches!(sql.execute("app", Batch::default()).await, Err(SqlError::EmptyBatch)));
}

#[tokio::test]
async fn scripts_run_statement_by_statement() {
    let (_d, sql) = open(Config::default());
    let script = r#"
        -- migration 1; the first
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE log (note INTEGER, what TEXT);
        /* a trigger: its body has ';' of its own */
        CREATE TRIGGER notes_ins AFTER INSERT ON notes BEGIN
            INSERT INTO log VALUES (new.id, 'inserted; ok');
            INSERT INTO log VALUES (new.id, 'twice');
        END;
        INSERT INTO notes (body) VALUES ('a; b; c'), ('it''s; "quoted"');
        INSERT INTO "notes" (body) VALUES ('-- not a comment; /* nor this */');
        PRAGMA user_version = 1;
    "#;
    let batch = Batch::from_script(script).unwrap();
    assert_eq!(batch.statements.len(), 6);
    sql.execute("app", batch).await.unwrap();
    let rows = query(&sql, "app", "SELECT body FROM notes ORDER BY id").await;
    assert_eq!(
        rows,
        [
            [Value::from("a; b; c")],
            [Value::from("it's; \"quoted\"")],
            [Value::from("-- not a comment; /* nor this */")]
        ]
    );
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM log").await, [[Value::Integer(6)]]);

    // A failing script keeps nothing.
    let e = sql
        .execute(
            "app",
            Batch::from_script("INSERT INTO notes (body) VALUES ('x');\nINSERT INTO nope VALUES (1);")
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("statement 1 failed: no such table: nope"), "{e}");
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM notes").await, [[Value::Integer(3)]]);

    // Two statements in one entry are refused before either runs.
    let e = run(&sql, "app", &["DELETE FROM notes; DROP TABLE notes"]).await.unwrap_err();
    assert!(matches!(statement_error(e).1, StatementError::MultipleStatements));
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM notes").await, [[Value::Integer(3)]]);
    // A trailing comment is not a second statement.
    run(&sql, "app", &["SELECT 1; -- done"]).await.unwrap();
}

#[tokio::test]
async fn changes_of_watched_tables_are_recorded_in_order() {
    let clock = TestClock::new(1_000);
    let (dir, sql) = open(Config { clock: clock.clone(), ..Config::default() });
    run(&sql, "app", &["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB)", "CREATE TABLE quiet (x)"])
        .await
        .unwrap();
    // Nothing is recorded before anything is watched.
    run(&sql, "app", &["INSERT INTO t (v) VALUES ('before')"]).await.unwrap();
    assert!(sql.changes("app", 0, 100).await.unwrap().is_empty());

    assert!(sql.watch("app", "T").await.unwrap());
    assert!(!sql.watch("app", "t").await.unwrap(), "already watched");
    assert_eq!(sql.watched("app").await.unwrap(), ["t"]);
    let mut rx = sql.subscribe("app").await.unwrap();
    assert_eq!(*rx.borrow(), 0);

    run(
        &sql,
        "app",
        &[
            "INSERT INTO t (v, b) VALUES ('one', x'0102')",
            "INSERT INTO t (v) VALUES ('two')",
            "UPDATE t SET v = 'ONE' WHERE v = 'one'",
            "INSERT INTO quiet VALUES (1)",
            "DELETE FROM t WHERE v = 'two'",
        ],
    )
    .await
    .unwrap();
    rx.changed().await.unwrap();
    let c = sql.changes("app", 0, 100).await.unwrap();
    let ops: Vec<(u64, Op, i64)> = c.iter().map(|c| (c.seq, c.op, c.rowid)).collect();
    assert_eq!(ops, [(1, Op::Insert, 2), (2, Op::Insert, 3), (3, Op::Update, 2), (4, Op::Delete, 3)]);
    assert_eq!(*rx.borrow_and_update(), 4);
    // The row as the statement that changed it left it.
    assert_eq!(c[0].row, Some(serde_json::json!({"id": 2, "v": "one", "b": {"base64": "AQI="}})));
    assert_eq!(c[1].row, Some(serde_json::json!({"id": 3, "v": "two", "b": null})));
    assert_eq!(c[2].row, Some(serde_json::json!({"id": 2, "v": "ONE", "b": {"base64": "AQI="}})));
    assert_eq!(c[3].row, None);
    assert!(c.iter().all(|c| c.table == "t" && c.time_ms == 1_000));

    // A failed batch records nothing; a DELETE without WHERE records every row.
    clock.wall_ms.store(2_000, Ordering::Relaxed);
    run(&sql, "app", &["INSERT INTO t (v) VALUES ('rolled back')", "SELEC"]).await.unwrap_err();
    run(&sql, "app", &["DELETE FROM t"]).await.unwrap();
    let c = sql.changes("app", 4, 100).await.unwrap();
    let deleted: Vec<(u64, Op, i64, u64)> = c.iter().map(|c| (c.seq, c.op, c.rowid, c.time_ms)).collect();
    assert_eq!(deleted, [(5, Op::Delete, 1, 2_000), (6, Op::Delete, 2, 2_000)]);

    // Paging and trimming; sequence numbers are not reused after a trim, nor after a restart.
    assert_eq!(sql.changes("app", 0, 2).await.unwrap().iter().map(|c| c.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(sql.trim("app", 6).await.unwrap(), 6);
    assert!(sql.changes("app", 0, 100).await.unwrap().is_empty());
    drop(rx);
    drop(sql);
    let sql = Sql::open(dir.path(), Config::default()).unwrap();
    assert_eq!(*sql.subscribe("app").await.unwrap().borrow(), 6);
    assert_eq!(sql.watched("app").await.unwrap(), ["t"]);
    run(&sql, "app", &["INSERT INTO t (v) VALUES ('after restart')"]).await.unwrap();
    let c = sql.changes("app", 0, 100).await.unwrap();
    assert_eq!((c.len(), c[0].seq, c[0].op), (1, 7, Op::Insert));

    // Unwatched: nothing more is recorded; the user cannot touch the outbox.
    assert!(sql.unwatch("app", "t").await.unwrap());
    run(&sql, "app", &["INSERT INTO t (v) VALUES ('unwatched')"]).await.unwrap();
    assert_eq!(sql.changes("app", 0, 100).await.unwrap().len(), 1);
    assert!(run(&sql, "app", &["DELETE FROM _yun_changes"]).await.is_err());
    assert!(matches!(sql.watch("app", "_yun_changes").await, Err(SqlError::InvalidTable(_))));
}

#[tokio::test]
async fn a_delete_prepared_before_the_table_was_watched_reports_its_rows() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE a (x)", "CREATE TABLE b (y)"]).await.unwrap();
    // The outbox tables exist from here on, so watching `b` later changes no schema (which
    // would make SQLite prepare cached statements again by itself).
    sql.watch("app", "a").await.unwrap();
    // Prepared (and cached) while `b` is unwatched: SQLite may empty the table at once.
    run(&sql, "app", &["DELETE FROM b", "INSERT INTO b VALUES (1), (2)"]).await.unwrap();
    sql.watch("app", "b").await.unwrap();
    run(&sql, "app", &["DELETE FROM b"]).await.unwrap();
    let c = sql.changes("app", 0, 10).await.unwrap();
    let got: Vec<(&str, Op, i64)> = c.iter().map(|c| (c.table.as_str(), c.op, c.rowid)).collect();
    assert_eq!(got, [("b", Op::Delete, 1), ("b", Op::Delete, 2)]);
}

#[tokio::test]
async fn watching_every_table_and_waking_a_consumer() {
    let (_d, sql) = open(Config::default());
    run(&sql, "app", &["CREATE TABLE a (x)", "CREATE TABLE b (y)"]).await.unwrap();
    sql.watch("app", "*").await.unwrap();
    let mut rx = sql.subscribe("app").await.unwrap();
    let consumer = {
        let sql = sql.clone();
        tokio::spawn(async move {
            let mut after = 0;
            let mut seen = Vec::new();
            while seen.len() < 3 {
                let batch = sql.changes("app", after, 10).await.unwrap();
                if batch.is_empty() {
                    rx.changed().await.unwrap();
                    continue;
                }
                for c in batch {
                    after = c.seq;
                    seen.push((c.table, c.row.unwrap()));
                }
            }
            seen
        })
    };
    tokio::task::yield_now().await;
    run(&sql, "app", &["INSERT INTO a VALUES (1)"]).await.unwrap();
    run(&sql, "app", &["INSERT INTO b VALUES (2)", "INSERT INTO a VALUES (3)"]).await.unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(10), consumer).await.unwrap().unwrap();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), serde_json::json!({"x": 1})),
            ("b".to_owned(), serde_json::json!({"y": 2})),
            ("a".to_owned(), serde_json::json!({"x": 3}))
        ]
    );
    // yun's own tables never show up in the schema or as changes.
    let schema = sql.schema("app").await.unwrap();
    assert_eq!(schema.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
}

#[tokio::test]
async fn apps_are_listed_sized_described_and_deleted() {
    let (dir, sql) = open(Config::default());
    assert!(sql.list_apps().await.unwrap().is_empty());
    run(
        &sql,
        "shop",
        &[
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'x', price REAL)",
            "CREATE VIEW cheap AS SELECT * FROM items WHERE price < 1",
        ],
    )
    .await
    .unwrap();
    run(&sql, "blog", &["CREATE TABLE posts (id)"]).await.unwrap();
    std::fs::write(dir.path().join("Not.An.App.sqlite3"), b"").unwrap();
    assert_eq!(sql.list_apps().await.unwrap(), ["blog", "shop"]);

    let schema = sql.schema("shop").await.unwrap();
    assert_eq!(schema.len(), 2);
    assert_eq!((schema[0].name.as_str(), schema[0].kind.as_str()), ("cheap", "view"));
    let items = &schema[1];
    assert_eq!(items.kind, "table");
    assert!(items.sql.as_deref().unwrap().starts_with("CREATE TABLE items"));
    let cols: Vec<(&str, &str, bool, Option<&str>, u32)> = items
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.decl_type.as_str(), c.not_null, c.default.as_deref(), c.primary_key))
        .collect();
    assert_eq!(
        cols,
        [
            ("id", "INTEGER", false, None, 1),
            ("name", "TEXT", true, Some("'x'"), 0),
            ("price", "REAL", false, None, 0)
        ]
    );

    let size = sql.size("shop").await.unwrap();
    assert!(size.used_bytes >= 4096 && size.file_bytes >= size.used_bytes / 2, "{size:?}");

    assert!(matches!(sql.size("nope").await, Err(SqlError::NoDatabase(_))));
    assert!(matches!(sql.schema("nope").await, Err(SqlError::NoDatabase(_))));
    assert!(!dir.path().join("nope.sqlite3").exists());

    let shop = dir.path().join("shop.sqlite3");
    assert!(std::path::Path::new(&format!("{}-wal", shop.display())).exists());
    assert!(sql.delete("shop").await.unwrap());
    for f in ["", "-wal", "-shm"] {
        assert!(!std::path::Path::new(&format!("{}{f}", shop.display())).exists(), "{f}");
    }
    assert!(!sql.delete("shop").await.unwrap());
    assert_eq!(sql.list_apps().await.unwrap(), ["blog"]);
    // Used again, it starts empty.
    let e = run(&sql, "shop", &["SELECT * FROM items"]).await.unwrap_err();
    assert!(e.to_string().contains("no such table"), "{e}");
}

#[tokio::test]
async fn app_names_cannot_leave_the_directory() {
    let (_d, sql) = open(Config::default());
    for bad in ["../escape", "a/b", "..", "x.sqlite3", "", "UPPER", "/etc/passwd"] {
        let e = run(&sql, bad, &["SELECT 1"]).await.unwrap_err();
        assert!(matches!(e, SqlError::InvalidApp(_)), "{bad}: {e}");
        assert_eq!(e.status(), 400);
        assert!(matches!(sql.delete(bad).await, Err(SqlError::InvalidApp(_))));
    }
}

#[tokio::test]
async fn more_apps_than_open_connections() {
    let (_d, sql) = open(Config { max_open: 2, ..Config::default() });
    let apps: Vec<String> = (0..6).map(|i| format!("app-{i}")).collect();
    for round in 0..3 {
        let mut tasks = Vec::new();
        for app in &apps {
            let (sql, app) = (sql.clone(), app.clone());
            tasks.push(tokio::spawn(async move {
                if round == 0 {
                    run(&sql, &app, &["CREATE TABLE t (n)"]).await.unwrap();
                }
                run(&sql, &app, &["INSERT INTO t VALUES (1)"]).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    for app in &apps {
        assert_eq!(query(&sql, app, "SELECT count(*) FROM t").await, [[Value::Integer(3)]]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_one_app_all_commit() {
    let (_d, sql) = open(Config::default());
    run(
        &sql,
        "app",
        &[
            "CREATE TABLE t (task INTEGER, i INTEGER, UNIQUE (task, i))",
            "CREATE TABLE n (c INTEGER)",
            "INSERT INTO n VALUES (0)",
        ],
    )
    .await
    .unwrap();
    sql.watch("app", "t").await.unwrap();
    let tasks: Vec<_> = (0..8i64)
        .map(|task| {
            let sql = sql.clone();
            tokio::spawn(async move {
                for i in 0..25i64 {
                    let b = Batch::new([
                        Statement::with_params("INSERT INTO t VALUES (?, ?)", [task.into(), i.into()]),
                        Statement::new("UPDATE n SET c = c + 1"),
                    ]);
                    sql.execute("app", b).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM t").await, [[Value::Integer(200)]]);
    assert_eq!(query(&sql, "app", "SELECT c FROM n").await, [[Value::Integer(200)]]);
    let seqs: Vec<u64> = sql.changes("app", 0, 1000).await.unwrap().iter().map(|c| c.seq).collect();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
}

#[tokio::test]
async fn replace_and_upsert_show_as_changes_of_the_row() {
    let (_d, sql) = open(Config::default());
    run(
        &sql,
        "app",
        &["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)", "CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)"],
    )
    .await
    .unwrap();
    sql.watch("app", "*").await.unwrap();
    run(
        &sql,
        "app",
        &[
            "INSERT INTO kv VALUES ('a', '1')",
            "INSERT INTO kv VALUES ('a', '2') ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            "INSERT INTO r VALUES (1, 'x')",
            "INSERT OR REPLACE INTO r VALUES (1, 'y')",
        ],
    )
    .await
    .unwrap();
    let c = sql.changes("app", 0, 10).await.unwrap();
    let got: Vec<(&str, Op, serde_json::Value)> =
        c.iter().map(|c| (c.table.as_str(), c.op, c.row.clone().unwrap())).collect();
    assert_eq!(
        got,
        [
            ("kv", Op::Insert, serde_json::json!({"k": "a", "v": "1"})),
            ("kv", Op::Update, serde_json::json!({"k": "a", "v": "2"})),
            ("r", Op::Insert, serde_json::json!({"id": 1, "v": "x"})),
            ("r", Op::Insert, serde_json::json!({"id": 1, "v": "y"})),
        ]
    );
}

#[tokio::test]
async fn a_full_database_with_a_watched_table_still_deletes() {
    let limit = 128 * 1024;
    let (_d, sql) = open(Config { max_db_bytes: limit, ..Config::default() });
    run(&sql, "app", &["CREATE TABLE s (id INTEGER PRIMARY KEY, v TEXT)"]).await.unwrap();
    sql.watch("app", "s").await.unwrap();
    let mut n = 0i64;
    let err = loop {
        let b = Batch::new([Statement::with_params(
            "INSERT INTO s (v) VALUES (?)",
            [format!("{n:0>300}").into()],
        )]);
        match sql.execute("app", b).await {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            SqlError::Statement { error: StatementError::Full { .. }, .. }
                | SqlError::Commit(StatementError::Full { .. })
        ),
        "{err}"
    );
    // Deletes still work though each adds an outbox row: the pages they free are reused.
    let last = sql.changes("app", 0, usize::MAX).await.unwrap().last().unwrap().seq;
    assert_eq!(last, n as u64);
    run(&sql, "app", &["DELETE FROM s WHERE id <= 10"]).await.unwrap();
    assert_eq!(sql.changes("app", last, 100).await.unwrap().len(), 10);
    assert_eq!(query(&sql, "app", "SELECT count(*) FROM s").await, [[Value::Integer(n - 10)]]);
    // Trimming what consumers have read makes room for writes again.
    assert_eq!(sql.trim("app", last + 10).await.unwrap(), n as u64 + 10);
    run(&sql, "app", &["INSERT INTO s (v) VALUES ('fits again')"]).await.unwrap();
}
