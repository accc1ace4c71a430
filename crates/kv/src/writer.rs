//! The one writer: takes work from the queue, applies a group of it to memory and to one redb
//! write transaction, commits (fsync), and only then answers every caller in the group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLockWriteGuard};
use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use crate::engine::{
    CHANGES, CURSORS, ChangeKind, DATA, Durability, LOG, META, NEXT_STORE_ID, SEQS, STORES, Shared,
    StoreMeta, StoreState, data_key, encode_change,
};
use crate::ops::{ExpireCondition, Op, Reply, SetCondition, bulks, opt_bulk, parse_i64, read};
use crate::value::{DbMem, Entry, SHARDS, Shard, Value, key_hash, shard_of};
use crate::{KvError, ops};

/// Most change records one group trims, so a large backlog never stalls writes.
const TRIM_PER_GROUP: usize = 10_000;
/// The size a log record is cut at (a key's entry larger than this gets a record of its own).
const LOG_CHUNK: usize = 4 << 20;
/// A log item's entry length that says the key was removed.
const REMOVED: u32 = u32::MAX;
/// With `Durability::None`, how often a commit is made durable anyway (so redb can reuse space).
const CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) type OpsReply = oneshot::Sender<Result<Vec<Result<Reply, KvError>>, KvError>>;

pub(crate) enum Admin {
    CreateStore { name: String, changes: bool },
    DeleteStore(String),
    SetChanges(String, bool),
    Ack { store: String, consumer: String, seq: u64 },
    RemoveConsumer { store: String, consumer: String },
}

pub(crate) enum Work {
    Ops { store: Arc<StoreState>, db: u8, ops: Vec<Op>, reply: OpsReply },
    Admin { op: Admin, reply: oneshot::Sender<Result<(), KvError>> },
}

impl Work {
    fn weight(&self) -> usize {
        match self {
            Work::Ops { ops, .. } => ops.len().max(1),
            Work::Admin { .. } => 1,
        }
    }
}

#[derive(Default)]
struct QueueInner {
    jobs: VecDeque<Work>,
    closed: bool,
}

/// The writer's inbox: a locked deque, drained whole, so a burst costs one wakeup.
#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<QueueInner>,
    cv: Condvar,
}

impl Queue {
    /// Queues `work`, or hands it back if the engine is closed.
    pub(crate) fn push(&self, work: Work) -> Result<(), Work> {
        let mut q = self.inner.lock();
        if q.closed {
            return Err(work);
        }
        q.jobs.push_back(work);
        if q.jobs.len() == 1 {
            self.cv.notify_one();
        }
        Ok(())
    }

    pub(crate) fn close(&self) {
        self.inner.lock().closed = true;
        self.cv.notify_one();
    }

