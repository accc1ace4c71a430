//! Queues and their messages.
//!
//! Layout: a message is a JSON header in `MESSAGES` and its body in `BODIES`, both keyed by
//! (queue, seq), where `seq` is a store-wide counter, so a queue's messages sort in send order.
//! A message that may be delivered when visible ("eligible": every message of a standard queue,
//! only the oldest of each group of a FIFO queue) is indexed in exactly one of `AVAILABLE`
//! (visible, by seq) or `PENDING` (by the time it becomes visible). A receive first moves the
//! due part of `PENDING` into `AVAILABLE`, then takes from `AVAILABLE` oldest first; so neither a
//! long backlog of in-flight messages nor a FIFO group waiting behind its head is scanned.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::{
    COUNTERS, DEDUP_WINDOW_MS, EventError, EventStore, MAX_BATCH, MAX_DELAY_MS, MAX_VISIBILITY_MS,
    NewMessage, QUEUES, QueueConfig, QueueInfo, QueueStats, Received, Result, after, check_name,
    check_not_reserved, decode, encode,
};

const MESSAGES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("messages");
const BODIES: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("bodies");
const AVAILABLE: TableDefinition<(&str, u64), ()> = TableDefinition::new("available");
/// (queue, visible_at_ms, seq).
const PENDING: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("pending");
/// (queue, group, seq): FIFO messages by group, to find each group's head.
const GROUPS: TableDefinition<(&str, &str, u64), ()> = TableDefinition::new("groups");
/// (queue, dedup id) -> (expires_ms, message id).
const DEDUP: TableDefinition<(&str, &str), (u64, &str)> = TableDefinition::new("dedup");
/// (queue, expires_ms, dedup id): to forget expired dedup ids without scanning them all.
const DEDUP_EXPIRY: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("dedup_expiry");

const MAX_GROUP_LEN: usize = 128;
const MAX_ATTRIBUTE_KEY_LEN: usize = 256;

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(MESSAGES)?;
    txn.open_table(BODIES)?;
    txn.open_table(AVAILABLE)?;
    txn.open_table(PENDING)?;
    txn.open_table(GROUPS)?;
    txn.open_table(DEDUP)?;
    txn.open_table(DEDUP_EXPIRY)?;
    Ok(())
}

/// A message's header as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    sent_ms: u64,
    /// When it entered this queue: retention and age count from here.
    enqueued_ms: u64,
    visible_at: u64,
    receive_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first_received_ms: Option<u64>,
    /// Nonce of the latest delivery's receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receipt: Option<u64>,
}

/// The header of a message just sent.
pub(crate) fn new_meta(
    id: &str,
    attributes: &BTreeMap<String, String>,
    group: Option<String>,
    now_ms: u64,
    delay_ms: u64,
) -> Meta {
    Meta {
        id: id.to_string(),
        attributes: attributes.clone(),
        group,
        sent_ms: now_ms,
        enqueued_ms: now_ms,
        visible_at: now_ms.saturating_add(delay_ms),
        receive_count: 0,
        first_received_ms: None,
        receipt: None,
    }
}

impl Meta {
    /// The same message entering another queue (dead-lettered or redriven): deliveries start over.
    fn moved(&self, now_ms: u64) -> Meta {
        Meta {
            enqueued_ms: now_ms,
            visible_at: now_ms,
            receive_count: 0,
            first_received_ms: None,
            receipt: None,
            ..self.clone()
        }
    }

    fn expired(&self, config: &QueueConfig, now_ms: u64) -> bool {
        now_ms >= self.enqueued_ms.saturating_add(config.retention_ms)
    }
}

fn receipt_string(seq: u64, nonce: u64) -> String {
    format!("{seq:016x}{nonce:016x}")
}

