//! The engine: one SQLite file per app under one directory, a bounded cache of open
//! connections, and the async API over blocking SQLite work.
//!
//! Each app has at most one cached connection; work on it runs on tokio's blocking pool and
//! holds the connection's lock, so an app's batches run one at a time (SQLite serializes
//! writers anyway) while different apps run in parallel.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::batch::{Batch, BatchResult};
use crate::db::{ALL_TABLES, Db};
use crate::error::SqlError;

const SUFFIX: &str = ".sqlite3";
/// Files SQLite keeps beside a database in WAL mode (and a rollback journal, should one exist).
const SIDE_FILES: &[&str] = &["-wal", "-shm", "-journal"];

/// The engine's two clocks, replaceable in tests.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, for the time of change events.
    fn now_ms(&self) -> u64;
    /// A monotonic time since an arbitrary start, for batch deadlines. Read from SQLite's
    /// progress handler every thousand or so VM instructions, so it must be cheap.
    fn monotonic(&self) -> Duration;
}

/// The system's wall clock and `Instant`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

static START: OnceLock<Instant> = OnceLock::new();

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
    fn monotonic(&self) -> Duration {
        START.get_or_init(Instant::now).elapsed()
    }
}

/// Limits and settings shared by every app's database.
#[derive(Clone)]
pub struct Config {
    /// The most a database may hold, in bytes (rounded down to whole pages; at least a page).
    /// Enforced by `PRAGMA max_page_count`, which user statements cannot change. A limit below
    /// a database's current size keeps it at its current size.
    pub max_db_bytes: u64,
    /// How long a batch (all its statements) may run before it is interrupted and rolled back.
    pub timeout: Duration,
    /// The most rows a batch may return, over all its statements.
    pub max_result_rows: u64,
    /// The most bytes of values a batch may return (text and blobs by length, numbers as 8).
    pub max_result_bytes: u64,
    /// How many connections stay open; the least recently used idle one closes beyond that.
    pub max_open: usize,
    /// How long a statement waits for a lock another connection holds.
    pub busy_timeout: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_db_bytes: 1 << 30,
            timeout: Duration::from_secs(10),
            max_result_rows: 100_000,
            max_result_bytes: 32 << 20,
            max_open: 128,
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_db_bytes", &self.max_db_bytes)
            .field("timeout", &self.timeout)
            .field("max_result_rows", &self.max_result_rows)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("max_open", &self.max_open)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Op> {
        match s {
            "insert" => Some(Op::Insert),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }
}

/// One committed row change in a watched table, from the app's outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Increases with every change of the database, across batches; never reused after a trim.
    pub seq: u64,
    pub table: String,
    pub op: Op,
    /// The row's rowid (after the change, for an update that moved it).
    pub rowid: i64,
    /// Insert and update: the row as a JSON object (values in the forms of [`crate::Value`]),
    /// as it was at the end of the statement that changed it; None if that statement also
    /// deleted it. Delete: None (SQLite's update hook does not give the old values).
    pub row: Option<serde_json::Value>,
    /// When the batch committed, ms since the Unix epoch.
    pub time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    pub name: String,
    /// As declared (`INTEGER`, `TEXT`, `""` for none).
    pub decl_type: String,
    pub not_null: bool,
    /// The default's SQL text.
    pub default: Option<String>,
    /// Position in the primary key from 1; 0 if not part of it.
    pub primary_key: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    pub name: String,
    /// `table` or `view`.
    pub kind: String,
    /// The `CREATE` statement.
    pub sql: Option<String>,
    pub columns: Vec<ColumnSchema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSize {
    /// Pages in use × page size: what the limit counts.
    pub used_bytes: u64,
    /// The database file and its WAL and shared-memory files on disk.
    pub file_bytes: u64,
    pub limit_bytes: u64,
}

/// Whether `name` may name an app's database: 1-63 of `[a-z0-9-]`.
pub fn validate_app(name: &str) -> Result<(), SqlError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(SqlError::InvalidApp(name.to_owned())) }
}

enum State {
    Closed,
    Open(Box<Db>),
}

type Slot = Arc<Mutex<State>>;

struct Cache {
    slots: HashMap<String, (Slot, u64)>,
    tick: u64,
}