    /// Up to `budget` ops' worth of work, waiting until `until` if there is none (not at all if
    /// `None`). The flag says the queue is closed and empty.
    fn take(&self, budget: usize, until: Option<Instant>, out: &mut Vec<Work>) -> bool {
        let mut q = self.inner.lock();
        if let Some(t) = until {
            while q.jobs.is_empty() && !q.closed {
                if self.cv.wait_until(&mut q, t).timed_out() {
                    break;
                }
            }
        }
        let mut taken = 0;
        while taken < budget {
            let Some(w) = q.jobs.pop_front() else { break };
            taken += w.weight();
            out.push(w);
        }
        q.closed && q.jobs.is_empty()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Seqs {
    /// The last sequence number given out.
    last: u64,
    /// The oldest change still retained.
    first: u64,
}

enum Done {
    Ops(OpsReply, Result<Vec<Result<Reply, KvError>>, KvError>),
    Admin(oneshot::Sender<Result<(), KvError>>, Result<(), KvError>),
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    db: Arc<redb::Database>,
    by_id: HashMap<u32, Arc<StoreState>>,
    seqs: HashMap<u32, Seqs>,
    consumers: HashMap<u32, BTreeMap<String, u64>>,
    /// (expires_at, store id, db, key) of every key with an expiry, for the active sweep.
    expiry: BTreeSet<(u64, u32, u8, Bytes)>,
    next_store_id: u32,
    /// Keys whose latest state may be only in the log, not yet in the key table.
    pending: HashSet<(u32, u8, Bytes)>,
    /// Bytes in the log table (0 = it is empty), and the next record's number.
    log_bytes: usize,
    log_next: u64,
    // The current group:
    dirty: HashSet<(u32, u8, Bytes)>,
    changes: Vec<(u32, u64, Vec<u8>)>,
    seq_touched: HashMap<u32, u64>,
    now: u64,
    buf: Vec<u8>,
    last_durable: Instant,
    /// A commit since the last durable one was not fsynced (`Durability::None`).
    undurable: bool,
}

/// The write locks of the shards an op touches, taken in shard order (so two multi-key ops
/// can never deadlock; readers take one shard at a time).
struct Locked<'a> {
    guards: Vec<(usize, RwLockWriteGuard<'a, Shard>)>,
}

impl<'a> Locked<'a> {
    fn new(db: &'a DbMem, hashes: impl IntoIterator<Item = u64>) -> Locked<'a> {
        let mut idx: Vec<usize> = hashes.into_iter().map(shard_of).collect();
        idx.sort_unstable();
        idx.dedup();
        Locked { guards: idx.into_iter().map(|i| (i, db.shards[i].write())).collect() }
    }

    fn all(db: &'a DbMem) -> Locked<'a> {
        Locked { guards: (0..SHARDS).map(|i| (i, db.shards[i].write())).collect() }
    }

    fn shard(&mut self, h: u64) -> &mut Shard {
        let i = shard_of(h);
        let pos =
            self.guards.iter().position(|(j, _)| *j == i).expect("the op locked every shard it touches");
        &mut self.guards[pos].1
    }
}

fn too_large(len: usize, max: usize) -> Result<(), KvError> {
    if len > max { Err(KvError::ValueTooLarge { len, max }) } else { Ok(()) }
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, db: Arc<redb::Database>) -> Writer {
        Writer {
            shared,
            db,
            by_id: HashMap::new(),
            seqs: HashMap::new(),
            consumers: HashMap::new(),
            expiry: BTreeSet::new(),
            next_store_id: 1,
            pending: HashSet::new(),
            log_bytes: 0,
            log_next: 1,
            dirty: HashSet::new(),
            changes: Vec::new(),
            seq_touched: HashMap::new(),
            now: 0,
            buf: Vec::new(),
            last_durable: Instant::now(),
            undurable: false,
        }
    }

    /// Fills memory from the last commit. At open the maps are empty; after a failed commit
    /// they hold what the failed group did, and are rebuilt (existing stores in place, so
    /// handles to them keep working).
    pub(crate) fn load(&mut self) -> Result<(), KvError> {
        let txn = self.db.begin_read()?;
        let mut disk_stores: HashMap<String, StoreMeta> = HashMap::new();
        for row in txn.open_table(STORES)?.iter()? {
            let (name, meta) = row?;
            disk_stores.insert(name.value().to_string(), StoreMeta::decode(meta.value())?);
        }
        let mut stores = self.shared.stores.write();
        // Drop what memory holds; keep the state objects of stores that are still on disk.
        let mut keep: HashMap<u32, Arc<StoreState>> = HashMap::new();
        for (name, st) in stores.drain() {
            st.clear();
            if disk_stores.get(&name).is_some_and(|m| m.id == st.id) {
                keep.insert(st.id, st);
            } else {
                st.deleted.store(true, Ordering::SeqCst);
            }
        }
        for st in self.by_id.values() {
            if !keep.contains_key(&st.id) {
                st.clear();
                st.deleted.store(true, Ordering::SeqCst);
            }
        }
        self.by_id.clear();
        self.seqs.clear();
        self.consumers.clear();
        self.expiry.clear();
        self.next_store_id = txn.open_table(META)?.get(NEXT_STORE_ID)?.map_or(1, |v| v.value() as u32);
        let seq_table = txn.open_table(SEQS)?;
        let changes = txn.open_table(CHANGES)?;
        for (name, meta) in disk_stores {
            let st = match keep.remove(&meta.id) {
                Some(st) => {
                    st.changes.store(meta.changes, Ordering::SeqCst);
                    st
                }
                None => Arc::new(StoreState::new(name.clone(), &meta)),
            };
            let last = seq_table.get(meta.id)?.map_or(0, |v| v.value());
            let first = match changes.range((meta.id, 0)..=(meta.id, u64::MAX))?.next() {
                Some(row) => row?.0.value().1,
                None => last + 1,
            };
            self.seqs.insert(meta.id, Seqs { last, first });
            st.seq.send_replace(last);
            stores.insert(name, st.clone());
            self.by_id.insert(meta.id, st);
        }
        for row in txn.open_table(CURSORS)?.iter()? {
            let (k, v) = row?;
            let (id, consumer) = k.value();
            self.consumers.entry(id).or_default().insert(consumer.to_string(), v.value());
        }
        // The key table, then the log records after it, oldest first.
        for row in txn.open_table(DATA)?.iter()? {
            let (k, v) = row?;
            let (k, v) = (k.value(), v.value());
            if k.len() < 5 {
                return Err(KvError::Db("corrupt key record".into()));
            }
            let id = u32::from_be_bytes([k[0], k[1], k[2], k[3]]);
            let key = Bytes::copy_from_slice(&k[5..]);
            let mut entry = Entry::decode(v)?;
            entry.size = (key.len() + v.len()) as u32;
            self.load_key(id, k[4], key, Some(entry));
        }
        self.pending.clear();
        self.log_bytes = 0;
        self.log_next = 1;
        for row in txn.open_table(LOG)?.iter()? {
            let (n, rec) = row?;
            self.log_next = n.value() + 1;
            self.log_bytes += rec.value().len();
            for (id, db, key, entry) in log_items(rec.value())? {
                self.pending.insert((id, db, key.clone()));
                self.load_key(id, db, key, entry);
            }
        }
        // The expiry index and byte totals from what memory now holds.
        let mut expiry = BTreeSet::new();
        for (id, st) in &self.by_id {
            let mut total = 0u64;
            for (db, dbm) in st.dbs.iter().enumerate() {
                for shard in dbm.shards.iter() {
                    shard.read().for_each(|k, e| {
                        total += u64::from(e.size);
                        if e.expires_at != 0 {
                            expiry.insert((e.expires_at, *id, db as u8, k.clone()));
                        }
                    });
                }
            }
            st.bytes.store(total, Ordering::SeqCst);
        }
        self.expiry = expiry;
        Ok(())
    }

    /// Puts a key's stored state into memory while loading (`None`: the log says it is gone).
    fn load_key(&self, id: u32, db: u8, key: Bytes, entry: Option<Entry>) {
        let Some(dbm) = self.by_id.get(&id).and_then(|st| st.dbs.get(db as usize)) else { return };
        let h = key_hash(&key);
        let mut shard = dbm.shards[shard_of(h)].write();
        match entry {
            Some(e) => {
                shard.insert(h, key.clone(), e);
                dbm.ordered.write().insert(key);
            }
            None => {
                shard.remove(h, &key);
                dbm.ordered.write().remove(&key);
            }
        }
    }

    pub(crate) fn run(mut self) {
        let config = self.shared.config.clone();
        let mut next_sweep = Instant::now() + config.sweep_interval;
        let mut works = Vec::new();
        loop {
            works.clear();
            let closed = self.shared.queue.take(config.max_batch, Some(next_sweep), &mut works);
            let sweep_due = Instant::now() >= next_sweep;
            if sweep_due {
                next_sweep = Instant::now() + config.sweep_interval;
            }
            // An idle engine makes no commits: only expired keys or a pending checkpoint do.
            let expired = sweep_due && self.expiry.first().is_some_and(|f| f.0 <= self.shared.clock.now_ms());
            let checkpoint = self.undurable && self.last_durable.elapsed() >= CHECKPOINT;
            if works.is_empty() && !expired && !checkpoint && !closed {
                continue;
            }
            let started = Instant::now();
            let mut done = Vec::with_capacity(works.len());
            let result = self.group(&mut works, &mut done, started, expired, closed);
            match result {
                Ok(()) => {
                    for (id, last) in self.seq_touched.drain() {
                        if let Some(st) = self.by_id.get(&id) {
                            st.seq.send_replace(last);
                        }
                    }
                    for d in done {
                        match d {
                            Done::Ops(tx, r) => drop(tx.send(r)),
                            Done::Admin(tx, r) => drop(tx.send(r)),
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "kv: a group failed to commit; reloading from the last commit");
                    for d in done {
                        match d {
                            Done::Ops(tx, _) => drop(tx.send(Err(e.duplicate()))),
                            Done::Admin(tx, _) => drop(tx.send(Err(e.duplicate()))),
                        }
                    }
                    // Work taken but not reached when the group failed fails the same way.
                    for w in works.drain(..) {
                        match w {
                            Work::Ops { reply, .. } => drop(reply.send(Err(e.duplicate()))),
                            Work::Admin { reply, .. } => drop(reply.send(Err(e.duplicate()))),
                        }
                    }
                    self.dirty.clear();
                    self.changes.clear();
                    self.seq_touched.clear();
                    if let Err(e) = self.load() {
                        tracing::error!(error = %e, "kv: reloading after a failed commit failed; closing");
                        self.shared.queue.close();
                    }
                }
            }
            if closed {
                return;
            }
        }
    }

    /// One group: the work taken so far plus whatever arrives within the window, in one
    /// transaction, committed.
    fn group(
        &mut self,
        works: &mut Vec<Work>,
        done: &mut Vec<Done>,
        started: Instant,
        sweep: bool,
        final_commit: bool,
    ) -> Result<(), KvError> {
        let config = self.shared.config.clone();
        let mut txn = self.db.begin_write()?;
        let durable = match config.durability {
            Durability::Fsync => true,
            Durability::None => final_commit || self.last_durable.elapsed() >= CHECKPOINT,
        };
        txn.set_durability(if durable { redb::Durability::Immediate } else { redb::Durability::None })?;
        let mut weight = 0;
        loop {
            let mut batch = std::mem::take(works).into_iter();
            while let Some(w) = batch.next() {
                weight += w.weight();
                self.now = self.shared.clock.now_ms();
                // A disk error fails the whole group: this work joins `done` (every entry there
                // is answered with the error) and what was not reached goes back to `works`.
                let failed = match w {
                    Work::Ops { store, db, ops, reply } => {
                        let mut r = if store.deleted.load(Ordering::SeqCst) {
                            Err(KvError::NoSuchStore(store.name.clone()))
                        } else {
                            Ok(Vec::with_capacity(ops.len()))
                        };
                        let mut failed = None;
                        if let Ok(out) = &mut r {
                            for op in ops {
                                match self.apply(&txn, &store, db, op) {
                                    Ok(reply) => out.push(reply),
                                    Err(e) => {
                                        failed = Some(e);
                                        break;
                                    }
                                }
                            }
                        }
                        done.push(Done::Ops(reply, r));
                        failed
                    }
                    Work::Admin { op, reply } => match self.admin(&txn, op) {
                        Ok(r) => {
                            done.push(Done::Admin(reply, r));
                            None
                        }
                        Err(e) => {
                            done.push(Done::Admin(reply, Ok(())));
                            Some(e)
                        }
                    },
                };
                if let Some(e) = failed {
                    works.extend(batch);
                    return Err(e);
                }
            }
            if weight >= config.max_batch {
                break;
            }
            let until = (!config.group_commit.is_zero()).then(|| started + config.group_commit);
            if until.is_some_and(|t| Instant::now() >= t) {
                break;
            }
            self.shared.queue.take(config.max_batch - weight, until, works);
            if works.is_empty() {
                break;
            }
        }
        if sweep {
            self.now = self.shared.clock.now_ms();
            self.sweep(config.sweep_batch);
        }
        self.flush(&txn, final_commit)?;
        #[cfg(test)]
        if self.shared.fail_next_commit.swap(false, Ordering::SeqCst) {
            return Err(KvError::Db("injected commit failure".into()));
        }
        txn.commit()?;
        self.undurable = !durable;
        if durable {
            self.last_durable = Instant::now();
        }
        Ok(())
    }

    /// Writes the group's final state of every key it touched, its change records and sequence
    /// numbers, and trims change records past retention or acknowledged by every consumer.
    fn flush(&mut self, txn: &WriteTransaction, force_checkpoint: bool) -> Result<(), KvError> {
        let config = &self.shared.config;
        if force_checkpoint
            || self.pending.len() + self.dirty.len() > config.checkpoint_keys
            || self.log_bytes > config.checkpoint_bytes
        {
            self.checkpoint(txn)?;
        } else if !self.dirty.is_empty() {
            self.write_log(txn)?;
        }
        if !self.changes.is_empty() {
            let mut table = txn.open_table(CHANGES)?;
            for (id, seq, rec) in self.changes.drain(..) {
                table.insert((id, seq), rec.as_slice())?;
            }
            let mut seqs = txn.open_table(SEQS)?;
            for (id, last) in &self.seq_touched {
                seqs.insert(*id, *last)?;
            }
        }
        let retention = self.shared.config.change_retention;
        let mut trims = Vec::new();
        for (id, s) in &self.seqs {
            let by_retention = s.last.saturating_sub(retention);
            let by_ack = self.consumers.get(id).and_then(|c| c.values().min().copied()).unwrap_or(0);
            let upto = by_retention.max(by_ack).min(s.last);
            if upto >= s.first {
                trims.push((*id, s.first, upto));
            }
        }
        if !trims.is_empty() {
            let mut table = txn.open_table(CHANGES)?;
            let mut budget = TRIM_PER_GROUP;
            for (id, first, upto) in trims {
                if budget == 0 {
                    break;
                }
                let mut removed_to = None;
                for row in table.extract_from_if((id, first)..=(id, upto), |_, _| true)?.take(budget) {
                    removed_to = Some(row?.0.value().1);
                    budget -= 1;
                }
                let s = self.seqs.entry(id).or_default();
                s.first = match removed_to {
                    Some(seq) if seq < upto => seq + 1,
                    _ => upto + 1,
                };
            }
        }
        Ok(())
    }

    /// Encodes the key's current entry into `self.buf` and brings the store's byte total up to
    /// date with it; false if the key is absent.
    fn encode_current(&mut self, st: &StoreState, db: u8, key: &Bytes) -> bool {
        let h = key_hash(key);
        let mut shard = st.dbs[db as usize].shards[shard_of(h)].write();
        let Some(e) = shard.get_mut(h, key) else { return false };
        e.encode(&mut self.buf);
        let size = (key.len() + self.buf.len()) as u32;
        st.add_bytes(i64::from(size) - i64::from(e.size));
        e.size = size;
        true
    }

    /// Logs the final state of every key the group touched, in records of about `LOG_CHUNK`
    /// bytes: a few sequential pages per commit instead of one B-tree leaf per key.
    fn write_log(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        let mut table = txn.open_table(LOG)?;
        let mut rec = Vec::new();
        let dirty: Vec<(u32, u8, Bytes)> = self.dirty.drain().collect();
        for (id, db, key) in dirty {
            let Some(st) = self.by_id.get(&id).cloned() else { continue };
            let present = self.encode_current(&st, db, &key);
            rec.extend_from_slice(&id.to_le_bytes());
            rec.push(db);
            rec.extend_from_slice(&(key.len() as u32).to_le_bytes());
            rec.extend_from_slice(&key);
            if present {
                rec.extend_from_slice(&(self.buf.len() as u32).to_le_bytes());
                rec.extend_from_slice(&self.buf);
            } else {
                rec.extend_from_slice(&REMOVED.to_le_bytes());
            }
            self.pending.insert((id, db, key));
            if rec.len() >= LOG_CHUNK {
                table.insert(self.log_next, rec.as_slice())?;
                self.log_next += 1;
                self.log_bytes += rec.len();
                rec.clear();
            }
        }
        if !rec.is_empty() {
            table.insert(self.log_next, rec.as_slice())?;
            self.log_next += 1;
            self.log_bytes += rec.len();
        }
        Ok(())
    }

    /// Writes the current state of every key the log (or this group) holds into the key
    /// table and empties the log.
    fn checkpoint(&mut self, txn: &WriteTransaction) -> Result<(), KvError> {
        let keys: Vec<(u32, u8, Bytes)> = self.pending.drain().chain(self.dirty.drain()).collect();
        if !keys.is_empty() {
            let mut table = txn.open_table(DATA)?;
            let mut dk = Vec::new();
            for (id, db, key) in keys {
                let Some(st) = self.by_id.get(&id).cloned() else { continue };
                data_key(&mut dk, id, db, &key);
                if self.encode_current(&st, db, &key) {
                    table.insert(dk.as_slice(), self.buf.as_slice())?;
                } else {
                    table.remove(dk.as_slice())?;
                }
            }
        }
        if self.log_bytes > 0 {
            txn.open_table(LOG)?.retain(|_, _| false)?;
            self.log_bytes = 0;
        }
        Ok(())
    }

    /// Deletes keys whose time has passed, oldest first, at most `budget` of them.
    fn sweep(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(first) = self.expiry.first() else { return };
            if first.0 > self.now {
                return;
            }
            let Some((at, id, db, key)) = self.expiry.pop_first() else { return };
            let Some(st) = self.by_id.get(&id).cloned() else { continue };
            let h = key_hash(&key);
            let mut shard = st.dbs[db as usize].shards[shard_of(h)].write();
            if shard.get(h, &key).is_some_and(|e| e.expires_at == at) {
                let old = shard.remove(h, &key);
                if let Some(old) = old {
                    self.removed(&st, db, &key, &old, ChangeKind::Expire);
                }
            }
        }
    }

    fn track(&mut self, id: u32, db: u8, key: &Bytes, at: u64) {
        if at != 0 {
            self.expiry.insert((at, id, db, key.clone()));
        }
    }

    fn untrack(&mut self, id: u32, db: u8, key: &Bytes, at: u64) {
        if at != 0 {
            self.expiry.remove(&(at, id, db, key.clone()));
        }
    }

    fn change(
        &mut self,
        st: &StoreState,
        db: u8,
        key: &[u8],
        kind: ChangeKind,
        value: Option<&Bytes>,
        at: u64,
    ) {
        if !st.changes.load(Ordering::Relaxed) {
            return;
        }
        let s = self.seqs.entry(st.id).or_default();
        s.last += 1;
        if s.first == 0 {
            s.first = s.last;
        }
        let seq = s.last;
        self.changes.push((st.id, seq, encode_change(kind, db, self.now, at, key, value)));
        self.seq_touched.insert(st.id, seq);
    }

    /// Bookkeeping for a key just taken out of its shard.
    fn removed(&mut self, st: &StoreState, db: u8, key: &Bytes, old: &Entry, kind: ChangeKind) {
        st.add_bytes(-i64::from(old.size));
        self.untrack(st.id, db, key, old.expires_at);
        st.dbs[db as usize].ordered.write().remove(key);
        self.dirty.insert((st.id, db, key.clone()));
        self.change(st, db, key, kind, None, 0);
    }

    /// Removes the key if it is present but expired, as Redis does on every write access.
    fn expire_stale(&mut self, st: &StoreState, db: u8, shard: &mut Shard, h: u64, key: &Bytes) {
        if shard.get(h, key).is_some_and(|e| e.is_expired(self.now))
            && let Some(old) = shard.remove(h, key)
        {
            self.removed(st, db, key, &old, ChangeKind::Expire);
        }
    }

    fn delete(&mut self, st: &StoreState, db: u8, shard: &mut Shard, h: u64, key: &Bytes) -> bool {
        match shard.remove(h, key) {
            Some(old) => {
                self.removed(st, db, key, &old, ChangeKind::Delete);
                true
            }
            None => false,
        }
    }

    fn put(&mut self, st: &StoreState, db: u8, shard: &mut Shard, h: u64, key: &Bytes, mut entry: Entry) {
        // Counted in the byte total when flushed (a renamed entry arrives with its old size).
        entry.size = 0;
        let at = entry.expires_at;
        let value = match &entry.value {
            Value::Str(b) if st.changes.load(Ordering::Relaxed) => Some(b.clone()),
            _ => None,
        };
        let old = shard.insert(h, key.clone(), entry);
        if let Some(old) = &old {
            st.add_bytes(-i64::from(old.size));
        }
        match old {
            Some(old) if old.expires_at != at => {
                self.untrack(st.id, db, key, old.expires_at);
                self.track(st.id, db, key, at);
            }
            Some(_) => {}
            None => {
                st.dbs[db as usize].ordered.write().insert(key.clone());
                self.track(st.id, db, key, at);
            }
        }
        self.dirty.insert((st.id, db, key.clone()));
        self.change(st, db, key, ChangeKind::Set, value.as_ref(), at);
    }

    /// Bookkeeping for a live entry changed in place (its expiry maybe from `old_at`).
    fn modified(&mut self, st: &StoreState, db: u8, key: &Bytes, e: &Entry, old_at: u64) {
        if old_at != e.expires_at {
            self.untrack(st.id, db, key, old_at);
            self.track(st.id, db, key, e.expires_at);
        }
        self.dirty.insert((st.id, db, key.clone()));
        let value = match &e.value {
            Value::Str(b) => Some(b),
            _ => None,
        };
        self.change(st, db, key, ChangeKind::Set, value, e.expires_at);
    }

    fn check_key(&self, key: &[u8]) -> Result<(), KvError> {
        let max = self.shared.config.max_key_bytes;
        if key.len() > max { Err(KvError::KeyTooLarge { len: key.len(), max }) } else { Ok(()) }
    }

    /// Applies one op. The outer error aborts the whole group (the disk failed); the inner one
    /// is this op's reply.
    fn apply(
        &mut self,
        txn: &WriteTransaction,
        st: &Arc<StoreState>,
        db: u8,
        op: Op,
    ) -> Result<Result<Reply, KvError>, KvError> {
        let dbm = &st.dbs[db as usize];
        if let Some(r) = read(dbm, &op, self.now) {
            return Ok(r);
        }
        if let Op::FlushDb = op {
            return self.flush_db(txn, st, db).map(|()| Ok(Reply::Ok));
        }
        Ok(self.apply_data(st, db, op))
    }

    fn flush_db(&mut self, txn: &WriteTransaction, st: &Arc<StoreState>, db: u8) -> Result<(), KvError> {
        // The log may hold this database's keys: fold it in first, so a range delete of the key
        // table removes them all and nothing older than the flush is replayed at open.
        self.checkpoint(txn)?;
        let dbm = &st.dbs[db as usize];
        let mut freed = 0i64;
        {
            let mut locked = Locked::all(dbm);
            for (_, g) in &mut locked.guards {
                g.for_each(|_, e| freed += i64::from(e.size));
                g.clear();
            }
            dbm.ordered.write().clear();
        }
        st.add_bytes(-freed);
        let id = st.id;
        self.expiry.retain(|(_, i, d, _)| !(*i == id && *d == db));
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        data_key(&mut lo, id, db, b"");
        data_key(&mut hi, id, db + 1, b"");
        txn.open_table(DATA)?.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
        self.change(st, db, b"", ChangeKind::Flush, None, 0);
        Ok(())
    }

    fn apply_data(&mut self, st: &Arc<StoreState>, db: u8, op: Op) -> Result<Reply, KvError> {
        let dbm = &st.dbs[db as usize];
        let now = self.now;
        let max_value = self.shared.config.max_value_bytes;
        match op {
            Op::Set { key, value, options } => {
                self.check_key(&key)?;
                too_large(value.len(), max_value)?;
                if options.keep_ttl && options.expire.is_some() {
                    return Err(KvError::InvalidArgument("KEEPTTL with an expiry".into()));
                }
                let at = options.expire.map(|e| e.for_set(now)).transpose()?;
                let h = key_hash(&key);
                let mut shard = dbm.shards[shard_of(h)].write();
                self.expire_stale(st, db, &mut shard, h, &key);
                let cur = shard.get(h, &key);
                let old = match (options.get, cur) {
                    (true, Some(e)) => match &e.value {
                        Value::Str(b) => Some(b.clone()),
                        _ => return Err(KvError::WrongType),
                    },
                    _ => None,
                };
                let write = match options.condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => cur.is_none(),
                    SetCondition::IfExists => cur.is_some(),
                };
                if write {
                    let expires_at = match at {
                        Some(t) => Some(t),
                        None if options.keep_ttl => Some(cur.map_or(0, |e| e.expires_at as i64)),
                        None => Some(0),
                    };
                    match expires_at {
                        // Redis: a SET whose absolute expiry already passed leaves no key.
                        Some(t) if t != 0 && t <= now as i64 => {
                            self.delete(st, db, &mut shard, h, &key);
                        }
                        t => {
                            let t = t.unwrap_or(0) as u64;
                            self.put(st, db, &mut shard, h, &key, Entry::new(Value::Str(value), t));
                        }
                    }
                }
                Ok(if options.get {
                    opt_bulk(old)
                } else if write {
                    Reply::Ok
                } else {
                    Reply::Nil
                })
            }
            Op::MSet(pairs) => {
                let items = pairs.into_iter().map(|(k, v)| (k, v, 0u64)).collect();
                self.set_all(st, db, items)
            }
            Op::SetMany(items) => {
                let mut all = Vec::with_capacity(items.len());
                for it in items {
                    let at = match it.ttl {
                        None => 0,
                        Some(d) if d.is_zero() => return Err(KvError::InvalidExpireTime("set")),
                        Some(d) => now.saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
                    };
                    all.push((it.key, it.value, at));
                }
                self.set_all(st, db, all)
            }
            Op::IncrBy(key, by) => self.incr(st, db, key, by),
            Op::DecrBy(key, by) => {
                let by = by.checked_neg().ok_or(KvError::DecrementOverflow)?;
                self.incr(st, db, key, by)
            }
            Op::Append(key, add) => {
                self.check_key(&key)?;
                let h = key_hash(&key);
                let mut shard = dbm.shards[shard_of(h)].write();
                self.expire_stale(st, db, &mut shard, h, &key);
                match shard.get_mut(h, &key) {
                    None => {
                        too_large(add.len(), max_value)?;
                        let n = add.len();
                        self.put(st, db, &mut shard, h, &key, Entry::new(Value::Str(add), 0));
                        Ok(Reply::Int(n as i64))
                    }
                    Some(e) => {
                        let Value::Str(b) = &e.value else { return Err(KvError::WrongType) };
                        too_large(b.len() + add.len(), max_value)?;
                        let mut v = Vec::with_capacity(b.len() + add.len());
                        v.extend_from_slice(b);
                        v.extend_from_slice(&add);
                        let n = v.len();
                        e.value = Value::Str(Bytes::from(v));
                        let at = e.expires_at;
                        self.modified(st, db, &key, e, at);
                        Ok(Reply::Int(n as i64))
                    }
                }
            }
            Op::CompareAndSwap { key, expected, value, ttl } => {
                self.check_key(&key)?;
                too_large(value.len(), max_value)?;
                let at = match ttl {
                    None => 0,
                    Some(d) if d.is_zero() => return Err(KvError::InvalidExpireTime("set")),
                    Some(d) => now.saturating_add(d.as_millis().min(u64::MAX as u128) as u64),
                };
                let h = key_hash(&key);
                let mut shard = dbm.shards[shard_of(h)].write();
                self.expire_stale(st, db, &mut shard, h, &key);
                let matches = match (shard.get(h, &key), &expected) {
                    (None, None) => true,
                    (Some(e), Some(want)) => match &e.value {
                        Value::Str(b) => b == want,
                        _ => return Err(KvError::WrongType),
                    },
                    (Some(e), None) if e.value.kind() != crate::KeyType::String => {
                        return Err(KvError::WrongType);
                    }
                    _ => false,
                };
                if matches {
                    self.put(st, db, &mut shard, h, &key, Entry::new(Value::Str(value), at));
                }
                Ok(Reply::Int(i64::from(matches)))
            }
            Op::Del(keys) => {
                let hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
                let mut locked = Locked::new(dbm, hashes.iter().copied());
                let mut n = 0;
                for (k, h) in keys.iter().zip(hashes) {
                    let shard = locked.shard(h);
                    self.expire_stale(st, db, shard, h, k);
                    n += i64::from(self.delete(st, db, shard, h, k));
                }
                Ok(Reply::Int(n))
            }
            Op::Expire { key, expire, condition, command } => {
                let at = expire.at_ms(now, command)?;
                let h = key_hash(&key);
                let mut shard = dbm.shards[shard_of(h)].write();
                self.expire_stale(st, db, &mut shard, h, &key);
                let Some(e) = shard.get_mut(h, &key) else { return Ok(Reply::Int(0)) };
                let cur = e.expires_at;
                let ok = match condition {
                    ExpireCondition::Always => true,
                    ExpireCondition::Nx => cur == 0,
                    ExpireCondition::Xx => cur != 0,
                    ExpireCondition::Gt => cur != 0 && at > cur as i64,
                    ExpireCondition::Lt => cur == 0 || at < cur as i64,
                    ExpireCondition::XxLt => cur != 0 && at < cur as i64,
                };
                if !ok {
                    return Ok(Reply::Int(0));
                }
                if at <= now as i64 {
                    self.delete(st, db, &mut shard, h, &key);
                } else {
                    e.expires_at = at as u64;
                    self.modified(st, db, &key, e, cur);
                }
                Ok(Reply::Int(1))
            }
            Op::Persist(key) => {
                let h = key_hash(&key);
                let mut shard = dbm.shards[shard_of(h)].write();
                self.expire_stale(st, db, &mut shard, h, &key);
                match shard.get_mut(h, &key) {
                    Some(e) if e.expires_at != 0 => {
                        let cur = e.expires_at;
                        e.expires_at = 0;
                        self.modified(st, db, &key, e, cur);
                        Ok(Reply::Int(1))
                    }
                    _ => Ok(Reply::Int(0)),
                }
            }
            Op::Rename(src, dst) => {
                self.check_key(&dst)?;
                let (hs, hd) = (key_hash(&src), key_hash(&dst));
                let mut locked = Locked::new(dbm, [hs, hd]);
                self.expire_stale(st, db, locked.shard(hs), hs, &src);
                self.expire_stale(st, db, locked.shard(hd), hd, &dst);
                if locked.shard(hs).get(hs, &src).is_none() {
                    return Err(KvError::NoSuchKey);
                }
                if src == dst {
                    return Ok(Reply::Ok);
                }
                let Some(entry) = locked.shard(hs).remove(hs, &src) else { return Err(KvError::NoSuchKey) };
                self.removed(st, db, &src, &entry, ChangeKind::Delete);
                self.put(st, db, locked.shard(hd), hd, &dst, entry);
                Ok(Reply::Ok)
            }
            Op::HSet(key, pairs) => {
                self.check_key(&key)?;
                if pairs.is_empty() {
                    return Err(KvError::InvalidArgument(format!("no fields to set in {key:?}")));
                }
                self.collection(st, db, key, crate::KeyType::Hash, |v| {
                    let Value::Hash(h) = v else { unreachable!("kind checked") };
                    let mut grow = 0i64;
                    for (f, val) in &pairs {
                        grow += match h.get(f) {
                            Some(old) => val.len() as i64 - old.len() as i64,
                            None => 8 + (f.len() + val.len()) as i64,
                        };
                    }
                    let added = pairs.iter().filter(|(f, _)| !h.contains_key(f)).count();
                    Ok((grow, move |v: &mut Value| {
                        let Value::Hash(h) = v else { unreachable!("kind checked") };
                        h.extend(pairs);
                        Reply::Int(added as i64)
                    }))
                })
            }
            Op::HDel(key, fields) => self.shrink(st, db, key, crate::KeyType::Hash, |v| {
                let Value::Hash(h) = v else { unreachable!("kind checked") };
                Reply::Int(fields.iter().filter(|f| h.remove(f.as_ref()).is_some()).count() as i64)
            }),
            Op::HIncrBy(key, field, by) => {
                self.check_key(&key)?;
                let cur = ops_hash_int(dbm, &key, &field, now)?;
                let n = cur.checked_add(by).ok_or(KvError::Overflow)?;
                let nv = Bytes::from(n.to_string());
                self.collection(st, db, key, crate::KeyType::Hash, move |v| {
                    let Value::Hash(h) = v else { unreachable!("kind checked") };
                    let grow = match h.get(&field) {
                        Some(old) => nv.len() as i64 - old.len() as i64,
                        None => 8 + (field.len() + nv.len()) as i64,
                    };
                    Ok((grow, move |v: &mut Value| {
                        let Value::Hash(h) = v else { unreachable!("kind checked") };
                        h.insert(field, nv);
                        Reply::Int(n)
                    }))
                })
            }
            // Redis never holds an empty collection, so a write that adds nothing is refused.
            Op::LPush(key, items) | Op::RPush(key, items) | Op::SAdd(key, items) if items.is_empty() => {
                Err(KvError::InvalidArgument(format!("no values to add to {key:?}")))
            }

            op @ (Op::LPush(..) | Op::RPush(..)) => {
                let (front, key, items) = match op {
                    Op::LPush(k, i) => (true, k, i),
                    Op::RPush(k, i) => (false, k, i),
                    _ => unreachable!("matched above"),
                };
                self.check_key(&key)?;
                let grow = items.iter().map(|i| 4 + i.len() as i64).sum();
                self.collection(st, db, key, crate::KeyType::List, move |_| {
                    Ok((grow, move |v: &mut Value| {
                        let Value::List(l) = v else { unreachable!("kind checked") };
                        for i in items {
                            if front { l.push_front(i) } else { l.push_back(i) }
                        }
                        Reply::Int(l.len() as i64)
                    }))
                })
            }
            op @ (Op::LPop(..) | Op::RPop(..)) => {
                let (front, key, count) = match op {
                    Op::LPop(k, c) => (true, k, c),
                    Op::RPop(k, c) => (false, k, c),
                    _ => unreachable!("matched above"),
                };
                let h = key_hash(&key);
                {
                    let mut shard = dbm.shards[shard_of(h)].write();
                    self.expire_stale(st, db, &mut shard, h, &key);
                    match shard.get(h, &key) {
                        None => return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil }),
                        Some(e) if e.value.kind() != crate::KeyType::List => return Err(KvError::WrongType),
                        Some(_) if count == Some(0) => return Ok(Reply::Array(Vec::new())),
                        Some(_) => {}
                    }
                }
                self.shrink(st, db, key, crate::KeyType::List, move |v| {
                    let Value::List(l) = v else { unreachable!("kind checked") };
                    let n = count.unwrap_or(1).min(l.len());
                    let popped: Vec<Bytes> =
                        (0..n).filter_map(|_| if front { l.pop_front() } else { l.pop_back() }).collect();
                    match count {
                        None => opt_bulk(popped.into_iter().next()),
                        Some(_) => bulks(popped),
                    }
                })
            }
            Op::SAdd(key, members) => {
                self.check_key(&key)?;
                self.collection(st, db, key, crate::KeyType::Set, move |v| {
                    let Value::Set(s) = v else { unreachable!("kind checked") };
                    let fresh: BTreeSet<Bytes> = members.into_iter().filter(|m| !s.contains(m)).collect();
                    let grow = fresh.iter().map(|m| 4 + m.len() as i64).sum();
                    Ok((grow, move |v: &mut Value| {
                        let Value::Set(s) = v else { unreachable!("kind checked") };
                        let n = fresh.len();
                        s.extend(fresh);
                        Reply::Int(n as i64)
                    }))
                })
            }
            Op::SRem(key, members) => self.shrink(st, db, key, crate::KeyType::Set, |v| {
                let Value::Set(s) = v else { unreachable!("kind checked") };
                Reply::Int(members.iter().filter(|m| s.remove(m.as_ref())).count() as i64)
            }),
            other => Err(KvError::InvalidArgument(format!("not a write: {other:?}"))),
        }
    }