fn parse_receipt(receipt: &str) -> Result<(u64, u64)> {
    let bad = || EventError::Invalid("malformed receipt handle".into());
    if receipt.len() != 32 || !receipt.is_ascii() {
        return Err(bad());
    }
    let seq = u64::from_str_radix(&receipt[..16], 16).map_err(|_| bad())?;
    let nonce = u64::from_str_radix(&receipt[16..], 16).map_err(|_| bad())?;
    Ok((seq, nonce))
}

pub(crate) fn load_queue(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<QueueInfo> {
    match table.get(name)? {
        Some(v) => decode(v.value()),
        None => Err(EventError::NoQueue(name.to_string())),
    }
}

fn message_size(body: &[u8], attributes: &BTreeMap<String, String>) -> usize {
    body.len() + attributes.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

pub(crate) fn check_size(body: &[u8], attributes: &BTreeMap<String, String>, max: usize) -> Result<()> {
    let bytes = message_size(body, attributes);
    if bytes > max {
        return Err(EventError::TooLarge { bytes, max });
    }
    Ok(())
}

pub(crate) fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<()> {
    for key in attributes.keys() {
        if key.is_empty() || key.len() > MAX_ATTRIBUTE_KEY_LEN {
            return Err(EventError::Invalid(format!(
                "attribute names must be 1 to {MAX_ATTRIBUTE_KEY_LEN} bytes; {key:?} is not"
            )));
        }
    }
    Ok(())
}

/// A group or dedup id: 1..=128 printable ASCII characters (SQS's rule).
fn check_token(what: &str, value: &str) -> Result<()> {
    let printable = value.bytes().all(|b| b.is_ascii_graphic());
    if value.is_empty() || value.len() > MAX_GROUP_LEN || !printable {
        return Err(EventError::Invalid(format!(
            "{what} {value:?} must be 1 to {MAX_GROUP_LEN} printable ASCII characters"
        )));
    }
    Ok(())
}

fn check_message(m: &NewMessage, config: &QueueConfig) -> Result<()> {
    check_attributes(&m.attributes)?;
    check_size(&m.body, &m.attributes, config.max_message_bytes)?;
    if m.delay_ms.is_some_and(|d| d > MAX_DELAY_MS) {
        return Err(EventError::Invalid(format!("delay_ms must be at most {MAX_DELAY_MS} (15 minutes)")));
    }
    match (config.fifo, &m.group) {
        (true, None) => return Err(EventError::Invalid("a FIFO queue needs a message group".into())),
        (false, Some(_)) => {
            return Err(EventError::Invalid("message groups are for FIFO queues only".into()));
        }
        (true, Some(g)) => check_token("message group", g)?,
        (false, None) => {}
    }
    match (config.fifo, &m.dedup_id) {
        (false, Some(_)) => Err(EventError::Invalid("deduplication ids are for FIFO queues only".into())),
        (true, Some(d)) => check_token("deduplication id", d),
        _ => Ok(()),
    }
}

fn check_visibility(visibility_ms: u64) -> Result<()> {
    if visibility_ms > MAX_VISIBILITY_MS {
        return Err(EventError::Invalid(format!(
            "visibility_ms must be at most {MAX_VISIBILITY_MS} (12 hours)"
        )));
    }
    Ok(())
}

fn check_batch(what: &str, n: usize) -> Result<()> {
    if !(1..=MAX_BATCH).contains(&n) {
        return Err(EventError::Invalid(format!("{what} takes 1 to {MAX_BATCH} messages, not {n}")));
    }
    Ok(())
}

/// The message tables of one write transaction, and the index upkeep that keeps them consistent.
pub(crate) struct MsgTables<'t> {
    messages: Table<'t, (&'static str, u64), &'static [u8]>,
    bodies: Table<'t, (&'static str, u64), &'static [u8]>,
    available: Table<'t, (&'static str, u64), ()>,
    pending: Table<'t, (&'static str, u64, u64), ()>,
    groups: Table<'t, (&'static str, &'static str, u64), ()>,
    counters: Table<'t, &'static str, u64>,
}

