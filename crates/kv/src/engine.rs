//! The engine handle (`Kv`), stores, the per-database handle (`Db`) and the change stream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, TableDefinition};
use tokio::sync::{oneshot, watch};

use crate::KvError;
use crate::clock::{Clock, SystemClock};
use crate::ops::{Expire, ExpireCondition, Op, Reply, SetItem, SetOptions, read};
use crate::value::{DATABASES, DbMem, KeyType};
use crate::writer::{Admin, Queue, Work, Writer};

pub(crate) const STORES: TableDefinition<&str, &[u8]> = TableDefinition::new("stores");
pub(crate) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
pub(crate) const CHANGES: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("changes");
pub(crate) const SEQS: TableDefinition<u32, u64> = TableDefinition::new("seqs");
pub(crate) const CURSORS: TableDefinition<(u32, &str), u64> = TableDefinition::new("cursors");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const NEXT_STORE_ID: &str = "next_store_id";

/// The largest key by default: Redis allows 512 MiB, but a key is also a B-tree key on disk.
pub const DEFAULT_MAX_KEY_BYTES: usize = 64 << 10;
/// The largest value by default (a string, or a collection's encoded elements).
pub const DEFAULT_MAX_VALUE_BYTES: usize = 32 << 20;

/// When an acknowledged write is on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every group is fsynced before any of its writes is acknowledged.
    #[default]
    Fsync,
    /// No fsync per group (a pure cache): a crash loses at most about the last second, since a
    /// commit is made durable once a second and at `close`.
    None,
}

/// How the engine runs; `Config::default()` is durable with a 200 µs group-commit window.
#[derive(Clone)]
pub struct Config {
    pub durability: Durability,
    /// How long the writer keeps taking work into a group after the group's first work, before
    /// it commits. Zero: commit as soon as the queue is empty. The default, 200 µs, is about one
    /// network round trip: clients answered by the last commit get into the next one. (With 50
    /// clients on one disk it measured best for single SETs; 2 ms halved them, since every
    /// caller waits the whole window; a pipeline of 16 gained little from longer windows.)
    pub group_commit: Duration,
    /// The most ops in one group (one transaction).
    pub max_batch: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// How often the writer deletes expired keys, and at most how many per sweep.
    pub sweep_interval: Duration,
    pub sweep_batch: usize,
    /// Change records kept per store at most, acknowledged or not.
    pub change_retention: u64,
    /// A group logs the final state of the keys it touched as one record; the records are
    /// folded into the key table (a checkpoint) once they name this many distinct keys (default
    /// 10 000: the group that checkpoints waits for that many B-tree writes, tens of ms)...
    pub checkpoint_keys: usize,
    /// ...or take this many bytes.
    pub checkpoint_bytes: usize,
    /// redb's page cache.
    pub cache_bytes: usize,
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            durability: Durability::Fsync,
            group_commit: Duration::from_micros(200),
            max_batch: 4096,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            sweep_interval: Duration::from_millis(100),
            sweep_batch: 1000,
            change_retention: 1_000_000,
            checkpoint_keys: 10_000,
            checkpoint_bytes: 64 << 20,
            cache_bytes: 64 << 20,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("durability", &self.durability)
            .field("group_commit", &self.group_commit)
            .field("max_batch", &self.max_batch)
            .field("max_key_bytes", &self.max_key_bytes)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("sweep_interval", &self.sweep_interval)
            .field("sweep_batch", &self.sweep_batch)
            .field("change_retention", &self.change_retention)
            .field("checkpoint_keys", &self.checkpoint_keys)
            .field("checkpoint_bytes", &self.checkpoint_bytes)
            .field("cache_bytes", &self.cache_bytes)
            .finish_non_exhaustive()
    }
}

/// A store name: 1-63 of `[a-z0-9-]`.
pub fn validate_store_name(name: &str) -> Result<(), KvError> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if ok { Ok(()) } else { Err(KvError::InvalidStoreName(name.to_string())) }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreMeta {
    pub(crate) id: u32,
    pub(crate) created_ms: u64,
    pub(crate) changes: bool,
}

impl StoreMeta {
    /// `[id u32 LE][created_ms u64 LE][changes u8]`
    pub(crate) fn encode(&self) -> [u8; 13] {
        let mut b = [0; 13];
        b[..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..12].copy_from_slice(&self.created_ms.to_le_bytes());
        b[12] = u8::from(self.changes);
        b
    }

