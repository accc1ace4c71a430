//! One app's database: its connection, the authorizer that confines it, batches, the outbox.
//!
//! Everything here is synchronous and runs on a blocking thread; `engine.rs` owns the threads.
//! The connection's hooks (authorizer, progress handler, update hook) are `'static`
//! closures, so what they need to know lives in `Shared`, which the engine flips around its own
//! statements: while `internal` is set the authorizer allows everything, so yun may use its
//! `_yun_*` tables and pragmas that user statements may not.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::hooks::{Action, AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use crate::batch::{Batch, BatchResult, Statement, StatementResult, leading_keyword};
use crate::engine::{Change, Clock, ColumnSchema, Config, Op, TableSchema};
use crate::error::{SqlError, StatementError};
use crate::value::{Params, Value};

/// Tables (and indexes, views, triggers) whose names start with this belong to yun.
const RESERVED_PREFIX: &str = "_yun_";
/// In `_yun_watch`, the entry that watches every table.
pub(crate) const ALL_TABLES: &str = "*";

/// Pragmas whose value is an argument (a table, an index, a count), not a setting.
const ARG_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "optimize",
];
/// Pragmas a user may read but not set: the engine owns durability, journaling and the limit.
const READ_PRAGMAS: &[&str] = &[
    "page_size",
    "page_count",
    "freelist_count",
    "max_page_count",
    "encoding",
    "foreign_keys",
    "schema_version",
    "data_version",
    "journal_mode",
    "synchronous",
    "auto_vacuum",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
];
/// Pragmas a user may set: they live in the database header or last one transaction.
const WRITE_PRAGMAS: &[&str] = &["user_version", "application_id", "defer_foreign_keys"];

/// How many VM instructions run between deadline checks (~microseconds).
const PROGRESS_OPS: i32 = 1000;

fn reserved(name: &str) -> bool {
    name.len() >= RESERVED_PREFIX.len() && name[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX)
}

#[derive(Default)]
struct Watched {
    all: bool,
    /// Lowercase: SQLite's table names are ASCII case-insensitive.
    tables: HashSet<String>,
}

/// A change seen by the update hook, before its row is read.
struct Captured {
    table: String,
    op: Op,
    rowid: i64,
}

/// A change ready for the outbox.
struct Pending {
    table: String,
    op: Op,
    rowid: i64,
    row: Option<String>,
}

struct Shared {
    internal: AtomicBool,
    /// Why the authorizer last said no: SQLite itself only reports "not authorized".
    denied: Mutex<Option<String>>,
    /// `clock.monotonic()` in nanoseconds + 1 at which the running work is interrupted; 0 for none.
    deadline: AtomicU64,
    clock: Arc<dyn Clock>,
    watched: Mutex<Watched>,
    captured: Mutex<Vec<Captured>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data behind these locks stays consistent at every await-free step, so a panic
    // elsewhere does not make it unusable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn expired(&self) -> bool {
        let d = self.deadline.load(Ordering::Relaxed);
        d != 0 && self.clock.monotonic().as_nanos() as u64 + 1 >= d
    }

    fn is_watched(&self, table: &str) -> bool {
        let w = lock(&self.watched);
        w.all || w.tables.contains(&table.to_ascii_lowercase())
    }

    fn authorize(&self, ctx: &AuthContext<'_>) -> Authorization {
        if self.internal.load(Ordering::Relaxed) {
            return Authorization::Allow;
        }
        // SQLite deletes all rows at once, without calling the update hook, unless a DELETE of
        // the table is answered with "ignore" (which disables only that optimization).
        if let AuthAction::Delete { table_name } = ctx.action
            && !reserved(table_name)
            && self.is_watched(table_name)
        {
            return Authorization::Ignore;
        }
        match check(ctx) {
            Ok(()) => Authorization::Allow,
            Err(why) => {
                *lock(&self.denied) = Some(why);
                Authorization::Deny
            }
        }
    }
}