impl<'t> MsgTables<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(MsgTables {
            messages: txn.open_table(MESSAGES)?,
            bodies: txn.open_table(BODIES)?,
            available: txn.open_table(AVAILABLE)?,
            pending: txn.open_table(PENDING)?,
            groups: txn.open_table(GROUPS)?,
            counters: txn.open_table(COUNTERS)?,
        })
    }

    fn next_seq(&mut self) -> Result<u64> {
        let seq = self.counters.get("seq")?.map(|v| v.value()).unwrap_or(0) + 1;
        self.counters.insert("seq", seq)?;
        Ok(seq)
    }

    fn meta(&self, q: &str, seq: u64) -> Result<Option<Meta>> {
        self.messages.get((q, seq))?.map(|v| decode(v.value())).transpose()
    }

    fn indexed_meta(&self, q: &str, seq: u64) -> Result<Meta> {
        self.meta(q, seq)?
            .ok_or_else(|| EventError::Corrupt(format!("queue {q} indexes message {seq}, which is missing")))
    }

    fn body(&self, q: &str, seq: u64) -> Result<Vec<u8>> {
        match self.bodies.get((q, seq))? {
            Some(v) => Ok(v.value().to_vec()),
            None => Err(EventError::Corrupt(format!("message {seq} of queue {q} has no body"))),
        }
    }

    fn put_meta(&mut self, q: &str, seq: u64, meta: &Meta) -> Result<()> {
        self.messages.insert((q, seq), encode(meta).as_slice())?;
        Ok(())
    }

    fn group_head(&self, q: &str, group: &str) -> Result<Option<u64>> {
        let mut range = self.groups.range((q, group, 0)..=(q, group, u64::MAX))?;
        Ok(match range.next() {
            Some(entry) => Some(entry?.0.value().2),
            None => None,
        })
    }

    /// `now_ms` known: a message already visible goes straight to `AVAILABLE`, saving the next
    /// receive a promotion.
    fn make_eligible(&mut self, q: &str, seq: u64, visible_at: u64, now_ms: Option<u64>) -> Result<()> {
        if now_ms.is_some_and(|now| visible_at <= now) {
            self.available.insert((q, seq), ())?;
        } else {
            self.pending.insert((q, visible_at, seq), ())?;
        }
        Ok(())
    }

    /// Stores a new message at the end of queue `q`; returns its seq.
    pub(crate) fn append(
        &mut self,
        q: &str,
        fifo: bool,
        meta: &Meta,
        body: &[u8],
        now_ms: u64,
    ) -> Result<u64> {
        let seq = self.next_seq()?;
        self.put_meta(q, seq, meta)?;
        self.bodies.insert((q, seq), body)?;
        let eligible = match (fifo, &meta.group) {
            (true, Some(group)) => {
                let head = self.group_head(q, group)?.is_none();
                self.groups.insert((q, group.as_str(), seq), ())?;
                head
            }
            _ => true,
        };
        if eligible {
            self.make_eligible(q, seq, meta.visible_at, Some(now_ms))?;
        }
        Ok(seq)
    }

    /// Removes a message; in a FIFO queue, the next of its group becomes eligible if it was the head.
    fn remove(&mut self, q: &str, fifo: bool, seq: u64, meta: &Meta, now_ms: Option<u64>) -> Result<()> {
        self.messages.remove((q, seq))?;
        self.bodies.remove((q, seq))?;
        self.available.remove((q, seq))?;
        self.pending.remove((q, meta.visible_at, seq))?;
        if let (true, Some(group)) = (fifo, &meta.group) {
            let was_head = self.group_head(q, group)? == Some(seq);
            self.groups.remove((q, group.as_str(), seq))?;
            if was_head && let Some(next) = self.group_head(q, group)? {
                let next_meta = self.indexed_meta(q, next)?;
                self.make_eligible(q, next, next_meta.visible_at, now_ms)?;
            }
        }
        Ok(())
    }

    /// Removes every message of `q` without index upkeep for what stays (nothing does); returns
    /// the removed messages in send order.
    fn drain(&mut self, q: &str, keep_bodies: bool) -> Result<Vec<(Meta, Vec<u8>)>> {
        let mut all = Vec::new();
        {
            for entry in self.messages.range((q, 0)..=(q, u64::MAX))? {
                let (k, v) = entry?;
                all.push((k.value().1, decode::<Meta>(v.value())?));
            }
        }
        let mut out = Vec::with_capacity(all.len());
        for (seq, meta) in all {
            let body = if keep_bodies { self.body(q, seq)? } else { Vec::new() };
            self.messages.remove((q, seq))?;
            self.bodies.remove((q, seq))?;
            self.available.remove((q, seq))?;
            self.pending.remove((q, meta.visible_at, seq))?;
            if let Some(group) = &meta.group {
                self.groups.remove((q, group.as_str(), seq))?;
            }
            out.push((meta, body));
        }
        Ok(out)
    }

    /// Re-indexes an eligible message as invisible until `visible_at`.
    fn set_visible_at(&mut self, q: &str, seq: u64, meta: &mut Meta, visible_at: u64) -> Result<()> {
        self.available.remove((q, seq))?;
        self.pending.remove((q, meta.visible_at, seq))?;
        meta.visible_at = visible_at;
        self.pending.insert((q, visible_at, seq), ())?;
        self.put_meta(q, seq, meta)
    }

    fn promote_due(&mut self, q: &str, now_ms: u64) -> Result<()> {
        let mut due = Vec::new();
        for entry in self.pending.range((q, 0, 0)..=(q, now_ms, u64::MAX))? {
            let (k, _) = entry?;
            let (_, at, seq) = k.value();
            due.push((at, seq));
        }
        for (at, seq) in due {
            self.pending.remove((q, at, seq))?;
            self.available.insert((q, seq), ())?;
        }
        Ok(())
    }

    fn first_available(&self, q: &str) -> Result<Option<u64>> {
        let mut range = self.available.range((q, 0)..=(q, u64::MAX))?;
        Ok(match range.next() {
            Some(entry) => Some(entry?.0.value().1),
            None => None,
        })
    }
}