    pub(crate) fn decode(b: &[u8]) -> Result<StoreMeta, KvError> {
        if b.len() != 13 {
            return Err(KvError::Db("corrupt store record".into()));
        }
        Ok(StoreMeta {
            id: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            created_ms: u64::from_le_bytes(
                b[4..12].try_into().map_err(|_| KvError::Db("corrupt store record".into()))?,
            ),
            changes: b[12] != 0,
        })
    }
}

/// A store in memory. The writer is its only mutator; readers share the shards' locks.
pub(crate) struct StoreState {
    pub(crate) name: String,
    pub(crate) id: u32,
    pub(crate) created_ms: u64,
    pub(crate) changes: AtomicBool,
    pub(crate) deleted: AtomicBool,
    pub(crate) dbs: Box<[DbMem]>,
    /// Key plus encoded value bytes, as committed.
    pub(crate) bytes: AtomicU64,
    /// The last committed change's sequence number.
    pub(crate) seq: watch::Sender<u64>,
}

impl StoreState {
    pub(crate) fn new(name: String, meta: &StoreMeta) -> StoreState {
        StoreState {
            name,
            id: meta.id,
            created_ms: meta.created_ms,
            changes: AtomicBool::new(meta.changes),
            deleted: AtomicBool::new(false),
            dbs: (0..DATABASES).map(|_| DbMem::default()).collect(),
            bytes: AtomicU64::new(0),
            seq: watch::Sender::new(0),
        }
    }

    pub(crate) fn clear(&self) {
        for db in self.dbs.iter() {
            for s in db.shards.iter() {
                s.write().clear();
            }
            db.ordered.write().clear();
        }
        self.bytes.store(0, Ordering::SeqCst);
    }

    pub(crate) fn add_bytes(&self, delta: i64) {
        if delta >= 0 {
            self.bytes.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(delta.unsigned_abs()))
            });
        }
    }
}

pub(crate) struct Shared {
    /// Taken out at `close` (the writer holds its own reference until it ends), so the file
    /// can be opened again in this process.
    pub(crate) db: RwLock<Option<Arc<Database>>>,
    pub(crate) config: Config,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) stores: RwLock<HashMap<String, Arc<StoreState>>>,
    pub(crate) queue: Queue,
    /// Tests make the next commit fail, to check what callers see and the reload after it.
    #[cfg(test)]
    pub(crate) fail_next_commit: AtomicBool,
}

/// `[store id u32 BE][db u8][key]`: a store's keys, and a database's, are one range.
pub(crate) fn data_key(out: &mut Vec<u8>, id: u32, db: u8, key: &[u8]) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    out.push(db);
    out.extend_from_slice(key);
}

/// What a change did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Written (a value, a collection's elements, or its expiry).
    Set,
    /// Removed by a command (DEL, RENAME's source, a collection emptied, an expiry in the past).
    Delete,
    /// Removed because its time to live ran out.
    Expire,
    /// FLUSHDB: every key of the database (the record's key is empty).
    Flush,
}

/// One committed change from a store's change stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Per store, increasing by one with every change.
    pub seq: u64,
    pub db: u8,
    pub key: Bytes,
    pub kind: ChangeKind,
    /// A string's new value (`Set` of a string); `None` for collections and removals.
    pub value: Option<Bytes>,
    /// The key's expiry after a `Set`, unix ms.
    pub expires_at_ms: Option<u64>,
    pub time_ms: u64,
}

/// `[kind u8][db u8][time u64 LE][expires_at u64 LE][has value u8][key len u32 LE][key][value]`
pub(crate) fn encode_change(
    kind: ChangeKind,
    db: u8,
    time: u64,
    at: u64,
    key: &[u8],
    value: Option<&Bytes>,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(23 + key.len() + value.map_or(0, |v| v.len()));
    b.push(match kind {
        ChangeKind::Set => 0,
        ChangeKind::Delete => 1,
        ChangeKind::Expire => 2,
        ChangeKind::Flush => 3,
    });
    b.push(db);
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&at.to_le_bytes());
    b.push(u8::from(value.is_some()));
    b.extend_from_slice(&(key.len() as u32).to_le_bytes());
    b.extend_from_slice(key);
    if let Some(v) = value {
        b.extend_from_slice(v);
    }
    b
}