/// The authorizer's rules for user statements.
fn check(ctx: &AuthContext<'_>) -> Result<(), String> {
    use AuthAction as A;
    let reserved_name = || format!("names starting with {RESERVED_PREFIX} are reserved for yun");
    const TEMP: &str =
        "TEMP tables, indexes, triggers and views: they would live outside the database and its size limit";
    // `CREATE TABLE temp.x` is authorized as a plain CREATE TABLE, in the temp schema.
    let creates = matches!(
        ctx.action,
        A::CreateTable { .. }
            | A::CreateIndex { .. }
            | A::CreateTrigger { .. }
            | A::CreateView { .. }
            | A::CreateVtable { .. }
    );
    if creates && ctx.database_name.is_some_and(|d| d.eq_ignore_ascii_case("temp")) {
        return Err(TEMP.into());
    }
    match ctx.action {
        A::Attach { .. } => Err("ATTACH: an app can use only its own database".into()),
        A::Detach { .. } => Err("DETACH: an app can use only its own database".into()),
        A::Transaction { .. } => {
            Err("BEGIN/COMMIT/ROLLBACK: a batch already runs as one transaction (SAVEPOINT works)".into())
        }
        A::Pragma { pragma_name, pragma_value } => check_pragma(pragma_name, pragma_value),
        A::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => {
            Err("load_extension(): extensions cannot be loaded".into())
        }
        A::CreateTempTable { .. }
        | A::CreateTempIndex { .. }
        | A::CreateTempTrigger { .. }
        | A::CreateTempView { .. } => Err(TEMP.into()),
        // It holds the outbox's sequence: rewinding it would reuse change numbers.
        A::Insert { table_name } | A::Update { table_name, .. } | A::Delete { table_name }
            if table_name.eq_ignore_ascii_case("sqlite_sequence") =>
        {
            Err("writing sqlite_sequence: SQLite (and yun's outbox) keep it".into())
        }
        A::Read { table_name, .. }
        | A::Insert { table_name }
        | A::Update { table_name, .. }
        | A::Delete { table_name }
        | A::CreateTable { table_name }
        | A::DropTable { table_name }
        | A::AlterTable { table_name, .. }
        | A::Analyze { table_name }
        | A::CreateVtable { table_name, .. }
        | A::DropVtable { table_name, .. }
            if reserved(table_name) =>
        {
            Err(reserved_name())
        }
        A::CreateIndex { index_name: a, table_name: b }
        | A::DropIndex { index_name: a, table_name: b }
        | A::CreateTrigger { trigger_name: a, table_name: b }
        | A::DropTrigger { trigger_name: a, table_name: b }
            if reserved(a) || reserved(b) =>
        {
            Err(reserved_name())
        }
        A::CreateView { view_name } | A::DropView { view_name } | A::Reindex { index_name: view_name }
            if reserved(view_name) =>
        {
            Err(reserved_name())
        }
        _ => Ok(()),
    }
}

fn check_pragma(name: &str, value: Option<&str>) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    let n = lower.as_str();
    if ARG_PRAGMAS.contains(&n)
        || WRITE_PRAGMAS.contains(&n)
        || (READ_PRAGMAS.contains(&n) && value.is_none())
    {
        return Ok(());
    }
    if READ_PRAGMAS.contains(&n) {
        return Err(format!("PRAGMA {name} can only be read here; yun sets it"));
    }
    Err(format!(
        "PRAGMA {name}; allowed: {}, reading {}, and setting {}",
        ARG_PRAGMAS.join(", "),
        READ_PRAGMAS.join(", "),
        WRITE_PRAGMAS.join(", ")
    ))
}

/// Running totals of a batch's result, against the configured bounds.
struct Budget {
    rows: u64,
    bytes: u64,
    max_rows: u64,
    max_bytes: u64,
}

impl Budget {
    fn add(&mut self, row: &[Value]) -> Result<(), StatementError> {
        self.rows += 1;
        self.bytes += row.iter().map(|v| v.weight() as u64).sum::<u64>();
        if self.rows > self.max_rows {
            return Err(StatementError::ResultTooLarge { limit: self.max_rows, what: "rows" });
        }
        if self.bytes > self.max_bytes {
            return Err(StatementError::ResultTooLarge { limit: self.max_bytes, what: "bytes" });
        }
        Ok(())
    }
}