fn forget_dedup(txn: &WriteTransaction, q: &str, up_to_ms: Option<u64>) -> Result<()> {
    let mut dedup = txn.open_table(DEDUP)?;
    let mut expiry = txn.open_table(DEDUP_EXPIRY)?;
    let mut gone: Vec<(u64, String)> = Vec::new();
    {
        let end = after(q);
        for entry in expiry.range((q, 0, "")..(end.as_str(), 0, ""))? {
            let (k, _) = entry?;
            let (_, at, id) = k.value();
            if up_to_ms.is_some_and(|up_to| at > up_to) {
                break;
            }
            gone.push((at, id.to_string()));
        }
    }
    for (at, id) in gone {
        expiry.remove((q, at, id.as_str()))?;
        dedup.remove((q, id.as_str()))?;
    }
    Ok(())
}

impl EventStore {
    /// Creates a queue, or returns the existing one if its configuration is the same.
    /// Names starting with [`crate::INTERNAL_PREFIX`] are refused: see
    /// [`EventStore::create_internal_queue`].
    pub fn create_queue(&self, name: &str, config: QueueConfig, now_ms: u64) -> Result<QueueInfo> {
        check_not_reserved("queue", name)?;
        self.create_internal_queue(name, config, now_ms)
    }

    /// [`EventStore::create_queue`] for the platform's own queues (the reserved prefix allowed).
    pub fn create_internal_queue(&self, name: &str, config: QueueConfig, now_ms: u64) -> Result<QueueInfo> {
        check_name("queue", name)?;
        config.validate()?;
        let txn = self.db.begin_write()?;
        let info = {
            let mut queues = txn.open_table(QUEUES)?;
            if let Some(v) = queues.get(name)? {
                let existing: QueueInfo = decode(v.value())?;
                if existing.config == config {
                    return Ok(existing);
                }
                return Err(EventError::Exists(format!(
                    "queue {name} already exists with a different configuration"
                )));
            }
            check_dlq(&queues, name, &config)?;
            let info = QueueInfo { name: name.to_string(), config, created_ms: now_ms };
            queues.insert(name, encode(&info).as_slice())?;
            info
        };
        txn.commit()?;
        Ok(info)
    }