fn decode_change(seq: u64, b: &[u8]) -> Result<Change, KvError> {
    let bad = || KvError::Db("corrupt change record".into());
    if b.len() < 23 {
        return Err(bad());
    }
    let kind = match b[0] {
        0 => ChangeKind::Set,
        1 => ChangeKind::Delete,
        2 => ChangeKind::Expire,
        3 => ChangeKind::Flush,
        _ => return Err(bad()),
    };
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
    let klen = u32::from_le_bytes(b[19..23].try_into().map_err(|_| bad())?) as usize;
    let key = b.get(23..23 + klen).ok_or_else(bad)?;
    let at = u64_at(10);
    Ok(Change {
        seq,
        db: b[1],
        key: Bytes::copy_from_slice(key),
        kind,
        value: (b[18] != 0).then(|| Bytes::copy_from_slice(&b[23 + klen..])),
        expires_at_ms: (kind == ChangeKind::Set && at != 0).then_some(at),
        time_ms: u64_at(2),
    })
}

/// A store's description and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    pub name: String,
    pub created_ms: u64,
    /// Whether writes append to the change stream.
    pub changes: bool,
    /// Keys in all databases, including expired ones not yet swept (as Redis's DBSIZE).
    pub keys: u64,
    /// Key plus encoded value bytes, as committed.
    pub bytes: u64,
    /// The last committed change's sequence number.
    pub last_seq: u64,
}

/// A page of keys listed by prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<Bytes>,
    /// The cursor of the next page (its `after`), if there are more keys.
    pub next: Option<Bytes>,
}

/// SCAN's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanOptions {
    pub pattern: Option<Bytes>,
    /// Keys to visit, a hint as in Redis; default 10.
    pub count: Option<usize>,
    pub kind: Option<KeyType>,
}