pub(crate) struct Db {
    conn: Connection,
    shared: Arc<Shared>,
    limit_bytes: u64,
    timeout: Duration,
    hooked: bool,
}

/// The deadline of the work in progress; cleared when dropped, whatever path ends the work.
struct DeadlineGuard(Arc<Shared>);

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        self.0.deadline.store(0, Ordering::Relaxed);
    }
}

impl Db {
    pub(crate) fn open(path: &Path, config: &Config) -> Result<Db, SqlError> {
        // No SQLITE_OPEN_URI: the path is ours, and no statement can name another file anyway.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        // Defensive mode: no writable_schema, no writes to shadow tables or sqlite_dbpage.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        // Functions and virtual tables named in the schema run only if they are harmless.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
        conn.busy_timeout(config.busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqlError::Db(format!(
                "could not switch {} to WAL (it is in {mode} mode)",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let page_size = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
        let max_pages = (config.max_db_bytes / page_size.max(1)).max(1);
        conn.query_row(&format!("PRAGMA max_page_count = {max_pages}"), [], |_| Ok(()))?;
        conn.set_prepared_statement_cache_capacity(64);

        let shared = Arc::new(Shared {
            internal: AtomicBool::new(false),
            denied: Mutex::new(None),
            deadline: AtomicU64::new(0),
            clock: config.clock.clone(),
            watched: Mutex::new(Watched::default()),
            captured: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| s.authorize(&ctx)))?;
        let s = shared.clone();
        conn.progress_handler(PROGRESS_OPS, Some(move || s.expired()))?;
        let mut db =
            Db { conn, shared, limit_bytes: config.max_db_bytes, timeout: config.timeout, hooked: false };
        db.load_watched()?;
        Ok(db)
    }

    fn deadline(&self) -> DeadlineGuard {
        let at = self.shared.clock.monotonic() + self.timeout;
        self.shared.deadline.store(at.as_nanos() as u64 + 1, Ordering::Relaxed);
        DeadlineGuard(self.shared.clone())
    }

    /// Runs yun's own SQL: the authorizer lets it through.
    fn internal<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        struct Reset<'a>(&'a AtomicBool);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        self.shared.internal.store(true, Ordering::Relaxed);
        let _reset = Reset(&self.shared.internal);
        f(&self.conn)
    }

    fn map_err(&self, e: rusqlite::Error) -> StatementError {
        // Some denials (a function) surface as a plain SQLITE_ERROR, so the reason decides.
        if let Some(why) = lock(&self.shared.denied).take() {
            return StatementError::Denied(why);
        }
        match &e {
            rusqlite::Error::SqliteFailure(f, msg) => match f.code {
                ErrorCode::DiskFull => StatementError::Full { limit: self.limit_bytes },
                ErrorCode::OperationInterrupted => {
                    StatementError::Timeout { ms: self.timeout.as_millis() as u64 }
                }
                ErrorCode::AuthorizationForStatementDenied => {
                    StatementError::Denied(msg.clone().unwrap_or_else(|| "not authorized".into()))
                }
                _ => StatementError::Sqlite(e.to_string()),
            },
            rusqlite::Error::MultipleStatement => StatementError::MultipleStatements,
            rusqlite::Error::InvalidParameterCount(got, want) => {
                StatementError::Params(format!("the statement takes {want} parameters, {got} were given"))
            }
            rusqlite::Error::InvalidParameterName(n) => {
                StatementError::Params(format!("the statement has no parameter {n}"))
            }
            _ => StatementError::Sqlite(e.to_string()),
        }
    }

    fn db_err(&self, e: rusqlite::Error) -> SqlError {
        match self.map_err(e) {
            StatementError::Sqlite(m) => SqlError::Db(m),
            other => SqlError::Db(other.to_string()),
        }
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            // A failed rollback leaves SQLite to roll back when the connection next begins or
            // closes; there is nothing better to do with the error.
            let _ = self.internal(|c| c.execute_batch("ROLLBACK"));
        }
        lock(&self.shared.captured).clear();
    }

