//! Invocation records: one per run of a function, whatever triggered it, with what it cost
//! (durations, billed time, memory, bytes) and how it ended. Kept in their own redb file,
//! bounded per function by count and by age.
//!
//! The invocation path only appends to an in-memory batch (a short lock); a writer thread
//! commits the batch every [`FLUSH_INTERVAL`], so a busy function costs a few commits a second,
//! not one per invocation. A query flushes first, so it sees every invocation that ended before
//! it. A crash loses at most the last interval's records; a stop loses none.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

/// (function, start_ms, id, attempt) → record (JSON): a function's records in time order.
const RECORDS: TableDefinition<(&str, u64, &str, u32), &[u8]> = TableDefinition::new("records");
/// (id, start_ms, attempt) → function: an id's runs (an asynchronous invocation may have several).
const BY_ID: TableDefinition<(&str, u64, u32), &str> = TableDefinition::new("records_by_id");

pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);
/// Records waiting for the writer, at most; past it (a disk that cannot keep up) they are
/// dropped and counted rather than growing memory without bound.
const MAX_PENDING: usize = 200_000;
/// How often records past their age are removed.
const AGE_SWEEP_EVERY: u32 = 300;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("invocation records: {0}")]
    Db(String),
    #[error("an invocation record is unreadable: {0}")]
    Corrupt(String),
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for RecordError {
            fn from(e: $t) -> Self {
                RecordError::Db(e.to_string())
            }
        }
    )*};
}
db_errors!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What one run of a function came to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub function: String,
    pub revision: u64,
    /// What started it: `http`, `async`, `cron`, `queue`, `topic`, `function` (another
    /// function calling through yun), `invoke` (the Lambda Invoke API).
    pub trigger: Cow<'static, str>,
    /// The attempt, for an asynchronous invocation's retries (1 = first); 1 otherwise.
    pub attempt: u32,
    /// When it arrived, Unix ms.
    pub start_ms: u64,
    /// How it found its instance: `warm`, `queued`, `cold`, `thawed`, or `none` (refused first).
    pub start: Cow<'static, str>,
    /// Instance start (or thaw) time, for a cold start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_ms: Option<f64>,
    /// Time spent waiting for an instance.
    pub waited_ms: f64,
    /// How long the function ran (arrival to the end of the response, less the wait).
    pub duration_ms: f64,
    /// `duration_ms` rounded up to whole milliseconds, as it is billed.
    pub billed_ms: u64,
    pub memory_limit_bytes: u64,
    /// The most memory the instance had used by the end of the run, where measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_bytes: Option<u64>,
    /// CPU time the instance used during the run, where measurable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<f64>,
    /// The HTTP status the caller got.
    pub status: u16,
    /// yun's error (`code: message`) when the platform answered for the function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
}

impl Record {
    /// A 5xx is a failure of the function (or of the platform on its behalf); a 4xx is the
    /// function's answer to its caller.
    pub fn failed(&self) -> bool {
        self.status >= 500
    }
}

/// Which records a listing wants.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only those that started at or after this (Unix ms).
    pub since_ms: Option<u64>,
    /// Only failed (true) or only succeeded (false) ones.
    pub failed: Option<bool>,
    pub trigger: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub struct RecordRetention {
    /// Records kept per function, at most (the oldest go first).
    pub max_per_function: u64,
    pub max_age: Duration,
}

impl Default for RecordRetention {
    fn default() -> Self {
        RecordRetention { max_per_function: 10_000, max_age: Duration::from_secs(7 * 86_400) }
    }
}

pub struct Records {
    inner: Arc<Inner>,
}

struct Inner {
    db: redb::Database,
    retention: RecordRetention,
    pending: Mutex<Vec<Record>>,
    /// Held while a batch is written, so a query's flush and the writer's do not interleave.
    writing: Mutex<u32>,
    dropped: AtomicU64,
}