struct KvInner {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for KvInner {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

/// The engine: every store in one redb file, in memory for reads. Cheap to clone.
#[derive(Clone)]
pub struct Kv {
    inner: Arc<KvInner>,
}

impl Kv {
    /// Opens (or creates) `dir/kv.redb` and loads every store into memory.
    pub fn open(dir: &Path, config: Config) -> Result<Kv, KvError> {
        if config.max_batch == 0 || config.sweep_batch == 0 {
            return Err(KvError::InvalidArgument("max_batch and sweep_batch must be positive".into()));
        }
        // A key's size is kept in a u32, and redb takes at most about 3 GiB per value.
        if config.max_value_bytes > 1 << 30 || config.max_key_bytes > 1 << 20 {
            return Err(KvError::InvalidArgument(
                "max_value_bytes is at most 1 GiB, max_key_bytes 1 MiB".into(),
            ));
        }
        std::fs::create_dir_all(dir)?;
        let db = Database::builder().set_cache_size(config.cache_bytes).create(dir.join("kv.redb"))?;
        let txn = db.begin_write()?;
        txn.open_table(STORES)?;
        txn.open_table(DATA)?;
        txn.open_table(CHANGES)?;
        txn.open_table(SEQS)?;
        txn.open_table(CURSORS)?;
        txn.open_table(META)?;
        txn.open_table(LOG)?;
        txn.commit()?;
        let db = Arc::new(db);
        let shared = Arc::new(Shared {
            db: RwLock::new(Some(db.clone())),
            clock: config.clock.clone(),
            config,
            stores: RwLock::new(HashMap::new()),
            queue: Queue::default(),
            #[cfg(test)]
            fail_next_commit: AtomicBool::new(false),
        });
        let mut writer = Writer::new(shared.clone(), db);
        writer.load()?;
        let thread = std::thread::Builder::new().name("yun-kv-writer".into()).spawn(move || writer.run())?;
        Ok(Kv { inner: Arc::new(KvInner { shared, thread: Mutex::new(Some(thread)) }) })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Stops taking work, commits (durably) what was queued, and waits for the writer to end.
    /// Operations after it fail with [`KvError::Closed`].
    pub async fn close(&self) -> Result<(), KvError> {
        self.shared().queue.close();
        let thread = self.inner.thread.lock().take();
        if let Some(t) = thread {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .map_err(|e| KvError::Db(e.to_string()))?
                .map_err(|_| KvError::Db("the writer panicked".into()))?;
        }
        self.shared().db.write().take();
        Ok(())
    }

    async fn admin(&self, op: Admin) -> Result<(), KvError> {
        let (tx, rx) = oneshot::channel();
        self.shared().queue.push(Work::Admin { op, reply: tx }).map_err(|_| KvError::Closed)?;
        rx.await.map_err(|_| KvError::Closed)?
    }

    /// Creates a store; `changes` turns its change stream on.
    pub async fn create_store(&self, name: &str, changes: bool) -> Result<(), KvError> {
        validate_store_name(name)?;
        self.admin(Admin::CreateStore { name: name.to_string(), changes }).await
    }

    /// Deletes a store with all its keys, change records and consumers.
    pub async fn delete_store(&self, name: &str) -> Result<(), KvError> {
        self.admin(Admin::DeleteStore(name.to_string())).await
    }

    /// Turns a store's change stream on or off (records already written stay until trimmed).
    pub async fn set_changes(&self, name: &str, on: bool) -> Result<(), KvError> {
        self.admin(Admin::SetChanges(name.to_string(), on)).await
    }

    fn store(&self, name: &str) -> Result<Arc<StoreState>, KvError> {
        self.shared().stores.read().get(name).cloned().ok_or_else(|| KvError::NoSuchStore(name.to_string()))
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, KvError> {
        let db = self.shared().db.read().clone().ok_or(KvError::Closed)?;
        Ok(db.begin_read()?)
    }

    fn info(st: &StoreState) -> StoreInfo {
        StoreInfo {
            name: st.name.clone(),
            created_ms: st.created_ms,
            changes: st.changes.load(Ordering::SeqCst),
            keys: st.dbs.iter().map(|d| d.len() as u64).sum(),
            bytes: st.bytes.load(Ordering::Relaxed),
            last_seq: *st.seq.borrow(),
        }
    }

    /// Every store, by name.
    pub fn stores(&self) -> Vec<StoreInfo> {
        let stores: Vec<Arc<StoreState>> = self.shared().stores.read().values().cloned().collect();
        let mut out: Vec<StoreInfo> = stores.iter().map(|s| Self::info(s)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub fn store_info(&self, name: &str) -> Result<StoreInfo, KvError> {
        Ok(Self::info(self.store(name)?.as_ref()))
    }

    /// A handle to database `index` (0..=15) of a store.
    pub fn db(&self, store: &str, index: u32) -> Result<Db, KvError> {
        if index >= u32::from(DATABASES) {
            return Err(KvError::InvalidDb(index));
        }
        Ok(Db { kv: self.clone(), st: self.store(store)?, index: index as u8, name: store.to_string() })
    }

    /// Committed changes of a store with a sequence number above `after_seq`, oldest first.
    /// Records are only ever read once they are committed (durable under `Durability::Fsync`).
    pub fn changes(&self, store: &str, after_seq: u64, limit: usize) -> Result<Vec<Change>, KvError> {
        let st = self.store(store)?;
        let txn = self.read_txn()?;
        let table = txn.open_table(CHANGES)?;
        let mut out = Vec::new();
        let Some(from) = after_seq.checked_add(1) else { return Ok(out) };
        for row in table.range((st.id, from)..=(st.id, u64::MAX))?.take(limit) {
            let (k, v) = row?;
            out.push(decode_change(k.value().1, v.value())?);
        }
        Ok(out)
    }

    /// Records that `consumer` has processed a store's changes up to `seq`. Changes every
    /// consumer has acknowledged are trimmed; a consumer's position never moves back.
    pub async fn ack(&self, store: &str, consumer: &str, seq: u64) -> Result<(), KvError> {
        self.admin(Admin::Ack { store: store.to_string(), consumer: consumer.to_string(), seq }).await
    }

    /// Forgets a consumer, so it no longer holds back trimming.
    pub async fn remove_consumer(&self, store: &str, consumer: &str) -> Result<(), KvError> {
        self.admin(Admin::RemoveConsumer { store: store.to_string(), consumer: consumer.to_string() }).await
    }

    /// Where `consumer` last acknowledged, if it ever did.
    pub fn consumer_position(&self, store: &str, consumer: &str) -> Result<Option<u64>, KvError> {
        let st = self.store(store)?;
        let txn = self.read_txn()?;
        Ok(txn.open_table(CURSORS)?.get((st.id, consumer))?.map(|v| v.value()))
    }

    /// The last committed sequence number of a store, changing after every commit that
    /// appended changes: wait on it instead of polling [`Kv::changes`].
    pub fn watch_changes(&self, store: &str) -> Result<watch::Receiver<u64>, KvError> {
        Ok(self.store(store)?.seq.subscribe())
    }
}

fn unexpected(r: Reply) -> KvError {
    KvError::Db(format!("unexpected reply {r:?}"))
}

fn int(r: Reply) -> Result<i64, KvError> {
    match r {
        Reply::Int(n) => Ok(n),
        other => Err(unexpected(other)),
    }
}

fn count(r: Reply) -> Result<u64, KvError> {
    int(r).map(|n| n.max(0) as u64)
}

fn opt(r: Reply) -> Result<Option<Bytes>, KvError> {
    match r {
        Reply::Bulk(b) => Ok(Some(b)),
        Reply::Nil => Ok(None),
        other => Err(unexpected(other)),
    }
}

fn array(r: Reply) -> Result<Vec<Reply>, KvError> {
    match r {
        Reply::Array(v) => Ok(v),
        other => Err(unexpected(other)),
    }
}

fn bulks(r: Reply) -> Result<Vec<Bytes>, KvError> {
    array(r)?.into_iter().map(|r| opt(r)?.ok_or_else(|| unexpected(Reply::Nil))).collect()
}

fn opts(r: Reply) -> Result<Vec<Option<Bytes>>, KvError> {
    array(r)?.into_iter().map(opt).collect()
}

fn expire_command(e: Expire) -> &'static str {
    match e {
        Expire::Seconds(_) => "expire",
        Expire::Millis(_) => "pexpire",
        Expire::AtSeconds(_) => "expireat",
        Expire::AtMillis(_) => "pexpireat",
    }
}

/// One database of one store: every data operation, typed, plus [`Db::exec`] for a pipeline.
///
/// Reads are served from memory and never wait for the writer. Writes go through the writer
/// and return once their group is committed; their effect is visible to readers as soon as
/// the writer applies them, which can be up to one group-commit window (plus an fsync) before
/// they are durable.
#[derive(Clone)]
pub struct Db {
    kv: Kv,
    st: Arc<StoreState>,
    index: u8,
    name: String,
}

impl Db {
    pub fn store(&self) -> &str {
        &self.name
    }

    pub fn index(&self) -> u8 {
        self.index
    }

    /// The store's state, found again by name if the one this handle holds was replaced
    /// (the memory reload after a failed commit).
    fn state(&self) -> Result<std::borrow::Cow<'_, Arc<StoreState>>, KvError> {
        if !self.st.deleted.load(Ordering::Relaxed) {
            return Ok(std::borrow::Cow::Borrowed(&self.st));
        }
        self.kv.store(&self.name).map(std::borrow::Cow::Owned)
    }

    fn now(&self) -> u64 {
        self.kv.shared().clock.now_ms()
    }

    /// Runs ops in order and gives each op's reply (see [`Op`]). A batch of reads only is
    /// served from memory; any write sends the whole batch to the writer as one unit, so it is
    /// applied in order, in one group, and never torn by a crash. Each op succeeds or fails
    /// on its own (as in a Redis pipeline); the outer error means none of it was committed.
    pub async fn exec(&self, ops: Vec<Op>) -> Result<Vec<Result<Reply, KvError>>, KvError> {
        let st = self.state()?;
        if ops.iter().all(Op::is_read) {
            let now = self.now();
            let db = &st.dbs[self.index as usize];
            return Ok(ops
                .iter()
                .map(|op| read(db, op, now).unwrap_or_else(|| Err(unexpected(Reply::Nil))))
                .collect());
        }
        let (tx, rx) = oneshot::channel();
        let work = Work::Ops { store: st.into_owned(), db: self.index, ops, reply: tx };
        self.kv.shared().queue.push(work).map_err(|_| KvError::Closed)?;
        rx.await.map_err(|_| KvError::Closed)?
    }

    async fn one(&self, op: Op) -> Result<Reply, KvError> {
        if op.is_read() {
            let st = self.state()?;
            let now = self.now();
            return read(&st.dbs[self.index as usize], &op, now)
                .unwrap_or_else(|| Err(unexpected(Reply::Nil)));
        }
        self.exec(vec![op]).await?.pop().unwrap_or_else(|| Err(unexpected(Reply::Nil)))
    }

    /// GET: `None` if absent; WRONGTYPE for a non-string.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, KvError> {
        let st = self.state()?;
        let now = self.now();
        crate::ops::with_entry(&st.dbs[self.index as usize], key, now, |e| match e.map(|e| &e.value) {
            None => Ok(None),
            Some(crate::value::Value::Str(b)) => Ok(Some(b.clone())),
            Some(_) => Err(KvError::WrongType),
        })
    }

    /// SET without options (clears any expiry).
    pub async fn set(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<(), KvError> {
        self.set_with(key, value, SetOptions::default()).await.map(drop)
    }

    /// SET with a time to live.
    pub async fn set_ttl(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        ttl: Duration,
    ) -> Result<(), KvError> {
        let ms = i64::try_from(ttl.as_millis()).map_err(|_| KvError::InvalidExpireTime("set"))?;
        self.set_with(key, value, SetOptions { expire: Some(Expire::Millis(ms)), ..SetOptions::default() })
            .await
            .map(drop)
    }

    /// SET with options (`get` ignored): whether it wrote (false if NX/XX did not hold).
    pub async fn set_with(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        options: SetOptions,
    ) -> Result<bool, KvError> {
        let options = SetOptions { get: false, ..options };
        let r = self.one(Op::Set { key: key.into(), value: value.into(), options }).await?;
        match r {
            Reply::Ok => Ok(true),
            Reply::Nil => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    /// SET ... GET: the previous value (WRONGTYPE, and no write, if it is not a string).
    pub async fn set_get(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        options: SetOptions,
    ) -> Result<Option<Bytes>, KvError> {
        let options = SetOptions { get: true, ..options };
        opt(self.one(Op::Set { key: key.into(), value: value.into(), options }).await?)
    }

    /// MGET: `None` for absent keys and for keys that are not strings.
    pub async fn mget(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Bytes>>, KvError> {
        opts(self.one(Op::MGet(keys)).await?)
    }

    /// MSET: all or nothing.
    pub async fn mset(&self, pairs: Vec<(Bytes, Bytes)>) -> Result<(), KvError> {
        self.one(Op::MSet(pairs)).await.map(drop)
    }

    /// Batch set with a time to live per item: all or nothing.
    pub async fn set_many(&self, items: Vec<SetItem>) -> Result<(), KvError> {
        self.one(Op::SetMany(items)).await.map(drop)
    }

    pub async fn incr(&self, key: impl Into<Bytes>) -> Result<i64, KvError> {
        self.incr_by(key, 1).await
    }

    pub async fn decr(&self, key: impl Into<Bytes>) -> Result<i64, KvError> {
        self.decr_by(key, 1).await
    }

    /// INCRBY: the new value; an absent key counts as 0.
    pub async fn incr_by(&self, key: impl Into<Bytes>, by: i64) -> Result<i64, KvError> {
        int(self.one(Op::IncrBy(key.into(), by)).await?)
    }

    pub async fn decr_by(&self, key: impl Into<Bytes>, by: i64) -> Result<i64, KvError> {
        int(self.one(Op::DecrBy(key.into(), by)).await?)
    }

    /// APPEND: the new length.
    pub async fn append(&self, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::Append(key.into(), value.into())).await?)
    }

    pub async fn strlen(&self, key: impl Into<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::StrLen(key.into())).await?)
    }

    /// Sets `value` if the current value is `expected` (`None`: if the key is absent).
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        value: impl Into<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, KvError> {
        let op = Op::CompareAndSwap { key: key.into(), expected, value: value.into(), ttl };
        Ok(int(self.one(op).await?)? == 1)
    }

    /// DEL: how many of the keys existed.
    pub async fn del(&self, keys: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::Del(keys)).await?)
    }