    /// Runs a batch in one transaction. On success returns the results and, if the batch
    /// recorded changes, the sequence number of the last one.
    pub(crate) fn run(
        &mut self,
        batch: &Batch,
        config: &Config,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<(BatchResult, Option<u64>), SqlError> {
        if batch.statements.is_empty() {
            return Err(SqlError::EmptyBatch);
        }
        let _deadline = self.deadline();
        let begin = if batch.read_only { "BEGIN DEFERRED" } else { "BEGIN IMMEDIATE" };
        self.internal(|c| c.execute_batch(begin)).map_err(|e| self.db_err(e))?;
        let mut budget = Budget {
            rows: 0,
            bytes: 0,
            max_rows: config.max_result_rows,
            max_bytes: config.max_result_bytes,
        };
        let mut results = Vec::with_capacity(batch.statements.len());
        let mut pending = Vec::new();
        for (index, st) in batch.statements.iter().enumerate() {
            let r = self.statement(st, batch.read_only, &mut budget);
            let r = r.and_then(|res| {
                if self.hooked {
                    self.collect(&mut pending).map_err(|e| self.map_err(e))?;
                }
                Ok(res)
            });
            match r {
                Ok(res) => results.push(res),
                Err(error) => {
                    self.rollback();
                    return Err(SqlError::Statement { index, error });
                }
            }
        }
        if batch.read_only {
            self.rollback();
            return Ok((BatchResult { results }, None));
        }
        let last = match self.write_outbox(&pending, now_ms) {
            Ok(last) => last,
            Err(e) => {
                let error = self.map_err(e);
                self.rollback();
                return Err(SqlError::Commit(error));
            }
        };
        if let Err(e) = self.internal(|c| c.execute_batch("COMMIT")) {
            let error = self.map_err(e);
            self.rollback();
            return Err(SqlError::Commit(error));
        }
        Ok((BatchResult { results }, last))
    }

    fn statement(
        &self,
        st: &Statement,
        read_only: bool,
        budget: &mut Budget,
    ) -> Result<StatementResult, StatementError> {
        match leading_keyword(&st.sql).as_str() {
            // Inside a transaction VACUUM cannot run anyway, and VACUUM INTO writes a file.
            "VACUUM" => {
                return Err(StatementError::Denied(
                    "VACUUM in a batch (VACUUM INTO would write another file); yun vacuums for you".into(),
                ));
            }
            // The authorizer sees the table an ALTER renames, not its new name.
            "ALTER" if st.sql.to_ascii_lowercase().contains(RESERVED_PREFIX) => {
                return Err(StatementError::Denied(format!(
                    "names starting with {RESERVED_PREFIX} are reserved for yun"
                )));
            }
            _ => {}
        }
        lock(&self.shared.denied).take();
        let mut stmt = self.conn.prepare_cached(&st.sql).map_err(|e| self.map_err(e))?;
        if read_only && !stmt.readonly() {
            return Err(StatementError::NotReadOnly);
        }
        bind(&mut stmt, &st.params).map_err(|e| match e {
            Bind::Params(m) => StatementError::Params(m),
            Bind::Sqlite(e) => self.map_err(e),
        })?;
        let columns: Vec<String> = stmt.column_names().map(String::from).collect();
        let before = self.conn.total_changes();
        let mut rows = Vec::new();
        {
            let mut q = stmt.raw_query();
            while let Some(row) = q.next().map_err(|e| self.map_err(e))? {
                let mut vals = Vec::with_capacity(columns.len());
                for i in 0..columns.len() {
                    vals.push(Value::from_ref(row.get_ref(i).map_err(|e| self.map_err(e))?));
                }
                budget.add(&vals)?;
                rows.push(vals);
            }
        }
        let rows_affected = if self.conn.total_changes() != before { self.conn.changes() } else { 0 };
        Ok(StatementResult { columns, rows, rows_affected, last_insert_rowid: self.conn.last_insert_rowid() })
    }

    /// Turns what the hook captured during the last statement into outbox entries, reading each
    /// inserted or updated row as it is now (the end of the statement that changed it).
    fn collect(&self, out: &mut Vec<Pending>) -> rusqlite::Result<()> {
        let captured = std::mem::take(&mut *lock(&self.shared.captured));
        if captured.is_empty() {
            return Ok(());
        }
        self.internal(|c| {
            for cap in captured {
                let row = match cap.op {
                    Op::Delete => None,
                    Op::Insert | Op::Update => read_row(c, &cap.table, cap.rowid)?,
                };
                out.push(Pending { table: cap.table, op: cap.op, rowid: cap.rowid, row });
            }
            Ok(())
        })
    }

    fn write_outbox(
        &self,
        pending: &[Pending],
        now_ms: impl FnOnce() -> u64,
    ) -> rusqlite::Result<Option<u64>> {
        if pending.is_empty() {
            return Ok(None);
        }
        let time = now_ms() as i64;
        self.internal(|c| {
            let mut ins = c.prepare_cached(
                "INSERT INTO _yun_changes (tbl, op, rowid, row, time) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for p in pending {
                ins.execute(rusqlite::params![p.table, p.op.as_str(), p.rowid, p.row, time])?;
            }
            Ok(Some(c.last_insert_rowid() as u64))
        })
    }

    fn load_watched(&mut self) -> Result<(), SqlError> {
        let tables: Vec<String> = self.internal(|c| -> rusqlite::Result<Vec<String>> {
            if !table_exists(c, "_yun_watch")? {
                return Ok(Vec::new());
            }
            let mut st = c.prepare("SELECT tbl FROM _yun_watch")?;
            st.query_map([], |r| r.get(0))?.collect()
        })?;
        let on = !tables.is_empty();
        {
            let mut w = lock(&self.shared.watched);
            w.all = tables.iter().any(|t| t == ALL_TABLES);
            w.tables =
                tables.into_iter().filter(|t| t != ALL_TABLES).map(|t| t.to_ascii_lowercase()).collect();
        }
        // A cached `DELETE FROM t` was compiled with the truncate optimization if `t` was not
        // watched then, and would delete without telling the hook.
        self.conn.flush_prepared_statement_cache();
        if on != self.hooked {
            if on {
                let s = self.shared.clone();
                self.conn.update_hook(Some(move |action: Action, db: &str, table: &str, rowid: i64| {
                    if db != "main" || reserved(table) || !s.is_watched(table) {
                        return;
                    }
                    let op = match action {
                        Action::SQLITE_INSERT => Op::Insert,
                        Action::SQLITE_UPDATE => Op::Update,
                        Action::SQLITE_DELETE => Op::Delete,
                        _ => return,
                    };
                    lock(&s.captured).push(Captured { table: table.to_owned(), op, rowid });
                }))?;
            } else {
                self.conn.update_hook(None::<fn(Action, &str, &str, i64)>)?;
            }
            self.hooked = on;
        }
        Ok(())
    }

    pub(crate) fn watch(&mut self, table: &str, on: bool) -> Result<bool, SqlError> {
        let _deadline = self.deadline();
        let changed = self.internal(|c| -> rusqlite::Result<bool> {
            if on {
                c.execute_batch(
                    "BEGIN IMMEDIATE;
                     CREATE TABLE IF NOT EXISTS _yun_watch (tbl TEXT PRIMARY KEY COLLATE NOCASE) WITHOUT ROWID;
                     CREATE TABLE IF NOT EXISTS _yun_changes (
                         seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL,
                         rowid INTEGER NOT NULL, row TEXT, time INTEGER NOT NULL);",
                )?;
                let n = c.execute("INSERT OR IGNORE INTO _yun_watch (tbl) VALUES (?1)", [table]);
                let n = match n {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = c.execute_batch("ROLLBACK");
                        return Err(e);
                    }
                };
                c.execute_batch("COMMIT")?;
                Ok(n > 0)
            } else {
                if !table_exists(c, "_yun_watch")? {
                    return Ok(false);
                }
                Ok(c.execute("DELETE FROM _yun_watch WHERE tbl = ?1", [table])? > 0)
            }
        });
        let changed = changed.map_err(|e| self.db_err(e))?;
        self.load_watched()?;
        Ok(changed)
    }