struct Inner {
    dir: PathBuf,
    config: Config,
    cache: Mutex<Cache>,
    notify: Mutex<HashMap<String, watch::Sender<u64>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The SQL databases of every app. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Sql {
    inner: Arc<Inner>,
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

impl Inner {
    fn path(&self, app: &str) -> PathBuf {
        self.dir.join(format!("{app}{SUFFIX}"))
    }

    fn slot(&self, app: &str) -> Slot {
        let mut cache = lock(&self.cache);
        cache.tick += 1;
        let tick = cache.tick;
        if let Some((slot, used)) = cache.slots.get_mut(app) {
            *used = tick;
            return slot.clone();
        }
        let slot: Slot = Arc::new(Mutex::new(State::Closed));
        cache.slots.insert(app.to_owned(), (slot.clone(), tick));
        while cache.slots.len() > self.config.max_open.max(1) {
            // Only an idle connection is closed: so an app never has two slots, and `delete`,
            // which locks the one slot, excludes every batch of the app.
            let idle = cache
                .slots
                .iter()
                .filter(|(_, (s, _))| Arc::strong_count(s) == 1)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match idle {
                Some(k) => cache.slots.remove(&k),
                None => break,
            };
        }
        slot
    }

    /// Runs `f` on the app's connection, opening it if need be. With `create` false a missing
    /// database is `NoDatabase` rather than a new empty file.
    fn with_db<T>(
        &self,
        app: &str,
        create: bool,
        f: impl FnOnce(&mut Db) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        validate_app(app)?;
        let slot = self.slot(app);
        let mut state = lock(&slot);
        if let State::Closed = &*state {
            let path = self.path(app);
            if !create && !path.exists() {
                return Err(SqlError::NoDatabase(app.to_owned()));
            }
            *state = State::Open(Box::new(Db::open(&path, &self.config)?));
        }
        match &mut *state {
            State::Open(db) => f(db),
            State::Closed => unreachable!("opened above"),
        }
    }

    fn notify(&self, app: &str, seq: u64) {
        if let Some(tx) = lock(&self.notify).get(app) {
            tx.send_replace(seq);
        }
    }
}

impl Sql {
    /// Opens (creating) the directory of databases. Databases open on first use.
    pub fn open(dir: impl AsRef<Path>, config: Config) -> Result<Sql, SqlError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(Sql {
            inner: Arc::new(Inner {
                dir,
                config,
                cache: Mutex::new(Cache { slots: HashMap::new(), tick: 0 }),
                notify: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, SqlError> + Send + 'static,
    ) -> Result<T, SqlError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| SqlError::Db(format!("the database worker failed: {e}")))?
    }

    /// Runs a batch in one transaction on the app's database (created empty on first use).
    /// A failing statement rolls back the whole batch; the error names its index.
    pub async fn execute(&self, app: &str, batch: Batch) -> Result<BatchResult, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| {
            let clock = inner.config.clock.clone();
            let (result, last) =
                inner.with_db(&app, true, |db| db.run(&batch, &inner.config, || clock.now_ms()))?;
            if let Some(seq) = last {
                inner.notify(&app, seq);
            }
            Ok(result)
        })
        .await
    }

    /// Records inserts, updates and deletes of `table` (`"*"`: every table) in the app's
    /// outbox from now on, in the transaction that makes them; survives restarts. Until an app
    /// watches something, no hook is installed and its writes pay nothing for this.
    pub async fn watch(&self, app: &str, table: &str) -> Result<bool, SqlError> {
        self.set_watch(app, table, true).await
    }

    /// Stops recording `table`; returns whether it was watched. Recorded changes stay.
    pub async fn unwatch(&self, app: &str, table: &str) -> Result<bool, SqlError> {
        self.set_watch(app, table, false).await
    }

    async fn set_watch(&self, app: &str, table: &str, on: bool) -> Result<bool, SqlError> {
        let valid = table == ALL_TABLES
            || (!table.is_empty()
                && !table.contains('\0')
                && !table.to_ascii_lowercase().starts_with("_yun_")
                && !table.to_ascii_lowercase().starts_with("sqlite_"));
        if !valid {
            return Err(SqlError::InvalidTable(table.to_owned()));
        }
        let (app, table) = (app.to_owned(), table.to_ascii_lowercase());
        self.blocking(move |inner| inner.with_db(&app, on, |db| db.watch(&table, on))).await
    }

    /// The watched tables (lowercase; `"*"` for all), sorted.
    pub async fn watched(&self, app: &str) -> Result<Vec<String>, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| inner.with_db(&app, false, |db| Ok(db.watched()))).await
    }

    /// Up to `limit` recorded changes with `seq > after_seq`, oldest first.
    pub async fn changes(&self, app: &str, after_seq: u64, limit: usize) -> Result<Vec<Change>, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| inner.with_db(&app, false, |db| db.changes(after_seq, limit))).await
    }

    /// Drops the recorded changes with `seq <= upto_seq` (a consumer has them); returns how many.
    pub async fn trim(&self, app: &str, upto_seq: u64) -> Result<u64, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| inner.with_db(&app, false, |db| db.trim(upto_seq))).await
    }

    /// The sequence number of the app's latest recorded change, updated after every commit
    /// that records changes: a consumer reads `changes` past its cursor, then awaits
    /// `changed()`. Starts at the latest one on disk (0 for none).
    pub async fn subscribe(&self, app: &str) -> Result<watch::Receiver<u64>, SqlError> {
        validate_app(app)?;
        if let Some(tx) = lock(&self.inner.notify).get(app) {
            return Ok(tx.subscribe());
        }
        let name = app.to_owned();
        let current = self
            .blocking(move |inner| match inner.with_db(&name, false, |db| db.last_seq()) {
                Err(SqlError::NoDatabase(_)) => Ok(0),
                other => other,
            })
            .await?;
        let mut map = lock(&self.inner.notify);
        let tx = map.entry(app.to_owned()).or_insert_with(|| watch::channel(current).0);
        Ok(tx.subscribe())
    }

    /// The apps that have a database, sorted.
    pub async fn list_apps(&self) -> Result<Vec<String>, SqlError> {
        self.blocking(|inner| {
            let mut apps = Vec::new();
            for entry in std::fs::read_dir(&inner.dir)? {
                let name = entry?.file_name();
                let Some(app) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else { continue };
                if validate_app(app).is_ok() {
                    apps.push(app.to_owned());
                }
            }
            apps.sort();
            Ok(apps)
        })
        .await
    }

    /// Closes and removes the app's database with its WAL and shared-memory files; returns
    /// whether it existed. A batch in progress finishes first; batches waiting for it, and
    /// later ones, see a new, empty database.
    pub async fn delete(&self, app: &str) -> Result<bool, SqlError> {
        validate_app(app)?;
        let app = app.to_owned();
        self.blocking(move |inner| {
            let slot = inner.slot(&app);
            // Waits out a batch in progress; the connection closes before the files go.
            let mut state = lock(&slot);
            *state = State::Closed;
            let path = inner.path(&app);
            let existed = match std::fs::remove_file(&path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(e.into()),
            };
            for side in SIDE_FILES {
                match std::fs::remove_file(format!("{}{side}", path.display())) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(existed)
        })
        .await
    }

    /// How big the app's database is, and its limit.
    pub async fn size(&self, app: &str) -> Result<DbSize, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| {
            let used_bytes = inner.with_db(&app, false, |db| db.used_bytes())?;
            let path = inner.path(&app);
            let mut file_bytes = std::fs::metadata(&path)?.len();
            for side in SIDE_FILES {
                file_bytes += std::fs::metadata(format!("{}{side}", path.display())).map_or(0, |m| m.len());
            }
            Ok(DbSize { used_bytes, file_bytes, limit_bytes: inner.config.max_db_bytes })
        })
        .await
    }

    /// The app's tables and views with their columns (yun's own `_yun_*` tables left out).
    pub async fn schema(&self, app: &str) -> Result<Vec<TableSchema>, SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| inner.with_db(&app, false, |db| db.schema())).await
    }

    /// Rebuilds the app's database without free pages, giving the space deletes freed back to
    /// the file system (user statements cannot VACUUM).
    pub async fn vacuum(&self, app: &str) -> Result<(), SqlError> {
        let app = app.to_owned();
        self.blocking(move |inner| inner.with_db(&app, false, |db| db.vacuum())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["a", "my-app", "app2", &"x".repeat(63)] {
            assert!(validate_app(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a.b", "../x", "a/b", "a_b", "é", &"x".repeat(64), "a\0"] {
            assert!(matches!(validate_app(bad), Err(SqlError::InvalidApp(_))), "{bad}");
        }
    }
}