    /// Deletes one key: whether it existed.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool, KvError> {
        Ok(self.del(vec![key.into()]).await? == 1)
    }

    /// EXISTS: a key named twice counts twice.
    pub async fn exists(&self, keys: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::Exists(keys)).await?)
    }

    /// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT: whether it applied. A time already past
    /// deletes the key (and counts as applied).
    pub async fn expire(
        &self,
        key: impl Into<Bytes>,
        expire: Expire,
        condition: ExpireCondition,
    ) -> Result<bool, KvError> {
        let op = Op::Expire { key: key.into(), expire, condition, command: expire_command(expire) };
        Ok(int(self.one(op).await?)? == 1)
    }

    /// PERSIST: whether an expiry was removed.
    pub async fn persist(&self, key: impl Into<Bytes>) -> Result<bool, KvError> {
        Ok(int(self.one(Op::Persist(key.into())).await?)? == 1)
    }

    /// TTL in seconds: -2 absent, -1 no expiry.
    pub async fn ttl(&self, key: impl Into<Bytes>) -> Result<i64, KvError> {
        int(self.one(Op::Ttl(key.into())).await?)
    }

    /// PTTL in ms: -2 absent, -1 no expiry.
    pub async fn pttl(&self, key: impl Into<Bytes>) -> Result<i64, KvError> {
        int(self.one(Op::Pttl(key.into())).await?)
    }

    /// TYPE: `None` for an absent key.
    pub async fn key_type(&self, key: impl Into<Bytes>) -> Result<Option<KeyType>, KvError> {
        match self.one(Op::Type(key.into())).await? {
            Reply::Status(s) => Ok(KeyType::parse(s.as_bytes())),
            other => Err(unexpected(other)),
        }
    }

    /// RENAME: [`KvError::NoSuchKey`] if `src` is absent; `dst` is overwritten.
    pub async fn rename(&self, src: impl Into<Bytes>, dst: impl Into<Bytes>) -> Result<(), KvError> {
        self.one(Op::Rename(src.into(), dst.into())).await.map(drop)
    }

    /// SCAN: the next cursor (0 when done) and a page of keys.
    pub async fn scan(&self, cursor: u64, options: ScanOptions) -> Result<(u64, Vec<Bytes>), KvError> {
        let op = Op::Scan {
            cursor,
            pattern: options.pattern,
            count: options.count.unwrap_or(10),
            kind: options.kind,
        };
        let mut parts = array(self.one(op).await?)?.into_iter();
        let (Some(Reply::Bulk(c)), Some(keys)) = (parts.next(), parts.next()) else {
            return Err(KvError::Db("malformed scan reply".into()));
        };
        let cursor = std::str::from_utf8(&c).ok().and_then(|c| c.parse().ok()).ok_or(KvError::NotInteger)?;
        Ok((cursor, bulks(keys)?))
    }

    /// Keys starting with `prefix` in byte order, after the key `after` (a previous page's
    /// `next`), at most `limit`.
    pub async fn list(
        &self,
        prefix: impl Into<Bytes>,
        after: Option<Bytes>,
        limit: usize,
    ) -> Result<ListPage, KvError> {
        let mut parts = array(self.one(Op::List { prefix: prefix.into(), after, limit }).await?)?.into_iter();
        let (Some(keys), Some(next)) = (parts.next(), parts.next()) else {
            return Err(KvError::Db("malformed list reply".into()));
        };
        Ok(ListPage { keys: bulks(keys)?, next: opt(next)? })
    }

    /// DBSIZE: keys, including expired ones not yet swept (as Redis).
    pub async fn dbsize(&self) -> Result<u64, KvError> {
        count(self.one(Op::DbSize).await?)
    }

    pub async fn flushdb(&self) -> Result<(), KvError> {
        self.one(Op::FlushDb).await.map(drop)
    }

    /// HSET: fields added (not updated).
    pub async fn hset(&self, key: impl Into<Bytes>, pairs: Vec<(Bytes, Bytes)>) -> Result<u64, KvError> {
        count(self.one(Op::HSet(key.into(), pairs)).await?)
    }

    pub async fn hget(
        &self,
        key: impl Into<Bytes>,
        field: impl Into<Bytes>,
    ) -> Result<Option<Bytes>, KvError> {
        opt(self.one(Op::HGet(key.into(), field.into())).await?)
    }

    pub async fn hmget(
        &self,
        key: impl Into<Bytes>,
        fields: Vec<Bytes>,
    ) -> Result<Vec<Option<Bytes>>, KvError> {
        opts(self.one(Op::HMGet(key.into(), fields)).await?)
    }

    /// HGETALL as pairs, fields in byte order.
    pub async fn hgetall(&self, key: impl Into<Bytes>) -> Result<Vec<(Bytes, Bytes)>, KvError> {
        let flat = bulks(self.one(Op::HGetAll(key.into())).await?)?;
        let mut it = flat.into_iter();
        let mut out = Vec::new();
        while let (Some(f), Some(v)) = (it.next(), it.next()) {
            out.push((f, v));
        }
        Ok(out)
    }

    pub async fn hdel(&self, key: impl Into<Bytes>, fields: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::HDel(key.into(), fields)).await?)
    }

    pub async fn hincrby(
        &self,
        key: impl Into<Bytes>,
        field: impl Into<Bytes>,
        by: i64,
    ) -> Result<i64, KvError> {
        int(self.one(Op::HIncrBy(key.into(), field.into(), by)).await?)
    }

    pub async fn hlen(&self, key: impl Into<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::HLen(key.into())).await?)
    }

    /// LPUSH: the new length (values end up in reverse order at the head, as in Redis).
    pub async fn lpush(&self, key: impl Into<Bytes>, values: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::LPush(key.into(), values)).await?)
    }

    pub async fn rpush(&self, key: impl Into<Bytes>, values: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::RPush(key.into(), values)).await?)
    }

    pub async fn lpop(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, KvError> {
        opt(self.one(Op::LPop(key.into(), None)).await?)
    }

    pub async fn rpop(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, KvError> {
        opt(self.one(Op::RPop(key.into(), None)).await?)
    }

    /// LPOP key count: `None` if the key is absent.
    pub async fn lpop_count(&self, key: impl Into<Bytes>, n: usize) -> Result<Option<Vec<Bytes>>, KvError> {
        pop_many(self.one(Op::LPop(key.into(), Some(n))).await?)
    }

    pub async fn rpop_count(&self, key: impl Into<Bytes>, n: usize) -> Result<Option<Vec<Bytes>>, KvError> {
        pop_many(self.one(Op::RPop(key.into(), Some(n))).await?)
    }

    pub async fn lrange(&self, key: impl Into<Bytes>, start: i64, stop: i64) -> Result<Vec<Bytes>, KvError> {
        bulks(self.one(Op::LRange(key.into(), start, stop)).await?)
    }

    pub async fn llen(&self, key: impl Into<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::LLen(key.into())).await?)
    }

    /// SADD: members added.
    pub async fn sadd(&self, key: impl Into<Bytes>, members: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::SAdd(key.into(), members)).await?)
    }

    pub async fn srem(&self, key: impl Into<Bytes>, members: Vec<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::SRem(key.into(), members)).await?)
    }

    /// SMEMBERS in byte order.
    pub async fn smembers(&self, key: impl Into<Bytes>) -> Result<Vec<Bytes>, KvError> {
        bulks(self.one(Op::SMembers(key.into())).await?)
    }

    pub async fn sismember(&self, key: impl Into<Bytes>, member: impl Into<Bytes>) -> Result<bool, KvError> {
        Ok(int(self.one(Op::SIsMember(key.into(), member.into())).await?)? == 1)
    }

    pub async fn scard(&self, key: impl Into<Bytes>) -> Result<u64, KvError> {
        count(self.one(Op::SCard(key.into())).await?)
    }
}