    pub(crate) fn watched(&self) -> Vec<String> {
        let w = lock(&self.shared.watched);
        let mut v: Vec<String> = w.tables.iter().cloned().collect();
        if w.all {
            v.push(ALL_TABLES.to_owned());
        }
        v.sort();
        v
    }

    pub(crate) fn changes(&self, after_seq: u64, limit: usize) -> Result<Vec<Change>, SqlError> {
        let _deadline = self.deadline();
        self.internal(|c| -> rusqlite::Result<Vec<Change>> {
            if !table_exists(c, "_yun_changes")? {
                return Ok(Vec::new());
            }
            let mut st = c.prepare_cached(
                "SELECT seq, tbl, op, rowid, row, time FROM _yun_changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(
                rusqlite::params![after_seq.min(i64::MAX as u64) as i64, limit.min(i64::MAX as usize) as i64],
                |r| {
                    let op: String = r.get(2)?;
                    let row: Option<String> = r.get(4)?;
                    Ok(Change {
                        seq: r.get::<_, i64>(0)? as u64,
                        table: r.get(1)?,
                        op: Op::parse(&op).unwrap_or(Op::Update),
                        rowid: r.get(3)?,
                        row: row.and_then(|s| serde_json::from_str(&s).ok()),
                        time_ms: r.get::<_, i64>(5)? as u64,
                    })
                },
            )?;
            rows.collect()
        })
        .map_err(|e| self.db_err(e))
    }