    /// MSET and batch set: all items checked first, then applied under all their shards' locks,
    /// so no reader sees part of it.
    fn set_all(
        &mut self,
        st: &Arc<StoreState>,
        db: u8,
        items: Vec<(Bytes, Bytes, u64)>,
    ) -> Result<Reply, KvError> {
        let max_value = self.shared.config.max_value_bytes;
        for (k, v, _) in &items {
            self.check_key(k)?;
            too_large(v.len(), max_value)?;
        }
        let dbm = &st.dbs[db as usize];
        let hashes: Vec<u64> = items.iter().map(|(k, _, _)| key_hash(k)).collect();
        let mut locked = Locked::new(dbm, hashes.iter().copied());
        for ((k, v, at), h) in items.into_iter().zip(hashes) {
            let shard = locked.shard(h);
            self.expire_stale(st, db, shard, h, &k);
            self.put(st, db, shard, h, &k, Entry::new(Value::Str(v), at));
        }
        Ok(Reply::Ok)
    }

    fn incr(&mut self, st: &Arc<StoreState>, db: u8, key: Bytes, by: i64) -> Result<Reply, KvError> {
        self.check_key(&key)?;
        let dbm = &st.dbs[db as usize];
        let h = key_hash(&key);
        let mut shard = dbm.shards[shard_of(h)].write();
        self.expire_stale(st, db, &mut shard, h, &key);
        match shard.get_mut(h, &key) {
            None => {
                self.put(st, db, &mut shard, h, &key, Entry::new(Value::Str(Bytes::from(by.to_string())), 0));
                Ok(Reply::Int(by))
            }
            Some(e) => {
                let Value::Str(b) = &e.value else { return Err(KvError::WrongType) };
                let cur = parse_i64(b).ok_or(KvError::NotInteger)?;
                let n = cur.checked_add(by).ok_or(KvError::Overflow)?;
                e.value = Value::Str(Bytes::from(n.to_string()));
                let at = e.expires_at;
                self.modified(st, db, &key, e, at);
                Ok(Reply::Int(n))
            }
        }
    }