fn pop_many(r: Reply) -> Result<Option<Vec<Bytes>>, KvError> {
    match r {
        Reply::NilArray => Ok(None),
        r => bulks(r).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_commit_fails_its_group_and_memory_returns_to_the_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Kv::open(dir.path(), Config::default()).unwrap();
        kv.create_store("app", true).await.unwrap();
        let db = kv.db("app", 0).unwrap();
        db.set("kept", "1").await.unwrap();
        db.rpush("list", vec![Bytes::from("a")]).await.unwrap();

        kv.shared().fail_next_commit.store(true, Ordering::SeqCst);
        let ops = vec![
            Op::Set { key: Bytes::from("kept"), value: Bytes::from("2"), options: SetOptions::default() },
            Op::Set { key: Bytes::from("lost"), value: Bytes::from("x"), options: SetOptions::default() },
            Op::Del(vec![Bytes::from("list")]),
        ];
        assert!(matches!(db.exec(ops).await, Err(KvError::CommitFailed(_))));
        let create = kv.create_store("other", false).await;
        assert!(create.is_ok(), "the next group commits: {create:?}");

        // Memory is what the last commit left; the same handle keeps working.
        assert_eq!(db.get(b"kept").await.unwrap(), Some(Bytes::from("1")));
        assert_eq!(db.get(b"lost").await.unwrap(), None);
        assert_eq!(db.lrange("list", 0, -1).await.unwrap(), vec![Bytes::from("a")]);
        assert_eq!(kv.store_info("app").unwrap().last_seq, 2);
        db.set("after", "ok").await.unwrap();
        let seqs: Vec<u64> = kv.changes("app", 0, 10).unwrap().iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3], "the failed group's changes were never numbered for good");
        assert_eq!(kv.stores().len(), 2);
    }
}