    pub(crate) fn trim(&self, upto_seq: u64) -> Result<u64, SqlError> {
        let _deadline = self.deadline();
        self.internal(|c| -> rusqlite::Result<u64> {
            if !table_exists(c, "_yun_changes")? {
                return Ok(0);
            }
            let n = c.execute(
                "DELETE FROM _yun_changes WHERE seq <= ?1",
                [upto_seq.min(i64::MAX as u64) as i64],
            )?;
            Ok(n as u64)
        })
        .map_err(|e| self.db_err(e))
    }

    /// The highest sequence number the outbox ever gave (0 if none), trimmed or not.
    pub(crate) fn last_seq(&self) -> Result<u64, SqlError> {
        self.internal(|c| -> rusqlite::Result<u64> {
            if !table_exists(c, "sqlite_sequence")? {
                return Ok(0);
            }
            let seq: Option<i64> = c
                .query_row("SELECT seq FROM sqlite_sequence WHERE name = '_yun_changes'", [], |r| r.get(0))
                .optional()?;
            Ok(seq.unwrap_or(0) as u64)
        })
        .map_err(|e| self.db_err(e))
    }

    pub(crate) fn schema(&self) -> Result<Vec<TableSchema>, SqlError> {
        let _deadline = self.deadline();
        self.internal(|c| -> rusqlite::Result<Vec<TableSchema>> {
            let mut st = c.prepare(
                "SELECT name, type, sql FROM sqlite_schema WHERE type IN ('table', 'view')
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_yun\\_%' ESCAPE '\\'
                 ORDER BY name",
            )?;
            let tables: Vec<(String, String, Option<String>)> =
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
            let mut cols = c.prepare(
                "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
            )?;
            let mut out = Vec::with_capacity(tables.len());
            for (name, kind, sql) in tables {
                let columns = cols
                    .query_map([&name], |r| {
                        Ok(ColumnSchema {
                            name: r.get(0)?,
                            decl_type: r.get(1)?,
                            not_null: r.get(2)?,
                            default: r.get(3)?,
                            primary_key: r.get::<_, i64>(4)? as u32,
                        })
                    })?
                    .collect::<Result<_, _>>()?;
                out.push(TableSchema { name, kind, sql, columns });
            }
            Ok(out)
        })
        .map_err(|e| self.db_err(e))
    }