    /// A growing write to a collection: `plan` sees the current value (an empty one if the key
    /// is absent) and says how many payload bytes the change adds and how to make it; the size
    /// limit is checked before anything changes.
    fn collection<F, A>(
        &mut self,
        st: &Arc<StoreState>,
        db: u8,
        key: Bytes,
        kind: crate::KeyType,
        plan: F,
    ) -> Result<Reply, KvError>
    where
        F: FnOnce(&Value) -> Result<(i64, A), KvError>,
        A: FnOnce(&mut Value) -> Reply,
    {
        let max_value = self.shared.config.max_value_bytes;
        let dbm = &st.dbs[db as usize];
        let h = key_hash(&key);
        let mut shard = dbm.shards[shard_of(h)].write();
        self.expire_stale(st, db, &mut shard, h, &key);
        match shard.get_mut(h, &key) {
            Some(e) => {
                if e.value.kind() != kind {
                    return Err(KvError::WrongType);
                }
                let (grow, act) = plan(&e.value)?;
                if grow > 0 {
                    too_large(e.value.payload_len() + grow as usize, max_value)?;
                }
                let reply = act(&mut e.value);
                let at = e.expires_at;
                self.modified(st, db, &key, e, at);
                Ok(reply)
            }
            None => {
                let mut v = match kind {
                    crate::KeyType::Hash => Value::Hash(BTreeMap::new()),
                    crate::KeyType::List => Value::List(VecDeque::new()),
                    crate::KeyType::Set => Value::Set(BTreeSet::new()),
                    crate::KeyType::String => Value::Str(Bytes::new()),
                };
                let (grow, act) = plan(&v)?;
                too_large(grow.max(0) as usize, max_value)?;
                let reply = act(&mut v);
                self.put(st, db, &mut shard, h, &key, Entry::new(v, 0));
                Ok(reply)
            }
        }
    }

