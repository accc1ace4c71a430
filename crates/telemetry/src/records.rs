//! Invocation records: one per run of a function, whatever triggered it, with what it cost
//! (durations, billed time, memory, bytes) and how it ended. Kept in their own redb file,
//! bounded per function by count and by age.
//!
//! The invocation path only appends to an in-memory batch (a short lock). A writer thread
//! commits what gathered every [`FLUSH_INTERVAL`] as one value per function (postcard), with
//! its time range and count in a small index: a busy function costs one insert and a commit a
//! second, not two B-tree inserts and deletes per invocation (which cost a sixth of a core at
//! 20,000 invocations a second). Retention drops whole batches, and trims the oldest one to
//! keep exactly the newest `max_per_function`. A query flushes first, so it sees every
//! invocation that ended before it; it decodes the batches it needs. A crash loses at most the
//! last interval's records; a stop loses none.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

/// (function, first start_ms, batch seq) → the batch's records (postcard `Vec<Record>`, in
/// start order).
const BATCHES: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("record_batches");
/// Same key → (last start_ms, record count): what retention and queries need without decoding.
const INDEX: TableDefinition<(&str, u64, u64), (u64, u64)> = TableDefinition::new("record_index");

/// A commit per interval, not per invocation: the writer's cost is per commit and per value far
/// more than per record.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Records waiting for the writer, at most; past it (a disk that cannot keep up) they are
/// dropped and counted rather than growing memory without bound.
const MAX_PENDING: usize = 200_000;
/// How often (in flushes) records past their age are removed.
const AGE_SWEEP_EVERY: u32 = 60;

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
    #[serde(default)]
    pub init_ms: Option<f64>,
    /// Time spent waiting for an instance.
    pub waited_ms: f64,
    /// How long the function ran (arrival to the end of the response, less the wait).
    pub duration_ms: f64,
    /// `duration_ms` rounded up to whole milliseconds, as it is billed.
    pub billed_ms: u64,
    pub memory_limit_bytes: u64,
    /// The most memory the instance had used by the end of the run, where measurable.
    #[serde(default)]
    pub max_memory_bytes: Option<u64>,
    /// CPU time the instance used during the run, where measurable.
    #[serde(default)]
    pub cpu_ms: Option<f64>,
    /// The HTTP status the caller got.
    pub status: u16,
    /// yun's error (`code: message`) when the platform answered for the function.
    #[serde(default)]
    pub error: Option<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(default)]
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
    writing: Mutex<Writer>,
    dropped: AtomicU64,
}

/// One stored batch, as the index describes it.
#[derive(Clone, Copy, Debug)]
struct Batch {
    first_ms: u64,
    seq: u64,
    last_ms: u64,
    count: u64,
}

/// The writer's own state, behind the `writing` lock: each function's batches, oldest first,
/// as committed (read from the index at open).
struct Writer {
    flushes: u32,
    next_seq: u64,
    batches: BTreeMap<String, Vec<Batch>>,
}