    /// Replaces the configuration of an existing queue (FIFO-ness cannot change). Messages
    /// keep their state; the new settings apply from their next receive.
    pub fn update_queue(&self, name: &str, config: QueueConfig) -> Result<QueueInfo> {
        config.validate()?;
        let txn = self.db.begin_write()?;
        let info = {
            let mut queues = txn.open_table(QUEUES)?;
            let mut info = load_queue(&queues, name)?;
            if info.config.fifo != config.fifo {
                return Err(EventError::Invalid(format!(
                    "queue {name} cannot change between FIFO and standard; make a new queue"
                )));
            }
            check_dlq(&queues, name, &config)?;
            info.config = config;
            queues.insert(name, encode(&info).as_slice())?;
            info
        };
        txn.commit()?;
        self.wake(name);
        Ok(info)
    }

    pub fn queue(&self, name: &str) -> Result<Option<QueueInfo>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(QUEUES)?;
        table.get(name)?.map(|v| decode(v.value())).transpose()
    }

    pub fn queues(&self) -> Result<Vec<QueueInfo>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(QUEUES)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }

    /// Deletes a queue and its messages; returns whether it existed. Refused while the queue is
    /// another queue's dead-letter queue or a topic's subscriber.
    pub fn delete_queue(&self, name: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        {
            let mut queues = txn.open_table(QUEUES)?;
            if queues.get(name)?.is_none() {
                return Ok(false);
            }
            for entry in queues.iter()? {
                let other: QueueInfo = decode(entry?.1.value())?;
                if other.name != name && other.config.dlq.as_deref() == Some(name) {
                    return Err(EventError::InUse(format!(
                        "queue {name} is the dead-letter queue of {}; change that queue first",
                        other.name
                    )));
                }
            }
            if let Some(topic) = crate::topics::subscribing_topic(&txn, name)? {
                return Err(EventError::InUse(format!(
                    "queue {name} is subscribed to topic {topic}; unsubscribe it first"
                )));
            }
            MsgTables::open(&txn)?.drain(name, false)?;
            forget_dedup(&txn, name, None)?;
            queues.remove(name)?;
        }
        txn.commit()?;
        self.forget_notifier(name);
        Ok(true)
    }

    /// Sends one message; returns its id once it is durable.
    pub fn send_one(&self, queue: &str, message: &NewMessage, now_ms: u64) -> Result<String> {
        let mut ids = self.send(queue, std::slice::from_ref(message), now_ms)?;
        ids.pop().ok_or_else(|| EventError::Db("send returned no id".into()))
    }

    /// Sends 1..=10 messages in one transaction; returns their ids (in order) once durable.
    /// Any invalid message refuses the whole batch.
    pub fn send(&self, queue: &str, messages: &[NewMessage], now_ms: u64) -> Result<Vec<String>> {
        let txn = self.db.begin_write()?;
        let ids = send_in(&txn, queue, messages, now_ms)?;
        txn.commit()?;
        self.wake(queue);
        Ok(ids)
    }

    /// Delivers up to `max` (1..=10) visible messages, oldest first, and hides them for
    /// `visibility_ms` (the queue's default if `None`). A message already received
    /// `max_receives` times moves to the dead-letter queue instead (if the queue has one);
    /// expired messages are dropped. FIFO: only the oldest message of a group, and only while
    /// no message of its group is in flight.
    pub fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Vec<Received>> {
        check_batch("receive", max)?;
        if let Some(v) = visibility_ms {
            check_visibility(v)?;
        }
        let txn = self.db.begin_write()?;
        let (out, dead_lettered) = {
            let info = load_queue(&txn.open_table(QUEUES)?, queue)?;
            let config = &info.config;
            let visibility = visibility_ms.unwrap_or(config.visibility_ms);
            let mut t = MsgTables::open(&txn)?;
            t.promote_due(queue, now_ms)?;
            let mut out = Vec::new();
            let mut dead_lettered = false;
            while out.len() < max {
                let Some(seq) = t.first_available(queue)? else { break };
                let mut meta = t.indexed_meta(queue, seq)?;
                if meta.expired(config, now_ms) {
                    t.remove(queue, config.fifo, seq, &meta, Some(now_ms))?;
                    continue;
                }
                if meta.receive_count >= config.max_receives
                    && let Some(dlq) = &config.dlq
                {
                    let body = t.body(queue, seq)?;
                    t.remove(queue, config.fifo, seq, &meta, Some(now_ms))?;
                    t.append(dlq, config.fifo, &meta.moved(now_ms), &body, now_ms)?;
                    dead_lettered = true;
                    continue;
                }
                meta.receive_count = meta.receive_count.saturating_add(1);
                let first_received_ms = *meta.first_received_ms.get_or_insert(now_ms);
                let nonce = loop {
                    let n = fastrand::u64(..);
                    if meta.receipt != Some(n) {
                        break n;
                    }
                };
                meta.receipt = Some(nonce);
                t.set_visible_at(queue, seq, &mut meta, now_ms.saturating_add(visibility))?;
                out.push(Received {
                    id: meta.id,
                    receipt: receipt_string(seq, nonce),
                    body: t.body(queue, seq)?,
                    attributes: meta.attributes,
                    group: meta.group,
                    receive_count: meta.receive_count,
                    sent_ms: meta.sent_ms,
                    first_received_ms,
                });
            }
            (out, dead_lettered.then(|| config.dlq.clone()).flatten())
        };
        txn.commit()?;
        if let Some(dlq) = dead_lettered {
            self.wake(&dlq);
        }
        Ok(out)
    }

    /// Deletes the message the receipt came from; `false` (and nothing changes) if the message
    /// is gone or has been received again since.
    pub fn delete(&self, queue: &str, receipt: &str) -> Result<bool> {
        Ok(self.delete_batch(queue, &[receipt.to_string()])?.first().copied().unwrap_or(false))
    }

    /// [`EventStore::delete`] for 1..=10 receipts in one transaction; one answer per receipt.
    pub fn delete_batch(&self, queue: &str, receipts: &[String]) -> Result<Vec<bool>> {
        check_batch("delete_batch", receipts.len())?;
        let parsed = receipts.iter().map(|r| parse_receipt(r)).collect::<Result<Vec<_>>>()?;
        let txn = self.db.begin_write()?;
        let (out, fifo) = {
            let info = load_queue(&txn.open_table(QUEUES)?, queue)?;
            let mut t = MsgTables::open(&txn)?;
            let mut out = Vec::with_capacity(parsed.len());
            for (seq, nonce) in parsed {
                let deleted = match t.meta(queue, seq)? {
                    Some(meta) if meta.receipt == Some(nonce) => {
                        t.remove(queue, info.config.fifo, seq, &meta, None)?;
                        true
                    }
                    _ => false,
                };
                out.push(deleted);
            }
            (out, info.config.fifo)
        };
        txn.commit()?;
        // Deleting a group's head may let its next message out.
        if fifo && out.contains(&true) {
            self.wake(queue);
        }
        Ok(out)
    }

    /// Deletes the message the receipt came from and writes its invocation's record, in one
    /// transaction: the delivery's outcome costs one commit, not two. `false` (and the record
    /// is still written) if the receipt is stale.
    pub fn delete_with_record(
        &self,
        queue: &str,
        receipt: &str,
        record: &crate::InvocationRecord,
    ) -> Result<bool> {
        let (seq, nonce) = parse_receipt(receipt)?;
        let txn = self.db.begin_write()?;
        let (deleted, fifo) = {
            let info = load_queue(&txn.open_table(QUEUES)?, queue)?;
            let mut t = MsgTables::open(&txn)?;
            let deleted = match t.meta(queue, seq)? {
                Some(meta) if meta.receipt == Some(nonce) => {
                    t.remove(queue, info.config.fifo, seq, &meta, None)?;
                    true
                }
                _ => false,
            };
            (deleted, info.config.fifo)
        };
        self.put_invocation_in(&txn, record)?;
        txn.commit()?;
        if fifo && deleted {
            self.wake(queue);
        }
        Ok(deleted)
    }

    /// Hides the message the receipt came from until `now_ms + visibility_ms` (0: visible
    /// now). `false` if the receipt is stale or the message gone.
    pub fn change_visibility(
        &self,
        queue: &str,
        receipt: &str,
        visibility_ms: u64,
        now_ms: u64,
    ) -> Result<bool> {
        check_visibility(visibility_ms)?;
        let (seq, nonce) = parse_receipt(receipt)?;
        let txn = self.db.begin_write()?;
        let changed = {
            load_queue(&txn.open_table(QUEUES)?, queue)?;
            let mut t = MsgTables::open(&txn)?;
            match t.meta(queue, seq)? {
                Some(mut meta) if meta.receipt == Some(nonce) => {
                    t.set_visible_at(queue, seq, &mut meta, now_ms.saturating_add(visibility_ms))?;
                    true
                }
                _ => false,
            }
        };
        txn.commit()?;
        if changed {
            self.wake(queue);
        }
        Ok(changed)
    }

    /// Deletes every message of the queue (deduplication ids are kept); returns how many.
    pub fn purge(&self, queue: &str) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let n = {
            load_queue(&txn.open_table(QUEUES)?, queue)?;
            MsgTables::open(&txn)?.drain(queue, false)?.len() as u64
        };
        txn.commit()?;
        Ok(n)
    }

    /// Moves every message of `from_dlq` (in flight or not) to the end of `to_queue`, visible
    /// now, with its receive count reset; returns how many. The queues must be of the same
    /// FIFO-ness; group order is kept.
    pub fn redrive(&self, from_dlq: &str, to_queue: &str, now_ms: u64) -> Result<u64> {
        if from_dlq == to_queue {
            return Err(EventError::Invalid(format!("cannot redrive queue {from_dlq} into itself")));
        }
        let txn = self.db.begin_write()?;
        let n = {
            let queues = txn.open_table(QUEUES)?;
            let from = load_queue(&queues, from_dlq)?;
            let to = load_queue(&queues, to_queue)?;
            if from.config.fifo != to.config.fifo {
                return Err(EventError::Invalid(format!(
                    "cannot redrive between a FIFO and a standard queue ({from_dlq} -> {to_queue})"
                )));
            }
            let mut t = MsgTables::open(&txn)?;
            let moved = t.drain(from_dlq, true)?;
            for (meta, body) in &moved {
                t.append(to_queue, to.config.fifo, &meta.moved(now_ms), body, now_ms)?;
            }
            moved.len() as u64
        };
        txn.commit()?;
        if n > 0 {
            self.wake(to_queue);
        }
        Ok(n)
    }

    /// Counts the queue's messages by state (expired ones not yet dropped are not counted).
    pub fn stats(&self, queue: &str, now_ms: u64) -> Result<QueueStats> {
        let txn = self.db.begin_read()?;
        let info = load_queue(&txn.open_table(QUEUES)?, queue)?;
        let messages = txn.open_table(MESSAGES)?;
        let mut stats = QueueStats::default();
        let mut oldest: Option<u64> = None;
        for entry in messages.range((queue, 0)..=(queue, u64::MAX))? {
            let meta: Meta = decode(entry?.1.value())?;
            if meta.expired(&info.config, now_ms) {
                continue;
            }
            if meta.visible_at <= now_ms {
                stats.visible += 1;
            } else if meta.receive_count > 0 {
                stats.in_flight += 1;
            } else {
                stats.delayed += 1;
            }
            oldest = Some(oldest.map_or(meta.enqueued_ms, |o| o.min(meta.enqueued_ms)));
        }
        stats.oldest_age_ms = oldest.map(|o| now_ms.saturating_sub(o));
        Ok(stats)
    }

    /// The earliest time an invisible or delayed message that may be delivered next becomes
    /// visible; `None` if no such message waits. A time at or before now means a receive would
    /// find it.
    pub fn next_change_ms(&self, queue: &str) -> Result<Option<u64>> {
        let txn = self.db.begin_read()?;
        load_queue(&txn.open_table(QUEUES)?, queue)?;
        let pending = txn.open_table(PENDING)?;
        let mut range = pending.range((queue, 0, 0)..=(queue, u64::MAX, u64::MAX))?;
        Ok(match range.next() {
            Some(entry) => Some(entry?.0.value().1),
            None => None,
        })
    }
}