    /// A shrinking write to a collection (HDEL, SREM, pops): an absent key is left absent, and
    /// a collection left empty is deleted, as Redis does.
    fn shrink(
        &mut self,
        st: &Arc<StoreState>,
        db: u8,
        key: Bytes,
        kind: crate::KeyType,
        act: impl FnOnce(&mut Value) -> Reply,
    ) -> Result<Reply, KvError> {
        let dbm = &st.dbs[db as usize];
        let h = key_hash(&key);
        let mut shard = dbm.shards[shard_of(h)].write();
        self.expire_stale(st, db, &mut shard, h, &key);
        let Some(e) = shard.get_mut(h, &key) else { return Ok(ops::absent_shrink_reply(kind)) };
        if e.value.kind() != kind {
            return Err(KvError::WrongType);
        }
        let before = e.value.payload_len();
        let reply = act(&mut e.value);
        let empty = match &e.value {
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::Str(_) => false,
        };
        if empty {
            self.delete(st, db, &mut shard, h, &key);
        } else if e.value.payload_len() != before {
            let at = e.expires_at;
            self.modified(st, db, &key, e, at);
        }
        Ok(reply)
    }

    fn admin(&mut self, txn: &WriteTransaction, op: Admin) -> Result<Result<(), KvError>, KvError> {
        match op {
            Admin::CreateStore { name, changes } => {
                if self.shared.stores.read().contains_key(&name) {
                    return Ok(Err(KvError::StoreExists(name)));
                }
                let id = self.next_store_id;
                self.next_store_id += 1;
                txn.open_table(META)?.insert(NEXT_STORE_ID, u64::from(self.next_store_id))?;
                let meta = StoreMeta { id, created_ms: self.now, changes };
                txn.open_table(STORES)?.insert(name.as_str(), meta.encode().as_slice())?;
                let st = Arc::new(StoreState::new(name.clone(), &meta));
                self.by_id.insert(id, st.clone());
                self.seqs.insert(id, Seqs { last: 0, first: 1 });
                self.shared.stores.write().insert(name, st);
                Ok(Ok(()))
            }
            Admin::DeleteStore(name) => {
                if !self.shared.stores.read().contains_key(&name) {
                    return Ok(Err(KvError::NoSuchStore(name)));
                }
                // As for FLUSHDB: nothing of the store may stay in the log.
                self.checkpoint(txn)?;
                let Some(st) = self.shared.stores.write().remove(&name) else {
                    return Ok(Err(KvError::NoSuchStore(name)));
                };
                st.deleted.store(true, Ordering::SeqCst);
                st.clear();
                let id = st.id;
                self.by_id.remove(&id);
                self.seqs.remove(&id);
                self.consumers.remove(&id);
                self.seq_touched.remove(&id);
                self.expiry.retain(|(_, i, _, _)| *i != id);
                self.dirty.retain(|(i, _, _)| *i != id);
                self.changes.retain(|(i, _, _)| *i != id);
                let (lo, hi) = (id.to_be_bytes(), (id + 1).to_be_bytes());
                txn.open_table(DATA)?.retain_in(lo.as_slice()..hi.as_slice(), |_, _| false)?;
                txn.open_table(CHANGES)?.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                txn.open_table(CURSORS)?.retain_in((id, "")..(id + 1, ""), |_, _| false)?;
                txn.open_table(SEQS)?.remove(id)?;
                txn.open_table(STORES)?.remove(name.as_str())?;
                Ok(Ok(()))
            }
            Admin::SetChanges(name, on) => {
                let Some(st) = self.shared.stores.read().get(&name).cloned() else {
                    return Ok(Err(KvError::NoSuchStore(name)));
                };
                st.changes.store(on, Ordering::SeqCst);
                let meta = StoreMeta { id: st.id, created_ms: st.created_ms, changes: on };
                txn.open_table(STORES)?.insert(name.as_str(), meta.encode().as_slice())?;
                Ok(Ok(()))
            }
            Admin::Ack { store, consumer, seq } => {
                let Some(st) = self.shared.stores.read().get(&store).cloned() else {
                    return Ok(Err(KvError::NoSuchStore(store)));
                };
                let acked = self.consumers.entry(st.id).or_default().entry(consumer.clone()).or_default();
                *acked = (*acked).max(seq);
                txn.open_table(CURSORS)?.insert((st.id, consumer.as_str()), *acked)?;
                Ok(Ok(()))
            }
            Admin::RemoveConsumer { store, consumer } => {
                let Some(st) = self.shared.stores.read().get(&store).cloned() else {
                    return Ok(Err(KvError::NoSuchStore(store)));
                };
                if let Some(c) = self.consumers.get_mut(&st.id) {
                    c.remove(&consumer);
                }
                txn.open_table(CURSORS)?.remove((st.id, consumer.as_str()))?;
                Ok(Ok(()))
            }
        }
    }
}