    /// Bytes the database uses (what the limit counts) and its limit.
    pub(crate) fn used_bytes(&self) -> Result<u64, SqlError> {
        self.internal(|c| -> rusqlite::Result<u64> {
            let pages = c.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))? as u64;
            let size = c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
            Ok(pages * size)
        })
        .map_err(|e| self.db_err(e))
    }

    /// Rebuilds the file without its free pages (space deletes gave back), outside any batch.
    pub(crate) fn vacuum(&self) -> Result<(), SqlError> {
        let _deadline = self.deadline();
        // VACUUM works through a temporary attached database.
        self.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1)?;
        let r = self.internal(|c| c.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"));
        self.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        r.map_err(|e| self.db_err(e))
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_exists(c: &Connection, name: &str) -> rusqlite::Result<bool> {
    c.prepare_cached("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")?.exists([name])
}

fn object(cols: &[String], vals: &[Value]) -> String {
    let m: serde_json::Map<String, serde_json::Value> =
        cols.iter().cloned().zip(vals.iter().map(Value::to_json)).collect();
    serde_json::Value::Object(m).to_string()
}

/// The row as a JSON object, or None if it is gone (or the table has no rowid).
fn read_row(c: &Connection, table: &str, rowid: i64) -> rusqlite::Result<Option<String>> {
    let sql = format!("SELECT * FROM main.{} WHERE rowid = ?1", quote(table));
    let mut st = match c.prepare_cached(&sql) {
        Ok(st) => st,
        // A WITHOUT ROWID table: the hook's rowid means nothing, so there is no row to read.
        Err(_) => return Ok(None),
    };
    let cols: Vec<String> = st.column_names().map(String::from).collect();
    st.query_row([rowid], |r| {
        let vals: Vec<Value> =
            (0..cols.len()).map(|i| r.get_ref(i).map(Value::from_ref)).collect::<Result<_, _>>()?;
        Ok(object(&cols, &vals))
    })
    .optional()
}

enum Bind {
    Params(String),
    Sqlite(rusqlite::Error),
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &Params) -> Result<(), Bind> {
    let n = stmt.parameter_count();
    match params {
        Params::Positional(vals) => {
            if vals.len() != n {
                return Err(Bind::Params(format!(
                    "the statement takes {n} parameters, {} were given",
                    vals.len()
                )));
            }
            for (i, v) in vals.iter().enumerate() {
                stmt.raw_bind_parameter(i + 1, v).map_err(Bind::Sqlite)?;
            }
        }
        Params::Named(map) => {
            for i in 1..=n {
                let name = stmt.parameter_name(i).map(str::to_owned);
                let Some(name) = name.filter(|n| !n.starts_with('?')) else {
                    return Err(Bind::Params(format!(
                        "parameter {i} is positional (?); pass an array of values for this statement"
                    )));
                };
                let v = map.get(&name).or_else(|| map.get(&name[1..]));
                let Some(v) = v else {
                    return Err(Bind::Params(format!("no value given for {name}")));
                };
                stmt.raw_bind_parameter(i, v).map_err(Bind::Sqlite)?;
            }
            for key in map.keys() {
                let found = if key.starts_with([':', '@', '$']) {
                    stmt.parameter_index(key).map_err(Bind::Sqlite)?.is_some()
                } else {
                    let mut any = false;
                    for p in [":", "@", "$"] {
                        any |= stmt.parameter_index(&format!("{p}{key}")).map_err(Bind::Sqlite)?.is_some();
                    }
                    any
                };
                if !found {
                    return Err(Bind::Params(format!("the statement has no parameter named {key}")));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_are_case_insensitive() {
        assert!(reserved("_yun_changes"));
        assert!(reserved("_YUN_Changes"));
        assert!(!reserved("yun_changes"));
        assert!(!reserved("_yu"));
    }

    #[test]
    fn pragma_rules() {
        assert!(check_pragma("table_info", Some("t")).is_ok());
        assert!(check_pragma("USER_VERSION", Some("3")).is_ok());
        assert!(check_pragma("page_size", None).is_ok());
        assert!(check_pragma("page_size", Some("512")).unwrap_err().contains("can only be read"));
        assert!(check_pragma("journal_mode", Some("delete")).is_err());
        assert!(check_pragma("writable_schema", Some("1")).unwrap_err().contains("allowed:"));
        assert!(check_pragma("temp_store_directory", Some("'/tmp'")).is_err());
    }
}