impl Records {
    /// Opens (or creates) the records file at `path` and starts its writer thread, which ends
    /// when the last handle is dropped.
    pub fn open(path: &Path, retention: RecordRetention) -> Result<Records, RecordError> {
        let db = redb::Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.open_table(BY_ID)?;
        txn.commit()?;
        let inner = Arc::new(Inner {
            db,
            retention,
            pending: Mutex::new(Vec::new()),
            writing: Mutex::new(0),
            dropped: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("yun-records".into())
            .spawn(move || writer(weak))
            .map_err(|e| RecordError::Db(format!("starting the writer thread: {e}")))?;
        Ok(Records { inner })
    }

    /// Files one record; never blocks on the disk.
    pub fn record(&self, record: Record) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.push(record);
    }

    /// Records dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Writes what is pending now.
    pub fn flush(&self) -> Result<(), RecordError> {
        self.inner.flush()
    }

    /// Every run of invocation `id` (an asynchronous one's attempts), oldest first.
    pub fn get(&self, id: &str) -> Result<Vec<Record>, RecordError> {
        self.flush()?;
        let txn = self.inner.db.begin_read()?;
        let by_id = txn.open_table(BY_ID)?;
        let records = txn.open_table(RECORDS)?;
        let mut out = Vec::new();
        for entry in by_id.range((id, 0, 0)..=(id, u64::MAX, u32::MAX))? {
            let (k, v) = entry?;
            let (_, start, attempt) = k.value();
            let function = v.value();
            if let Some(bytes) = records.get((function, start, id, attempt))? {
                out.push(decode(bytes.value())?);
            }
        }
        Ok(out)
    }

    /// A function's records, newest first, that pass `filter`; at most `limit`.
    pub fn list(&self, function: &str, filter: &Filter, limit: usize) -> Result<Vec<Record>, RecordError> {
        self.flush()?;
        let txn = self.inner.db.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let since = filter.since_ms.unwrap_or(0);
        let mut out = Vec::new();
        for entry in
            records.range((function, since, "", 0)..=(function, u64::MAX, "\u{10ffff}", u32::MAX))?.rev()
        {
            if out.len() >= limit {
                break;
            }
            let (_, v) = entry?;
            let record = decode(v.value())?;
            if filter.failed.is_some_and(|f| f != record.failed())
                || filter.trigger.as_deref().is_some_and(|t| t != record.trigger)
            {
                continue;
            }
            out.push(record);
        }
        Ok(out)
    }

    /// Drops a function's records (it was deleted); returns how many.
    pub fn delete_function(&self, function: &str) -> Result<u64, RecordError> {
        self.flush()?;
        let _writing = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
        let txn = self.inner.db.begin_write()?;
        let n = remove_range(&txn, function, u64::MAX)?;
        txn.commit()?;
        Ok(n)
    }

    /// Records kept, over all functions.
    pub fn len(&self) -> Result<u64, RecordError> {
        let txn = self.inner.db.begin_read()?;
        Ok(txn.open_table(RECORDS)?.len()?)
    }

    pub fn is_empty(&self) -> Result<bool, RecordError> {
        Ok(self.len()? == 0)
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        if let Err(e) = self.inner.flush() {
            tracing::warn!("writing the last invocation records failed: {e}");
        }
    }
}

impl Inner {
    fn flush(&self) -> Result<(), RecordError> {
        let mut sweeps = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        *sweeps += 1;
        let sweep_age = *sweeps % AGE_SWEEP_EVERY == 1;
        if batch.is_empty() && !sweep_age {
            return Ok(());
        }
        let txn = self.db.begin_write()?;
        let mut touched = BTreeSet::new();
        {
            let mut records = txn.open_table(RECORDS)?;
            let mut by_id = txn.open_table(BY_ID)?;
            for r in &batch {
                let bytes = serde_json::to_vec(r).map_err(|e| RecordError::Corrupt(e.to_string()))?;
                records
                    .insert((r.function.as_str(), r.start_ms, r.id.as_str(), r.attempt), bytes.as_slice())?;
                by_id.insert((r.id.as_str(), r.start_ms, r.attempt), r.function.as_str())?;
                touched.insert(r.function.as_str());
            }
        }
        for function in touched {
            trim_count(&txn, function, self.retention.max_per_function)?;
        }
        if sweep_age {
            let cutoff = now_ms().saturating_sub(self.retention.max_age.as_millis() as u64);
            for function in functions(&txn)? {
                remove_range(&txn, &function, cutoff)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

fn writer(inner: Weak<Inner>) {
    loop {
        std::thread::sleep(FLUSH_INTERVAL);
        let Some(inner) = inner.upgrade() else { return };
        if let Err(e) = inner.flush() {
            tracing::warn!("writing invocation records failed: {e}");
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::Corrupt(e.to_string()))
}

type Key = (String, u64, String, u32);

/// Removes a function's records that started before `before` (all of them with `u64::MAX`).
fn remove_range(txn: &redb::WriteTransaction, function: &str, before: u64) -> Result<u64, RecordError> {
    let mut records = txn.open_table(RECORDS)?;
    let mut by_id = txn.open_table(BY_ID)?;
    let keys: Vec<Key> = records
        .range((function, 0, "", 0)..(function, before, "", 0))?
        .map(|e| e.map(|(k, _)| owned(k.value())))
        .collect::<Result<_, _>>()?;
    for (f, start, id, attempt) in &keys {
        records.remove((f.as_str(), *start, id.as_str(), *attempt))?;
        by_id.remove((id.as_str(), *start, *attempt))?;
    }
    Ok(keys.len() as u64)
}

/// Keeps a function's newest `max` records.
fn trim_count(txn: &redb::WriteTransaction, function: &str, max: u64) -> Result<(), RecordError> {
    let mut records = txn.open_table(RECORDS)?;
    let mut by_id = txn.open_table(BY_ID)?;
    let range = (function, 0, "", 0)..=(function, u64::MAX, "\u{10ffff}", u32::MAX);
    // Counting a function's keys is a range scan; it runs once per batch per function, and a
    // batch is at most a few thousand records.
    let count = records.range(range.clone())?.count() as u64;
    if count <= max {
        return Ok(());
    }
    let excess = (count - max) as usize;
    let keys: Vec<Key> = records
        .range(range)?
        .take(excess)
        .map(|e| e.map(|(k, _)| owned(k.value())))
        .collect::<Result<_, _>>()?;
    for (f, start, id, attempt) in &keys {
        records.remove((f.as_str(), *start, id.as_str(), *attempt))?;
        by_id.remove((id.as_str(), *start, *attempt))?;
    }
    Ok(())
}

fn owned((f, start, id, attempt): (&str, u64, &str, u32)) -> Key {
    (f.to_string(), start, id.to_string(), attempt)
}

/// The functions that have records.
fn functions(txn: &redb::WriteTransaction) -> Result<Vec<String>, RecordError> {
    let records = txn.open_table(RECORDS)?;
    let mut out: Vec<String> = Vec::new();
    let mut next = records.first()?.map(|(k, _)| k.value().0.to_string());
    while let Some(f) = next {
        // Skip to the first key past this function's.
        next = records
            .range((f.as_str(), u64::MAX, "\u{10ffff}", u32::MAX)..)?
            .find_map(|e| e.ok().map(|(k, _)| k.value().0.to_string()))
            .filter(|g| *g != f);
        out.push(f);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(function: &str, id: &str, start_ms: u64, status: u16) -> Record {
        Record {
            id: id.into(),
            function: function.into(),
            revision: 1,
            trigger: "http".into(),
            attempt: 1,
            start_ms,
            start: "warm".into(),
            init_ms: None,
            waited_ms: 0.0,
            duration_ms: 1.5,
            billed_ms: 2,
            memory_limit_bytes: 128 << 20,
            max_memory_bytes: Some(3 << 20),
            cpu_ms: None,
            status,
            error: None,
            bytes_in: 10,
            bytes_out: 20,
            trace_id: String::new(),
        }
    }

    fn open(dir: &tempfile::TempDir, retention: RecordRetention) -> Records {
        Records::open(&dir.path().join("records.redb"), retention).unwrap()
    }

    #[test]
    fn records_are_listed_newest_first_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let records = open(&dir, RecordRetention::default());
        let now = now_ms();
        records.record(rec("a", "1", now - 3000, 200));
        records.record(rec("a", "2", now - 2000, 502));
        records.record(rec("b", "3", now - 1500, 200));
        let mut cron = rec("a", "4", now - 1000, 200);
        cron.trigger = "cron".into();
        records.record(cron);
        let ids = |v: Vec<Record>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(records.list("a", &Filter::default(), 10).unwrap()), ["4", "2", "1"]);
        assert_eq!(ids(records.list("a", &Filter::default(), 2).unwrap()), ["4", "2"]);
        let failed = Filter { failed: Some(true), ..Filter::default() };
        assert_eq!(ids(records.list("a", &failed, 10).unwrap()), ["2"]);
        let since = Filter { since_ms: Some(now - 2000), ..Filter::default() };
        assert_eq!(ids(records.list("a", &since, 10).unwrap()), ["4", "2"]);
        let cron = Filter { trigger: Some("cron".into()), ..Filter::default() };
        assert_eq!(ids(records.list("a", &cron, 10).unwrap()), ["4"]);
        assert_eq!(records.get("3").unwrap(), vec![rec("b", "3", now - 1500, 200)]);
        assert!(records.get("nope").unwrap().is_empty());
        // "a" and "ab" do not mix.
        records.record(rec("ab", "5", now, 200));
        assert_eq!(ids(records.list("a", &Filter::default(), 10).unwrap()), ["4", "2", "1"]);
    }

    #[test]
    fn an_asynchronous_invocations_attempts_are_one_id() {
        let dir = tempfile::tempdir().unwrap();
        let records = open(&dir, RecordRetention::default());
        let now = now_ms();
        let mut first = rec("a", "e", now - 1000, 500);
        first.trigger = "async".into();
        let mut second = first.clone();
        second.attempt = 2;
        second.start_ms = now;
        second.status = 200;
        records.record(second.clone());
        records.record(first.clone());
        assert_eq!(records.get("e").unwrap(), vec![first, second]);
    }

    #[test]
    fn retention_keeps_the_newest_per_function_and_drops_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let retention = RecordRetention { max_per_function: 5, max_age: Duration::from_secs(3600) };
        let records = open(&dir, retention);
        let now = now_ms();
        for i in 0..12u64 {
            records.record(rec("a", &format!("{i:02}"), now - 100_000 + i, 200));
        }
        records.record(rec("b", "old", now - 7_200_000, 200));
        records.record(rec("b", "new", now, 200));
        records.flush().unwrap();
        let kept: Vec<String> =
            records.list("a", &Filter::default(), 100).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(kept, ["11", "10", "09", "08", "07"]);
        assert!(records.get("03").unwrap().is_empty(), "the index forgets trimmed records too");
        // The first flush swept by age.
        let b: Vec<String> =
            records.list("b", &Filter::default(), 100).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(b, ["new"]);
        assert_eq!(records.delete_function("a").unwrap(), 5);
        assert_eq!(records.len().unwrap(), 1);
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let records = open(&dir, RecordRetention::default());
            records.record(rec("a", "1", now_ms(), 200));
            // Dropping the handle writes what was pending.
        }
        let records = open(&dir, RecordRetention::default());
        assert_eq!(records.get("1").unwrap().len(), 1);
    }

    #[test]
    fn the_writer_thread_flushes_without_a_query() {
        let dir = tempfile::tempdir().unwrap();
        let records = open(&dir, RecordRetention::default());
        records.record(rec("a", "1", now_ms(), 200));
        std::thread::sleep(FLUSH_INTERVAL * 3);
        assert!(records.inner.pending.lock().unwrap().is_empty());
        assert_eq!(records.len().unwrap(), 1);
    }
}