/// A log record's items: (store id, db, key, entry or `None` if removed).
type LogItem = (u32, u8, Bytes, Option<Entry>);

fn log_items(mut rec: &[u8]) -> Result<Vec<LogItem>, KvError> {
    let bad = || KvError::Db("corrupt log record".into());
    let u32_at = |b: &[u8], i: usize| -> Result<u32, KvError> {
        Ok(u32::from_le_bytes(b.get(i..i + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?))
    };
    let mut out = Vec::new();
    while !rec.is_empty() {
        let id = u32_at(rec, 0)?;
        let db = *rec.get(4).ok_or_else(bad)?;
        let klen = u32_at(rec, 5)? as usize;
        let key = Bytes::copy_from_slice(rec.get(9..9 + klen).ok_or_else(bad)?);
        let elen = u32_at(rec, 9 + klen)?;
        let start = 13 + klen;
        if elen == REMOVED {
            out.push((id, db, key, None));
            rec = &rec[start..];
        } else {
            let end = start + elen as usize;
            let raw = rec.get(start..end).ok_or_else(bad)?;
            let mut e = Entry::decode(raw)?;
            e.size = (key.len() + raw.len()) as u32;
            out.push((id, db, key, Some(e)));
            rec = &rec[end..];
        }
    }
    Ok(out)
}

/// HINCRBY's current field value (0 if absent), checked before the write.
fn ops_hash_int(db: &DbMem, key: &[u8], field: &[u8], now: u64) -> Result<i64, KvError> {
    ops::with_entry(db, key, now, |e| match e.map(|e| &e.value) {
        None => Ok(0),
        Some(Value::Hash(h)) => match h.get(field) {
            None => Ok(0),
            Some(v) => parse_i64(v).ok_or(KvError::HashNotInteger),
        },
        Some(_) => Err(KvError::WrongType),
    })
}