/// [`EventStore::send`] inside a caller's transaction (which commits and wakes).
pub(crate) fn send_in(
    txn: &WriteTransaction,
    queue: &str,
    messages: &[NewMessage],
    now_ms: u64,
) -> Result<Vec<String>> {
    check_batch("send", messages.len())?;
    let info = load_queue(&txn.open_table(QUEUES)?, queue)?;
    let config = &info.config;
    for m in messages {
        check_message(m, config)?;
    }
    let mut t = MsgTables::open(txn)?;
    if config.fifo {
        forget_dedup(txn, queue, Some(now_ms))?;
    }
    let mut dedup = txn.open_table(DEDUP)?;
    let mut expiry = txn.open_table(DEDUP_EXPIRY)?;
    let mut ids = Vec::with_capacity(messages.len());
    for m in messages {
        if let Some(d) = &m.dedup_id
            && let Some(v) = dedup.get((queue, d.as_str()))?
        {
            ids.push(v.value().1.to_string());
            continue;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let delay = m.delay_ms.unwrap_or(config.delay_ms);
        let meta = new_meta(&id, &m.attributes, m.group.clone(), now_ms, delay);
        t.append(queue, config.fifo, &meta, &m.body, now_ms)?;
        if let Some(d) = &m.dedup_id {
            let expires = now_ms.saturating_add(DEDUP_WINDOW_MS);
            dedup.insert((queue, d.as_str()), (expires, id.as_str()))?;
            expiry.insert((queue, expires, d.as_str()), ())?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The dead-letter queue of `name` must exist, differ from it, share its FIFO-ness and not lead
/// back to it.
fn check_dlq(
    queues: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    config: &QueueConfig,
) -> Result<()> {
    let Some(dlq) = &config.dlq else { return Ok(()) };
    if dlq == name {
        return Err(EventError::Invalid(format!("queue {name} cannot be its own dead-letter queue")));
    }
    let target = match load_queue(queues, dlq) {
        Err(EventError::NoQueue(_)) => {
            return Err(EventError::Invalid(format!(
                "dead-letter queue {dlq} does not exist; create it first"
            )));
        }
        other => other?,
    };
    if target.config.fifo != config.fifo {
        return Err(EventError::Invalid(format!(
            "dead-letter queue {dlq} must be {} like {name}",
            if config.fifo { "FIFO" } else { "a standard queue" }
        )));
    }
    // A cycle would pass messages round it forever, resetting their counts at every step.
    let mut next = target.config.dlq;
    let mut steps = 0;
    while let Some(n) = next {
        if n == name {
            return Err(EventError::Invalid(format!("dead-letter queue {dlq} leads back to {name}")));
        }
        steps += 1;
        if steps > 1000 {
            break;
        }
        next = match queues.get(n.as_str())? {
            Some(v) => decode::<QueueInfo>(v.value())?.config.dlq,
            None => None,
        };
    }
    Ok(())
}