impl Records {
    /// Opens (or creates) the records file at `path` and starts its writer thread, which ends
    /// when the last handle is dropped.
    pub fn open(path: &Path, retention: RecordRetention) -> Result<Records, RecordError> {
        let db = redb::Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(BATCHES)?;
        txn.open_table(INDEX)?;
        txn.commit()?;
        let mut batches: BTreeMap<String, Vec<Batch>> = BTreeMap::new();
        let mut next_seq = 0;
        {
            let txn = db.begin_read()?;
            for entry in txn.open_table(INDEX)?.iter()? {
                let (k, v) = entry?;
                let (function, first_ms, seq) = k.value();
                let (last_ms, count) = v.value();
                next_seq = next_seq.max(seq + 1);
                batches.entry(function.to_string()).or_default().push(Batch {
                    first_ms,
                    seq,
                    last_ms,
                    count,
                });
            }
        }
        let inner = Arc::new(Inner {
            db,
            retention,
            pending: Mutex::new(Vec::new()),
            writing: Mutex::new(Writer { flushes: 0, next_seq, batches }),
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
        // A UUIDv7 id says when it was made; its runs started then or later (retries).
        let made = yun_types::uuid_v7_ms(id).map_or(0, |ms| ms.saturating_sub(1000));
        let candidates: Vec<(String, Batch)> = {
            let writer = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
            writer
                .batches
                .iter()
                .flat_map(|(f, list)| list.iter().filter(|b| b.last_ms >= made).map(move |b| (f.clone(), *b)))
                .collect()
        };
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let mut out = Vec::new();
        for (function, b) in candidates {
            if let Some(v) = table.get((function.as_str(), b.first_ms, b.seq))? {
                out.extend(decode(v.value())?.into_iter().filter(|r| r.id == id));
            }
        }
        out.sort_by_key(|r| (r.start_ms, r.attempt));
        Ok(out)
    }

    /// A function's records, newest first, that pass `filter`; at most `limit`.
    pub fn list(&self, function: &str, filter: &Filter, limit: usize) -> Result<Vec<Record>, RecordError> {
        self.flush()?;
        let since = filter.since_ms.unwrap_or(0);
        let batches: Vec<Batch> = {
            let writer = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
            writer.batches.get(function).map(|l| l.iter().rev().copied().collect()).unwrap_or_default()
        };
        let txn = self.inner.db.begin_read()?;
        let table = txn.open_table(BATCHES)?;
        let mut out = Vec::new();
        for b in batches {
            if out.len() >= limit || b.last_ms < since {
                break;
            }
            let Some(v) = table.get((function, b.first_ms, b.seq))? else { continue };
            for record in decode(v.value())?.into_iter().rev() {
                if out.len() >= limit {
                    break;
                }
                if record.start_ms < since
                    || filter.failed.is_some_and(|f| f != record.failed())
                    || filter.trigger.as_deref().is_some_and(|t| t != record.trigger)
                {
                    continue;
                }
                out.push(record);
            }
        }
        // Batches overlap in time at their edges (a record is filed when it ends).
        out.sort_by(|a, b| (b.start_ms, &b.id).cmp(&(a.start_ms, &a.id)));
        Ok(out)
    }

    /// Drops a function's records (it was deleted); returns how many.
    pub fn delete_function(&self, function: &str) -> Result<u64, RecordError> {
        self.flush()?;
        let mut writer = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = writer.batches.remove(function) else { return Ok(0) };
        let txn = self.inner.db.begin_write()?;
        {
            let mut table = txn.open_table(BATCHES)?;
            let mut index = txn.open_table(INDEX)?;
            for b in &list {
                table.remove((function, b.first_ms, b.seq))?;
                index.remove((function, b.first_ms, b.seq))?;
            }
        }
        txn.commit()?;
        Ok(list.iter().map(|b| b.count).sum())
    }

    /// Records kept, over all functions.
    pub fn len(&self) -> Result<u64, RecordError> {
        let writer = self.inner.writing.lock().unwrap_or_else(|p| p.into_inner());
        Ok(writer.batches.values().flatten().map(|b| b.count).sum())
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
        let mut writer = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        writer.flushes += 1;
        let sweep_age = writer.flushes % AGE_SWEEP_EVERY == 1;
        if batch.is_empty() && !sweep_age {
            return Ok(());
        }
        let mut by_function: BTreeMap<String, Vec<Record>> = BTreeMap::new();
        for r in batch {
            by_function.entry(r.function.clone()).or_default().push(r);
        }
        // Work on a copy: if the commit fails, the writer's view stays what is on disk.
        let mut batches = writer.batches.clone();
        let mut seq = writer.next_seq;
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BATCHES)?;
            let mut index = txn.open_table(INDEX)?;
            for (function, mut records) in by_function {
                records.sort_by(|a, b| (a.start_ms, &a.id, a.attempt).cmp(&(b.start_ms, &b.id, b.attempt)));
                let b = Batch {
                    first_ms: records[0].start_ms,
                    seq,
                    last_ms: records[records.len() - 1].start_ms,
                    count: records.len() as u64,
                };
                seq += 1;
                table.insert((function.as_str(), b.first_ms, b.seq), encode(&records)?.as_slice())?;
                index.insert((function.as_str(), b.first_ms, b.seq), (b.last_ms, b.count))?;
                let list = batches.entry(function).or_default();
                list.push(b);
                list.sort_by_key(|b| (b.first_ms, b.seq));
            }
            let cutoff =
                sweep_age.then(|| now_ms().saturating_sub(self.retention.max_age.as_millis() as u64));
            for (function, list) in batches.iter_mut() {
                trim(
                    &mut table,
                    &mut index,
                    function,
                    list,
                    self.retention.max_per_function,
                    cutoff,
                    &mut seq,
                )?;
            }
        }
        txn.commit()?;
        batches.retain(|_, list| !list.is_empty());
        writer.batches = batches;
        writer.next_seq = seq;
        Ok(())
    }
}

type Batches<'t> = redb::Table<'t, (&'static str, u64, u64), &'static [u8]>;
type Index<'t> = redb::Table<'t, (&'static str, u64, u64), (u64, u64)>;

/// Keeps a function's newest `max` records (and, when sweeping, none that started before
/// `cutoff`): whole batches go; the oldest one left is rewritten without its oldest records.
fn trim(
    table: &mut Batches<'_>,
    index: &mut Index<'_>,
    function: &str,
    list: &mut Vec<Batch>,
    max: u64,
    cutoff: Option<u64>,
    seq: &mut u64,
) -> Result<(), RecordError> {
    let cutoff = cutoff.unwrap_or(0);
    let mut total: u64 = list.iter().map(|b| b.count).sum();
    while let Some(oldest) = list.first().copied() {
        let over = total.saturating_sub(max);
        if over == 0 && oldest.first_ms >= cutoff {
            break;
        }
        let key = (function, oldest.first_ms, oldest.seq);
        let records = match table.remove(key)? {
            Some(v) => decode(v.value())?,
            None => Vec::new(),
        };
        index.remove(key)?;
        list.remove(0);
        total -= oldest.count;
        let kept: Vec<Record> =
            records.into_iter().skip(over as usize).filter(|r| r.start_ms >= cutoff).collect();
        if let (Some(first), Some(last)) = (kept.first(), kept.last()) {
            let b = Batch {
                first_ms: first.start_ms,
                seq: *seq,
                last_ms: last.start_ms,
                count: kept.len() as u64,
            };
            *seq += 1;
            table.insert((function, b.first_ms, b.seq), encode(&kept)?.as_slice())?;
            index.insert((function, b.first_ms, b.seq), (b.last_ms, b.count))?;
            list.insert(0, b);
            break;
        }
    }
    list.sort_by_key(|b| (b.first_ms, b.seq));
    Ok(())
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

/// Records are kept in postcard (compact; the schema is [`Record`]'s field order, so a field
/// added later goes at the end, with a default).
fn encode(records: &[Record]) -> Result<Vec<u8>, RecordError> {
    postcard::to_allocvec(records).map_err(|e| RecordError::Corrupt(e.to_string()))
}

fn decode(bytes: &[u8]) -> Result<Vec<Record>, RecordError> {
    postcard::from_bytes(bytes).map_err(|e| RecordError::Corrupt(e.to_string()))
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
